"""TFRecord input (EasyRec's TFRecordInput and BatchTFRecordInput) through tf.data.

TFRecordInput: one `tf.train.Example` per row, each input field a feature with one value
(int64 for INT32 / INT64 / BOOL, float for FLOAT / DOUBLE, bytes for STRING); a feature
missing from an example takes the field's default_val (or 0 / ""). BatchTFRecordInput:
one `tf.train.SequenceExample` per record whose feature lists hold several rows.

The parsed columns have the same types as the CSV input's, so preprocessing, the model
and the exported serving function are the same whatever the training input was.
"""

from __future__ import annotations

import tensorflow as tf

from easyblocks.config.specs import DataSpec
from easyblocks.data.csv_input import TF_TYPES, CSVInput
from easyblocks.errors import DataError
from easyblocks.features.preprocess import Preprocessor

# what a tf.train.Example stores for each input type
_EXAMPLE_TYPES = {"INT32": tf.int64, "INT64": tf.int64, "BOOL": tf.int64, "FLOAT": tf.float32,
                  "DOUBLE": tf.float32, "STRING": tf.string}


def _default(field) -> object:
    if field.default is None:
        return "" if field.is_string else 0
    if field.is_string:
        return field.default
    return float(field.default) if field.is_float else int(float(field.default))


class TFRecordInput(CSVInput):
    """The tf.data pipeline over TFRecord files (see the module docstring)."""

    def __init__(self, data: DataSpec, preprocessor: Preprocessor, label_fields: list[str],
                 keep_columns: list[str] = ()):
        super().__init__(data, preprocessor, label_fields, keep_columns)
        self.batched = data.input_type == "BatchTFRecordInput"
        if self.batched:
            self.spec = {f.name: tf.io.FixedLenSequenceFeature(
                [], _EXAMPLE_TYPES[f.type], allow_missing=True) for f in self.fields}
        else:
            self.spec = {f.name: tf.io.FixedLenFeature(
                [1], _EXAMPLE_TYPES[f.type], default_value=_default(f)) for f in self.fields}

    def check_files(self, files: list[str], max_lines: int | None = None,
                    what: str = "input") -> None:
        """Parses the first record of each file: a file that is not TFRecord, or whose
        examples lack a field without default, is reported by name."""
        for path in files:
            try:
                for record in tf.data.TFRecordDataset(path).take(1):
                    self.parse(tf.reshape(record, [1]))
            except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
                raise DataError(f"{path}: not a TFRecord file of the configured input_fields: "
                                f"{e.message.splitlines()[0]}") from None

    def records(self, files: list[str]) -> tf.data.Dataset:
        ds = tf.data.TFRecordDataset(files)
        if self.batched:  # one record holds several rows: parse, then one row per element
            ds = ds.map(self._parse_batch_record).unbatch()
        return ds

    def _parse_batch_record(self, record: tf.Tensor) -> dict[str, tf.Tensor]:
        _, lists = tf.io.parse_single_sequence_example(record, sequence_features=self.spec)
        return {f.name: tf.cast(lists[f.name], TF_TYPES[f.type]) for f in self.fields}

    def parse(self, records) -> dict[str, tf.Tensor]:
        """A batch of serialized Examples (or of rows of a BatchTFRecordInput) -> raw column
        tensors (batch,)."""
        if self.batched:
            return records
        parsed = tf.io.parse_example(records, self.spec)
        return {f.name: tf.cast(tf.reshape(parsed[f.name], [-1]), TF_TYPES[f.type])
                for f in self.fields}
