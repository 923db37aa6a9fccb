"""AuxiliaryLoss: a loss between two block outputs (e.g. two augmented views of a sequence, for
contrastive learning), added to the model's loss.

The loss is added with `add_loss`, so training minimises it and reports it as
`loss/<block name>` (already multiplied by `loss_weight`) beside the towers' losses. It needs
no label: every supported loss compares the two inputs row by row, the other rows of the
batch being the negatives of the contrastive ones.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from easyblocks.blocks.inputs import expect_list
from easyblocks.blocks.registry import register_block
from easyblocks.errors import ConfigError, suggest

LOSS_TYPES = ("l2_loss", "info_nce", "nce_loss")


def l2_loss(x1: tf.Tensor, x2: tf.Tensor) -> tf.Tensor:
    """Mean over the batch of the squared Euclidean distance ||x1_i - x2_i||^2."""
    return tf.reduce_mean(tf.reduce_sum(tf.square(x1 - x2), axis=-1))


def info_nce_loss(query: tf.Tensor, positive: tf.Tensor, temperature: float) -> tf.Tensor:
    """InfoNCE (van den Oord et al. 2018): softmax cross-entropy of row i of
    query positive^T / temperature against class i (the other rows' positives are the
    negatives), averaged over the batch. The rows are not normalised (as in EasyRec): give
    l2-normalised inputs for the cosine form."""
    logits = tf.matmul(query, positive, transpose_b=True) / temperature  # (batch, batch)
    labels = tf.range(tf.shape(query)[0])
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))


def nce_loss(z_i: tf.Tensor, z_j: tf.Tensor, temperature: float) -> tf.Tensor:
    """CL4SRec's (SimCLR's NT-Xent) loss over the 2B views z = [z_i; z_j]: for each view, the
    softmax cross-entropy of its positive (the other view of its example) against the 2B - 2
    views of the other examples, with similarities z_a . z_b / temperature; averaged over
    the 2B views. Unnormalised rows, as in EasyRec."""
    batch = tf.shape(z_i)[0]
    z = tf.concat([z_i, z_j], axis=0)  # (2B, d)
    sim = tf.matmul(z, z, transpose_b=True) / temperature  # (2B, 2B)
    index = tf.range(2 * batch)
    partner = tf.math.floormod(index + batch, 2 * batch)
    positive = tf.gather(sim, partner, axis=1, batch_dims=1)  # (2B,)
    # the negatives: every other column but the view itself and its partner
    excluded = tf.logical_or(tf.equal(index[:, None], index[None, :]),
                             tf.equal(partner[:, None], index[None, :]))
    negatives = tf.where(excluded, tf.constant(-1e9, sim.dtype), sim)
    logits = tf.concat([positive[:, None], negatives], axis=1)  # class 0 is the positive
    # the two excluded columns add exp(-1e9) = 0 to the partition function
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        tf.zeros_like(index), logits))


@register_block("AuxiliaryLoss", params="auxiliary_loss")
class AuxiliaryLoss(keras.layers.Layer):
    """Adds loss_weight x loss(x1, x2) to the model's loss (reported as `loss/<block name>`).

    loss_type:
      "l2_loss":  mean_i ||x1_i - x2_i||^2
      "info_nce": InfoNCE with x1 the queries and x2 their positives (`info_nce_loss`)
      "nce_loss": CL4SRec's NT-Xent over both views (`nce_loss`)

    The block's output is the weighted loss value (a scalar), as in EasyRec; a block using it
    as an input usually sets `ignore_input: true` (it only orders the DAG), and a block that
    nothing uses is still run.

    Args:
      loss_type: one of the above.
      loss_weight: multiplies the loss.
      temperature: of the contrastive losses (> 0).

    Call args:
      inputs: a list [x1 (batch, d), x2 (batch, d)] (`merge_inputs_into_list: true`).

    Returns:
      The weighted loss, shape ().
    """

    def __init__(self, loss_type: str, loss_weight: float = 1.0, temperature: float = 0.1,
                 **kwargs):
        super().__init__(**kwargs)
        what = f"AuxiliaryLoss {self.name!r}"
        if loss_type not in LOSS_TYPES:
            raise ConfigError(f"{what}: unknown loss_type {loss_type!r}"
                              f"{suggest(str(loss_type), LOSS_TYPES)}; expected one of "
                              f"{', '.join(LOSS_TYPES)}")
        if temperature <= 0:
            raise ConfigError(f"{what}: expected a positive `temperature`, received: "
                              f"temperature={temperature}")
        self.loss_type = loss_type
        self.loss_weight = float(loss_weight)
        self.temperature = float(temperature)

    def call(self, inputs, training=None):
        what = f"AuxiliaryLoss {self.name!r}"
        x1, x2 = (tf.cast(t, tf.float32) for t in expect_list(
            inputs, 2, what, "a list of two tensors (batch, d)"))
        if x1.shape.rank != 2 or x2.shape.rank != 2 or x1.shape[-1] != x2.shape[-1]:
            raise ConfigError(f"{what}: expected two tensors of one shape (batch, d), received "
                              f"{tuple(x1.shape)} and {tuple(x2.shape)}")
        if self.loss_type == "l2_loss":
            loss = l2_loss(x1, x2)
        elif self.loss_type == "info_nce":
            loss = info_nce_loss(x1, x2, self.temperature)
        else:
            loss = nce_loss(x1, x2, self.temperature)
        loss = self.loss_weight * loss
        self.add_loss(loss)
        return loss

    def compute_output_shape(self, input_shape):
        return ()

    def get_config(self):
        config = super().get_config()
        config.update(loss_type=self.loss_type, loss_weight=self.loss_weight,
                      temperature=self.temperature)
        return config
