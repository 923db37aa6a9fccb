"""Tests of BST, SeqAugment and TextCNN (numpy reference, hand numbers, invariants)."""

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf
from conftest import create_layer, tiny_config

from easyblocks.blocks.auxiliary import AuxiliaryLoss
from easyblocks.blocks.sequence import BST, SeqAugment, TextCNN
from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError
from easyblocks.models.build import build_and_initialize
from easyblocks.protos import backbone_pb2

RNG = np.random.default_rng(0)
SEQ = RNG.normal(size=(3, 5, 4)).astype("float32")  # batch 3, L = 5, d = 4
LENGTHS = np.array([3, 5, 1], dtype="int32")
for _row, _n in enumerate(LENGTHS):
    SEQ[_row, _n:] = 0.0  # padding rows are zeros, as the feature layer gives them
TARGET = RNG.normal(size=(3, 4)).astype("float32")


def st_layer(class_name, params):
    proto = backbone_pb2.KerasLayer(class_name=class_name)
    proto.st_params.update(params)
    return create_layer(proto, "blk", f"block {class_name}")


# ------------------------------------------------------------------------------ BST


def ln(x, layer):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * layer.gamma.numpy() + layer.beta.numpy()


def dense(x, layer):
    return x @ layer.kernel.numpy() + layer.bias.numpy()


def gelu(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def bst_numpy(layer, seq, lengths, target=None):
    """BST's forward pass written out with numpy from the layer's weights."""
    h, heads = layer.hidden_size, layer.num_attention_heads
    seq, lengths = seq.copy(), lengths.copy()
    m = layer.max_position_embeddings
    if layer.output_all_token_embeddings:
        seq = np.concatenate([seq, np.zeros((seq.shape[0], max(m - seq.shape[1], 0),
                                             seq.shape[2]), "float32")], axis=1)[:, :m]
    else:
        seq = seq[:, :m]
    lengths = np.minimum(lengths, m)
    if layer.seq_project is not None:
        seq = np.maximum(dense(seq, layer.seq_project), 0.0)
    b, length, _ = seq.shape
    valid = (np.arange(length)[None] < lengths[:, None]).astype("float32")
    inserted = target is not None and layer.target_item_position != "ignore"
    if inserted:
        t = np.maximum(dense(target, layer.target_project), 0.0) \
            if layer.target_project is not None else target
        if layer.target_item_position == "head":
            seq = np.concatenate([t[:, None], seq], axis=1)
            valid = np.concatenate([np.ones((b, 1)), valid], axis=1)
        else:
            seq = np.concatenate([seq, np.zeros((b, 1, h))], axis=1)
            for i in range(b):
                seq[i, lengths[i]] = t[i]
            valid = (np.arange(length + 1)[None] <= lengths[:, None]).astype("float32")
    x = seq + layer.position_embeddings.numpy()[None, :seq.shape[1]]
    x = ln(x, layer.embedding_ln)
    size = h // heads
    for enc in layer.encoder:
        def split(y):
            return y.reshape(b, -1, heads, size).transpose(0, 2, 1, 3)
        q, k, v = split(dense(x, enc.query)), split(dense(x, enc.key)), split(dense(x, enc.value))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size)
        scores = scores + (1.0 - valid[:, None, None, :]) * -10000.0
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(b, -1, h)
        attended = ln(dense(context, enc.attention_output) + x, enc.attention_ln)
        ffn = dense(gelu(dense(attended, enc.intermediate)), enc.output_dense)
        x = ln(ffn + attended, enc.output_ln)
    if layer.output_all_token_embeddings:
        return (x * valid[..., None]).reshape(b, -1)
    if inserted:
        index = np.zeros(b, int) if layer.target_item_position == "head" else lengths
    elif layer.target_item_position == "tail":
        index = np.maximum(lengths - 1, 0)
    else:
        index = np.zeros(b, int)
    return x[np.arange(b), index]


@pytest.mark.parametrize("kwargs,with_target", [
    ({"output_all_token_embeddings": False}, True),  # the target's token
    ({"output_all_token_embeddings": False, "target_item_position": "tail"}, True),
    ({"output_all_token_embeddings": False, "target_item_position": "tail"}, False),
    ({"max_position_embeddings": 4}, True),  # all tokens, sequence cut to 4
    ({"max_position_embeddings": 7, "num_hidden_layers": 2}, False),  # all tokens, padded
    ({"output_all_token_embeddings": False, "target_item_position": "ignore"}, True),
])
def test_bst_matches_numpy(kwargs, with_target):
    params = {"hidden_size": 6, "num_hidden_layers": 1, "num_attention_heads": 2,
              "intermediate_size": 8, **kwargs}
    layer = BST(**params)
    inputs = [SEQ, LENGTHS, TARGET] if with_target else [SEQ, LENGTHS]
    out = layer(inputs).numpy()
    want = bst_numpy(layer, SEQ, LENGTHS, TARGET if with_target else None)
    assert out.shape == want.shape
    assert layer.compute_output_shape([(None,) + s.shape[1:] for s in inputs]) == \
        (None, want.shape[1])
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)


def test_bst_ignores_padded_items_and_reads_lengths_from_zero_rows():
    layer = BST(hidden_size=4, num_hidden_layers=1, num_attention_heads=1, intermediate_size=4,
                output_all_token_embeddings=False, target_item_position="tail")
    out = layer([SEQ, LENGTHS]).numpy()
    noisy = SEQ.copy()
    for row, n in enumerate(LENGTHS):
        noisy[row, n:] = 7.0  # other content at the padded positions
    np.testing.assert_allclose(layer([noisy, LENGTHS]).numpy(), out, rtol=1e-5, atol=1e-6)
    # a (batch, L, d) input: the valid items are the rows that are not all zero
    np.testing.assert_allclose(layer(SEQ).numpy(), out, rtol=1e-5, atol=1e-6)
    # the hidden size equals d here: no projection
    assert layer.seq_project is None


def test_bst_weights_training_step_and_round_trip():
    layer = BST(hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
                max_position_embeddings=6, hidden_dropout_prob=0.2, name="bst")
    layer([SEQ, LENGTHS, TARGET], training=True)
    # projections of the items and target (4 -> 8), 7 rows of positions (6 + target), the
    # embedding LayerNorm, then per layer Q, K, V, attention output, 2 LN, 2 feed-forward
    assert layer.position_embeddings.shape == (7, 8)
    assert len(layer.trainable_weights) == 2 * 2 + 1 + 2 + 2 * (4 * 2 + 2 * 2 + 2 * 2)
    before = [w.numpy().copy() for w in layer.trainable_weights]
    # (a loss on the LayerNorm-ed tokens that is not invariant to the LayerNorm's input)
    probe = tf.constant(RNG.normal(size=(1, 7 * 8)).astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer([SEQ, LENGTHS, TARGET], training=True) * probe)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None for g in grads)
    tf.keras.optimizers.SGD(0.1).apply_gradients(zip(grads, layer.trainable_weights))
    assert all(np.abs(b - w.numpy()).max() > 0 for b, w in zip(before, layer.trainable_weights))
    clone = BST.from_config(layer.get_config())
    clone([SEQ, LENGTHS, TARGET])
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(tf.function(clone)([SEQ, LENGTHS, TARGET]).numpy(),
                               layer([SEQ, LENGTHS, TARGET]).numpy(), rtol=1e-5, atol=1e-5)
    assert clone.get_config() == layer.get_config()
    # dropout is off at inference: two calls agree
    np.testing.assert_allclose(layer([SEQ, LENGTHS, TARGET]).numpy(),
                               layer([SEQ, LENGTHS, TARGET]).numpy())


def test_bst_errors_and_params():
    with pytest.raises(ConfigError, match="not a multiple of num_attention_heads"):
        BST(hidden_size=6, num_hidden_layers=1, num_attention_heads=4, intermediate_size=4)
    with pytest.raises(ConfigError, match="target_item_position.*received: 'middle'"):
        BST(hidden_size=4, num_hidden_layers=1, num_attention_heads=1, intermediate_size=4,
            target_item_position="middle")
    layer = BST(hidden_size=4, num_hidden_layers=1, num_attention_heads=1, intermediate_size=4)
    with pytest.raises(ConfigError, match="expected a \\(batch, L, d\\) sequence"):
        layer(SEQ[:, 0])
    proto = backbone_pb2.KerasLayer(class_name="BST")
    p = proto.bst
    p.hidden_size, p.num_attention_heads, p.num_hidden_layers, p.intermediate_size = 8, 2, 2, 8
    typed = create_layer(proto, "bst", "block bst")
    # EasyRec's defaults
    assert (typed.hidden_act, typed.max_position_embeddings, typed.output_all_token_embeddings,
            typed.target_item_position, typed.reserve_target_position,
            typed.hidden_dropout_prob, typed.initializer_range) == \
        ("gelu", 512, True, "head", True, pytest.approx(0.1), pytest.approx(0.02))


# ------------------------------------------------------------------------- SeqAugment

ITEMS = np.zeros((4, 6, 1), "float32")
ITEM_LENGTHS = np.array([6, 4, 5, 2], "int32")
for _row, _n in enumerate(ITEM_LENGTHS):
    ITEMS[_row, :_n, 0] = np.arange(1, _n + 1)  # items 1..n, zeros after


def test_seq_augment_crop_keeps_a_contiguous_run_at_the_front():
    tf.random.set_seed(1)
    layer = SeqAugment(crop_rate=0.5, mask_rate=0.0, reorder_rate=0.0)
    for _ in range(5):
        seq, lengths = layer([ITEMS, ITEM_LENGTHS], training=True)
        seq, lengths = seq.numpy()[..., 0], lengths.numpy()
        np.testing.assert_array_equal(lengths, ITEM_LENGTHS // 2)  # floor(n * 0.5)
        for row, n in enumerate(lengths):
            run = seq[row, :n]
            assert np.all(np.diff(run) == 1) and 1 <= run[0] and run[-1] <= ITEM_LENGTHS[row]
            assert np.all(seq[row, n:] == 0)


def test_seq_augment_mask_replaces_exactly_the_count():
    tf.random.set_seed(2)
    layer = SeqAugment(crop_rate=1.0, mask_rate=0.5, reorder_rate=0.0)
    layer([ITEMS, ITEM_LENGTHS])
    layer.mask_embedding.assign([[-9.0]])
    seq, lengths = layer([ITEMS, ITEM_LENGTHS], training=True)
    seq = seq.numpy()[..., 0]
    np.testing.assert_array_equal(lengths.numpy(), ITEM_LENGTHS)
    for row, n in enumerate(ITEM_LENGTHS):
        masked = seq[row, :n] == -9.0
        assert masked.sum() == n // 2
        np.testing.assert_array_equal(seq[row, :n][~masked], ITEMS[row, :n, 0][~masked])
        assert np.all(seq[row, n:] == 0)
    # the mask embedding is trained through the masked positions
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer([ITEMS, ITEM_LENGTHS], training=True)[0])
    assert tape.gradient(loss, layer.mask_embedding).numpy()[0, 0] == sum(ITEM_LENGTHS // 2)


def test_seq_augment_reorder_shuffles_one_window():
    tf.random.set_seed(3)
    layer = SeqAugment(crop_rate=1.0, mask_rate=0.0, reorder_rate=0.5)
    moved = 0
    for _ in range(10):
        seq, lengths = layer([ITEMS, ITEM_LENGTHS], training=True)
        seq = seq.numpy()[..., 0]
        np.testing.assert_array_equal(lengths.numpy(), ITEM_LENGTHS)
        for row, n in enumerate(ITEM_LENGTHS):
            original = ITEMS[row, :, 0]
            assert sorted(seq[row, :n]) == sorted(original[:n])  # a permutation of the items
            changed = np.flatnonzero(seq[row] != original)
            assert len(changed) <= n // 2  # inside one window of floor(n / 2) items
            if len(changed):
                assert changed.max() - changed.min() < n // 2
                moved += 1
            assert np.all(seq[row, n:] == 0)
    assert moved > 0


def test_seq_augment_picks_among_methods_and_only_in_training():
    tf.random.set_seed(4)
    layer = SeqAugment()  # crop 0.2, mask 0.6, reorder 0.6: all three enabled
    assert layer.methods == ["crop", "mask", "reorder"]
    big = np.repeat(ITEMS, 50, axis=0)
    big_lengths = np.repeat(ITEM_LENGTHS, 50)
    layer([big, big_lengths])
    layer.mask_embedding.assign([[-9.0]])
    seq, lengths = layer([big, big_lengths], training=True)
    seq, lengths = seq.numpy()[..., 0], lengths.numpy()
    cropped = lengths < big_lengths
    masked = (seq == -9.0).any(axis=1)
    assert cropped.mean() > 0.2 and masked.mean() > 0.2
    assert not np.any(cropped & masked)  # one augmentation per example
    same = layer([ITEMS, ITEM_LENGTHS], training=False)
    np.testing.assert_array_equal(same[0].numpy(), ITEMS)
    # a (batch, L, d) input gives a (batch, L, d) output; lengths from the zero rows
    assert SeqAugment(crop_rate=0.5, mask_rate=0.0, reorder_rate=0.0)(
        ITEMS, training=True).shape == ITEMS.shape


def test_seq_augment_params_and_round_trip():
    with pytest.raises(ConfigError, match="`mask_rate` in \\[0, 1\\]"):
        SeqAugment(mask_rate=1.5)
    layer = SeqAugment(mask_rate=0.3, name="aug")
    layer(SEQ)
    assert [tuple(w.shape) for w in layer.weights] == [(1, 4)]
    clone = SeqAugment.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    proto = backbone_pb2.KerasLayer(class_name="SeqAugment")
    proto.seq_aug.mask_rate = 0.6
    typed = create_layer(proto, "aug", "block aug")
    assert (typed.crop_rate, typed.reorder_rate) == (pytest.approx(0.2), pytest.approx(0.6))
    traced = tf.function(lambda s, n: layer([s, n], training=True))
    out, lengths = traced(SEQ, LENGTHS)
    assert out.shape == SEQ.shape and lengths.shape == (3,)


# ---------------------------------------------------------------------------- TextCNN


def test_text_cnn_by_hand():
    layer = TextCNN(filter_sizes=[2, 3], num_filters=[1, 1])
    x = np.array([[[1.0], [2.0], [3.0]]], "float32")
    layer([x, np.array([3])])
    for conv in layer.convs:
        conv.kernel.assign(np.ones(conv.kernel.shape, "float32"))
    # width 2: windows 1+2, 2+3 -> max 5; width 3: 1+2+3 = 6
    np.testing.assert_allclose(layer([x, np.array([3])]).numpy(), [[5.0, 6.0]])
    padded = TextCNN(filter_sizes=[2, 3], num_filters=[1, 1], pad_sequence_length=4)
    padded(x)
    padded.set_weights(layer.get_weights())
    padded.convs[0].bias.assign([-4.0])
    # [1 2 3 0]: width 2 windows 3, 5, 3 minus 4 -> relu max 1; width 3: 6, 5 -> 6
    np.testing.assert_allclose(padded(x).numpy(), [[1.0, 6.0]])
    cut = TextCNN(filter_sizes=[2], num_filters=[1], pad_sequence_length=2)
    cut(x)
    cut.convs[0].kernel.assign(np.ones((2, 1, 1), "float32"))
    np.testing.assert_allclose(cut(x).numpy(), [[3.0]])  # only [1, 2] is kept


def test_text_cnn_matches_numpy_and_pads_short_sequences():
    layer = TextCNN(filter_sizes=[2, 4], num_filters=[3, 2], activation="tanh")
    out = layer(SEQ).numpy()
    assert out.shape == (3, 5)
    want = []
    for conv in layer.convs:
        k, b = conv.kernel.numpy(), conv.bias.numpy()
        s = k.shape[0]
        windows = np.stack([np.einsum("bkd,kdf->bf", SEQ[:, t:t + s], k)
                            for t in range(SEQ.shape[1] - s + 1)], axis=1)
        want.append(np.tanh(windows + b).max(axis=1))
    np.testing.assert_allclose(out, np.concatenate(want, axis=1), rtol=1e-4, atol=1e-5)
    # a sequence shorter than the widest filter is zero-padded up to it
    assert layer(SEQ[:, :2]).shape == (3, 5)


def test_text_cnn_mlp_training_round_trip_and_errors():
    layer = TextCNN(filter_sizes=[2], num_filters=[4], pad_sequence_length=6,
                    mlp={"hidden_units": [3]}, name="cnn")
    assert layer([SEQ, LENGTHS], training=True).shape == (3, 3)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(layer([SEQ, LENGTHS], training=True)))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None for g in grads)
    clone = TextCNN.from_config(layer.get_config())
    clone(SEQ)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(SEQ).numpy(), layer(SEQ).numpy(), rtol=1e-5)
    with pytest.raises(ConfigError, match="as many positive `num_filters`"):
        TextCNN(filter_sizes=[2, 3], num_filters=[4])
    with pytest.raises(ConfigError, match="shorter than the widest filter 3"):
        TextCNN(filter_sizes=[2, 3], num_filters=[4, 4], pad_sequence_length=2)
    proto = backbone_pb2.KerasLayer(class_name="TextCNN")
    proto.text_cnn.filter_sizes.extend([2, 3, 4])
    proto.text_cnn.num_filters.extend([16, 8, 8])
    proto.text_cnn.pad_sequence_length = 14
    typed = create_layer(proto, "cnn", "block cnn")
    assert typed.activation == "relu" and typed.mlp is None


# ------------------------------------------------------------- EasyRec-style configs

SEQ_FEATURE = """
feature_configs { input_names: "tags" feature_name: "hist" feature_type: SequenceFeature
                  embedding_dim: 4 hash_bucket_size: 50 max_seq_len: 3 embedding_name: "tags" }
"""
COLUMNS = {"clk": tf.constant([1, 0, 1]), "buy": tf.constant([0, 0, 1]),
           "user": tf.constant(["u1", "u2", "u3"]), "tags": tf.constant(["a|b|c", "c", ""]),
           "price": tf.constant([0.5, 2.0, 4.0])}


def build(model_text):
    resolved = resolve(parse_config_text(tiny_config(model_text, SEQ_FEATURE), "t.config"))
    return build_and_initialize(resolved)


def test_easyrec_bst_and_text_cnn_configs_validate_and_build():
    # EasyRec's bst_backbone_on_taobao / text_cnn_on_movielens wiring, on a sequence group
    # (EasyRec's `input_layer { output_seq_and_normal_feature: true }` is the config-language
    # issue's; the group's (batch, L, d) tensor carries the padding as zero rows)
    model, pre = build("""
      feature_groups { group_name: "sequence" feature_names: "hist" }
      backbone {
        blocks { name: 'deep' inputs { feature_group_name: 'all' }
          keras_layer { class_name: 'MLP' mlp { hidden_units: [8] } } }
        blocks { name: 'BST' inputs { feature_group_name: 'sequence' }
          keras_layer { class_name: 'BST'
            bst { hidden_size: 8 num_attention_heads: 2 num_hidden_layers: 2
                  intermediate_size: 8 hidden_act: 'gelu' max_position_embeddings: 5
                  hidden_dropout_prob: 0.1 attention_probs_dropout_prob: 0 } } }
        blocks { name: 'textcnn' inputs { feature_group_name: 'sequence' }
          keras_layer { class_name: 'TextCNN'
            text_cnn { filter_sizes: [2, 3] num_filters: [4, 2] pad_sequence_length: 4
                       mlp { hidden_units: [4] } } } }
        concat_blocks: ['deep', 'BST', 'textcnn']
        top_mlp { hidden_units: [8] }
      }
    """)
    values = model.backbone.dag.block_values(model.feature_groups(pre(COLUMNS)))
    assert values["BST"].shape == (3, 5 * 8) and values["textcnn"].shape == (3, 4)
    assert model(pre(COLUMNS))["probs_clk"].shape == (3,)


def test_easyrec_cl4srec_style_config_reports_the_contrastive_loss():
    # CL4SRec (EasyRec's cl4srec_on_taobao.config): two augmented views through one shared BST
    # package, an AuxiliaryLoss between them, the un-augmented sequence for the prediction
    model, pre = build("""
      feature_groups { group_name: "sequence" feature_names: "hist" }
      backbone {
        packages { name: 'seq_encoder'
          blocks { name: 'BST' inputs { use_package_input: true }
            keras_layer { class_name: 'BST'
              bst { hidden_size: 4 num_attention_heads: 2 num_hidden_layers: 1
                    intermediate_size: 8 max_position_embeddings: 5
                    output_all_token_embeddings: false } } }
          concat_blocks: 'BST' }
        blocks { name: 'view1' inputs { feature_group_name: 'sequence' }
          keras_layer { class_name: 'SeqAugment'
            seq_aug { mask_rate: 0.6 crop_rate: 0.2 reorder_rate: 0.6 } } }
        blocks { name: 'view2' inputs { feature_group_name: 'sequence' }
          keras_layer { class_name: 'SeqAugment' seq_aug { mask_rate: 0.6 } } }
        blocks { name: 'contrastive'
          inputs { package_name: 'seq_encoder' package_input: 'view1' }
          inputs { package_name: 'seq_encoder' package_input: 'view2' }
          merge_inputs_into_list: true
          keras_layer { class_name: 'AuxiliaryLoss' st_params {
            fields { key: 'loss_type' value: { string_value: 'nce_loss' } }
            fields { key: 'loss_weight' value: { number_value: 0.1 } }
            fields { key: 'temperature' value: { number_value: 0.15 } } } } }
        blocks { name: 'main'
          inputs { package_name: 'seq_encoder' package_input: 'sequence' }
          inputs { feature_group_name: 'user' } }
        concat_blocks: 'main'
        top_mlp { hidden_units: [8] }
      }
    """)
    aux = model.backbone.dag.blocks["contrastive"].steps[0].layers[0]
    assert isinstance(aux, AuxiliaryLoss) and aux.loss_type == "nce_loss"
    assert len(model.backbone.packages["seq_encoder"].trainable_variables) > 0
    labels = {"clk": tf.constant([1.0, 0.0, 1.0])}
    with tf.GradientTape() as tape:
        outputs, emb_l2 = model.forward(pre(COLUMNS), training=True)
        terms = model.compute_losses(labels, outputs, emb_l2)
    assert "loss/contrastive" in terms and float(terms["loss/contrastive"]) > 0
    grads = tape.gradient(terms["loss/total"], model.trainable_variables)
    bst_weights = {id(v) for v in model.backbone.packages["seq_encoder"].trainable_variables}
    assert all(g is not None for v, g in zip(model.trainable_variables, grads)
               if id(v) in bst_weights)
