"""Tests of MaskBlock and MaskNet (math pinned by hand numbers and numpy formulas)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf
from conftest import create_layer, tiny_config

from easyblocks.blocks.masknet import MaskBlock, MaskNet
from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError
from easyblocks.models.build import build_and_initialize
from easyblocks.protos import backbone_pb2

X = np.array([[1.0, 2.0], [-1.0, 0.5]], dtype="float32")


def layer_norm(x, eps=1e-3):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)


def mask_block_numpy(block, x, m):
    """MaskBlock by its formula, from the block's own weights."""
    if block.input_ln is not None:
        x = layer_norm(x) * block.input_ln.gamma.numpy() + block.input_ln.beta.numpy()
    if block.project_layer is not None:
        m = m @ block.project_layer.kernel.numpy()
    a = block.aggr_layer
    aggr = np.maximum(m @ a.kernel.numpy() + a.bias.numpy(), 0.0)
    w = block.weight_layer
    masked = x * (aggr @ w.kernel.numpy() + w.bias.numpy())
    if block.output_layer is None:
        return masked
    ln = block.output_ln
    hidden = layer_norm(masked @ block.output_layer.kernel.numpy()) * ln.gamma.numpy() \
        + ln.beta.numpy()
    return np.maximum(hidden, 0.0)


def test_mask_block_by_hand():
    block = MaskBlock(aggregation_size=1)
    block(X)
    block.aggr_layer.kernel.assign(np.ones((2, 1), "float32"))
    block.weight_layer.kernel.assign([[0.5, -1.0]])
    block.weight_layer.bias.assign([0.1, 0.2])
    # example 0: aggregation relu(1 + 2) = 3; mask = 3 * [.5, -1] + [.1, .2] = [1.6, -2.8]
    # masked = [1, 2] * [1.6, -2.8] = [1.6, -5.6]
    np.testing.assert_allclose(block(X).numpy()[0], [1.6, -5.6], rtol=1e-6)
    with_output = MaskBlock(aggregation_size=1, output_size=2)
    with_output(X)
    with_output.aggr_layer.kernel.assign(np.ones((2, 1), "float32"))
    with_output.weight_layer.kernel.assign([[0.5, -1.0]])
    with_output.weight_layer.bias.assign([0.1, 0.2])
    with_output.output_layer.kernel.assign(np.eye(2, dtype="float32"))
    # output: relu(LayerNorm([1.6, -5.6])) = relu([1, -1] * 3.6 / sqrt(3.6^2 + 1e-3))
    scale = 3.6 / np.sqrt(3.6**2 + 1e-3)
    np.testing.assert_allclose(with_output(X).numpy()[0], [scale, 0.0], rtol=1e-5)


def test_mask_block_options_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6)).astype("float32")
    m = rng.normal(size=(4, 3)).astype("float32")
    for kwargs in ({"reduction_factor": 2.0}, {"aggregation_size": 5, "output_size": 4},
                   {"aggregation_size": 5, "projection_dim": 2, "input_layer_norm": True}):
        block = MaskBlock(**kwargs)
        out = block([x, m]).numpy()
        np.testing.assert_allclose(out, mask_block_numpy(block, x, m), rtol=1e-4, atol=1e-5)
    block = MaskBlock(reduction_factor=2.0)
    block([x, m])
    assert block.aggr_layer.kernel.shape == (3, 6)  # mask input width 3 x 2
    assert block.weight_layer.kernel.shape == (6, 6)  # back to the input width


def test_mask_block_errors_training_and_round_trip():
    with pytest.raises(ConfigError, match="set `aggregation_size` or `reduction_factor`"):
        MaskBlock()
    with pytest.raises(ConfigError, match="positive integer or unset"):
        MaskBlock(aggregation_size=3, output_size=0)
    with pytest.raises(ConfigError, match="list \\[input, mask input\\]"):
        MaskBlock(aggregation_size=3)([X, X, X])
    block = MaskBlock(aggregation_size=3, output_size=2, projection_dim=1, name="mb")
    block(X)
    # project (2x1), aggregation (1x3)+b, weights (3x2)+b, output (2x2), LN gamma, beta
    assert len(block.trainable_weights) == 8
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(block(X) - 1.0))
    grads = tape.gradient(loss, block.trainable_weights)
    assert all(g is not None for g in grads)
    clone = MaskBlock.from_config(block.get_config())
    clone(X)
    clone.set_weights(block.get_weights())
    np.testing.assert_allclose(tf.function(clone)(X).numpy(), block(X).numpy(), rtol=1e-5)
    assert block.compute_output_shape((None, 2)) == (None, 2)


def test_masknet_parallel_and_serial_compose_mask_blocks():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4)).astype("float32")
    spec = [{"aggregation_size": 6, "output_size": 3}, {"aggregation_size": 2, "output_size": 5}]
    net = MaskNet(mask_blocks=spec, use_parallel=True)
    out = net(x).numpy()
    assert out.shape == (3, 8)
    e = layer_norm(x)  # the input LayerNorm starts as gamma 1, beta 0
    want = np.concatenate([mask_block_numpy(b, e, e) for b in net.blocks], axis=1)
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
    serial = MaskNet(mask_blocks=spec, use_parallel=False, input_layer_norm=False)
    out = serial(x).numpy()
    assert out.shape == (3, 5)
    assert serial.blocks[1].weight_layer.kernel.shape == (2, 3)  # masks the first block's 3
    h = mask_block_numpy(serial.blocks[0], x, x)
    np.testing.assert_allclose(out, mask_block_numpy(serial.blocks[1], h, x), rtol=1e-4,
                               atol=1e-5)


def test_masknet_mlp_training_round_trip_and_params():
    net = MaskNet(mask_blocks=[{"aggregation_size": 4, "output_size": 2}] * 2,
                  mlp={"hidden_units": [3]}, name="mn")
    x = np.random.default_rng(2).normal(size=(8, 5)).astype("float32")
    assert net(x, training=True).shape == (8, 3)
    assert net.mlp.dense_layers[0].kernel.shape == (4, 3)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(net(x, training=True)))
    grads = tape.gradient(loss, net.trainable_weights)
    assert all(g is not None for g in grads)
    clone = MaskNet.from_config(net.get_config())
    clone(x)
    clone.set_weights(net.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), net(x).numpy(), rtol=1e-5)
    assert net.compute_output_shape((None, 5)) == (None, 3)
    with pytest.raises(ConfigError, match="at least one `mask_blocks"):
        MaskNet()
    proto = backbone_pb2.KerasLayer(class_name="MaskNet")
    block = proto.masknet.mask_blocks.add()
    block.aggregation_size, block.output_size = 8, 4
    proto.masknet.mlp.hidden_units.append(2)
    typed = create_layer(proto, "mn", "block mn")
    assert typed.use_parallel and typed.input_layer_norm  # EasyRec's defaults
    assert typed.blocks[0].output_size == 4 and not typed.blocks[0].input_layer_norm


# ------------------------------------------------------------- EasyRec-style configs

COLUMNS = {"clk": tf.constant([1, 0, 1]), "buy": tf.constant([0, 0, 1]),
           "user": tf.constant(["u1", "u2", "u3"]), "tags": tf.constant(["a|b|c", "c", ""]),
           "price": tf.constant([0.5, 2.0, 4.0])}


def test_easyrec_masknet_config_validates_and_builds():
    # EasyRec's masknet_on_taobao.config, on the tiny features
    text = tiny_config("""
      backbone {
        blocks { name: "mask_net" inputs { feature_group_name: "all" }
          keras_layer { class_name: 'MaskNet'
            masknet {
              mask_blocks { aggregation_size: 16 output_size: 8 }
              mask_blocks { aggregation_size: 16 output_size: 8 }
              mask_blocks { aggregation_size: 16 output_size: 8 }
              mlp { hidden_units: [16, 8] }
            } } }
        concat_blocks: ['mask_net']
      }
      model_params { l2_regularization: 1e-6 }
    """)
    model, pre = build_and_initialize(resolve(parse_config_text(text, "t.config")))
    net = model.backbone.dag.blocks["mask_net"].steps[0].layers[0]
    assert isinstance(net, MaskNet) and len(net.blocks) == 3
    assert net.blocks[0].weight_layer.kernel.shape == (16, 9)  # group "all": 4 + 4 + 1 wide
    assert model(pre(COLUMNS))["probs_clk"].shape == (3,)
