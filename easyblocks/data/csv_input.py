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
import os
from collections.abc import Iterator

import tensorflow as tf

from easyblocks.config.specs import LOSS_COLUMN, SAMPLE_WEIGHT, DataSpec, FieldSpec
from easyblocks.errors import DataError
from easyblocks.features.preprocess import Preprocessor

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


def check_row(row: list[str], fields: list[FieldSpec], where: str) -> None:
    """Raises DataError for a row with the wrong column count or a bad number."""
    if len(row) != len(fields):
        raise DataError(f"{where}: expected {len(fields)} columns "
                        f"({', '.join(f.name for f in fields[:4])}, ...), found {len(row)}")
    for value, f in zip(row, fields):
        if value == "" or f.is_string:
            continue
        try:
            float(value) if f.is_float else int(value)
        except ValueError:
            raise DataError(f"{where}: column {f.name!r} ({f.type}) has "
                            f"{value!r}, not a number") from None


def find_bad_line(files: list[str], data: DataSpec, max_lines: int | None = None) -> None:
    """Scans rows in Python and raises DataError at the first malformed one."""
    fields = list(data.fields)
    for path in files:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f, delimiter=data.separator, quoting=csv.QUOTE_NONE)
            rows: Iterator = enumerate(reader, start=1)
            if data.with_header:
                next(rows, None)
            if max_lines is not None:
                rows = itertools.islice(rows, max_lines)
            for lineno, row in rows:
                check_row(row, fields, f"{path}:{lineno}")


def batches(ds, files: list[str], data: DataSpec) -> Iterator:
    """Iterates a dataset; a row TensorFlow cannot parse becomes a DataError naming its
    file and line (found by re-reading the files with `find_bad_line`)."""
    it = iter(ds)
    while True:
        try:
            element = next(it)
        except StopIteration:
            return
        except tf.errors.InvalidArgumentError as e:
            if data.input_type == "CSVInput":
                find_bad_line(files, data)
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
        self.defaults = [_record_default(f) for f in self.fields]

    def parse(self, lines: tf.Tensor) -> dict[str, tf.Tensor]:
        """A batch of CSV lines -> raw column tensors (batch,)."""
        values = tf.io.decode_csv(lines, self.defaults, field_delim=self.config.separator,
                                  use_quote_delim=False)
        cols = {}
        for f, v in zip(self.fields, values):
            cols[f.name] = v
        return cols

    def check_files(self, files: list[str], max_lines: int | None = None) -> None:
        """Raises DataError for the first malformed row among the first max_lines."""
        find_bad_line(files, self.config, max_lines=max_lines)

    def records(self, files: list[str]) -> tf.data.Dataset:
        """The files' rows, one record (a CSV line) per element."""
        ds = tf.data.Dataset.from_tensor_slices(files)
        skip = 1 if self.config.with_header else 0
        return ds.interleave(lambda f: tf.data.TextLineDataset(f).skip(skip), cycle_length=1)

    def _map(self, lines):
        cols = self.parse(lines)
        features = self.pre(cols)
        labels = {name: tf.cast(cols[name], tf.float32) for name in self.label_fields}
        weight = self.config.sample_weight
        if weight and weight in cols and self.label_fields:
            labels[SAMPLE_WEIGHT] = tf.cast(cols[weight], tf.float32)
        for name in self.config.loss_columns if self.label_fields else ():
            labels[LOSS_COLUMN + name] = cols[name]
        kept = {name: cols[name] for name in self.keep_columns}
        return features, labels, kept

    def dataset(self, files: list[str], batch_size: int, training: bool, num_epochs: int = 1,
                skip_batches: int = 0, seed: int | None = None) -> tf.data.Dataset:
        """Lines -> shuffled (training) -> batches -> parsed in parallel -> prefetched."""
        ds = self.records(files)
        if training and self.config.shuffle:
            ds = ds.shuffle(self.config.shuffle_buffer_size, seed=seed,
                            reshuffle_each_iteration=True)
        if num_epochs != 1:
            ds = ds.repeat(None if num_epochs == 0 else num_epochs)
        ds = ds.batch(batch_size, drop_remainder=False)
        if skip_batches:
            ds = ds.skip(skip_batches)
        ds = ds.map(self._map, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.prefetch(self.config.prefetch_size or tf.data.AUTOTUNE)
