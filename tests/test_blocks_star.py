"""Tests of STAR: star-topology FC layers and partitioned normalization (math pinned by numpy)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import create_layer, layer_kwargs
from google.protobuf import text_format

from easyblocks.blocks import normalization
from easyblocks.blocks.registry import get_block
from easyblocks.blocks.star import (
    STAR,
    PartitionedNormalization,
    StarDense,
    all_domain_star_dense,
    grouped_star_dense,
)
from easyblocks.errors import ConfigError
from easyblocks.protos import backbone_pb2

X = np.array(
    [[1.0, -2.0, 0.5], [0.3, 0.7, -1.0], [2.0, 0.0, 1.0], [-1.0, 1.5, 0.2]], dtype="float32"
)
DOM = np.array([0, 1, 1, 0], dtype="int64")
W = np.array([[1.0, -1.0], [0.5, 2.0], [-0.5, 0.25]], dtype="float32")  # 3 -> 2
B = np.array([0.1, -0.2], dtype="float32")
W_P = np.stack(
    [np.full((3, 2), 2.0), np.array([[1.0, 0.0], [-1.0, 3.0], [0.5, 1.0]])]
).astype("float32")
B_P = np.array([[1.0, 0.0], [0.0, -3.0]], dtype="float32")


def relu(x):
    return np.maximum(x, 0.0)


def star_dense(num_domains=2):
    layer = StarDense(2, num_domains)
    layer.build([(None, 3), (None,)])
    layer.kernel.assign(W)
    layer.bias.assign(B)
    return layer


# ---------------------------------------------------------------- StarDense


def test_star_dense_with_initial_domain_weights_is_a_plain_dense():
    layer = star_dense()
    np.testing.assert_allclose(layer.domain_kernel.numpy(), np.ones((2, 3, 2)))
    np.testing.assert_allclose(layer.domain_bias.numpy(), np.zeros((2, 2)))
    out = layer([X, DOM]).numpy()
    np.testing.assert_allclose(out, X @ W + B, rtol=1e-6)
    dense = keras.layers.Dense(2)
    dense.build((None, 3))
    dense.set_weights([W, B])
    np.testing.assert_allclose(out, dense(X).numpy(), rtol=1e-6)


def test_star_dense_mixed_batch_uses_each_examples_domain_weights():
    layer = star_dense()
    layer.domain_kernel.assign(W_P)
    layer.domain_bias.assign(B_P)
    out = layer([X, DOM]).numpy()
    # example 0 (domain 0): x (W * 2) + b + [1, 0]
    x0 = X[0]
    want0 = x0 @ (2 * W) + B + np.array([1.0, 0.0])
    np.testing.assert_allclose(out[0], want0, rtol=1e-6)
    # by hand: 2*[1 -1 + -1 ... ]: x0 @ W = [1 - 1 - .25, -1 - 4 + .125] = [-.25, -4.875]
    np.testing.assert_allclose(out[0], [2 * -0.25 + 0.1 + 1.0, 2 * -4.875 - 0.2], rtol=1e-6)
    want = np.stack([X[i] @ (W * W_P[d]) + B + B_P[d] for i, d in enumerate(DOM)])
    np.testing.assert_allclose(out, want, rtol=1e-5)
    # the two domains really differ for the same x
    both = layer([np.stack([X[1], X[1]]), np.array([0, 1])]).numpy()
    assert np.abs(both[0] - both[1]).max() > 0.5


def test_domain_ids_shapes_dtypes_and_out_of_range_are_clipped():
    layer = star_dense(num_domains=2)
    layer.domain_kernel.assign(W_P)
    layer.domain_bias.assign(B_P)
    want = layer([X, DOM]).numpy()
    np.testing.assert_allclose(layer([X, DOM[:, None]]).numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(layer([X, DOM.astype("float32")]).numpy(), want, rtol=1e-6)
    # out of range: negative -> domain 0, >= M -> domain M - 1 (documented clipping)
    clipped = layer([X, np.array([-3, 7, 1, 0])]).numpy()
    np.testing.assert_allclose(clipped, want, rtol=1e-6)


def test_grouped_path_pinned_by_hand_on_a_mixed_batch():
    # grouped_star_dense on the 4-example batch above (domains 0, 1, 1, 0: two chunks of 2)
    args = (W, B, W_P, B_P)
    out = grouped_star_dense(tf.constant(X), tf.constant(DOM, tf.int32),
                             *map(tf.constant, args)).numpy()
    # example 0, domain 0: x0 (2 W) + b + b_0 = [2*-0.25 + 0.1 + 1, 2*-4.875 - 0.2]
    np.testing.assert_allclose(out[0], [0.6, -9.95], rtol=1e-6)
    # example 1, domain 1: W ⊙ W_1 = [[1, 0], [-0.5, 6], [-0.25, 0.25]];
    # x1 = [0.3, 0.7, -1]: [0.3 - 0.35 + 0.25, 4.2 - 0.25] + b + b_1 = [0.3, 3.95 - 0.2 - 3]
    np.testing.assert_allclose(out[1], [0.3, 0.75], rtol=1e-5)
    want = np.stack([X[i] @ (W * W_P[d]) + B + B_P[d] for i, d in enumerate(DOM)])
    np.testing.assert_allclose(out, want, rtol=1e-5)


def _star_dense_results(formula, x, dom, weights):
    """Output and gradients (x and the four weights) of a fixed weighted sum of the output."""
    x = tf.constant(x)
    variables = [tf.Variable(w) for w in weights]
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = formula(x, tf.constant(dom, tf.int32), *variables)
        loss = tf.reduce_sum(y * tf.linspace(-1.0, 2.0, y.shape[-1]))
    grads = tape.gradient(loss, [x] + variables)
    return [y.numpy()] + [tf.convert_to_tensor(g).numpy() for g in grads], grads


@pytest.mark.parametrize("m", [1, 3, 7])
@pytest.mark.parametrize("batch_kind", ["mixed", "single", "missing", "skewed", "one_example"])
def test_grouped_path_equals_all_domain_formula_forward_and_gradients(m, batch_kind):
    rng = np.random.default_rng(m * 10 + len(batch_kind))
    n, d, h = 23, 5, 3
    dom = {
        "mixed": rng.integers(0, m, n),
        "single": np.full(n, m - 1),
        "missing": rng.integers(0, max(m - 2, 1), n),  # the last domains absent
        "skewed": np.where(rng.random(n) < 0.8, 0, rng.integers(0, m, n)),
        "one_example": np.zeros(1, int),
    }[batch_kind]
    x = rng.normal(size=(len(dom), d)).astype("float32")
    weights = [rng.normal(size=s).astype("float32") for s in [(d, h), (h,), (m, d, h), (m, h)]]
    old, _ = _star_dense_results(all_domain_star_dense, x, dom, weights)
    new, grads = _star_dense_results(grouped_star_dense, x, dom, weights)
    for a, b in zip(old, new):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    # only the present domains' rows are in domain_kernel's gradient (not M x d x h)
    assert isinstance(grads[3], tf.IndexedSlices)
    assert set(grads[3].indices.numpy()) == set(dom)
    absent = sorted(set(range(m)) - set(dom))
    np.testing.assert_array_equal(new[4][absent], 0.0)  # [y, dx, dW, db, dW_p, db_p]


def test_star_dense_layer_dispatch_gives_the_same_output(monkeypatch):
    layer = star_dense(num_domains=2)
    layer.domain_kernel.assign(W_P)
    layer.domain_bias.assign(B_P)
    monkeypatch.setattr(StarDense, "GEMM_MAX_DOMAINS", 0)
    grouped = layer([X, DOM]).numpy()
    monkeypatch.setattr(StarDense, "GEMM_MAX_DOMAINS", 100)
    np.testing.assert_allclose(layer([X, DOM]).numpy(), grouped, rtol=1e-5)


def test_grouped_path_empty_batch_and_tf_function_with_unknown_batch():
    f = tf.function(grouped_star_dense, input_signature=[
        tf.TensorSpec([None, 3]), tf.TensorSpec([None], tf.int32), tf.TensorSpec([3, 2]),
        tf.TensorSpec([2]), tf.TensorSpec([2, 3, 2]), tf.TensorSpec([2, 2])])
    args = [tf.constant(a) for a in (W, B, W_P, B_P)]
    assert f(tf.zeros([0, 3]), tf.zeros([0], tf.int32), *args).shape == (0, 2)
    want = np.stack([X[i] @ (W * W_P[d]) + B + B_P[d] for i, d in enumerate(DOM)])
    np.testing.assert_allclose(f(tf.constant(X), tf.constant(DOM, tf.int32), *args), want,
                               rtol=1e-5)


# ---------------------------------------------------------------- PartitionedNormalization


def test_pn_keeps_separate_debiased_moving_statistics_per_domain():
    pn = PartitionedNormalization(num_domains=4, momentum=0.5, epsilon=0.0)
    z = np.array([[1.0, 10.0], [3.0, 14.0], [100.0, -4.0], [104.0, -2.0], [102.0, -6.0],
                  [7.0, 7.0]], dtype="float32")
    dom = np.array([0, 0, 1, 1, 1, 3])
    out = pn([z, dom], training=True).numpy()
    # domain 0: mean [2, 12], batch var [1, 4]; domain 1: mean [102, -4], var [8/3, 8/3]
    mean = np.array([[2.0, 12.0], [102.0, -4.0], [0.0, 0.0], [7.0, 7.0]])
    var = np.array([[1.0, 4.0], [8 / 3, 8 / 3], [1.0, 1.0], [0.0, 0.0]])
    # first update (t = 1, rate 1): the batch statistics themselves, with the unbiased
    # variance (n / (n - 1) times the batch's); not the Keras 0.5 * 0 + 0.5 * batch
    np.testing.assert_allclose(pn.moving_mean.numpy()[:2], mean[:2], rtol=1e-6)
    np.testing.assert_allclose(pn.moving_variance.numpy()[:2],
                               [[2.0, 8.0], [4.0, 4.0]], rtol=1e-5)
    # the unseen domain 2 and domain 3 (one example: no variance) keep their initial values
    np.testing.assert_allclose(pn.moving_mean.numpy()[2:], [[0.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(pn.moving_variance.numpy()[2:], [[1.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(pn.moving_count.numpy(), [1, 1, 0, 0])
    # training output: each example normalised by its own domain's batch statistics
    want = (z[:5] - mean[dom[:5]]) / np.sqrt(var[dom[:5]])
    np.testing.assert_allclose(out[:5], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[:2], [[-1.0, -1.0], [1.0, 1.0]], rtol=1e-5)

    # second update of domain 0 only: t = 2, rate (1 - b) / (1 - b^2) = 2/3, i.e. the
    # batches weighted 1/3 and 2/3 (Adam's debiasing of an average started at zero)
    z2 = np.array([[5.0, 0.0], [9.0, 4.0]], dtype="float32")  # mean [7, 2], unbiased var [8, 8]
    pn([z2, np.array([0, 0])], training=True)
    np.testing.assert_allclose(pn.moving_mean.numpy()[0], [2 / 3 * 7 + 1 / 3 * 2,
                                                           2 / 3 * 2 + 1 / 3 * 12], rtol=1e-6)
    np.testing.assert_allclose(pn.moving_variance.numpy()[0], [2 / 3 * 8 + 1 / 3 * 2,
                                                               2 / 3 * 8 + 1 / 3 * 8], rtol=1e-5)
    np.testing.assert_allclose(pn.moving_mean.numpy()[1], mean[1], rtol=1e-6)  # untouched
    np.testing.assert_allclose(pn.moving_count.numpy(), [2, 1, 0, 0])


def test_pn_inference_uses_own_domains_moving_statistics_and_scales():
    pn = PartitionedNormalization(num_domains=2, epsilon=0.01)
    pn.build([(None, 2), (None,)])
    pn.moving_mean.assign([[1.0, 2.0], [-1.0, 0.0]])
    pn.moving_variance.assign([[4.0, 1.0], [0.25, 9.0]])
    pn.gamma.assign([2.0, 1.0])
    pn.beta.assign([0.5, 0.0])
    pn.domain_gamma.assign([[1.0, 3.0], [0.5, 1.0]])
    pn.domain_beta.assign([[0.0, 1.0], [-1.0, 0.0]])
    z = np.array([[3.0, 2.0], [3.0, 2.0]], dtype="float32")
    out = pn([z, np.array([0, 1])], training=False).numpy()
    eps = 0.01
    # domain 0: (2*1) * (3-1)/sqrt(4.01) + (.5+0), (1*3) * (2-2)/sqrt(1.01) + (0+1)
    # domain 1: (2*.5) * (3+1)/sqrt(.26) + (.5-1), (1*1) * (2-0)/sqrt(9.01) + 0
    want = np.array([
        [2.0 * 2.0 / np.sqrt(4 + eps) + 0.5, 1.0],
        [1.0 * 4.0 / np.sqrt(0.25 + eps) - 0.5, 2.0 / np.sqrt(9 + eps)],
    ])
    np.testing.assert_allclose(out, want, rtol=1e-5)
    # inference does not touch the moving statistics
    np.testing.assert_allclose(pn.moving_mean.numpy(), [[1.0, 2.0], [-1.0, 0.0]])


def test_pn_training_updates_moving_statistics_inside_tf_function():
    pn = PartitionedNormalization(num_domains=2, momentum=0.0)
    z = tf.constant([[1.0], [3.0], [5.0]])
    step = tf.function(lambda z, d: pn([z, d], training=True))
    step(z, tf.constant([1, 1, 1]))
    np.testing.assert_allclose(pn.moving_mean.numpy(), [[0.0], [3.0]], rtol=1e-6)
    # unbiased variance of [1, 3, 5]
    np.testing.assert_allclose(pn.moving_variance.numpy(), [[1.0], [4.0]], rtol=1e-5)


# ---------------------------------------------------------------- STAR


def test_star_stack_matches_numpy_without_pn():
    layer = STAR(num_domains=2, hidden_units=[2, 1], use_partitioned_norm=False)
    layer([X, DOM])
    w2 = np.array([[1.5], [-0.5]], dtype="float32")
    w2_p = np.array([[[1.0], [1.0]], [[-1.0], [2.0]]], dtype="float32")
    first, second = layer.star_layers
    first.kernel.assign(W)
    first.bias.assign(B)
    first.domain_kernel.assign(W_P)
    first.domain_bias.assign(B_P)
    second.kernel.assign(w2)
    second.bias.assign([0.3])
    second.domain_kernel.assign(w2_p)
    second.domain_bias.assign([[0.0], [0.7]])
    out = layer([X, DOM]).numpy()
    want = []
    for i, d in enumerate(DOM):
        h = relu(X[i] @ (W * W_P[d]) + B + B_P[d])
        want.append(relu(h @ (w2 * w2_p[d]) + 0.3 + [0.0, 0.7][d]))
    np.testing.assert_allclose(out, np.stack(want), rtol=1e-5, atol=1e-6)
    assert out.shape == (4, 1)


def test_star_with_pn_normalises_input_per_domain_at_inference():
    layer = STAR(num_domains=2, hidden_units=[2], final_activation="linear")
    layer([X, DOM])
    assert layer.input_norm is not None and layer.hidden_norms == [None]
    layer.input_norm.moving_mean.assign([[1.0, 0.0, 0.0], [0.0, 1.0, -1.0]])
    layer.input_norm.moving_variance.assign([[4.0, 4.0, 4.0], [1.0, 1.0, 1.0]])
    star = layer.star_layers[0]
    star.kernel.assign(W)
    star.bias.assign(B)
    out = layer([X, DOM], training=False).numpy()
    mean = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, -1.0]])[DOM]
    var = np.array([[4.0] * 3, [1.0] * 3])[DOM]
    want = (X - mean) / np.sqrt(var + 1e-3) @ W + B
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


def test_star_hidden_pn_and_dropout_shapes():
    layer = STAR(num_domains=3, hidden_units=[8, 4], partitioned_norm_hidden=True,
                 dropout_ratio=[0.5, 0.0])
    out = layer([X, np.array([0, 1, 2, 1])], training=True)
    assert out.shape == (4, 4)
    assert [n is not None for n in layer.hidden_norms] == [True, True]
    assert layer.dropouts[1] is None and layer.dropouts[0] is not None
    # 2 star layers (4 weights each) + 3 PN (4 trainable + 3 moving statistics each:
    # mean, variance, update count)
    assert len(layer.weights) == 2 * 4 + 3 * 7
    assert len(layer.trainable_weights) == 2 * 4 + 3 * 4


def test_star_config_round_trip_gives_same_output():
    layer = STAR(num_domains=2, hidden_units=[4, 3], dropout_ratio=0.1, activation="tanh",
                 final_activation="linear", momentum=0.9)
    out = layer([X, DOM], training=False)
    clone = STAR.from_config(layer.get_config())
    clone([X, DOM], training=False)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone([X, DOM], training=False).numpy(), out.numpy(), rtol=1e-6)
    assert clone.get_config() == layer.get_config()


def test_star_training_step_updates_present_domains_only():
    keras.utils.set_random_seed(0)
    layer = STAR(num_domains=3, hidden_units=[4, 1], final_activation="linear")
    layer([X, DOM])
    before = {v.path: v.numpy().copy() for v in layer.trainable_weights}
    opt = keras.optimizers.SGD(0.1)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(layer([X, DOM], training=True) - 1.0))
    grads = tape.gradient(loss, layer.trainable_weights)
    opt.apply_gradients(zip(grads, layer.trainable_weights))
    star0 = layer.star_layers[0]
    assert np.abs(star0.kernel.numpy() - before[star0.kernel.path]).max() > 0
    dk = star0.domain_kernel.numpy() - before[star0.domain_kernel.path]
    assert np.abs(dk[0]).max() > 0 and np.abs(dk[1]).max() > 0
    np.testing.assert_array_equal(dk[2], 0.0)  # domain 2 is not in the batch


# ---------------------------------------------------------------- config path


STAR_TEXT = """
  num_domains: 3 hidden_units: [8, 4] dropout_ratio: 0.1 use_partitioned_norm: true
  final_activation: "linear"
"""


def test_star_typed_params_and_st_params_give_the_same_layer():
    typed = text_format.Parse(f'class_name: "STAR" star {{ {STAR_TEXT} }}',
                              backbone_pb2.KerasLayer())
    st = text_format.Parse(
        'class_name: "STAR" st_params { fields { key: "num_domains" value { number_value: 3 } }'
        ' fields { key: "hidden_units" value { list_value { values { number_value: 8 }'
        ' values { number_value: 4 } } } }'
        ' fields { key: "dropout_ratio" value { list_value { values { number_value: 0.1 } } } }'
        ' fields { key: "final_activation" value { string_value: "linear" } } }',
        backbone_pb2.KerasLayer(),
    )
    spec = get_block("STAR")
    assert layer_kwargs(typed, spec, "b") == layer_kwargs(st, spec, "b")
    a = create_layer(typed, "star_a", "block star_a")
    b = create_layer(st, "star_b", "block star_b")
    assert isinstance(a, STAR)
    ca, cb = a.get_config(), b.get_config()
    ca.pop("name"), cb.pop("name")
    assert ca == cb
    # unset momentum: the default of every normalization layer
    assert ca["momentum"] == pytest.approx(normalization.MOMENTUM)
    assert ca["final_activation"] == "linear"
    assert a([X, np.array([0, 2, 1, 0])]).shape == (4, 4)


def test_star_config_errors():
    with pytest.raises(ConfigError, match="num_domains"):
        create_layer(text_format.Parse('class_name: "STAR" star { hidden_units: 4 }',
                                       backbone_pb2.KerasLayer()), "s", "block s")
    with pytest.raises(ConfigError, match="num_domains"):
        STAR(num_domains=0, hidden_units=[4])
    with pytest.raises(ConfigError, match="hidden_units"):
        STAR(num_domains=2, hidden_units=[])
    with pytest.raises(ConfigError, match="domain ids"):
        STAR(num_domains=2, hidden_units=[4])(X)
    pn = create_layer(
        text_format.Parse('class_name: "PartitionedNormalization" st_params { fields { '
                          'key: "num_domains" value { number_value: 2 } } }',
                          backbone_pb2.KerasLayer()), "pn", "block pn")
    assert isinstance(pn, PartitionedNormalization) and pn.num_domains == 2


def test_star_keras_save_and_reload_round_trip(tmp_path):
    x_in = keras.Input((3,))
    d_in = keras.Input((1,), dtype="int64")
    out = STAR(num_domains=2, hidden_units=[4, 2], partitioned_norm_hidden=True)([x_in, d_in])
    model = keras.Model([x_in, d_in], out)
    model([X, DOM[:, None]], training=True)  # move the PN statistics off their initial values
    path = str(tmp_path / "star.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    want = model([X, DOM[:, None]], training=False).numpy()
    np.testing.assert_allclose(loaded([X, DOM[:, None]], training=False).numpy(), want,
                               rtol=1e-6)
