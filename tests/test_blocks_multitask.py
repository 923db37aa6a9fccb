"""Tests of the multi-task blocks: AITMTower, MMoE and PLE (math pinned with numpy and by
hand)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import create_layer
from google.protobuf import text_format

from easyblocks.blocks.multitask import PLE, AITMTower, MMoE
from easyblocks.errors import ConfigError
from easyblocks.protos import backbone_pb2

PLAIN_DENSE = {  # one Dense, no BN, no bias: an exactly known transfer / expert
    "hidden_units": [2], "use_bn": False, "use_final_bn": False, "final_activation": "relu",
}


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def relu(x):
    return np.maximum(x, 0.0)


Q = np.array([[1.0, 0.5], [-0.3, 2.0]], dtype="float32")  # own tower, (batch=2, d=2)
X_PREV = np.array([[0.2, -1.0, 0.3], [1.5, 0.4, -0.7]], dtype="float32")  # preceding, (2, 3)
W_T = np.array([[1.0, -0.5], [0.2, 0.8], [-1.0, 0.3]], dtype="float32")  # transfer 3 -> 2
H1 = np.array([[1.0, 0.0], [0.0, 1.0]], dtype="float32")
H2 = np.array([[2.0, 0.0], [0.5, 1.0]], dtype="float32")
H3 = np.array([[0.0, 1.0], [1.0, 1.0]], dtype="float32")


def paper_aitm(**kwargs):
    layer = AITMTower(transfer_mlp=dict(PLAIN_DENSE), **kwargs)
    layer.build([(None, 2), (None, 3)])
    layer.transfers[0].dense_layers[0].kernel.assign(W_T)
    for dense, kernel in zip(layer.projections, (H1, H2, H3)):
        dense.kernel.assign(kernel)
    return layer


def expected_paper_aitm(q, x_prev):
    p = relu(x_prev @ W_T)
    cands = np.stack([q, p], axis=1)  # (batch, 2, d)
    scores = np.sum((cands @ H1) * (cands @ H2), axis=-1) / np.sqrt(2.0)
    w = softmax(scores, axis=1)
    return np.sum(w[..., None] * (cands @ H3), axis=1), w


# ---------------------------------------------------------------- AITMTower


def test_aitm_paper_math_matches_numpy():
    layer = paper_aitm()
    z = layer([Q, X_PREV]).numpy()
    want, w = expected_paper_aitm(Q, X_PREV)
    np.testing.assert_allclose(z, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.attention_weights([Q, X_PREV]).numpy(), w, rtol=1e-5)
    # the weights are not trivially equal: both candidates matter
    assert np.all(np.abs(w[:, 0] - 0.5) > 0.01)


def test_aitm_paper_math_first_example_by_hand():
    # example 0: p = relu([0.2, -1, 0.3] @ W_T) = relu([-0.3, -0.81]) = [0, 0]
    # own u = [1, .5]: h1 = [1, .5], h2 = [2.25, .5], score = 2.5 / sqrt 2; h3 = [.5, 1.5]
    # p = 0: score 0, h3 = 0  =>  z = sigmoid(2.5 / sqrt 2) * [.5, 1.5]
    layer = paper_aitm()
    z = layer([Q[:1], X_PREV[:1]]).numpy()
    w_own = 1.0 / (1.0 + np.exp(-2.5 / np.sqrt(2.0)))
    np.testing.assert_allclose(z, [[0.5 * w_own, 1.5 * w_own]], rtol=1e-5)


def test_aitm_default_transfer_is_dense_relu_of_own_width():
    layer = AITMTower()
    layer.build([(None, 2), (None, 3)])
    transfer = layer.transfers[0]
    assert isinstance(transfer, keras.layers.Dense) and transfer.units == 2
    bias = np.array([0.1, -0.2], dtype="float32")
    transfer.kernel.assign(W_T)
    transfer.bias.assign(bias)
    for dense, kernel in zip(layer.projections, (H1, H2, H3)):
        dense.kernel.assign(kernel)
    p = relu(X_PREV @ W_T + bias)
    cands = np.stack([Q, p], axis=1)
    w = softmax(np.sum((cands @ H1) * (cands @ H2), axis=-1) / np.sqrt(2.0))
    want = np.sum(w[..., None] * (cands @ H3), axis=1)
    np.testing.assert_allclose(layer([Q, X_PREV]).numpy(), want, rtol=1e-5, atol=1e-6)


def test_aitm_easyrec_mode_math_matches_numpy():
    layer = AITMTower(mode="easyrec", project_dim=2)  # no transfer_mlp: identity, as EasyRec
    layer.build([(None, 2), (None, 3)])
    assert layer.transfers == [None]
    rng = np.random.default_rng(0)
    params = {}
    for dense in layer.queries + layer.keys + layer.values:
        k = rng.normal(size=dense.kernel.shape).astype("float32")
        b = rng.normal(size=dense.bias.shape).astype("float32")
        dense.kernel.assign(k)
        dense.bias.assign(b)
        params[dense.name] = (k, b)

    def lin(name, x):
        k, b = params[name]
        return x @ k + b

    query = lin("query_0", Q)
    keys = np.stack([lin("key_0", Q), lin("key_1", X_PREV)], axis=1)
    values = np.stack([lin("value_0", Q), lin("value_1", X_PREV)], axis=1)
    a = softmax(np.sum(query[:, None, :] * keys, axis=-1) / np.sqrt(2.0))
    want = np.sum(a[..., None] * values, axis=1)
    np.testing.assert_allclose(layer([Q, X_PREV]).numpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["paper", "easyrec"])
def test_aitm_stop_gradient(mode):
    grads, outputs, weights = {}, {}, None
    for stop in (False, True):
        layer = AITMTower(transfer_mlp=dict(PLAIN_DENSE), stop_gradient=stop, mode=mode)
        layer.build([(None, 2), (None, 3)])
        if weights is None:
            layer.transfers[0].dense_layers[0].kernel.assign(W_T)
            weights = layer.get_weights()
        layer.set_weights(weights)  # same weights for both settings
        q, x_prev = tf.constant(Q), tf.constant(X_PREV)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([q, x_prev])
            z = layer([q, x_prev])
            loss = tf.reduce_sum(z * z)
        outputs[stop] = z.numpy()
        transfer_kernel = layer.transfers[0].dense_layers[0].kernel
        grads[stop] = [
            g.numpy()
            for g in tape.gradient(loss, [x_prev, q, transfer_kernel],
                                   unconnected_gradients=tf.UnconnectedGradients.ZERO)
        ]
    assert np.any(np.abs(grads[False][0]) > 1e-6)  # paper default: flows into preceding tower
    np.testing.assert_array_equal(grads[True][0], np.zeros_like(X_PREV))
    # own tower and the transfer network still learn; forward value unchanged
    assert np.any(np.abs(grads[True][1]) > 1e-6)
    assert np.any(np.abs(grads[True][2]) > 1e-6)
    np.testing.assert_allclose(outputs[True], outputs[False], rtol=1e-6)


def test_aitm_shapes_several_predecessors_and_project_dim():
    layer = AITMTower(project_dim=3)
    q, a, b = np.ones((5, 4), "float32"), np.ones((5, 6), "float32"), np.ones((5, 2), "float32")
    out = layer([q, a, b])
    assert out.shape == (5, 3)
    assert layer.compute_output_shape([(None, 4), (None, 6), (None, 2)]) == (None, 3)
    assert len(layer.transfers) == 2  # one transfer network per preceding task
    assert layer.transfers[0].kernel.shape == (6, 4) and layer.transfers[1].kernel.shape == (2, 4)
    assert [d.kernel.shape for d in layer.projections] == [(4, 3)] * 3
    w = layer.attention_weights([q, a, b]).numpy()
    assert w.shape == (5, 3)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)
    # symbolic (functional) use
    inputs = [keras.Input((4,)), keras.Input((6,)), keras.Input((2,))]
    assert tuple(AITMTower(project_dim=3)(inputs).shape) == (None, 3)


def test_aitm_get_config_rebuilds_same_output():
    layer = AITMTower(transfer_mlp={"hidden_units": [4]}, project_dim=3, stop_gradient=True,
                      mode="paper", name="cvr_aitm")
    q, x = np.random.rand(4, 4).astype("float32"), np.random.rand(4, 5).astype("float32")
    out = layer([q, x]).numpy()
    config = layer.get_config()
    assert config["transfer_mlp"] == {"hidden_units": [4]} and config["stop_gradient"] is True
    clone = AITMTower.from_config(config)
    clone.build([(None, 4), (None, 5)])
    assert len(clone.weights) == len(layer.weights)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone([q, x]).numpy(), out, rtol=1e-6)


def test_aitm_width_mismatch_is_config_error():
    layer = AITMTower(transfer_mlp={"hidden_units": [3]}, name="cvr_aitm")
    with pytest.raises(ConfigError, match=r"expected transfer_mlp.hidden_units\[-1\] = 4.*"
                                          r"received: 3"):
        layer([np.ones((2, 4), "float32"), np.ones((2, 5), "float32")])
    # the easyrec mode has per-input projections: no constraint
    out = AITMTower(transfer_mlp={"hidden_units": [3]}, mode="easyrec")(
        [np.ones((2, 4), "float32"), np.ones((2, 5), "float32")])
    assert out.shape == (2, 4)


def test_aitm_bad_inputs_and_params():
    with pytest.raises(ConfigError, match="at least 2 inputs"):
        AITMTower()(np.ones((2, 4), "float32"))
    with pytest.raises(ConfigError, match="merge_inputs_into_list"):
        AITMTower()([np.ones((2, 4), "float32")])
    with pytest.raises(ConfigError, match="expected `mode` to be one of paper, easyrec.*"
                                          "received: mode='papr'"):
        AITMTower(mode="papr")


def test_aitm_training_step_changes_weights():
    layer = AITMTower(transfer_mlp={"hidden_units": [4]})
    q, x = np.random.rand(8, 4).astype("float32"), np.random.rand(8, 5).astype("float32")
    layer([q, x])
    before = [w.numpy().copy() for w in layer.trainable_weights]
    opt = keras.optimizers.SGD(0.1)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(layer([q, x], training=True) - 1.0))
    opt.apply_gradients(zip(tape.gradient(loss, layer.trainable_weights), layer.trainable_weights))
    changed = [not np.allclose(b, w.numpy()) for b, w in zip(before, layer.trainable_weights)]
    assert all(changed), [w.path for w, c in zip(layer.trainable_weights, changed) if not c]


def test_aitm_typed_params_and_st_params_give_same_layer():
    typed = text_format.Parse(
        'class_name: "AITMTower" aitm { transfer_mlp { hidden_units: 4 } }',
        backbone_pb2.KerasLayer())
    st = backbone_pb2.KerasLayer(class_name="AITMTower")
    st.st_params.update({"transfer_mlp": {"hidden_units": [4]}})
    a = create_layer(typed, "cvr_aitm", "block 'cvr_aitm'")
    b = create_layer(st, "cvr_aitm", "block 'cvr_aitm'")
    assert isinstance(a, AITMTower)
    assert a.get_config() == b.get_config()
    assert a.transfer_mlp["hidden_units"] == [4] and a.transfer_mlp["use_bn"] is True
    assert (a.project_dim, a.stop_gradient, a.mode) == (0, False, "paper")
    easy = text_format.Parse(
        'class_name: "AITMTower" aitm { stop_gradient: true mode: "easyrec" project_dim: 8 }',
        backbone_pb2.KerasLayer())
    c = create_layer(easy, "x", "block 'x'")
    assert (c.project_dim, c.stop_gradient, c.mode, c.transfer_mlp) == (8, True, "easyrec", None)


# ---------------------------------------------------------------- MMoE

X = np.array([[1.0, -0.5, 2.0], [0.3, 0.7, -1.2]], dtype="float32")  # expert input (2, 3)
G_IN = np.array([[0.5, 1.0], [-2.0, 0.1]], dtype="float32")  # gate input (2, 2)
E0 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype="float32")
E1 = np.array([[0.5, -1.0], [2.0, 0.0], [0.0, 0.3]], dtype="float32")
LINEAR_EXPERT = dict(PLAIN_DENSE, final_activation="linear")


def hand_set_mmoe(gate_width):
    layer = MMoE(num_task=2, num_expert=2, expert_mlp=dict(LINEAR_EXPERT))
    shapes = [(None, 3), (None, gate_width)] if gate_width != 3 else (None, 3)
    layer.build(shapes)
    layer.experts[0].dense_layers[0].kernel.assign(E0)
    layer.experts[1].dense_layers[0].kernel.assign(E1)
    gates = []
    for t, gate in enumerate(layer.gate_layers):
        k = np.arange(gate_width * 2, dtype="float32").reshape(gate_width, 2) * (0.3 - 0.5 * t)
        b = np.array([0.1, -0.1 * t], dtype="float32")
        gate.kernel.assign(k)
        gate.bias.assign(b)
        gates.append((k, b))
    return layer, gates


def test_mmoe_math_matches_numpy_with_separate_gate_input():
    layer, gates = hand_set_mmoe(gate_width=2)
    outs = layer([X, G_IN])
    assert isinstance(outs, list) and len(outs) == 2
    experts = np.stack([X @ E0, X @ E1], axis=1)  # (batch, 2 experts, 2)
    for t, (k, b) in enumerate(gates):
        g = softmax(G_IN @ k + b)
        want = np.sum(g[..., None] * experts, axis=1)
        np.testing.assert_allclose(outs[t].numpy(), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.gates([X, G_IN])[t].numpy(), g, rtol=1e-5)
    assert not np.allclose(outs[0].numpy(), outs[1].numpy())


def test_mmoe_math_single_input_gates_read_expert_input():
    layer, gates = hand_set_mmoe(gate_width=3)
    outs = layer(X)
    experts = np.stack([X @ E0, X @ E1], axis=1)
    for t, (k, b) in enumerate(gates):
        want = np.sum(softmax(X @ k + b)[..., None] * experts, axis=1)
        np.testing.assert_allclose(outs[t].numpy(), want, rtol=1e-5, atol=1e-6)


def test_mmoe_gates_sum_to_one_and_shapes():
    layer = MMoE(num_task=3, num_expert=4, expert_mlp={"hidden_units": [8, 5]},
                 gate_mlp={"hidden_units": [6]})
    x, g_in = np.random.rand(7, 10).astype("float32"), np.random.rand(7, 3).astype("float32")
    outs = layer([x, g_in])
    assert len(outs) == 3 and all(tuple(o.shape) == (7, 5) for o in outs)
    gates = layer.gates([x, g_in])
    assert len(gates) == 3
    for g in gates:
        assert g.shape == (7, 4)
        np.testing.assert_allclose(g.numpy().sum(axis=1), 1.0, rtol=1e-6)
        assert np.all(g.numpy() > 0)
    assert len(layer.gate_mlps) == 3  # one gate MLP per task
    assert layer.compute_output_shape([(None, 10), (None, 3)]) == [(None, 5)] * 3
    symbolic = MMoE(num_task=2, num_expert=2, expert_mlp={"hidden_units": [4]})(keras.Input((6,)))
    assert [tuple(o.shape) for o in symbolic] == [(None, 4), (None, 4)]


def test_mmoe_without_expert_mlp_takes_expert_outputs_as_inputs():
    layer = MMoE(num_task=1, num_expert=2)
    e0, e1 = X @ E0, X @ E1
    out = layer([e0, e1, G_IN])
    k, b = layer.gate_layers[0].kernel.numpy(), layer.gate_layers[0].bias.numpy()
    want = np.sum(softmax(G_IN @ k + b)[..., None] * np.stack([e0, e1], axis=1), axis=1)
    np.testing.assert_allclose(out[0].numpy(), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="expected num_expert \\+ 1 = 3 inputs, received 2"):
        MMoE(num_task=1, num_expert=2)([e0, G_IN])


def test_mmoe_l2_regularization_on_gate_and_expert_kernels():
    l2 = 0.01
    layer = MMoE(num_task=2, num_expert=2, expert_mlp=dict(LINEAR_EXPERT), l2_regularization=l2)
    layer(X)
    kernels = [e.dense_layers[0].kernel for e in layer.experts] + [
        g.kernel for g in layer.gate_layers]
    want = sum(l2 * np.sum(np.square(k.numpy())) for k in kernels)
    assert len(layer.losses) == 4
    np.testing.assert_allclose(float(sum(layer.losses)), want, rtol=1e-5)
    plain = MMoE(num_task=2, num_expert=2, expert_mlp=dict(LINEAR_EXPERT))
    plain(X)
    assert plain.losses == []


def test_mmoe_get_config_rebuilds_same_output():
    layer = MMoE(num_task=2, num_expert=3, expert_mlp={"hidden_units": [4]},
                 gate_mlp={"hidden_units": [2]}, l2_regularization=1e-4, name="mmoe")
    x = np.random.rand(4, 5).astype("float32")
    outs = [o.numpy() for o in layer(x)]
    clone = MMoE.from_config(layer.get_config())
    clone.build((None, 5))
    assert len(clone.weights) == len(layer.weights)
    clone.set_weights(layer.get_weights())
    for a, b in zip(clone(x), outs):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-6)


def test_mmoe_training_step_changes_weights():
    layer = MMoE(num_task=2, num_expert=2, expert_mlp={"hidden_units": [4], "use_bn": False,
                                                       "use_final_bn": False})
    x = np.random.rand(8, 3).astype("float32")
    layer(x)
    before = [w.numpy().copy() for w in layer.trainable_weights]
    with tf.GradientTape() as tape:
        a, b = layer(x, training=True)
        loss = tf.reduce_mean(tf.square(a - 1.0)) + tf.reduce_mean(tf.square(b + 1.0))
    opt = keras.optimizers.SGD(0.1)
    opt.apply_gradients(zip(tape.gradient(loss, layer.trainable_weights), layer.trainable_weights))
    assert all(not np.allclose(b, w.numpy()) for b, w in zip(before, layer.trainable_weights))


def test_mmoe_errors():
    with pytest.raises(ConfigError, match="expected `num_expert` to be a positive integer, "
                                          "received: num_expert=0"):
        MMoE(num_task=2, num_expert=0, expert_mlp={"hidden_units": [4]})
    with pytest.raises(ConfigError, match="expected 1 input, or 2"):
        MMoE(num_task=1, num_expert=2, expert_mlp={"hidden_units": [4]})([X, X, X])
    missing = text_format.Parse('class_name: "MMoE" mmoe { num_expert: 3 }',
                                backbone_pb2.KerasLayer())
    with pytest.raises(ConfigError, match="missing required parameter.*num_task"):
        create_layer(missing, "mmoe", "block 'mmoe'")


def test_mmoe_typed_params_and_st_params_give_same_layer():
    typed = text_format.Parse(
        'class_name: "MMoE" mmoe { num_task: 2 num_expert: 3 expert_mlp { hidden_units: [8, 4] }'
        " l2_regularization: 0.5 }",
        backbone_pb2.KerasLayer())
    st = backbone_pb2.KerasLayer(class_name="MMoE")
    st.st_params.update({"num_task": 2, "num_expert": 3, "expert_mlp": {"hidden_units": [8, 4]},
                         "l2_regularization": 0.5})
    a = create_layer(typed, "mmoe", "block 'mmoe'")
    b = create_layer(st, "mmoe", "block 'mmoe'")
    assert isinstance(a, MMoE)
    assert a.get_config() == b.get_config()
    assert (a.num_task, a.num_expert, a.gate_mlp, a.l2_regularization) == (2, 3, None, 0.5)
    assert a.expert_mlp["hidden_units"] == [8, 4] and a.expert_mlp["use_bn"] is True


# ---- PLE ------------------------------------------------------------------------------------

LINEAR_1 = {"hidden_units": [1], "use_bn": False, "use_final_bn": False,
            "final_activation": "linear"}  # one Dense(1) without bias: a known expert


def _ple() -> PLE:
    level = {"expert_num_per_task": 1, "share_num": 1, "task_expert_net": LINEAR_1,
             "share_expert_net": LINEAR_1}
    layer = PLE(num_task=2, extraction_networks=[level, level])
    layer(np.zeros((1, 2), "float32"))
    return layer


def test_ple_two_levels_by_hand():
    layer = _ple()
    (t0,), (t1,) = layer.task_experts[0]
    t0.dense_layers[0].kernel.assign([[1.0], [0.0]])  # level 0, task 0: x_0
    t1.dense_layers[0].kernel.assign([[0.0], [1.0]])  # task 1: x_1
    layer.share_experts[0][0].dense_layers[0].kernel.assign([[1.0], [1.0]])  # x_0 + x_1
    (u0,), (u1,) = layer.task_experts[1]
    u0.dense_layers[0].kernel.assign([[2.0]])
    u1.dense_layers[0].kernel.assign([[3.0]])
    layer.share_experts[1][0].dense_layers[0].kernel.assign([[1.0]])
    for gate in layer.task_gates[0] + layer.task_gates[1] + [layer.share_gates[0]]:
        gate.kernel.assign(np.zeros(gate.kernel.shape))  # the gate weights are softmax(bias)
    layer.task_gates[0][0].bias.assign([0.0, np.log(3.0)])  # [1/4, 3/4]
    assert layer.share_gates[1] is None  # the last network has no shared gate
    out = layer(np.array([[2.0, 4.0]], "float32"))
    # level 0: experts 2 (task 0), 4 (task 1), 6 (shared)
    #   task 0: 1/4 * 2 + 3/4 * 6 = 5; task 1: (4 + 6) / 2 = 5; shared: (2 + 4 + 6) / 3 = 4
    # level 1: task 0: (2 * 5 + 1 * 4) / 2 = 7; task 1: (3 * 5 + 4) / 2 = 9.5
    np.testing.assert_allclose([o.numpy()[0, 0] for o in out], [7.0, 9.5], rtol=1e-6)


def test_ple_shapes_weights_config_and_training_step():
    mlp = {"hidden_units": [8, 4]}
    layer = PLE(num_task=3, extraction_networks=[
        {"expert_num_per_task": 2, "share_num": 1, "task_expert_net": mlp,
         "share_expert_net": mlp},
        {"expert_num_per_task": 0, "share_num": 2, "share_expert_net": {"hidden_units": [5]}}])
    x = np.random.default_rng(0).normal(size=(6, 7)).astype("float32")
    out = layer(x, training=False)
    assert [tuple(o.shape) for o in out] == [(6, 5)] * 3
    assert layer.compute_output_shape((None, 7)) == [(None, 5)] * 3
    # level 0: 3 tasks x 2 experts + 1 shared; level 1: 2 shared; gates 3 + 1 + 3
    assert sum(len(e) for e in layer.task_experts[0]) == 6 and len(layer.share_experts[1]) == 2
    clone = PLE.from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    for a, b in zip(clone(x, training=False), out):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    before = [w.numpy().copy() for w in layer.trainable_weights]
    opt = keras.optimizers.SGD(0.1)
    with tf.GradientTape() as tape:
        loss = tf.add_n([tf.reduce_sum(tf.square(o)) for o in layer(x, training=True)])
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None for g in grads)
    opt.apply_gradients(zip(grads, layer.trainable_weights))
    assert any(not np.allclose(b, w.numpy()) for b, w in zip(before, layer.trainable_weights))


def test_ple_errors_and_typed_params():
    with pytest.raises(ConfigError, match="expected `num_task` to be a positive integer"):
        PLE(num_task=0, extraction_networks=[{"share_num": 1, "share_expert_net": LINEAR_1}])
    with pytest.raises(ConfigError, match="extraction network 0 has no experts"):
        PLE(num_task=2, extraction_networks=[{}])
    with pytest.raises(ConfigError, match="has experts but no `task_expert_net` hidden_units"):
        PLE(num_task=2, extraction_networks=[{"expert_num_per_task": 1}])
    mixed = PLE(num_task=1, extraction_networks=[
        {"expert_num_per_task": 1, "share_num": 1, "task_expert_net": {"hidden_units": [2]},
         "share_expert_net": {"hidden_units": [3]}}])
    with pytest.raises(ConfigError, match=r"one output width, received \[2, 3\]"):
        mixed(np.ones((2, 4), "float32"))
    proto = text_format.Parse(
        'class_name: "PLE" ple { num_task: 2 extraction_networks { expert_num_per_task: 1 '
        'share_num: 2 task_expert_net { hidden_units: [4] } share_expert_net { hidden_units: '
        '[4] } } }', backbone_pb2.KerasLayer())
    built = create_layer(proto, "ple", "block ple")
    assert built.num_task == 2 and built.extraction_networks[0]["share_num"] == 2
    assert built.extraction_networks[0]["task_expert_net"]["hidden_units"] == [4]
