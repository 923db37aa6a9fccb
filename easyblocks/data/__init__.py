"""Data utilities for easyblocks: the inputs (CSV, TFRecord, Parquet), synthetic data."""

from __future__ import annotations


def make_input(data, preprocessor, label_fields, keep_columns=()):
    """The input of data_config.input_type: CSVInput, TFRecordInput, BatchTFRecordInput or
    ParquetInput (V2, V3) (others are refused when the config is resolved)."""
    if data.input_type in ("TFRecordInput", "BatchTFRecordInput"):
        from easyblocks.data.tfrecord_input import TFRecordInput

        return TFRecordInput(data, preprocessor, label_fields, keep_columns)
    if data.input_type.startswith("ParquetInput"):
        from easyblocks.data.parquet_input import ParquetInput

        return ParquetInput(data, preprocessor, label_fields, keep_columns)
    from easyblocks.data.csv_input import CSVInput

    return CSVInput(data, preprocessor, label_fields, keep_columns)
