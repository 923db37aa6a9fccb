"""TensorBoard scalars without the tensorboard package (TF 2.21 no longer depends on it).

Writes the same event records as tensorboard's `tf.summary.scalar`: a float32
tensor summary tagged with the "scalars" plugin, which TensorBoard reads.
"""

from __future__ import annotations

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars", content=b"")
).SerializeToString()


def write_scalar(name: str, value: float, step: int) -> None:
    """Writes one scalar to the default summary writer (tf.summary.create_file_writer)."""
    tf.summary.write(name, tf.constant(float(value), tf.float32), step=step, metadata=_METADATA)
