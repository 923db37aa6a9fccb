"""Loss functions of the task towers. Each returns a scalar (batch mean)."""

from __future__ import annotations

import tensorflow as tf


def classification_loss(labels: tf.Tensor, logits: tf.Tensor, num_class: int = 1) -> tf.Tensor:
    """Binary cross-entropy on logits (batch,) when num_class is 1, else softmax
    cross-entropy on logits (batch, num_class)."""
    if num_class == 1:
        labels = tf.reshape(tf.cast(labels, tf.float32), [-1])
        return tf.reduce_mean(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=tf.reshape(logits, [-1]))
        )
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.reshape(tf.cast(labels, tf.int32), [-1]), logits=logits
        )
    )


def classification_loss_on_probs(labels: tf.Tensor, probs: tf.Tensor,
                                 eps: float = 1e-7) -> tf.Tensor:
    """Binary cross-entropy on probabilities (towers whose probability is a product, ESMM)."""
    labels = tf.reshape(tf.cast(labels, tf.float32), [-1])
    p = tf.clip_by_value(tf.reshape(probs, [-1]), eps, 1.0 - eps)
    return -tf.reduce_mean(labels * tf.math.log(p) + (1.0 - labels) * tf.math.log(1.0 - p))


def l2_loss(labels: tf.Tensor, predictions: tf.Tensor) -> tf.Tensor:
    """Mean squared error (regression towers: the prediction is the raw logit)."""
    labels = tf.reshape(tf.cast(labels, tf.float32), [-1])
    return tf.reduce_mean(tf.square(tf.reshape(predictions, [-1]) - labels))


def order_calibrate_loss(probs: tf.Tensor, relation_probs: list[tf.Tensor]) -> tf.Tensor:
    """AITM's behavioural expectation calibrator (Xi et al., KDD 2021, eq. 8), without alpha.

    sum over relation towers r of mean over the batch of max(p_this - p_r, 0): the
    probability of a later step in the funnel (buy) should not exceed that of an
    earlier one (click). The batch mean (not the sum) keeps its strength
    independent of the batch size; the caller multiplies by the loss weight (alpha).
    """
    p = tf.reshape(probs, [-1])
    return tf.add_n(
        [tf.reduce_mean(tf.nn.relu(p - tf.reshape(r, [-1]))) for r in relation_probs]
    )
