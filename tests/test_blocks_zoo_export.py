"""EasyRec's backbone blocks under tf.function with unknown batch (and sequence) sizes, and in a
SavedModel saved the way `easyblocks export` saves a model (a tf.Module whose tf.function calls
the layers; its variables tracked explicitly): reloaded, they give the same outputs."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

from easyblocks.blocks.auxiliary import AuxiliaryLoss
from easyblocks.blocks.cross import Cross, CrossV1
from easyblocks.blocks.fibinet import Bilinear, FiBiNet, SENet
from easyblocks.blocks.gates import Gate, Highway
from easyblocks.blocks.interaction import CIN, DotInteraction
from easyblocks.blocks.masknet import MaskBlock, MaskNet
from easyblocks.blocks.numeric import AutoDisEmbedding, NaryDisEmbedding, PeriodicEmbedding
from easyblocks.blocks.sequence import BST, SeqAugment, TextCNN

RNG = np.random.default_rng(0)


def spec(*shape, dtype=tf.float32):
    return tf.TensorSpec((None,) + shape, dtype)


def data(*shape):
    return RNG.normal(size=(3,) + shape).astype("float32")


FIELDS = [data(4) for _ in range(3)]
SEQ = data(5, 4)
SEQ[0, 2:] = 0.0
LENGTHS = np.array([2, 5, 4], "int32")
NUMBERS = np.abs(data(3))

# name -> (layer, example input, input signature (the structure of the input))
CASES = {
    "dot": (DotInteraction(self_interaction=True), FIELDS, [spec(4)] * 3),
    "cin": (CIN([3, 2]), np.stack(FIELDS, 1), spec(3, 4)),
    "cross": (Cross(projection_dim=2), [data(6), data(6)], [spec(6), spec(6)]),
    "cross_v1": (CrossV1(), data(6), spec(6)),
    "senet": (SENet(), FIELDS, [spec(4)] * 3),
    "bilinear": (Bilinear(num_output_units=3), FIELDS, [spec(4)] * 3),
    "fibinet": (FiBiNet(senet={}, bilinear={"num_output_units": 2, "type": "each"},
                        mlp={"hidden_units": [4]}), FIELDS, [spec(4)] * 3),
    "mask_block": (MaskBlock(aggregation_size=4, output_size=3), [data(5), data(2)],
                   [spec(5), spec(2)]),
    "masknet": (MaskNet(mask_blocks=[{"aggregation_size": 4, "output_size": 3}] * 2,
                        mlp={"hidden_units": [2]}), data(5), spec(5)),
    "periodic": (PeriodicEmbedding(embedding_dim=4, sigma=0.5, output_3d_tensor=True),
                 NUMBERS, spec(3)),
    "autodis": (AutoDisEmbedding(embedding_dim=4, num_bins=5, temperature=0.8,
                                 output_tensor_list=True), NUMBERS, spec(3)),
    "nary": (NaryDisEmbedding(embedding_dim=2, carries=[2, 9], multiplier=100.0), NUMBERS,
             spec(3)),
    "bst": (BST(hidden_size=4, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                max_position_embeddings=6, target_item_position="tail"),
            [SEQ, LENGTHS, data(4)], [spec(None, 4), spec(dtype=tf.int32), spec(4)]),
    "bst_tokens": (BST(hidden_size=4, num_hidden_layers=1, num_attention_heads=1,
                       intermediate_size=4, max_position_embeddings=6), SEQ, spec(None, 4)),
    "seq_aug": (SeqAugment(), [SEQ, LENGTHS], [spec(None, 4), spec(dtype=tf.int32)]),
    "text_cnn": (TextCNN(filter_sizes=[2, 3], num_filters=[2, 2], pad_sequence_length=6),
                 SEQ, spec(None, 4)),
    "highway": (Highway(emb_size=3, num_layers=2), data(5), spec(5)),
    "gate": (Gate(mlp={"hidden_units": [2]}), [data(2), data(4), data(4)],
             [spec(2), spec(4), spec(4)]),
    "aux_loss": (AuxiliaryLoss(loss_type="nce_loss"), [data(4), data(4)], [spec(4), spec(4)]),
}


def as_numpy(out):
    return [np.asarray(t) for t in tf.nest.flatten(out)]


def serving_function(layer):
    def serve(x):
        return layer(x, training=False)

    return serve


class Exported(tf.Module):
    def __init__(self):
        super().__init__()
        variables = []
        for name, (layer, x, signature) in CASES.items():
            layer(x)  # creates the weights

            fn = tf.function(serving_function(layer), input_signature=[signature])
            setattr(self, name, fn)
            variables += list(fn.get_concrete_function().variables)
        self.model_variables = variables


def test_every_block_traces_with_unknown_sizes_and_round_trips_a_saved_model(tmp_path):
    module = Exported()
    eager = {name: as_numpy(layer(x, training=False)) for name, (layer, x, _) in CASES.items()}
    traced = {name: as_numpy(getattr(module, name)(x)) for name, (_, x, _) in CASES.items()}
    for name in CASES:
        for a, b in zip(eager[name], traced[name]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)
    tf.saved_model.save(module, str(tmp_path / "saved"))
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    for name, (_, x, _) in CASES.items():
        got = as_numpy(getattr(loaded, name)(x))
        assert len(got) == len(eager[name]), name
        for a, b in zip(eager[name], got):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)
    # a batch of another size and, for the sequence blocks, another sequence length
    seq = RNG.normal(size=(2, 3, 4)).astype("float32")
    assert loaded.bst_tokens(seq).shape == (2, 6 * 4)  # padded to max_position_embeddings
    assert loaded.text_cnn(seq).shape == (2, 4)
    assert loaded.dot([f[:1] for f in FIELDS]).shape == (1, 6)
