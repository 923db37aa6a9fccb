"""Batch scoring of a CSV file from the latest checkpoint or an exported SavedModel."""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import time

import numpy as np
import tensorflow as tf

from easyblocks.config.specs import DataSpec
from easyblocks.data.csv_input import (
    CSVInput,
    cells_of_line,
    expand_paths,
    file_header,
    find_bad_line,
    first_line,
)
from easyblocks.errors import ConfigError, DataError
from easyblocks.files import atomic_file
from easyblocks.models.state import ModelState

log = logging.getLogger("easyblocks")


def _layout_of_file(path: str, data: DataSpec, needed: list[str]) -> DataSpec:
    """The data spec of one file's rows. A file with a header line has its columns mapped
    by name (any order; labels and unused columns may be missing; unknown ones are read and
    ignored); a file without one must have every input field in the config's order, with
    or without the label columns."""
    header = file_header(path, data)
    if header is not None:
        dup = sorted({c for c in header if header.count(c) > 1})
        if dup:
            raise DataError(f"{path}:1: column {dup[0]!r} appears twice in the header")
        missing = [c for c in needed if c not in header]
        if missing:
            raise DataError(f"{path}:1: the header has no column {', '.join(missing)}, which "
                            f"the model reads; columns: {', '.join(header)}")
        unknown = [c for c in header if c not in data.field_names]
        if unknown:
            log.info("%s: columns not in the config, ignored: %s", path, ", ".join(unknown))
        return data.with_fields(header)
    line = first_line(path) or ""
    n = len(cells_of_line(line, data.separator)) if line else 0
    labels = set(data.label_fields)
    without = [f.name for f in data.fields if f.name not in labels]
    if n == len(data.fields):
        return data
    if n == len(without) and labels:
        log.info("%s: no header line; %d columns: read as the config's input fields without "
                 "the labels (%s)", path, n, ", ".join(sorted(labels)))
        return data.without(labels)
    raise DataError(f"{path}:1: {n} columns fit neither layout of a file without a header: "
                    f"{len(data.fields)} (the config's input fields) or {len(without)} (without "
                    f"{', '.join(sorted(labels)) or 'labels'}); give the file a header line of "
                    "column names to map its columns by name")


def _check_output(output_path: str, files: list[str]) -> None:
    """Refuses an output that is one of the input files (it would be truncated before it is
    read) or a folder."""
    if os.path.isdir(output_path):
        raise ConfigError(f"--output {output_path} is a folder; give a file path")
    out = os.path.realpath(output_path)
    for f in files:
        same = os.path.realpath(f) == out or (
            os.path.exists(output_path) and os.path.samefile(f, output_path))
        if same:
            raise ConfigError(f"--output {output_path} is the input file {f}; write the scores "
                              "to another file")


def predict_file(state: ModelState, input_path: str, output_path: str, keep_columns: list[str],
                 export_dir: str | None = None, batch_size: int = 4096) -> int:
    """Writes one row per input row: the kept columns, then each tower's prediction
    (probs_<tower>; y_<tower> for a regression or ZILN tower; probs_<tower>_<k> for each
    class k of a multi-class tower).

    Scores come from the state's model (restored from a checkpoint), or from the
    SavedModel in export_dir when given. The output is written to a temporary file next to
    it and renamed into place at the end: a failure leaves an earlier output as it was.
    Returns the number of rows written.
    """
    files = expand_paths(input_path, "--input")
    _check_output(output_path, files)
    needed = [f.name for f in state.spec.serving_fields()]
    # --input is CSV whatever the training input was (TFRecord, Parquet)
    csv_data = dataclasses.replace(state.spec.data, input_type="CSVInput")
    layouts = [_layout_of_file(f, csv_data, needed) for f in files]
    data = layouts[0]
    for f, other in zip(files[1:], layouts[1:]):
        if other.field_names != data.field_names:
            raise DataError(f"{f}: its columns ({', '.join(other.field_names)}) differ from "
                            f"those of {files[0]} ({', '.join(data.field_names)})")
    names = data.field_names
    for c in keep_columns:
        if c not in names:
            raise ConfigError(f"--keep: {c!r} is not a column of {files[0]}; columns: "
                              f"{', '.join(names)}")
    find_bad_line(files, data, max_lines=1000)
    towers = state.spec.towers
    outputs_wanted = [t.prediction_key for t in towers]
    # a multi-class tower's probabilities: one column per class, probs_<tower>_<class id>
    header = [c for t in towers for c in (
        [f"{t.prediction_key}_{k}" for k in range(t.num_class)] if t.is_multiclass
        else [t.prediction_key])]
    if export_dir:
        serve = tf.saved_model.load(export_dir).signatures["serving_default"]
        inputs = list(serve.structured_input_signature[1])
        missing = [c for c in inputs if c not in names]
        if missing:
            raise DataError(f"{files[0]}: the exported model needs columns "
                            f"{', '.join(missing)}, which the file does not have")

        def score(columns, features):
            return serve(**{k: columns[k] for k in inputs})
    else:
        model = state.model

        @tf.function(reduce_retracing=True)
        def score(columns, features):
            return model(features, training=False)

    reader = CSVInput(data, state.preprocessor, [], names)
    ds = reader.dataset(files, batch_size, training=False)
    rows, t0, last = 0, time.perf_counter(), time.perf_counter()
    with atomic_file(output_path, newline="") as out:
        writer = csv.writer(out)
        writer.writerow(list(keep_columns) + header)
        for features, _, columns in reader.batches(ds, files):
            outputs = score(columns, features)
            kept = [columns[c].numpy() for c in keep_columns]
            preds = [outputs[k].numpy() for k in outputs_wanted]
            for i in range(len(preds[0])):
                writer.writerow(
                    [v[i].decode() if isinstance(v[i], bytes) else v[i] for v in kept]
                    + [f"{x:.6g}" for p in preds for x in np.atleast_1d(p[i])])
            rows += len(preds[0])
            if time.perf_counter() - last > 10:
                last = time.perf_counter()
                log.info("predicted %d rows (%.0f rows/s)", rows, rows / (last - t0))
    log.info("wrote %d rows to %s", rows, output_path)
    return rows
