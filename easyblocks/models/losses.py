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


# ---- SOFTMAX_CROSS_ENTROPY over in-batch negatives (two towers, EasyRec's DSSM) -------------

def in_batch_softmax_loss(labels: tf.Tensor, pair_logits: tf.Tensor,
                          item_ids: tf.Tensor | None = None) -> tf.Tensor:
    """Softmax cross-entropy of each positive pair against the other items of the batch.

    pair_logits[i, j] scores user i with item j (every pair of the batch; the Similarity
    block's `pair_logits`); row i's positive is its own item, column i. For every row with
    label > 0:

        loss_i = -log softmax_j(z_ij)[i] = logsumexp_j z_ij - z_ii

    where the columns j != i whose item id equals row i's (the same item in another row) are
    left out: they are not negatives. Rows with label 0 are not positives (EasyRec, whose
    DSSM data come from a negative sampler, takes every row as one); their items still serve
    as the other rows' negatives.

    Args:
      labels: (batch,) or (batch, 1).
      pair_logits: (batch, batch).
      item_ids: (batch,) ids of each row's item, or None (every other column is a negative).

    Returns:
      The mean of loss_i over the positive rows; 0 when the batch has none.
    """
    z = pair_logits
    if item_ids is not None:
        ids = tf.reshape(item_ids, [-1])
        eye = tf.eye(tf.shape(z)[0], dtype=tf.bool)
        same = tf.logical_and(tf.equal(ids[:, None], ids[None, :]), tf.logical_not(eye))
        z = tf.where(same, tf.constant(-1e9, z.dtype), z)
    log_p = tf.linalg.diag_part(tf.nn.log_softmax(z, axis=-1))
    positive = tf.cast(tf.reshape(labels, [-1]) > 0, z.dtype)
    return -tf.reduce_sum(log_p * positive) / tf.maximum(tf.reduce_sum(positive), 1.0)


def positive_similarity_hinge(labels: tf.Tensor, similarity: tf.Tensor) -> tf.Tensor:
    """EasyRec's `reg_pos_loss` beside its in-batch softmax: mean over the positive rows of
    relu(-s(u_i, v_i)), s the towers' similarity before the temperature (a positive pair
    should not point away). 0 when the batch has no positive row."""
    positive = tf.cast(tf.reshape(labels, [-1]) > 0, similarity.dtype)
    hinge = tf.nn.relu(-tf.reshape(similarity, [-1]))
    return tf.reduce_sum(hinge * positive) / tf.maximum(tf.reduce_sum(positive), 1.0)
