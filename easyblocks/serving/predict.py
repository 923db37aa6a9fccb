"""Batch scoring of a CSV file from the latest checkpoint or an exported SavedModel."""

from __future__ import annotations

import csv
import dataclasses
import logging
import time

import tensorflow as tf

from easyblocks.config.specs import DataSpec
from easyblocks.data.csv_input import CSVInput, batches, expand_paths, find_bad_line
from easyblocks.errors import ConfigError, DataError
from easyblocks.models.state import ModelState

log = logging.getLogger("easyblocks")


def _fields_of_file(path: str, data: DataSpec) -> DataSpec:
    """The data spec for the file's rows: with labels, or without the label columns."""
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline().rstrip("\n")
        if data.with_header:
            first = f.readline().rstrip("\n")
    n = len(first.split(data.separator)) if first else 0
    labels = set(data.label_fields)
    all_fields = data.fields
    without = [fld for fld in all_fields if fld.name not in labels]
    if n == len(all_fields):
        return data
    if n == len(without):
        return data.without(labels)
    raise DataError(f"{path}:1: expected {len(all_fields)} columns (with labels) or "
                    f"{len(without)} (without {', '.join(sorted(labels))}), found {n}")


def predict_file(state: ModelState, input_path: str, output_path: str, keep_columns: list[str],
                 export_dir: str | None = None, batch_size: int = 4096) -> int:
    """Writes one row per input row: the kept columns, then probs_<tower> for every tower.

    Scores come from the state's model (restored from a checkpoint), or from the
    SavedModel in export_dir when given. Returns the number of rows written.
    """
    files = expand_paths(input_path, "--input")
    # --input is CSV whatever the training input was (TFRecord, Parquet)
    data = dataclasses.replace(_fields_of_file(files[0], state.spec.data), input_type="CSVInput")
    names = data.field_names
    for c in keep_columns:
        if c not in names:
            raise ConfigError(f"--keep: {c!r} is not a column of {files[0]}; columns: "
                              f"{', '.join(names)}")
    find_bad_line(files, data, max_lines=1000)
    towers = [t.name for t in state.spec.towers]
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
    with open(output_path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(list(keep_columns) + [f"probs_{t}" for t in towers])
        for features, _, columns in batches(ds, files, data):
            outputs = score(columns, features)
            kept = [columns[c].numpy() for c in keep_columns]
            probs = [outputs[f"probs_{t}"].numpy() for t in towers]
            for i in range(len(probs[0])):
                writer.writerow(
                    [v[i].decode() if isinstance(v[i], bytes) else v[i] for v in kept]
                    + [f"{p[i]:.6g}" for p in probs])
            rows += len(probs[0])
            if time.perf_counter() - last > 10:
                last = time.perf_counter()
                log.info("predicted %d rows (%.0f rows/s)", rows, rows / (last - t0))
    log.info("wrote %d rows to %s", rows, output_path)
    return rows
