"""Parquet input (EasyRec's ParquetInput, V2 and V3) through tf.data, with pyarrow.

TensorFlow has no Parquet reader; pyarrow (`pip install easyblocks[parquet]`) reads the
files' record batches in a `tf.data.Dataset.from_generator`, one column per input field
(found by name). A list column (list<string>, list<int64>, ...) is joined with the
separator of the feature that reads it (its `separator`, "|" by default), so that the
columns are exactly those of the CSV input: the same preprocessing, and an exported model
takes the same raw columns whatever the training input was. Nulls take the field's
default_val (or 0 / "").
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from easyblocks.config.specs import DataSpec
from easyblocks.data.csv_input import TF_TYPES, CSVInput
from easyblocks.errors import ConfigError, DataError
from easyblocks.features.preprocess import Preprocessor

READ_ROWS = 4096  # rows per pyarrow record batch


def _pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("data_config.input_type Parquet needs pyarrow, which is not "
                          "installed: pip install 'easyblocks[parquet]'") from None
    return pq


class ParquetInput(CSVInput):
    """The tf.data pipeline over Parquet files (see the module docstring)."""

    def __init__(self, data: DataSpec, preprocessor: Preprocessor, label_fields: list[str],
                 keep_columns: list[str] = ()):
        super().__init__(data, preprocessor, label_fields, keep_columns)
        _pyarrow()
        # a list column is joined with the separator of the (first) feature reading it
        self.list_separators = {}
        for spec in preprocessor.specs.values():
            for column, sep in zip(spec.combo_columns, spec.combo_seps):
                if sep:
                    self.list_separators.setdefault(column, sep)
            self.list_separators.setdefault(spec.column, spec.separator)

    def check_files(self, files: list[str], max_lines: int | None = None,
                    what: str = "input") -> None:
        """Every input field must be a column of every file, of a compatible type."""
        import pyarrow as pa

        pq = _pyarrow()
        for path in files:
            try:
                schema = pq.read_schema(path)
            except (pa.ArrowException, OSError) as e:
                raise DataError(f"{path}: not a Parquet file: {e}") from None
            for f in self.fields:
                if f.name not in schema.names:
                    raise DataError(f"{path}: no column {f.name!r} (input field {f.name!r}); "
                                    f"columns: {', '.join(schema.names)}")
                t = schema.field(f.name).type
                if pa.types.is_list(t) or pa.types.is_large_list(t):
                    if not f.is_string:
                        raise DataError(f"{path}: column {f.name!r} is a list ({t}); a list "
                                        "column needs a STRING input field (its values are "
                                        "joined by the feature's separator)")
                    t = t.value_type
                numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or \
                    pa.types.is_boolean(t)
                text = pa.types.is_string(t) or pa.types.is_large_string(t)
                if not f.is_string and not numeric:
                    raise DataError(f"{path}: column {f.name!r} is {t}, not a number "
                                    f"(input field type {f.type})")
                if not (numeric or text):
                    raise DataError(f"{path}: column {f.name!r} has type {t}, which is not "
                                    "read (numbers, strings and lists of them are)")

    def _column(self, field, column) -> np.ndarray:
        """A pyarrow column -> a numpy array of the field's type, nulls as its default."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            sep = self.list_separators.get(field.name, "|")
            column = pc.binary_join(pc.cast(column, pa.list_(pa.string())), sep)
        if field.is_string:
            if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
                column = pc.cast(column, pa.string())
            default = field.default or ""
            values = column.fill_null(default).to_numpy(zero_copy_only=False)
            return values.astype(object)
        default = float(field.default) if field.default is not None else 0
        values = column.fill_null(pa.scalar(default).cast(column.type)).to_numpy(
            zero_copy_only=False)
        return values.astype(TF_TYPES[field.type].as_numpy_dtype)

    def _batches(self, files: list[str]):
        pq = _pyarrow()
        names = [f.name for f in self.fields]
        for path in files:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=READ_ROWS, columns=names):
                yield {f.name: self._column(f, batch.column(f.name)) for f in self.fields}

    def records(self, files: list[str]) -> tf.data.Dataset:
        signature = {f.name: tf.TensorSpec([None], TF_TYPES[f.type]) for f in self.fields}
        ds = tf.data.Dataset.from_generator(lambda: self._batches(files),
                                            output_signature=signature)
        return ds.unbatch()  # rows, shuffled and batched like the CSV input's lines

    def parse(self, rows) -> dict[str, tf.Tensor]:
        """A batch of rows is already the raw columns (batch,)."""
        return dict(rows)
