"""Batch normalization whose moving statistics are right after a short run.

Keras' BatchNormalization starts its moving mean at 0 and its moving variance at 1 and moves
them by (1 - momentum) per step, so after t steps they still hold momentum^t of those initial
values: 0.99^20 = 82 % after 20 steps, 0.99^200 = 13 % after 200. A model trained for a few
hundred steps (a first try, a small data set, a daily incremental run) is then evaluated with
statistics that are mostly the initial ones, which is worst when activations are small (a true
variance of 0.01 read as 0.14 shrinks every output by a factor of 3.7).

`BatchNorm` debiases the moving statistics the way Adam debiases its moments (Kingma & Ba 2015,
Algorithm 1): the exponential moving average started at zero, m_t = b m_{t-1} + (1 - b) x_t,
divided by 1 - b^t. Written as an update of the debiased estimate itself this is

    moving_t = moving_{t-1} + r_t (x_t - moving_{t-1}),   r_t = (1 - b) / (1 - b^t),

where t counts the updates so far. r_1 = 1, so the first batch replaces the initial values;
the estimate is then a weighted mean of the batches seen, with weights proportional to
b^(t - s) (recent batches count more), and r_t falls to the usual 1 - b. Storing the debiased
estimate (rather than the biased average and a division at inference) keeps inference exactly
batch normalization with the stored moving statistics.

Why this and not a cumulative average for the first 1 / (1 - b) steps (r_t = max(1/t, 1 - b)):
both are unbiased on a fixed input distribution, but during training the activations drift as
the weights move, and the cumulative average gives the first, random-weight batches as much
weight as the last ones until step 1 / (1 - b) (100 steps at b = 0.99); the debiased average
weights the batch of step s by b^(t - s) from the start, so it follows the drift like the
usual moving average does later.

The moving variance is updated with the unbiased (Bessel-corrected) variance of the batch,
n / (n - 1) times the batch variance used to normalize in training, so that it estimates the
population variance also when a partition has few examples in a batch (partitioned
normalization), as TensorFlow's fused batch norm and PyTorch do.

Synchronous replicas (tf.distribute): with `synchronized` true each training step's moments are
those of the whole step's batch over every replica (their counts, sums and centered sums of
squares all-reduced, as Keras' synchronized BatchNormalization), so every replica normalizes
alike and moves identical moving statistics and update counts, as one process training the
global batch would. easyblocks.train.distribute.synchronize_batch_norm sets it when a training
has more than one replica.

Partitions: the statistics can be kept separately for P partitions of the examples (STAR's
partitioned normalization keeps one set per domain). A partition's statistics move only in
steps where the batch holds at least two of its examples, and its own update count t drives
its debiasing, so a domain that is rarely seen does not keep its initial values.

Cost: with one partition (every BatchNorm) training takes the moments by column reductions and
normalizes as z * inv + (beta - mean * inv), as Keras' BatchNormalization does, and the update
is scalar arithmetic plus three variable updates; the segment sums, gathers and scatters of the
partitioned path are only paid by P > 1 (docs/benchmarks/block_speed.md).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from easyblocks.blocks.registry import register_block
from easyblocks.errors import ConfigError

# Momentum of the moving statistics of every normalization layer unless a block sets its own.
# 0.9, not Keras' (and EasyRec's) 0.99: with debiasing both are unbiased on a fixed input, but
# while a model trains its activations drift, and an average over the last ~100 steps lags
# behind them; measured (docs/benchmarks/quality.md) 0.9 was better by 0.002-0.01 AUC on the
# MLP after one pass and equal on STAR and on UCI Adult (8 epochs).
MOMENTUM = 0.9
EPSILON = 1e-3


def check_momentum(momentum: float, what: str) -> float:
    """Validates a moving-average momentum (0 <= momentum < 1)."""
    if momentum is None or not 0.0 <= float(momentum) < 1.0:
        raise ConfigError(f"{what}: expected 0 <= momentum < 1, received: momentum={momentum}")
    return float(momentum)


def synchronized_partition_moments(z: tf.Tensor, index: tf.Tensor, num_partitions: int, ctx):
    """partition_moments over the batches of every replica of `ctx` (a replica context): the
    counts and sums all-reduced, then the squares centered on the global means, all-reduced
    (two passes, as exact as one process's). Differentiable (all_reduce's gradient)."""
    sum_ = tf.distribute.ReduceOp.SUM
    counts = tf.math.unsorted_segment_sum(tf.ones_like(index, z.dtype), index, num_partitions)
    sums = tf.math.unsorted_segment_sum(z, index, num_partitions)
    counts, sums = ctx.all_reduce(sum_, [counts, sums])
    denom = tf.maximum(counts, 1.0)[:, None]
    mean = sums / denom
    centered = z - tf.gather(mean, index)
    squares = ctx.all_reduce(
        sum_, tf.math.unsorted_segment_sum(tf.square(centered), index, num_partitions))
    return counts, mean, squares / denom


def partition_moments(z: tf.Tensor, index: tf.Tensor, num_partitions: int):
    """Per-partition batch statistics of z.

    Args:
      z: (batch, d) float.
      index: (batch,) int32 partition of each example, in [0, num_partitions).
      num_partitions: P.

    Returns:
      (count (P,), mean (P, d), biased variance (P, d)); mean and variance are 0 for a
      partition without examples.
    """
    counts = tf.math.unsorted_segment_sum(tf.ones_like(index, z.dtype), index, num_partitions)
    denom = tf.maximum(counts, 1.0)[:, None]
    mean = tf.math.unsorted_segment_sum(z, index, num_partitions) / denom
    centered = z - tf.gather(mean, index)
    var = tf.math.unsorted_segment_sum(tf.square(centered), index, num_partitions) / denom
    return counts, mean, var


@register_block("BatchNorm")
@keras.saving.register_keras_serializable(package="easyblocks")
class BatchNorm(keras.layers.Layer):
    """Batch normalization over the last axis with debiased moving statistics.

    Training (training true and the layer trainable): y = gamma (x - mu_B) / sqrt(var_B + eps)
    + beta with the batch's mean and (biased) variance, and the moving statistics take one
    debiased step towards them (module docstring). Inference: the moving statistics instead.

    Args:
      momentum: b of the moving averages (0 <= b < 1); the estimate averages about the last
        1 / (1 - b) updates. None: `MOMENTUM`, the default of every normalization.
      epsilon: added to the variance.
      center, scale: learn beta / gamma.
      synchronized: under a tf.distribute strategy with several replicas, moments of the
        global batch (all-reduced) instead of each replica's own.

    Call args:
      inputs: (batch, d); (batch, ..., d) is normalized over all leading axes.
      training: batch statistics (and a moving-statistics update) when true.

    Returns:
      Same shape as inputs.
    """

    num_partitions = 1

    def __init__(self, momentum: float | None = None, epsilon: float = EPSILON,
                 center: bool = True, scale: bool = True, synchronized: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        # read at call time: synchronize_batch_norm sets it on a built model
        self.synchronized = bool(synchronized)
        momentum = MOMENTUM if momentum is None else momentum
        self.momentum = check_momentum(momentum, f"{type(self).__name__} {self.name!r}")
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)

    def _build_statistics(self, d: int) -> None:
        p = self.num_partitions
        stat = dict(trainable=False, autocast=False)
        self.moving_mean = self.add_weight(shape=(p, d), initializer="zeros",
                                           name="moving_mean", **stat)
        self.moving_variance = self.add_weight(shape=(p, d), initializer="ones",
                                               name="moving_variance", **stat)
        # number of updates of each partition's statistics (t of the debiasing)
        self.moving_count = self.add_weight(shape=(p,), initializer="zeros",
                                            name="moving_count", **stat)

    def build(self, input_shape):
        d = int(input_shape[-1])
        self.gamma = self.add_weight(shape=(d,), initializer="ones", name="gamma") \
            if self.scale else None
        self.beta = self.add_weight(shape=(d,), initializer="zeros", name="beta") \
            if self.center else None
        self._build_statistics(d)

    def standardize(self, z: tf.Tensor, index: tf.Tensor | None, training) -> tf.Tensor:
        """(z - mean) / sqrt(var + eps) with each example's partition's statistics.

        Args:
          z: (batch, d).
          index: (batch,) int32 partitions in [0, num_partitions); None: all in partition 0.
          training: use (and update with) the batch statistics.

        Returns:
          (batch, d).
        """
        p = self.num_partitions
        if index is None and p == 1:
            return self._normalize_one_partition(z, training, None, None)
        if index is None:
            index = tf.zeros(tf.shape(z)[:1], tf.int32)
        if training and self.trainable:
            ctx = tf.distribute.get_replica_context() if self.synchronized else None
            if ctx is not None and ctx.num_replicas_in_sync > 1:
                counts, mean, var = synchronized_partition_moments(z, index, p, ctx)
            else:
                counts, mean, var = partition_moments(z, index, p)
            self._update_statistics(counts, mean, var)
            centered = z - tf.gather(mean, index)
            var_ex = tf.gather(var, index)
        else:
            centered = z - tf.gather(tf.cast(self.moving_mean, z.dtype), index)
            var_ex = tf.gather(tf.cast(self.moving_variance, z.dtype), index)
        return centered * tf.math.rsqrt(var_ex + self.epsilon)

    def _normalize_one_partition(self, z: tf.Tensor, training, gamma, beta) -> tf.Tensor:
        """The one-partition path (every BatchNorm; not PartitionedNormalization): the same math
        as `standardize` with an all-zeros index, written as Keras' BatchNormalization is
        (tf.nn.moments' reductions, then tf.nn.batch_normalization's z * inv + (beta - mean *
        inv) with inv = gamma / sqrt(var + eps)), so that training needs no segment sums,
        gathers or scatters, and two (batch, d) element-wise ops (and their gradients) instead
        of four.

        Args:
          z: (batch, d).
          training: use (and update with) the batch statistics.
          gamma, beta: (d,) scale and shift, or None (1 and 0).

        Returns:
          (batch, d): gamma (z - mean) / sqrt(var + eps) + beta.
        """
        if training and self.trainable:
            ctx = tf.distribute.get_replica_context() if self.synchronized else None
            if ctx is not None and ctx.num_replicas_in_sync > 1:
                index = tf.zeros(tf.shape(z)[:1], tf.int32)
                counts, mean, var = synchronized_partition_moments(z, index, 1, ctx)
                n, mean, var = counts[0], mean[0], var[0]
            else:
                # tf.nn.moments, with the count floored at 1: an empty batch has 0 moments
                # (as the partitioned path), not NaN ones that would reach the gradients
                n = tf.cast(tf.shape(z)[0], z.dtype)
                denom = tf.maximum(n, 1.0)
                mean = tf.reduce_sum(z, axis=0) / denom
                var = tf.reduce_sum(tf.math.squared_difference(z, tf.stop_gradient(mean)),
                                    axis=0) / denom
            self._update_one_partition(n, mean, var)
        else:
            mean = tf.cast(self.moving_mean[0], z.dtype)
            var = tf.cast(self.moving_variance[0], z.dtype)
        inv = tf.math.rsqrt(var + self.epsilon)
        if gamma is not None:
            inv = inv * gamma
        shift = -mean * inv if beta is None else beta - mean * inv
        return z * inv + shift

    def _update_one_partition(self, n: tf.Tensor, mean: tf.Tensor, var: tf.Tensor) -> None:
        """`_update_statistics` for one partition, with scalar counts: n (), mean and var (d,).
        Mean and variance take one debiased step each (assign_add of rate * (stat - moving)),
        the count one assign; the rate and the Bessel factor n / (n - 1) are scalars."""
        dtype = self.moving_mean.dtype
        n = tf.cast(n, dtype)
        present = tf.cast(n >= 2.0, dtype)  # one example has no variance to learn from
        t = self.moving_count + present  # (1,)
        rate = present * self.update_rate(t)  # (1,); 0 when not present
        bessel = n / tf.maximum(n - 1.0, 1.0)
        mean = tf.cast(tf.stop_gradient(mean), dtype)[None]
        var = tf.cast(tf.stop_gradient(var), dtype)[None] * bessel
        self.moving_mean.assign_add(rate * (mean - self.moving_mean))
        self.moving_variance.assign_add(rate * (var - self.moving_variance))
        self.moving_count.assign(t)

    def update_rate(self, t: tf.Tensor) -> tf.Tensor:
        """r_t = (1 - b) / (1 - b^t) for update number t >= 1 (1 at t = 1, then down to 1 - b).

        Args:
          t: (P,) float update counts.
        """
        b = tf.constant(self.momentum, t.dtype)
        return (1.0 - b) / tf.maximum(1.0 - tf.pow(b, t), 1e-12)

    def _update_statistics(self, counts: tf.Tensor, mean: tf.Tensor, var: tf.Tensor) -> None:
        dtype = self.moving_mean.dtype
        counts = tf.cast(counts, dtype)
        mean = tf.cast(tf.stop_gradient(mean), dtype)
        # unbiased batch variance: the moving variance estimates the population's
        var = tf.cast(tf.stop_gradient(var), dtype) * counts[:, None] / tf.maximum(
            counts[:, None] - 1.0, 1.0)
        present = counts >= 2.0  # (P,): one example has no variance to learn from
        t = self.moving_count + tf.cast(present, dtype)
        rate = tf.where(present, self.update_rate(t), 0.0)[:, None]
        self.moving_mean.assign(self.moving_mean + rate * (mean - self.moving_mean))
        self.moving_variance.assign(self.moving_variance + rate * (var - self.moving_variance))
        self.moving_count.assign(t)

    def call(self, inputs, training=None):
        x = inputs
        shape = tf.shape(x)
        flat = tf.reshape(x, [-1, x.shape[-1]]) if x.shape.rank != 2 else x
        if self.num_partitions == 1:
            y = self._normalize_one_partition(flat, training, self.gamma, self.beta)
        else:
            y = self.standardize(flat, None, training)
            if self.gamma is not None:
                y = y * self.gamma
            if self.beta is not None:
                y = y + self.beta
        return tf.reshape(y, shape) if x.shape.rank != 2 else y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(momentum=self.momentum, epsilon=self.epsilon, center=self.center,
                      scale=self.scale, synchronized=self.synchronized)
        return config
