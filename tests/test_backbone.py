"""The backbone DAG: ordering, every error message, slices, lists, packages, repeat."""

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format

import easyblocks.blocks  # noqa: F401
from easyblocks.backbone.dag import Backbone
from easyblocks.backbone.transforms import compile_expression
from easyblocks.config.dag import backbone_spec
from easyblocks.config.slicing import parse_slice
from easyblocks.errors import ConfigError
from easyblocks.protos import backbone_pb2

GROUPS = ["a", "b"]


def features(batch=2):
    a = tf.constant(np.arange(batch * 4, dtype=np.float32).reshape(batch, 4))
    b = tf.constant(np.ones((batch, 2), np.float32))
    return {"groups": {"a": a, "b": b}, "lists": {"a": [a[:, :2], a[:, 2:]], "b": [b]},
            "raw": {"a": tf.constant([[3], [1]], tf.int64)[:batch], "b": None}}


def backbone(text):
    spec = backbone_spec(text_format.Parse(text, backbone_pb2.BackboneTower()), GROUPS)
    return Backbone(spec)


def test_identity_concat_and_order():
    bb = backbone("""
      blocks { name: "second" inputs { block_name: "first" } inputs { feature_group_name: "b" } }
      blocks { name: "first" inputs { feature_group_name: "a" } }
      concat_blocks: "second"
    """)
    assert bb.dag.order == ["first", "second"]
    out = bb(features())
    np.testing.assert_allclose(out.numpy(), [[0, 1, 2, 3, 1, 1], [4, 5, 6, 7, 1, 1]])


def test_cycle_error_names_the_blocks():
    with pytest.raises(ConfigError, match=r"has a cycle: (x -> y -> x|y -> x -> y)"):
        backbone("""
          blocks { name: "x" inputs { block_name: "y" } }
          blocks { name: "y" inputs { block_name: "x" } }
          blocks { name: "z" inputs { feature_group_name: "a" } }
        """)


def test_unknown_input_names_block_and_suggests():
    with pytest.raises(ConfigError, match=r"block 'top' takes input 'botom', which is not a "
                                          r"block \(did you mean: bottom\?\)"):
        backbone("""
          blocks { name: "bottom" inputs { feature_group_name: "a" } }
          blocks { name: "top" inputs { block_name: "botom" } }
        """)


def test_group_used_as_block_name_gets_a_hint():
    with pytest.raises(ConfigError, match="it is a feature group: use feature_group_name"):
        backbone('blocks { name: "x" inputs { block_name: "a" } }')


def test_unknown_feature_group():
    with pytest.raises(ConfigError, match=r"feature group 'aa', which is not defined \(did you "
                                          r"mean: a\?\)"):
        backbone('blocks { name: "x" inputs { feature_group_name: "aa" } }')


def test_duplicate_block_and_group_names():
    with pytest.raises(ConfigError, match="block 'x': duplicate block name"):
        backbone("""
          blocks { name: "x" inputs { feature_group_name: "a" } }
          blocks { name: "x" inputs { feature_group_name: "b" } }
        """)
    with pytest.raises(ConfigError, match="may not have the name of a feature group"):
        backbone('blocks { name: "a" inputs { feature_group_name: "a" } }')


def test_unknown_class_name_lists_registered_blocks():
    with pytest.raises(ConfigError, match=r"unknown class_name 'MPL' \(did you mean: "
                                          r"[A-Z, ]*MLP[A-Z, ]*\?\); "
                                          r"registered blocks: .*MLP"):
        backbone('blocks { name: "x" inputs { feature_group_name: "a" } '
                 'keras_layer { class_name: "MPL" } }')


def test_wrong_st_params_keyword_is_a_config_error():
    with pytest.raises(ConfigError, match=r"block 'x'.*Dense got unknown parameter\(s\) unit; "
                                          r"accepted: units"):
        backbone('blocks { name: "x" inputs { feature_group_name: "a" } keras_layer { '
                 'class_name: "Dense" st_params { fields { key: "unit" value { number_value: 2 } '
                 '} } } }')


def test_typed_params_of_another_block_rejected():
    with pytest.raises(ConfigError, match=r"`mlp \{\}` parameters do not belong to class_name "
                                          r"'Dense'"):
        backbone('blocks { name: "x" inputs { feature_group_name: "a" } keras_layer { '
                 'class_name: "Dense" mlp { hidden_units: 2 } } }')


def test_input_slice_and_merge_into_list():
    bb = backbone("""
      blocks { name: "s" inputs { feature_group_name: "a" input_slice: "[:, 1:3]" } }
      blocks { name: "l" inputs { block_name: "s" } inputs { feature_group_name: "b" }
               merge_inputs_into_list: true }
      blocks { name: "pick" inputs { block_name: "l" input_slice: "[0]" } }
      concat_blocks: "pick"
    """)
    np.testing.assert_allclose(bb(features()).numpy(), [[1, 2], [5, 6]])


def test_input_concat_axis():
    bb = backbone("""
      blocks { name: "c" inputs { feature_group_name: "b" } inputs { feature_group_name: "b" }
               input_concat_axis: 0 }
      concat_blocks: "c"
    """)
    assert bb(features()).shape == (4, 2)


def test_list_inputs_are_joined_into_one_list_as_in_easyrec():
    bb = backbone("""
      blocks { name: "l" inputs { feature_group_name: "a" } inputs { feature_group_name: "b" }
               merge_inputs_into_list: true }
      blocks { name: "c" inputs { block_name: "l" } inputs { feature_group_name: "b" } }
      blocks { name: "pick" inputs { block_name: "c" input_slice: "[2]" } }
      blocks { name: "m" inputs { feature_group_name: "b" input_fn: "lambda x: [x]" }
               inputs { block_name: "l" } }
      output_blocks: ["pick", "m"]
    """)
    values = bb.dag.block_values(features())
    assert [tuple(t.shape) for t in values["c"]] == [(2, 4), (2, 2), (2, 2)]
    assert [tuple(t.shape) for t in values["m"]] == [(2, 2), (2, 4), (2, 2)]
    np.testing.assert_allclose(values["pick"].numpy(), np.ones((2, 2)))
    # the backbone's output: a list input still cannot be concatenated with tensors
    bb = backbone("""
      blocks { name: "l" inputs { feature_group_name: "a" } inputs { feature_group_name: "b" }
               merge_inputs_into_list: true }
      blocks { name: "t" inputs { feature_group_name: "b" } }
      concat_blocks: ["l", "t"]
    """)
    with pytest.raises(ConfigError, match="outputs a list of 2 tensors, which cannot be "
                       "concatenated; name it in output_blocks"):
        bb(features())


def test_sequential_layers_keras_layer_and_lambda():
    bb = backbone("""
      blocks { name: "seq" inputs { feature_group_name: "b" }
        layers { keras_layer { class_name: "Dense" st_params {
          fields { key: "units" value { number_value: 3 } }
          fields { key: "kernel_initializer" value { string_value: "ones" } } } } }
        layers { lambda { expression: "lambda x: x * 2" } }
      }
      concat_blocks: "seq"
    """)
    np.testing.assert_allclose(bb(features()).numpy(), np.full((2, 3), 4.0))


def test_repeat_creates_independent_layers_and_concats():
    bb = backbone("""
      blocks { name: "r" inputs { feature_group_name: "a" }
        repeat { num_repeat: 2 output_concat_axis: -1 input_slice: "[:, i:i+1]"
          keras_layer { class_name: "Dense" st_params {
            fields { key: "units" value { number_value: 1 } } } } } }
      concat_blocks: "r"
    """)
    out = bb(features())
    assert out.shape == (2, 2)
    kernels = [layer.kernel.numpy() for layer in bb.dag.tracked_layers]
    expected = np.concatenate([features()["groups"]["a"].numpy()[:, i:i + 1] @ kernels[i]
                               for i in range(2)], axis=-1) + 0.0
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)


def test_repeat_with_index_slices():
    bb = backbone("""
      blocks { name: "r" inputs { feature_group_name: "a" } merge_inputs_into_list: true
        repeat { num_repeat: 2 output_concat_axis: -1 input_slice: "[0]"
          keras_layer { class_name: "Dense" st_params {
            fields { key: "units" value { number_value: 1 } }
            fields { key: "kernel_initializer" value { string_value: "ones" } } } } } }
      concat_blocks: "r"
    """)
    out = bb(features())
    assert out.shape == (2, 2)
    assert len(bb.dag.tracked_layers) == 2
    np.testing.assert_allclose(out.numpy(), [[6, 6], [22, 22]])


def test_packages_share_weights_when_called_twice():
    bb = backbone("""
      packages { name: "tower"
        blocks { name: "d" inputs { use_package_input: true } keras_layer { class_name: "Dense"
          st_params { fields { key: "units" value { number_value: 2 } } } } }
        concat_blocks: "d" }
      blocks { name: "x1" inputs { package_name: "tower" package_input: "a" } }
      blocks { name: "pre" inputs { feature_group_name: "a" input_fn: "lambda x: x * 0 + 1" } }
      blocks { name: "x2" inputs { package_name: "tower" package_input: "pre" } }
      output_blocks: ["x1", "x2"]
    """)
    x1, x2 = bb(features())
    assert x1.shape == x2.shape == (2, 2)
    assert len(bb.trainable_variables) == 2  # one kernel + one bias: shared
    assert bb.dag.order.index("pre") < bb.dag.order.index("x2")


def test_two_backbones_from_one_config_are_independent():
    text = 'blocks { name: "d" inputs { feature_group_name: "a" } keras_layer { class_name: ' \
           '"MLP" mlp { hidden_units: 2 } } }'
    b1, b2 = backbone(text), backbone(text)
    b1(features()), b2(features())
    assert b1.trainable_variables[0] is not b2.trainable_variables[0]


def test_input_layer_options_and_raw_input():
    bb = backbone("""
      blocks { name: "lst" inputs { feature_group_name: "a" }
               input_layer { only_output_3d_tensor: true } }
      blocks { name: "raw" inputs { feature_group_name: "a" } raw_input {} }
      output_blocks: ["lst", "raw"]
    """)
    three_d, raw = bb(features())
    assert three_d.shape == (2, 2, 2)
    np.testing.assert_array_equal(raw.numpy(), [[3], [1]])


def test_leaves_are_concatenated_with_a_warning(caplog):
    bb = backbone("""
      blocks { name: "x" inputs { feature_group_name: "a" } }
      blocks { name: "y" inputs { feature_group_name: "b" } }
    """)
    assert bb(features()).shape == (2, 6)
    assert "concatenating the DAG's leaves: x, y" in caplog.text


def test_top_mlp():
    bb = backbone('blocks { name: "x" inputs { feature_group_name: "a" } } concat_blocks: "x" '
                  'top_mlp { hidden_units: [3] }')
    assert bb(features()).shape == (2, 3)


@pytest.mark.parametrize("text, index", [
    ("[0]", 0), ("[:, 0:8]", (slice(None), slice(0, 8))), ("[..., -1]", (Ellipsis, -1)),
    ("[1:]", slice(1, None)), ("[::2]", slice(None, None, 2)),
])
def test_parse_slice(text, index):
    assert parse_slice(text, "w") == index


@pytest.mark.parametrize("bad", ["0", "[__import__('os')]", "[a:b]", "[]"])
def test_parse_slice_rejects_code(bad):
    with pytest.raises(ConfigError, match="input_slice|bad index"):
        parse_slice(bad, "w")


def test_expressions_are_interpreted_not_evaluated():
    fn = compile_expression("lambda x: tf.concat([x[0], x[1] * 2], axis=-1)", "w")
    out = fn([tf.ones((1, 1)), tf.ones((1, 2))])
    np.testing.assert_allclose(out.numpy(), [[1, 2, 2]])
    for bad in ["lambda x: __import__('os').system('echo hi')", "lambda x: os.system('ls')",
                "lambda x: x.__class__", "lambda x: open('/etc/passwd')",
                "lambda x: [y for y in x]", "import os"]:
        with pytest.raises(ConfigError):
            compile_expression(bad, "w")(tf.ones((1, 1)))


def test_a_package_block_may_read_a_main_block_as_in_easyrec():
    # EasyRec (CL4SRec's style): a package's block takes a backbone block by block_name; a
    # package_input may name another package (called on nothing); a package's one
    # concat_blocks output may be a list
    bb = backbone("""
      packages { name: "aug"
        blocks { name: "twice" inputs { block_name: "a" } lambda { expression: "lambda x: x * 2" } }
        blocks { name: "pair" inputs { block_name: "twice" } inputs { block_name: "late" }
                 merge_inputs_into_list: true } }
      packages { name: "enc"
        blocks { name: "first" inputs { use_package_input: true input_slice: "[0]" }
                 lambda { expression: "lambda x: x + 1" } } }
      blocks { name: "use" inputs { package_name: "enc" package_input: "aug" } }
      blocks { name: "a" inputs { feature_group_name: "a" } input_layer {} }
      blocks { name: "late" inputs { feature_group_name: "b" input_fn: "lambda x: x * 3" } }
      blocks { name: "direct" inputs { package_name: "aug" input_slice: "[1]" } }
      output_blocks: ["use", "direct"]
    """)
    order = bb.dag.order
    assert order.index("a") < order.index("use") and order.index("late") < order.index("use")
    assert order.index("late") < order.index("direct")
    use, direct = bb(features())
    np.testing.assert_allclose(use.numpy(), [[1, 3, 5, 7], [9, 11, 13, 15]])  # 2 a + 1
    np.testing.assert_allclose(direct.numpy(), np.full((2, 2), 3.0))  # 3 b


def test_a_package_block_reading_an_unknown_block_is_one_line():
    with pytest.raises(ConfigError, match=r"block 'p1' takes input 'nowhere', which is not a "
                                          r"block"):
        backbone("""
          packages { name: "p" blocks { name: "p1" inputs { block_name: "nowhere" } } }
          blocks { name: "x" inputs { package_name: "p" } }
        """)
    with pytest.raises(ConfigError, match=r"block 'x' calls package 'p', which reads block "
                                          r"'x' itself"):
        backbone("""
          packages { name: "p" blocks { name: "p1" inputs { block_name: "x" } } }
          blocks { name: "x" inputs { package_name: "p" } }
        """)


def test_a_package_reading_a_main_block_trains_in_a_tf_function():
    bb = backbone("""
      packages { name: "p"
        blocks { name: "d" inputs { block_name: "main_a" } keras_layer { class_name: "Dense"
          st_params { fields { key: "units" value { number_value: 1 } } } } } }
      blocks { name: "main_a" inputs { feature_group_name: "a" } }
      blocks { name: "out" inputs { package_name: "p" } }
      concat_blocks: "out"
    """)
    bb(features())

    @tf.function(autograph=False)
    def grads(f):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(bb(f, training=True))
        return tape.gradient(loss, bb.trainable_variables)

    kernel, bias = grads(features())
    np.testing.assert_allclose(kernel.numpy()[:, 0], [4, 6, 8, 10])  # column sums of a
    np.testing.assert_allclose(bias.numpy(), [2])
