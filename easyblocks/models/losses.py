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


# ---- EasyRec's losses and sample weights (issue 13) ----------------------------------------


def weighted_mean(values: tf.Tensor, weights: tf.Tensor | None) -> tf.Tensor:
    """Mean of per-row loss values (batch,); with weights, TF1's tf.losses reduction that
    EasyRec uses (SUM_BY_NONZERO_WEIGHTS): sum(w * value) / number of nonzero w."""
    values = tf.reshape(values, [-1])
    if weights is None:
        return tf.reduce_mean(values)
    weights = tf.reshape(tf.cast(weights, values.dtype), [-1])
    nonzero = tf.reduce_sum(tf.cast(tf.not_equal(weights, 0.0), values.dtype))
    return tf.math.divide_no_nan(tf.reduce_sum(weights * values), nonzero)


def weighted_classification_loss(labels: tf.Tensor, logits: tf.Tensor, num_class: int,
                                 weights: tf.Tensor) -> tf.Tensor:
    """classification_loss with per-row weights (data_config.sample_weight)."""
    if num_class == 1:
        values = tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.reshape(tf.cast(labels, tf.float32), [-1]), logits=tf.reshape(logits, [-1]))
    else:
        values = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.reshape(tf.cast(labels, tf.int32), [-1]), logits=logits)
    return weighted_mean(values, weights)


def weighted_l2_loss(labels: tf.Tensor, predictions: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    labels = tf.reshape(tf.cast(labels, tf.float32), [-1])
    return weighted_mean(tf.square(tf.reshape(predictions, [-1]) - labels), weights)


def f1_reweighted_loss(labels: tf.Tensor, logits: tf.Tensor, beta_square: float = 1.0,
                       label_smoothing: float = 0.0,
                       weights: tf.Tensor | None = None) -> tf.Tensor:
    """EasyRec's F1_REWEIGHTED_LOSS (adaptive scaling, Lin et al., "Adaptive Scaling for Sparse
    Detection in Information Extraction", ACL 2018): sigmoid cross-entropy whose negatives
    are weighted by

        w_neg = TP / (beta^2 * N_pos + N_neg - TN),   TP = sum_i p_i,  TN = B - TP

    (soft counts over the batch, p = sigmoid(logits); the gradient flows through w_neg, as in
    EasyRec). Positives weigh 1. Labels are smoothed to y (1 - s) + s / 2. Reduced like
    TF1's tf.losses: sum(w * ce) / number of nonzero w.

    Args:
      labels: (batch,) 0/1. logits: (batch,). weights: optional (batch,) sample weights.
    """
    labels = tf.reshape(tf.cast(labels, tf.float32), [-1])
    logits = tf.reshape(logits, [-1])
    batch = tf.cast(tf.shape(labels)[0], tf.float32)
    num_pos = tf.reduce_sum(labels)
    num_neg = batch - num_pos
    tp = tf.reduce_sum(tf.sigmoid(logits))
    tn = batch - tp
    neg_weight = tp / (beta_square * num_pos + num_neg - tn + 1e-8)
    final = tf.where(tf.equal(labels, 1.0), tf.ones_like(labels), neg_weight * tf.ones_like(labels))
    if weights is not None:
        final = final * tf.reshape(tf.cast(weights, tf.float32), [-1])
    if label_smoothing:
        labels = labels * (1.0 - label_smoothing) + 0.5 * label_smoothing
    values = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    return weighted_mean(values, final)


def weighted_classification_loss_on_probs(labels: tf.Tensor, probs: tf.Tensor,
                                          weights: tf.Tensor, eps: float = 1e-7) -> tf.Tensor:
    """classification_loss_on_probs with per-row weights (data_config.sample_weight)."""
    labels = tf.reshape(tf.cast(labels, tf.float32), [-1])
    p = tf.clip_by_value(tf.reshape(probs, [-1]), eps, 1.0 - eps)
    values = -(labels * tf.math.log(p) + (1.0 - labels) * tf.math.log(1.0 - p))
    return weighted_mean(values, weights)


def pairwise_loss(labels: tf.Tensor, logits: tf.Tensor, sessions: tf.Tensor | None = None,
                  margin: float = 0.0, temperature: float = 1.0,
                  weights: tf.Tensor | None = None) -> tf.Tensor:
    """EasyRec's PAIR_WISE_LOSS (RankNet-style): over every pair (i, j) of the batch with
    label_i > label_j (and the same session, with session_name),

        mean of log(1 + exp(-(s_i - s_j - margin)))   with s = logits / temperature,

    a pair weighing sample weight w_i, reduced as TF1's tf.losses (sum(w * loss) / number
    of nonzero w); 0 for a batch without such pairs.

    Args:
      labels, logits: (batch,). sessions: optional (batch,) ids. weights: optional (batch,).
    """
    labels = tf.reshape(tf.cast(labels, tf.float32), [-1])
    s = tf.reshape(logits, [-1]) / temperature
    diff = s[:, None] - s[None, :] - margin
    mask = labels[:, None] > labels[None, :]
    if sessions is not None:
        sessions = tf.reshape(sessions, [-1])
        mask = tf.logical_and(mask, tf.equal(sessions[:, None], sessions[None, :]))
    pair_weights = tf.ones_like(diff) if weights is None else \
        tf.tile(tf.reshape(tf.cast(weights, tf.float32), [-1, 1]), [1, tf.shape(s)[0]])
    pair_weights = pair_weights * tf.cast(mask, tf.float32)
    nonzero = tf.reduce_sum(tf.cast(tf.not_equal(pair_weights, 0.0), tf.float32))
    return tf.math.divide_no_nan(tf.reduce_sum(pair_weights * tf.nn.softplus(-diff)), nonzero)


def _ziln_sigma(logits: tf.Tensor, max_sigma: float) -> tf.Tensor:
    # Keras' epsilon 1e-7: sigma is clipped to [sqrt(1e-7), max_sigma] as in EasyRec
    return tf.clip_by_value(tf.nn.softplus(logits[:, 2]), tf.sqrt(1e-7), max_sigma)


def ziln_loss(labels: tf.Tensor, logits: tf.Tensor, max_sigma: float = 5.0,
              mu_reg: float = 0.01, sigma_reg: float = 0.01, class_weight: float = 1.0,
              reg_weight: float = 1.0) -> tf.Tensor:
    """EasyRec's ZILN_LOSS, the zero-inflated lognormal loss for lifetime value (Wang et al.,
    "A Deep Probabilistic Model for Customer Lifetime Value Prediction", 2019), on logits
    (batch, 3) = (positive logit, mu, pre-softplus sigma):

        class_weight * mean BCE(y > 0, logit)
      + reg_weight * (- sum over y > 0 of log LogNormal(y; mu, sigma)) / (N_pos + 1e-8)
      + mu_reg * mean mu^2 + sigma_reg * mean (logits[:, 2])^2

    with sigma = clip(softplus(logits[:, 2]), sqrt(1e-7), max_sigma) and
    log LogNormal(y; mu, s) = -(log y - mu)^2 / (2 s^2) - log(y s sqrt(2 pi)).
    """
    labels = tf.reshape(tf.cast(labels, tf.float32), [-1])
    positive = tf.cast(labels > 0, tf.float32)
    classification = tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=positive, logits=logits[:, 0]))
    mu = logits[:, 1]
    sigma = _ziln_sigma(logits, max_sigma)
    y = positive * labels + (1.0 - positive)  # 1 where y <= 0: log y = 0, masked below
    log_y = tf.math.log(y)
    log_prob = -tf.square(log_y - mu) / (2.0 * tf.square(sigma)) - log_y - tf.math.log(sigma) \
        - 0.5 * tf.math.log(2.0 * tf.constant(3.141592653589793))
    regression = -tf.reduce_sum(positive * log_prob) / (tf.reduce_sum(positive) + 1e-8)
    penalty = mu_reg * tf.reduce_mean(tf.square(mu)) + \
        sigma_reg * tf.reduce_mean(tf.square(logits[:, 2]))
    return class_weight * classification + reg_weight * regression + penalty


def ziln_predictions(logits: tf.Tensor, max_sigma: float = 5.0, max_log_clip: float = 20.0,
                     return_log: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
    """EasyRec's ZILN prediction from logits (batch, 3): (the probability of a positive
    value sigmoid(logits[:, 0]), the expected value p * exp(mu + sigma^2 / 2)), both (batch,);
    the expected value is computed in log space, clipped to [-100, max_log_clip] before exp
    (return_log: the log, unclipped)."""
    probs = tf.sigmoid(logits[:, 0])
    sigma = _ziln_sigma(logits, max_sigma)
    log_preds = tf.math.log_sigmoid(logits[:, 0]) + logits[:, 1] + 0.5 * tf.square(sigma)
    if return_log:
        return probs, log_preds
    return probs, tf.exp(tf.clip_by_value(log_preds, -100.0, max_log_clip))


# ---- SOFTMAX_CROSS_ENTROPY over in-batch negatives (two towers, EasyRec's DSSM) -------------

def in_batch_softmax_loss(labels: tf.Tensor, pair_logits: tf.Tensor,
                          item_ids: tf.Tensor | None = None,
                          weights: tf.Tensor | None = None) -> tf.Tensor:
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
      weights: optional (batch,) sample weights (data_config.sample_weight).

    Returns:
      The mean of loss_i over the positive rows (with weights, as EasyRec:
      sum(w_i loss_i) / sum(w_i) over them); 0 when the batch has none.
    """
    z = pair_logits
    if item_ids is not None:
        ids = tf.reshape(item_ids, [-1])
        eye = tf.eye(tf.shape(z)[0], dtype=tf.bool)
        same = tf.logical_and(tf.equal(ids[:, None], ids[None, :]), tf.logical_not(eye))
        z = tf.where(same, tf.constant(-1e9, z.dtype), z)
    log_p = tf.linalg.diag_part(tf.nn.log_softmax(z, axis=-1))
    return _positive_mean(-log_p, labels, weights)


def _positive_mean(values: tf.Tensor, labels: tf.Tensor,
                   weights: tf.Tensor | None) -> tf.Tensor:
    """Mean of values (batch,) over the rows with label > 0; with weights (batch,),
    sum(w * value) / sum(w) over them (EasyRec's weighted list-wise losses); 0 for none."""
    positive = tf.cast(tf.reshape(labels, [-1]) > 0, values.dtype)
    if weights is None:
        return tf.reduce_sum(values * positive) / tf.maximum(tf.reduce_sum(positive), 1.0)
    w = positive * tf.reshape(tf.cast(weights, values.dtype), [-1])
    return tf.math.divide_no_nan(tf.reduce_sum(values * w), tf.reduce_sum(w))


def positive_similarity_hinge(labels: tf.Tensor, similarity: tf.Tensor,
                              weights: tf.Tensor | None = None) -> tf.Tensor:
    """EasyRec's `reg_pos_loss` beside its in-batch softmax: mean over the positive rows of
    relu(-s(u_i, v_i)), s the towers' similarity before the temperature (a positive pair
    should not point away); with weights (batch,), sum(w relu(-s)) / sum(w) over them. 0 when
    the batch has no positive row. labels, similarity: (batch,) or (batch, 1)."""
    hinge = tf.nn.relu(-tf.reshape(similarity, [-1]))
    return _positive_mean(hinge, labels, weights)
