"""Tests of PEPNet's blocks: GateNU, EPNet, PPNet (EasyRec's and the paper's form), PEPNet."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import create_layer, layer_kwargs
from google.protobuf import text_format

from easyblocks.blocks.pepnet import EPNet, GateNU, PEPNet, PPNet
from easyblocks.blocks.registry import get_block
from easyblocks.errors import ConfigError
from easyblocks.protos import backbone_pb2

RNG = np.random.default_rng(7)
MAIN = RNG.normal(size=(4, 5)).astype("float32")
PERSONA = RNG.normal(size=(4, 3)).astype("float32")
DOMAIN = RNG.normal(size=(4, 2)).astype("float32")
# one Dense layer, no BN, no bias, linear: the gated layer is exactly x @ W
LINEAR_MLP = {"hidden_units": [2], "use_bn": False, "use_final_bn": False,
              "final_activation": "linear"}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def relu(x):
    return np.maximum(x, 0.0)


def np_gate(gate: GateNU, x):
    """gamma * sigmoid(W2 relu(W1 x + b1) + b2) from the gate's weights (no BN)."""
    w1, b1 = gate.hidden_dense.get_weights()
    w2, b2 = gate.output_dense.get_weights()
    return gate.gamma * sigmoid(relu(x @ w1 + b1) @ w2 + b2)


# ---------------------------------------------------------------- GateNU


@pytest.mark.parametrize("gamma", [2.0, 3.0])
def test_gate_nu_lies_between_zero_and_gamma(gamma):
    gate = GateNU(output_dim=6, gamma=gamma)
    x = np.concatenate([MAIN * 1e3, -MAIN * 1e3, np.zeros((1, 5))]).astype("float32")
    out = gate(x).numpy()
    assert out.shape == (9, 6)
    assert np.all(out >= 0.0) and np.all(out <= gamma)
    # saturation reaches both ends of (0, gamma): the scale is gamma, not 1
    assert out.max() > 0.99 * gamma and out.min() < 0.01 * gamma
    assert gate.gamma == gamma


def test_gate_nu_math_and_default_hidden_width():
    gate = GateNU(output_dim=2, gamma=2.0)
    gate.build((None, 3))
    assert gate.hidden_dense.units == 3  # default hidden width: the input width
    gate(PERSONA)
    w1 = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5], [0.0, 2.0, 0.0]], dtype="float32")
    w2 = np.array([[1.0, -1.0], [0.0, 1.0], [2.0, 0.0]], dtype="float32")
    gate.hidden_dense.set_weights([w1, np.array([0.0, -0.5, 0.1], dtype="float32")])
    gate.output_dense.set_weights([w2, np.array([0.2, 0.0], dtype="float32")])
    x = np.array([[1.0, 2.0, -1.0]], dtype="float32")
    # h = relu([1 + 1, 1 - 2 - .5, -1 + 1 + .1]) = [2, 0, .1]; logits = [2 + .2 + .2, -2]
    want = 2.0 * sigmoid(np.array([[2.4, -2.0]]))
    np.testing.assert_allclose(gate(x).numpy(), want, rtol=1e-5)
    assert GateNU(output_dim=2, hidden_dim=7).compute_output_shape((None, 3)) == (None, 2)


# ---------------------------------------------------------------- EPNet


def test_epnet_output_and_gradient_into_e_is_the_gate():
    layer = EPNet(gamma=2.0)
    emb = tf.constant(MAIN)
    cond = tf.constant(DOMAIN)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([emb, cond])
        out = layer([cond, emb])
        loss = tf.reduce_sum(out)
    gate = np_gate(layer.gate, np.concatenate([DOMAIN, MAIN], axis=-1))
    np.testing.assert_allclose(out.numpy(), gate * MAIN, rtol=1e-5)
    # d sum(gate * E) / dE = gate: no term from the (stopped) gate path
    np.testing.assert_allclose(tape.gradient(loss, emb).numpy(), gate, rtol=1e-5)
    assert np.abs(tape.gradient(loss, cond).numpy()).max() > 0  # the condition is trained
    assert layer.gate.output_dim == 5 and layer.gate.hidden_dense.units == 7  # dc + de


# ---------------------------------------------------------------- PPNet (EasyRec form)


def test_ppnet_eager_and_lazy_gate_count_and_widths():
    mlp = {"hidden_units": [8, 4]}
    eager = PPNet(mlp=mlp, mode="eager")
    assert eager([MAIN, PERSONA]).shape == (4, 4)
    assert [g.output_dim for g in eager.gates] == [5, 8]  # input width, then hidden but last
    assert [g.hidden_dense.units for g in eager.gates] == [5, 8]  # EasyRec: hidden = output
    lazy = PPNet(mlp=mlp, mode="lazy", gate_params={"hidden_dim": 4})
    assert lazy([MAIN, PERSONA]).shape == (4, 4)
    assert [g.output_dim for g in lazy.gates] == [8, 4]  # every layer's output, last included
    assert [g.hidden_dense.units for g in lazy.gates] == [4, 4]
    assert PPNet(mlp=mlp).mode is None and PPNet(mlp=mlp)._eager  # default: eager
    deep = PPNet(mlp={"hidden_units": [6, 5, 3]}, mode="eager")
    deep([MAIN, PERSONA])
    assert [g.output_dim for g in deep.gates] == [5, 6, 5]


def _linear_two_layer(mode, full_gate_input=True):
    mlp = {"hidden_units": [3, 2], "use_bn": False, "use_final_bn": False,
           "activation": "relu", "final_activation": "linear"}
    layer = PPNet(mlp=mlp, mode=mode, full_gate_input=full_gate_input)
    layer([MAIN, PERSONA])
    return layer


@pytest.mark.parametrize("mode", ["eager", "lazy"])
def test_ppnet_easyrec_forward_matches_numpy(mode):
    layer = _linear_two_layer(mode)
    w0 = layer.gated_layers[0].dense_layers[0].kernel.numpy()
    w1 = layer.gated_layers[1].dense_layers[0].kernel.numpy()
    gate_in = np.concatenate([MAIN, PERSONA], axis=-1)
    g = [np_gate(gate, gate_in) for gate in layer.gates]
    if mode == "eager":
        want = relu((g[0] * MAIN) @ w0) * g[1] @ w1
    else:
        want = (relu(MAIN @ w0) * g[0]) @ w1 * g[1]
    np.testing.assert_allclose(layer([MAIN, PERSONA]).numpy(), want, rtol=1e-4, atol=1e-6)


def test_ppnet_persona_only_gate_input():
    layer = _linear_two_layer("lazy", full_gate_input=False)
    assert layer.gates[0].hidden_dense.kernel.shape[0] == 3  # persona only


def test_ppnet_gradient_into_main_comes_only_from_the_main_path():
    layer = PPNet(mlp=LINEAR_MLP, mode="lazy")
    main = tf.constant(MAIN)
    with tf.GradientTape() as tape:
        tape.watch(main)
        loss = tf.reduce_sum(layer([main, PERSONA]))
    w = layer.gated_layers[0].dense_layers[0].kernel.numpy()
    g = np_gate(layer.gates[0], np.concatenate([MAIN, PERSONA], axis=-1))
    # out = g * (main @ W): d sum(out) / d main = g @ W^T (the gate is a constant)
    np.testing.assert_allclose(tape.gradient(loss, main).numpy(), g @ w.T, rtol=1e-4, atol=1e-6)


def test_ppnet_easyrec_config_parses_and_runs():
    text = """class_name: "PPNet" ppnet {
        mlp { hidden_units: [8, 4] }
        gate_params { output_dim: 16 hidden_dim: 4 }
        mode: "lazy"
        full_gate_input: true }"""
    proto = text_format.Parse(text, backbone_pb2.KerasLayer())
    layer = create_layer(proto, "ppnet", "block ppnet")
    assert isinstance(layer, PPNet) and layer.mode == "lazy" and layer.full_gate_input
    out = layer([MAIN, PERSONA], training=True)
    assert out.shape == (4, 4)
    assert [g.output_dim for g in layer.gates] == [8, 4]
    assert [g.hidden_dense.units for g in layer.gates] == [4, 4]
    assert all(g.gamma == 2.0 for g in layer.gates)
    # the same parameters as st_params give the same kwargs and layer
    st = text_format.Parse(
        'class_name: "PPNet" st_params {'
        ' fields { key: "mlp" value { struct_value { fields { key: "hidden_units" value {'
        '   list_value { values { number_value: 8 } values { number_value: 4 } } } } } } }'
        ' fields { key: "gate_params" value { struct_value {'
        '   fields { key: "output_dim" value { number_value: 16 } }'
        '   fields { key: "hidden_dim" value { number_value: 4 } } } } }'
        ' fields { key: "mode" value { string_value: "lazy" } }'
        ' fields { key: "full_gate_input" value { bool_value: true } } }',
        backbone_pb2.KerasLayer(),
    )
    spec = get_block("PPNet")
    assert layer_kwargs(proto, spec, "b") == layer_kwargs(st, spec, "b")
    other = create_layer(st, "ppnet", "block ppnet")
    assert other.get_config() == layer.get_config()


def test_ppnet_config_errors():
    with pytest.raises(ConfigError, match="output_dim must equal the input width 5"):
        PPNet(mlp={"hidden_units": [4]}, mode="eager", gate_params={"output_dim": 16})(
            [MAIN, PERSONA])
    with pytest.raises(ConfigError, match="mode"):
        PPNet(mlp={"hidden_units": [4]}, mode="sleepy")
    with pytest.raises(ConfigError, match="lazy"):
        PPNet(mlp={"hidden_units": [4]}, mode="eager", num_task=2)
    with pytest.raises(ConfigError, match="hidden_units"):
        PPNet(mlp={})
    with pytest.raises(ConfigError, match="gate_params"):
        PPNet(mlp={"hidden_units": [4]}, gate_params={"widht": 3})
    with pytest.raises(ConfigError, match="main, persona"):
        PPNet(mlp={"hidden_units": [4]})(MAIN)


# ---------------------------------------------------------------- PPNet (paper form)


def test_ppnet_paper_form_splits_one_gate_per_layer_across_tasks():
    layer = PPNet(mlp=LINEAR_MLP, num_task=3)
    main = tf.constant(MAIN)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(main)
        outs = layer([main, PERSONA])
        losses = [tf.reduce_sum(o) for o in outs]
    assert isinstance(outs, list) and len(outs) == 3
    assert len(layer.gates) == 1 and layer.gates[0].output_dim == 2 * 3
    assert layer.gates[0].hidden_dense.units == 6
    g = np_gate(layer.gates[0], np.concatenate([PERSONA, MAIN], axis=-1))  # paper order
    for t in range(3):
        w = layer.task_layers[t][0].dense_layers[0].kernel.numpy()
        g_t = g[:, 2 * t: 2 * t + 2]
        np.testing.assert_allclose(outs[t].numpy(), g_t * (MAIN @ w), rtol=1e-4, atol=1e-6)
        # no gradient through the gate path into main
        np.testing.assert_allclose(tape.gradient(losses[t], main).numpy(), g_t @ w.T,
                                   rtol=1e-4, atol=1e-6)
    # towers have their own layers
    w0 = layer.task_layers[0][0].dense_layers[0].kernel.numpy()
    w1 = layer.task_layers[1][0].dense_layers[0].kernel.numpy()
    assert np.abs(w0 - w1).max() > 0


def test_ppnet_paper_form_two_layers_shapes():
    layer = PPNet(mlp={"hidden_units": [8, 4], "dropout_ratio": [0.2]}, num_task=2)
    outs = layer([MAIN, PERSONA], training=True)
    assert [o.shape for o in outs] == [(4, 4), (4, 4)]
    assert [g.output_dim for g in layer.gates] == [16, 8]
    assert layer.compute_output_shape([(None, 5), (None, 3)]) == [(None, 4), (None, 4)]


# ---------------------------------------------------------------- PEPNet


def test_pepnet_math_and_gradient_into_e():
    layer = PEPNet(mlp=LINEAR_MLP, num_task=2)
    emb = tf.constant(MAIN)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(emb)
        outs = layer([emb, DOMAIN, PERSONA])
        losses = [tf.reduce_sum(o) for o in outs]
    assert len(outs) == 2
    ge = np_gate(layer.epnet.gate, np.concatenate([DOMAIN, MAIN], axis=-1))
    e1 = ge * MAIN
    gp = np_gate(layer.ppnet.gates[0], np.concatenate([PERSONA, e1], axis=-1))
    for t in range(2):
        w = layer.ppnet.task_layers[t][0].dense_layers[0].kernel.numpy()
        g_t = gp[:, 2 * t: 2 * t + 2]
        np.testing.assert_allclose(outs[t].numpy(), g_t * (e1 @ w), rtol=1e-4, atol=1e-6)
        # both gates are stopped: d out_t / dE = ge * (g_t @ W_t^T)
        np.testing.assert_allclose(tape.gradient(losses[t], emb).numpy(), ge * (g_t @ w.T),
                                   rtol=1e-4, atol=1e-6)


def test_pepnet_config_paths_and_round_trip():
    text = ('class_name: "PEPNet" pepnet { num_task: 2 mlp { hidden_units: [6, 3] } '
            'epnet_hidden_dim: 4 ppnet_hidden_dim: 5 gamma: 3.0 }')
    proto = text_format.Parse(text, backbone_pb2.KerasLayer())
    layer = create_layer(proto, "pep", "block pep")
    outs = layer([MAIN, DOMAIN, PERSONA], training=False)
    assert [o.shape for o in outs] == [(4, 3), (4, 3)]
    assert layer.epnet.gate.hidden_dense.units == 4 and layer.epnet.gate.gamma == 3.0
    assert [g.hidden_dense.units for g in layer.ppnet.gates] == [5, 5]
    assert [g.gamma for g in layer.ppnet.gates] == [3.0, 3.0]
    clone = PEPNet.from_config(layer.get_config())
    clone([MAIN, DOMAIN, PERSONA])
    clone.set_weights(layer.get_weights())
    for a, b in zip(clone([MAIN, DOMAIN, PERSONA]), outs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5)
    st = text_format.Parse(
        'class_name: "PEPNet" st_params { fields { key: "num_task" value { number_value: 2 } }'
        ' fields { key: "mlp" value { struct_value { fields { key: "hidden_units" value {'
        '   list_value { values { number_value: 6 } values { number_value: 3 } } } } } } }'
        ' fields { key: "epnet_hidden_dim" value { number_value: 4 } }'
        ' fields { key: "ppnet_hidden_dim" value { number_value: 5 } }'
        ' fields { key: "gamma" value { number_value: 3 } } }',
        backbone_pb2.KerasLayer(),
    )
    assert layer_kwargs(proto, get_block("PEPNet"), "b") == layer_kwargs(
        st, get_block("PEPNet"), "b")
    with pytest.raises(ConfigError, match="num_task"):
        PEPNet(mlp={"hidden_units": [4]}, num_task=0)
    with pytest.raises(ConfigError, match="mlp"):
        create_layer(text_format.Parse('class_name: "PEPNet" pepnet { num_task: 2 }',
                                       backbone_pb2.KerasLayer()), "p", "block p")


def test_gate_and_epnet_typed_and_st_params():
    gate = create_layer(
        text_format.Parse('class_name: "GateNU" gate_nu { output_dim: 4 gamma: 3 }',
                          backbone_pb2.KerasLayer()), "g", "block g")
    gate_st = create_layer(
        text_format.Parse('class_name: "GateNU" st_params { fields { key: "output_dim" value {'
                          ' number_value: 4 } } fields { key: "gamma" value { number_value: 3 }'
                          ' } }', backbone_pb2.KerasLayer()), "g", "block g")
    assert gate.get_config() == gate_st.get_config()
    assert gate(PERSONA).shape == (4, 4) and gate.gamma == 3.0
    with pytest.raises(ConfigError, match="output_dim"):
        create_layer(text_format.Parse('class_name: "GateNU" gate_nu { gamma: 3 }',
                                       backbone_pb2.KerasLayer()), "g", "block g")
    ep = create_layer(text_format.Parse('class_name: "EPNet" epnet { hidden_dim: 6 }',
                                        backbone_pb2.KerasLayer()), "e", "block e")
    assert ep([DOMAIN, MAIN]).shape == (4, 5) and ep.gate.hidden_dense.units == 6
    clone = EPNet.from_config(ep.get_config())
    clone([DOMAIN, MAIN])
    clone.set_weights(ep.get_weights())
    np.testing.assert_allclose(clone([DOMAIN, MAIN]).numpy(), ep([DOMAIN, MAIN]).numpy())


@pytest.mark.parametrize("num_task", [0, 2])
def test_ppnet_training_step_changes_weights_and_config_round_trip(num_task):
    keras.utils.set_random_seed(0)
    layer = PPNet(mlp={"hidden_units": [6, 3]}, mode="lazy" if num_task else "eager",
                  gate_params={"use_bn": True, "dropout_rate": 0.1}, num_task=num_task)
    layer([MAIN, PERSONA])
    before = [w.numpy().copy() for w in layer.trainable_weights]
    opt = keras.optimizers.SGD(0.1)
    with tf.GradientTape() as tape:
        out = layer([MAIN, PERSONA], training=True)
        outs = out if isinstance(out, list) else [out]
        loss = tf.add_n([tf.reduce_mean(tf.square(o - 1.0)) for o in outs])
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None for g in grads)
    opt.apply_gradients(zip(grads, layer.trainable_weights))
    changed = [np.abs(w.numpy() - b).max() > 0 for w, b in zip(layer.trainable_weights, before)]
    assert all(changed)
    clone = PPNet.from_config(layer.get_config())
    clone([MAIN, PERSONA])
    clone.set_weights(layer.get_weights())
    a, b = clone([MAIN, PERSONA]), layer([MAIN, PERSONA])
    for x, y in zip(a if num_task else [a], b if num_task else [b]):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-5)


def test_pepnet_keras_save_and_reload_round_trip(tmp_path):
    e_in, d_in, p_in = keras.Input((5,)), keras.Input((2,)), keras.Input((3,))
    outs = PEPNet(mlp={"hidden_units": [4, 2]}, num_task=2)([e_in, d_in, p_in])
    lazy = PPNet(mlp={"hidden_units": [3]}, mode="eager")([e_in, p_in])
    gate = GateNU(output_dim=2)(p_in)
    model = keras.Model([e_in, d_in, p_in], outs + [lazy, gate])
    path = str(tmp_path / "pepnet.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    for a, b in zip(loaded([MAIN, DOMAIN, PERSONA]), model([MAIN, DOMAIN, PERSONA])):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
