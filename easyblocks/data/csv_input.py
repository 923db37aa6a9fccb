"""CSV input through tf.data: batch lines first, then parse and preprocess in parallel.

A malformed row makes TensorFlow's CSV decoder fail with a message that names
neither the file nor the line. `find_bad_line` re-reads the files in Python to
report `file:line: what is wrong` instead; it runs on the first lines before
training starts and again whenever the decoder fails.
"""

from __future__ import annotations

import csv
import glob
import itertools
import logging
import math
import os
from collections.abc import Iterator

import tensorflow as tf

from easyblocks.config.specs import LOSS_COLUMN, SAMPLE_WEIGHT, DataSpec, FeatureSpec, FieldSpec
from easyblocks.errors import DataError
from easyblocks.features.preprocess import Preprocessor

HOLDOUT_BUCKETS = 10000
log = logging.getLogger("easyblocks")

TF_TYPES = {"INT32": tf.int32, "INT64": tf.int64, "STRING": tf.string, "FLOAT": tf.float32,
            "DOUBLE": tf.float64, "BOOL": tf.int32}


def expand_paths(spec: str, what: str = "input") -> list[str]:
    """Comma-separated paths or glob patterns -> existing files (sorted per pattern)."""
    files: list[str] = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        matches = sorted(glob.glob(part)) if any(c in part for c in "*?[") else [part]
        for m in matches:
            if not os.path.isfile(m):
                raise DataError(f"{what} file not found: {m}")
        if not matches:
            raise DataError(f"{what}: no file matches {part!r}")
        files.extend(matches)
    if not files:
        raise DataError(f"no {what} path configured")
    return files


def _record_default(field: FieldSpec) -> tf.Tensor:
    dtype = TF_TYPES[field.type]
    if field.default is not None:  # checked when the config was resolved
        text = field.default
        value = text if field.is_string else (
            float(text) if field.is_float else int(float(text)))
    else:
        value = "" if field.is_string else 0
    return tf.constant([value], dtype=dtype)


def cells_of_line(line: str, separator: str) -> list[str]:
    return next(csv.reader([line], delimiter=separator, quoting=csv.QUOTE_NONE), [])


def first_line(path: str) -> str | None:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        line = f.readline()
    return line.rstrip("\r\n") if line else None


def _parses(cells: list[str], fields: list[FieldSpec]) -> bool:
    try:
        check_row(cells, fields, "")
    except DataError:
        return False
    return True


def is_header(cells: list[str], data: DataSpec) -> bool:
    """Whether a file's first line is a header line.

    with_header true: it is, unless it is a valid data row that names none of the input
    fields (a headerless file: its first row is data). with_header false: it is when its
    cells are distinct and at least two of them (the only one, in a one-column file) are
    names of input fields (the file has a header after all).
    """
    names = set(data.field_names)
    stripped = [c.strip() for c in cells]
    if data.with_header:
        return any(c in names for c in stripped) or not _parses(cells, data.fields)
    known = sum(c in names for c in stripped)
    return len(set(stripped)) == len(stripped) and known >= min(2, len(stripped)) > 0


def header_lines(files: list[str], data: DataSpec, warn: bool = True) -> list[int]:
    """1 for each file whose first line is a header (skipped), else 0; see `is_header`."""
    out = []
    for path in files:
        line = first_line(path)
        skip = int(line is not None and is_header(cells_of_line(line, data.separator), data))
        if warn and line is not None and skip != int(data.with_header):
            what = ("its first line is a data row, not a header: it is read as data"
                    if data.with_header else "its first line is a header (the column names): "
                    "it is skipped")
            log.warning("%s: with_header is %s but %s", path, str(data.with_header).lower(),
                        what)
        out.append(skip)
    return out


def file_header(path: str, data: DataSpec) -> list[str] | None:
    """The column names of a file with a header line (see `is_header`), else None."""
    line = first_line(path)
    if line is None:
        return None
    cells = cells_of_line(line, data.separator)
    return [c.strip() for c in cells] if is_header(cells, data) else None


def check_has_rows(files: list[str], data: DataSpec, what: str) -> None:
    """DataError when the files hold no data row (all empty, or only header lines)."""
    for path, skip in zip(files, header_lines(files, data, warn=False)):
        with open(path, encoding="utf-8", errors="replace") as f:
            for i, line in enumerate(f):
                if i >= skip and line.strip():
                    return
    names = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    raise DataError(f"{what}: {names}: no data rows (the file{'s are' if len(files) > 1 else ' is'}"
                    " empty or only a header line)")


def check_row(row: list[str], fields: list[FieldSpec], where: str,
              labels: dict[str, str] | None = None,
              finite: dict[str, str | None] | None = None) -> None:
    """Raises DataError for a row with the wrong column count, a bad number, a label that
    breaks its rule (`labels`: column -> "binary", "class:N" or "number"; empty is an
    error), or a NaN / inf in a column of `finite` (column -> None, or the separator of a
    list)."""
    if len(row) != len(fields):
        raise DataError(f"{where}: expected {len(fields)} columns "
                        f"({', '.join(f.name for f in fields[:4])}, ...), found {len(row)}")
    labels, finite = labels or {}, finite or {}
    for value, f in zip(row, fields):
        rule = labels.get(f.name)
        if rule and value.strip() == "" and f.default is None:
            raise DataError(f"{where}: label {f.name!r} is empty; every training and "
                            "evaluation row needs its label")
        if value == "" or (f.is_string and f.name not in finite):
            continue
        if f.is_string:  # a list of numbers (a raw feature of several values)
            parts = [p for p in value.split(finite[f.name] or "|") if p.strip()]
            try:
                numbers = [float(p) for p in parts]
            except ValueError:
                raise DataError(f"{where}: column {f.name!r} has {value!r}, not numbers "
                                f"separated by {finite[f.name]!r}") from None
            if not all(math.isfinite(x) for x in numbers):
                raise DataError(f"{where}: column {f.name!r} has {value!r}: NaN and inf are "
                                "not accepted in a feature's numbers")
            continue
        try:
            number = float(value) if f.is_float else int(value)
        except ValueError:
            raise DataError(f"{where}: column {f.name!r} ({f.type}) has "
                            f"{value!r}, not a number") from None
        if not math.isfinite(number) and (f.name in finite or rule):
            raise DataError(f"{where}: column {f.name!r} has {value!r}: NaN and inf are not "
                            "accepted in a feature or a label")
        if rule == "binary" and number not in (0, 1):
            raise DataError(f"{where}: label {f.name!r} is {value!r}; a CLASSIFICATION tower "
                            "needs labels 0 or 1 (use an L2_LOSS tower to predict a number)")
        if rule and rule.startswith("class:"):
            num_class = int(rule.split(":")[1])
            if number != int(number) or not 0 <= number < num_class:
                raise DataError(f"{where}: label {f.name!r} is {value!r}; a tower of num_class "
                                f"{num_class} needs class ids 0 to {num_class - 1}")


def find_bad_line(files: list[str], data: DataSpec, max_lines: int | None = None,
                  labels: list[str] = ()) -> None:
    """Scans rows in Python and raises DataError at the first malformed one. `labels`: the
    label columns whose rules (data.label_rules) are checked too."""
    fields = list(data.fields)
    rules = {name: data.label_rules.get(name, "number") for name in labels}
    finite = {k: v for k, v in data.finite_columns.items() if k in data.field_names}
    for path, skip in zip(files, header_lines(files, data, warn=False)):
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f, delimiter=data.separator, quoting=csv.QUOTE_NONE)
            rows: Iterator = enumerate(reader, start=1)
            if skip:
                next(rows, None)
            if max_lines is not None:
                rows = itertools.islice(rows, max_lines)
            for lineno, row in rows:
                check_row(row, fields, f"{path}:{lineno}", rules, finite)


def warn_out_of_range_ids(files: list[str], data: DataSpec, features: list[FeatureSpec],
                          max_lines: int = 1000) -> dict[str, int]:
    """Counts, in the first max_lines rows, the integer ids of `num_buckets` features outside
    [0, num_buckets): they wrap around (id mod num_buckets), so distinct ids share a row.
    Logs a warning per feature; returns the counts."""
    checked = [f for f in features if f.kind == "id" and f.num_buckets
               and f.column in data.field_names]
    if not checked:
        return {}
    columns = {f.name: data.field_names.index(f.column) for f in checked}
    counts = dict.fromkeys(columns, 0)
    examples: dict[str, str] = {}
    seen = 0
    for path, skip in zip(files, header_lines(files, data, warn=False)):
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh, delimiter=data.separator, quoting=csv.QUOTE_NONE)
            for i, row in enumerate(reader):
                if i < skip:
                    continue
                if seen >= max_lines:
                    break
                seen += 1
                for f in checked:
                    k = columns[f.name]
                    try:
                        value = int(row[k])
                    except (IndexError, ValueError):
                        continue
                    if not 0 <= value < f.num_buckets:
                        counts[f.name] += 1
                        examples.setdefault(f.name, f"{path}:{i + 1} has {value}")
    for f in checked:
        if counts[f.name]:
            log.warning("feature %r: %d of the first %d rows have ids outside [0, %d) (%s); "
                        "they wrap around (id mod %d) and share rows with other ids: raise "
                        "num_buckets or use hash_bucket_size", f.name, counts[f.name], seen,
                        f.num_buckets, examples[f.name], f.num_buckets)
    return {k: v for k, v in counts.items() if v}


def count_rows(files: list[str], skips: list[int], row_shard: tuple[int, int] | None) -> int:
    """Data rows in `files` (a last line without newline counts; skips[i] header lines of
    files[i] not), or in the row shard."""
    total = 0
    for path, skip in zip(files, skips):
        lines, last = 0, b"\n"
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        lines += last != b"\n"
        total += max(lines - skip, 0)
    if row_shard is None:
        return total
    count, index = row_shard
    return total // count + (1 if index < total % count else 0)


def batches(ds, files: list[str], data: DataSpec, labels: list[str] = ()) -> Iterator:
    """Iterates a dataset; a row TensorFlow cannot parse (or whose label or numbers break the
    checks of `CSVInput`) becomes a DataError naming its file and line (found by re-reading
    the files with `find_bad_line`)."""
    it = iter(ds)
    while True:
        try:
            element = next(it)
        except StopIteration:
            return
        except tf.errors.InvalidArgumentError as e:
            if data.input_type == "CSVInput":  # TFRecord, Parquet: no lines to point at
                find_bad_line(files, data, labels=labels)
            raise DataError(f"cannot parse {', '.join(files)}: {e.message}") from None
        yield element


class CSVInput:
    """Builds the tf.data pipeline of one input (train or eval).

    Each element is (features, labels, columns): the preprocessed features, the
    labels as float32 (batch,) (with data_config.sample_weight: also the weights, under
    SAMPLE_WEIGHT), and the raw columns the evaluation needs (e.g. the domain field), as
    read from the file.

    Other input formats (data/tfrecord_input.py, data/parquet_input.py) subclass it and
    replace `records` and `parse`: the same columns, preprocessing and pipeline.
    """

    def __init__(self, data: DataSpec, preprocessor: Preprocessor, label_fields: list[str],
                 keep_columns: list[str] = ()):
        self.config = data
        self.pre = preprocessor
        self.fields = list(data.fields)
        self.label_fields = list(label_fields)
        self.keep_columns = list(keep_columns)
        # a label without default_val is required: an empty label fails to parse (and is
        # then reported at its file:line) instead of becoming 0
        self.defaults = [tf.constant([], TF_TYPES[f.type])
                         if f.name in self.label_fields and f.default is None
                         else _record_default(f) for f in self.fields]

    def parse(self, lines: tf.Tensor) -> dict[str, tf.Tensor]:
        """A batch of CSV lines -> raw column tensors (batch,)."""
        values = tf.io.decode_csv(lines, self.defaults, field_delim=self.config.separator,
                                  use_quote_delim=False)
        cols = {}
        for f, v in zip(self.fields, values):
            cols[f.name] = v
        return cols

    def _checked(self, cols: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Fails (InvalidArgumentError, turned into file:line by `batches`) on a NaN or inf in
        a feature's numbers or a label, and on a label that breaks its rule (a binary
        CLASSIFICATION tower's: 0 or 1; a multi-class tower's: a class id)."""
        for name, sep in self.config.finite_columns.items():
            if name not in cols:
                continue
            col = cols[name]
            if col.dtype == tf.string:
                parts = tf.strings.split(col, sep or "|").flat_values
                col = tf.strings.to_number(tf.boolean_mask(parts, tf.strings.length(parts) > 0))
            cols[name] = _with_check(cols[name], tf.debugging.check_numerics(
                tf.cast(col, tf.float32), f"non-finite value in column {name}"))
        for name in self.label_fields:
            value = tf.cast(cols[name], tf.float32)
            ok = tf.reduce_all(tf.math.is_finite(value))
            rule = self.config.label_rules.get(name)
            if rule == "binary":
                ok = tf.logical_and(ok, tf.reduce_all((value == 0.0) | (value == 1.0)))
            elif rule and rule.startswith("class:"):
                num_class = int(rule.split(":")[1])
                ok = tf.logical_and(ok, tf.reduce_all(
                    (value >= 0.0) & (value < num_class) & (value == tf.round(value))))
            cols[name] = _with_check(cols[name], tf.debugging.Assert(
                ok, [f"label {name}: a value breaks its rule"]))
        return cols

    def check_files(self, files: list[str], max_lines: int | None = None,
                    what: str = "input") -> None:
        """Raises DataError when the files hold no data row, or for the first malformed row
        (its labels checked too) among the first max_lines."""
        check_has_rows(files, self.config, what)
        find_bad_line(files, self.config, max_lines, self.label_fields)

    def records(self, files: list[str]) -> tf.data.Dataset:
        """The files' rows, one record (a CSV line) per element, each file's header line
        skipped (when it has one)."""
        skips = header_lines(files, self.config)
        ds = tf.data.Dataset.from_tensor_slices((files, tf.constant(skips, tf.int64)))
        return ds.interleave(lambda f, k: tf.data.TextLineDataset(f).skip(k), cycle_length=1)

    @staticmethod
    def record_text(record) -> tf.Tensor:
        """The text a record is held out by: a CSV line or a serialized example itself; a
        parsed row (Parquet, BatchTFRecordInput) its values joined."""
        if not isinstance(record, dict):
            return record
        parts = [v if v.dtype == tf.string else tf.strings.as_string(v)
                 for _, v in sorted(record.items())]
        return tf.strings.join(parts, separator="\x1f")

    def _map(self, lines):
        cols = self._checked(self.parse(lines))
        features = self.pre(cols)
        labels = {name: tf.cast(cols[name], tf.float32) for name in self.label_fields}
        weight = self.config.sample_weight
        if weight and weight in cols and self.label_fields:
            labels[SAMPLE_WEIGHT] = tf.cast(cols[weight], tf.float32)
        for name in self.config.loss_columns if self.label_fields else ():
            labels[LOSS_COLUMN + name] = cols[name]
        kept = {name: cols[name] for name in self.keep_columns}
        return features, labels, kept

    def find_bad_line(self, files: list[str], max_lines: int | None = None) -> None:
        """`find_bad_line` with this input's label checks."""
        find_bad_line(files, self.config, max_lines, self.label_fields)

    def batches(self, ds, files: list[str]) -> Iterator:
        """`batches` with this input's label checks."""
        return batches(ds, files, self.config, self.label_fields)

    def lines(self, files: list[str], holdout_fraction: float = 0.0,
              heldout: bool = False,
              row_shard: tuple[int, int] | None = None) -> tf.data.Dataset:
        """The records of files (`records`: CSV lines, headers skipped). With
        holdout_fraction, only the training part (heldout False) or the held-out part
        (heldout True) of the rows. row_shard (count, index): then only every count-th of
        them from the index-th, for one of `count` processes reading the same files.

        A row is held out when a hash of its text (`record_text`) falls in the first
        holdout_fraction of HOLDOUT_BUCKETS buckets: the split does not depend on file order,
        shuffling or sharding, the two parts never share a row, and identical rows fall
        together.
        """
        ds = self.records(files)
        if holdout_fraction:
            cut = int(round(holdout_fraction * HOLDOUT_BUCKETS))

            def keep(record):
                bucket = tf.strings.to_hash_bucket_fast(self.record_text(record),
                                                        HOLDOUT_BUCKETS)
                held = bucket < cut
                return held if heldout else tf.logical_not(held)

            ds = ds.filter(keep)
        if row_shard is not None:
            ds = ds.shard(*row_shard)
        return ds

    def count_rows(self, files: list[str], holdout_fraction: float = 0.0,
                   row_shard: tuple[int, int] | None = None) -> int:
        """The training rows of `lines(files, holdout_fraction, row_shard=row_shard)`: CSV
        lines counted in the files' bytes (fast) when no row is held out, else one pass
        over the records."""
        if type(self) is CSVInput and not holdout_fraction:
            return count_rows(files, header_lines(files, self.config, warn=False), row_shard)
        ds = self.lines(files, holdout_fraction, False, row_shard)
        return int(ds.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))

    def dataset(self, files: list[str], batch_size: int, training: bool, num_epochs: int = 1,
                skip_batches: int = 0, seed: int | None = None, holdout_fraction: float = 0.0,
                heldout: bool = False, row_shard: tuple[int, int] | None = None,
                drop_remainder: bool = False,
                batches_per_epoch: int | None = None) -> tf.data.Dataset:
        """Records -> shuffled (training) -> batches -> parsed in parallel -> prefetched.

        Elements are (features, labels, columns). For training, they are
        (features, labels, columns, position): position = (epoch, batch index in the
        epoch), int64 scalars. Each epoch is shuffled anew (seed + epoch) and ends with
        its own, possibly partial, batch; skip_batches counts batches from the start of
        the first epoch (resuming mid-epoch).

        row_shard: this process's part of the rows (`lines`). drop_remainder: full batches
        only (synchronous replicas: every replica takes a full batch; the rows left over are
        not trained that epoch). batches_per_epoch: every epoch is exactly that many (full)
        batches (the processes of a synchronous cluster all take the same number).
        """
        lines = self.lines(files, holdout_fraction, heldout, row_shard)
        if not training:
            ds = lines.batch(batch_size, drop_remainder=False)
            ds = ds.map(self._map, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            return ds.prefetch(self.config.prefetch_size or tf.data.AUTOTUNE).with_options(
                pipeline_options())
        shuffle = self.config.shuffle
        buffer = self.config.shuffle_buffer_size
        base_seed = 0 if seed is None else seed

        def one_epoch(epoch):
            ds = lines
            if shuffle:
                ds = ds.shuffle(buffer, seed=base_seed + epoch, reshuffle_each_iteration=False)
            ds = ds.batch(batch_size, drop_remainder=drop_remainder or bool(batches_per_epoch))
            if batches_per_epoch:
                ds = ds.take(batches_per_epoch)
            return ds.enumerate().map(lambda index, batch: (batch, (epoch, index)))

        epochs = tf.data.Dataset.range(num_epochs) if num_epochs else tf.data.Dataset.counter()
        ds = epochs.flat_map(one_epoch)
        if skip_batches:
            ds = ds.skip(skip_batches)
        ds = ds.map(lambda batch, position: (*self._map(batch), position),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.prefetch(self.config.prefetch_size or tf.data.AUTOTUNE).with_options(
            pipeline_options())


def pipeline_options() -> tf.data.Options:
    """tf.data options of every input pipeline: tf.data's autotuning thread is off. When an
    iterator is released (the end of training or of an evaluation), TensorFlow waits for that
    thread's current sleep, which grows with the iterator's age (measured here: 0.2-3.7 s
    after one epoch of the MLP sample, depending on when it ends; up to 7-8 s in whole
    training runs; 10 to 100 s at the end of training under MultiWorkerMirroredStrategy).
    Parallel parsing (num_parallel_calls=AUTOTUNE) then uses every core: the pipeline alone
    read one epoch of samples/data as fast with it off (0.7-1.0 s either way)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def _with_check(value: tf.Tensor, check) -> tf.Tensor:
    with tf.control_dependencies([check]):
        return tf.identity(value)
