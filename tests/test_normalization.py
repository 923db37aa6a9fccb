"""BatchNorm (easyblocks.blocks.normalization): debiased moving statistics, by hand and after
short runs; the same statistics in the MLP, GateNU, APG and STAR's partitioned normalization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from easyblocks.blocks.apg import APG
from easyblocks.blocks.mlp import MLP
from easyblocks.blocks.normalization import MOMENTUM, BatchNorm
from easyblocks.blocks.pepnet import GateNU
from easyblocks.blocks.star import PartitionedNormalization
from easyblocks.errors import ConfigError

EPS = 1e-3
# a fixed input distribution: per-feature mean and standard deviation, some of them small
# (as activations are early in training, when the initial variance of 1 is most wrong)
MU = np.array([3.0, -1.0, 0.5, 0.0], dtype="float32")
SIGMA = np.array([0.1, 2.0, 0.05, 1.0], dtype="float32")


def draw(rng, n):
    return (MU + SIGMA * rng.standard_normal((n, 4))).astype("float32")


def true_normalization(x):
    return (x - MU) / np.sqrt(SIGMA**2 + EPS)


def train_steps(layer, steps, rng, batch=256):
    step = tf.function(lambda x: layer(x, training=True))
    for _ in range(steps):
        step(draw(rng, batch))


def inference_error(layer, rng) -> float:
    """Mean absolute difference between the layer's inference output and the normalization
    by the true statistics, in units of the normalized output (standard deviations)."""
    x = draw(rng, 8192)
    return float(np.abs(layer(x, training=False).numpy() - true_normalization(x)).mean())


# ------------------------------------------------------------------------ by hand


def test_first_update_takes_the_batch_statistics_then_debiased_average():
    bn = BatchNorm(momentum=0.9, epsilon=0.0)
    x1 = np.array([[1.0, 0.0], [3.0, 4.0]], dtype="float32")  # mean [2, 2], unbiased var [2, 8]
    out = bn(x1, training=True).numpy()
    # training output: batch statistics (biased variance [1, 4])
    np.testing.assert_allclose(out, [[-1.0, -1.0], [1.0, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(bn.moving_mean.numpy(), [[2.0, 2.0]], rtol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), [[2.0, 8.0]], rtol=1e-6)
    x2 = np.array([[5.0, 1.0], [7.0, 1.0], [9.0, 1.0]], dtype="float32")  # mean [7, 1], var [4, 0]
    bn(x2, training=True)
    # t = 2: rate 0.1 / (1 - 0.81) = 10/19, i.e. the average started at zero and divided
    # by 1 - 0.9^2: (0.9 * 0.1 * m1 + 0.1 * m2) / 0.19
    r = 0.1 / 0.19
    np.testing.assert_allclose(bn.moving_mean.numpy(),
                               [[2 + r * (7 - 2), 2 + r * (1 - 2)]], rtol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(),
                               [[2 + r * (4 - 2), 8 + r * (0 - 8)]], rtol=1e-6)
    np.testing.assert_allclose(bn.moving_count.numpy(), [2.0])
    # inference: the moving statistics, gamma and beta
    bn.gamma.assign([2.0, 1.0])
    bn.beta.assign([0.5, -1.0])
    mean, var = bn.moving_mean.numpy()[0], bn.moving_variance.numpy()[0]
    x = np.array([[4.0, 3.0]], dtype="float32")
    np.testing.assert_allclose(bn(x, training=False).numpy(),
                               [[2.0, 1.0] * (x[0] - mean) / np.sqrt(var) + [0.5, -1.0]],
                               rtol=1e-5)
    np.testing.assert_allclose(bn.moving_count.numpy(), [2.0])  # inference changes nothing


def test_late_updates_move_by_one_minus_momentum():
    bn = BatchNorm(momentum=0.5, epsilon=0.0)
    bn.build((None, 1))
    bn.moving_count.assign([60.0])  # 0.5^61 underflows nothing: rate is 0.5 / (1 - 0.5^61)
    bn.moving_mean.assign([[10.0]])
    bn(np.array([[0.0], [2.0]], dtype="float32"), training=True)  # batch mean 1
    np.testing.assert_allclose(bn.moving_mean.numpy(), [[5.5]], rtol=1e-6)


def test_inputs_with_more_axes_and_frozen_layer():
    bn = BatchNorm(momentum=0.0, epsilon=0.0)
    x = np.arange(12, dtype="float32").reshape(2, 3, 2)  # 6 rows of 2 features
    out = bn(x, training=True).numpy()
    flat = x.reshape(-1, 2)
    want = (flat - flat.mean(0)) / flat.std(0)
    np.testing.assert_allclose(out.reshape(-1, 2), want, rtol=1e-5)
    bn.trainable = False  # a frozen layer normalizes with its moving statistics, as Keras'
    before = bn.moving_mean.numpy().copy()
    bn(x + 100.0, training=True)
    np.testing.assert_allclose(bn.moving_mean.numpy(), before)


def test_config_round_trip_and_errors():
    bn = BatchNorm(momentum=0.9, epsilon=0.01, center=False, name="n")
    clone = BatchNorm.from_config(bn.get_config())
    assert clone.get_config() == bn.get_config()
    x = np.ones((3, 2), "float32")
    assert bn(x).shape == (3, 2) and len(bn.trainable_weights) == 1  # gamma only
    assert BatchNorm().momentum == MOMENTUM
    with pytest.raises(ConfigError, match=r"0 <= momentum < 1, received: momentum=1.0"):
        BatchNorm(momentum=1.0)


# ------------------------------------------------------------------------ after short runs


@pytest.mark.parametrize("momentum", [None, 0.99], ids=["default", "0.99"])
@pytest.mark.parametrize("steps", [20, 200])
def test_inference_matches_true_statistics_after_short_runs(steps, momentum):
    rng = np.random.default_rng(steps)
    bn = BatchNorm(momentum=momentum)
    train_steps(bn, steps, rng)
    # estimation noise after 20 batches of 256: ~0.01-0.02 standard deviations
    assert inference_error(bn, rng) < 0.05


@pytest.mark.parametrize("steps", [20, 200])
def test_keras_batch_normalization_fails_the_same_check(steps):
    """The check above can fail: Keras' moving statistics still hold momentum^steps of their
    initial values (0.99^20 = 82 %, 0.99^200 = 13 %)."""
    rng = np.random.default_rng(steps)
    bn = keras.layers.BatchNormalization(momentum=0.99, epsilon=EPS)
    train_steps(bn, steps, rng)
    # measured: 1.04 after 20 steps, 0.44 after 200 (the debiased statistics: 0.014, 0.005)
    assert inference_error(bn, rng) > 0.2


def test_mlp_gate_and_apg_normalize_with_debiased_statistics():
    """Every block with batch norm: after 20 steps (fixed weights) its inference output equals
    its output with the true statistics (a training-mode pass over a very large batch)."""
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    blocks = [
        MLP(hidden_units=[8, 4]),  # BN on every layer (EasyRec's default)
        GateNU(output_dim=4, hidden_dim=6, use_bn=True),
        APG(hidden_units=[6, 4], rank_k=2, use_bn=True),
    ]
    for block in blocks:
        train_steps(block, 20, rng, batch=1024)
        x = draw(rng, 4096)
        clone = type(block).from_config(block.get_config())
        clone(x[:2])
        clone.set_weights(block.get_weights())
        # batch statistics of 200k examples: the true statistics to ~0.5 %
        big = draw(rng, 200_000)
        want = clone(np.concatenate([x, big]), training=True).numpy()[: len(x)]
        got = block(x, training=False).numpy()
        # measured 0.5-2.3 % of the output's standard deviation (batch-statistics noise of
        # the earlier layers); Keras' statistics would be off by a factor of several
        assert np.abs(got - want).mean() < 0.05 * want.std(), type(block).__name__


def test_partitioned_normalization_rare_domain_after_20_steps():
    """STAR's PN: a domain with 2 % of the examples gets its own statistics within 20 steps
    (with Keras-style statistics it would still hold 82 % of the initial mean 0, variance 1)."""
    rng = np.random.default_rng(5)
    shift = np.array([[0.0, 0, 0, 0], [5.0, 5, 5, 5], [-2.0, 1, 0, 3]], dtype="float32")
    share = [0.78, 0.2, 0.02]
    pn = PartitionedNormalization(num_domains=3, epsilon=EPS)
    step = tf.function(lambda x, d: pn([x, d], training=True))
    for _ in range(20):
        dom = rng.choice(3, 1024, p=share)
        step(draw(rng, 1024) + shift[dom], dom)
    counts = pn.moving_count.numpy()
    assert counts[2] >= 19  # nearly every batch holds at least two examples of domain 2
    for d, tol in [(0, 0.05), (1, 0.05), (2, 0.12)]:
        x = draw(rng, 4096)
        got = pn([x + shift[d], np.full(4096, d)], training=False).numpy()
        assert np.abs(got - true_normalization(x)).mean() < tol, d


# ------------------------------------------------------------------------ one-partition fast path


class ThroughPartitions(BatchNorm):
    """BatchNorm computed by the partitioned path (`standardize` with an explicit all-zeros
    index: segment sums, gathers), the reference for the one-partition fast path of `call`."""

    def call(self, inputs, training=None):
        index = tf.zeros(tf.shape(inputs)[:1], tf.int32)
        return self.standardize(inputs, index, training) * self.gamma + self.beta


def test_fast_path_by_hand_with_scale_and_shift():
    bn = BatchNorm(momentum=0.9, epsilon=0.0)
    bn.build((None, 2))
    bn.gamma.assign([2.0, -1.0])
    bn.beta.assign([0.5, 1.0])
    x = np.array([[1.0, 0.0], [3.0, 4.0]], dtype="float32")  # normalized [[-1, -1], [1, 1]]
    np.testing.assert_allclose(bn(x, training=True).numpy(), [[-1.5, 2.0], [2.5, 0.0]],
                               rtol=1e-6)
    # three examples: mean [2, 1], biased variance [2/3, 2/3]; gradient of sum(w * y) by hand:
    # dL/dx = gamma / sigma * (w - mean(w) - xhat * mean(w * xhat)), xhat = (x - mean) / sigma
    x = np.array([[1.0, 0.0], [2.0, 2.0], [3.0, 1.0]], dtype="float32")
    w = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype="float32")
    sigma = np.sqrt(2.0 / 3.0)
    xhat = (x - [2.0, 1.0]) / sigma
    want = [2.0, -1.0] / sigma * (w - w.mean(0) - xhat * (w * xhat).mean(0))
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = bn(xt, training=True)
        loss = tf.reduce_sum(y * w)
    np.testing.assert_allclose(y.numpy(), [2.0, -1.0] * xhat + [0.5, 1.0], rtol=1e-5)
    np.testing.assert_allclose(tape.gradient(loss, xt).numpy(), want, rtol=1e-5, atol=1e-6)
    # moving statistics: t = 2, rate 0.1 / 0.19, unbiased variances [2, 8] then [1, 1]
    r = 0.1 / 0.19
    np.testing.assert_allclose(bn.moving_mean.numpy(), [[2.0, 2.0 + r * (1.0 - 2.0)]],
                               rtol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(),
                               [[2.0 + r * (1.0 - 2.0), 8.0 + r * (1.0 - 8.0)]], rtol=1e-6)


def test_fast_path_equals_the_partitioned_path():
    rng = np.random.default_rng(3)
    fast, ref = BatchNorm(momentum=0.8), ThroughPartitions(momentum=0.8)
    for layer in (fast, ref):
        layer.build((None, 5))
    gamma, beta = rng.normal(size=5).astype("float32"), rng.normal(size=5).astype("float32")
    for layer in (fast, ref):
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)

    @tf.function
    def step(layer, x, w):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.square(y) * w)
        return (y,) + tuple(tape.gradient(loss, [x, layer.gamma, layer.beta]))

    # batches of different sizes, one of a single example (no variance: no update) and an
    # empty one (no statistics at all: no update, no NaN)
    for n in (64, 7, 1, 0, 33, 128):
        x = tf.constant((2.0 + 3.0 * rng.standard_normal((n, 5))).astype("float32"))
        w = tf.constant(rng.uniform(size=(n, 5)).astype("float32"))
        got, want = step(fast, x, w), step(ref, x, w)
        for g, e in zip(got, want):
            np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-4, atol=1e-4)
        for v in ("moving_mean", "moving_variance", "moving_count"):
            np.testing.assert_allclose(getattr(fast, v).numpy(), getattr(ref, v).numpy(),
                                       rtol=1e-5, atol=1e-6)
    assert fast.moving_count.numpy().tolist() == [4.0]  # the 1- and 0-example batches skipped
    assert np.isfinite(fast.moving_variance.numpy()).all()
    x = rng.normal(size=(16, 5)).astype("float32")
    np.testing.assert_allclose(fast(x, training=False).numpy(), ref(x, training=False).numpy(),
                               rtol=1e-5, atol=1e-5)
    # same variables as before (names, shapes), so checkpoints still load
    assert [(v.path.split("/")[-1], tuple(v.shape)) for v in fast.weights] == [
        ("gamma", (5,)), ("beta", (5,)), ("moving_mean", (1, 5)), ("moving_variance", (1, 5)),
        ("moving_count", (1,))]
