"""Issue 11, items 4, 8, 10, 11, 12 and 13: what the config alone tells is checked when it
resolves (no TensorFlow) or when the model is built, with file:line."""

import gzip
import textwrap

import pytest
from conftest import tiny_config

from easyblocks import api
from easyblocks.config.loader import load_config, parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError

MLP = ('backbone { blocks { name: "mlp" inputs { feature_group_name: "all" } '
       'keras_layer { class_name: "MLP" mlp { hidden_units: [4] } } } concat_blocks: "mlp" }')


def spec_of(text: str, **kw):
    return resolve(parse_config_text(text, "t.config"), **kw)


def refused(text: str, match: str, **kw):
    with pytest.raises(ConfigError, match=match):
        spec_of(text, **kw)


# ---- item 4: non-finite numbers -----------------------------------------------------------

@pytest.mark.parametrize("extra, field", [
    ("train_config { optimizer_config { adam_optimizer { learning_rate { "
     "constant_learning_rate { learning_rate: nan } } } } }", "learning_rate"),
    ("train_config { gradient_clipping_by_norm: inf }", "gradient_clipping_by_norm"),
    ("train_config { optimizer_config { sgd_optimizer { learning_rate { "
     "constant_learning_rate { learning_rate: 1e39 } } } } }", "learning_rate"),
])
def test_non_finite_config_numbers_are_refused(extra, field):
    refused(tiny_config(MLP, extra), rf"t.config:\d+: .*{field} is (nan|inf); every number in "
                                     "a config must be finite")


def test_non_finite_loss_weight_and_st_params_number_are_refused():
    text = tiny_config(MLP).replace('model_class: "RankModel"', 'model_class: "RankModel"\n'
                                    "  losses { loss_type: CLASSIFICATION weight: -inf }")
    refused(text, r"t.config:\d+: model_config.losses.weight is -inf")
    dense = ('backbone { blocks { name: "d" inputs { feature_group_name: "all" } keras_layer { '
             'class_name: "Dropout" st_params { fields { key: "rate" value { number_value: nan '
             '} } } } } concat_blocks: "d" }')
    refused(tiny_config(dense), r"t.config:\d+: .*st_params.fields\['rate'\].number_value is nan")


# ---- item 8: a label read as a feature ----------------------------------------------------

def test_label_as_feature_is_refused():
    text = tiny_config(MLP).replace('label_fields: "clk"', 'label_fields: "price"')
    refused(text, r"t.config:\d+: feature 'price' reads the label column 'price': the model "
                  "would see its own target")


# ---- item 10: slices against known widths, --set on lists ---------------------------------

@pytest.mark.parametrize("slice_, message", [
    ("[:, 100:200]", r"selects beyond the input's 9 columns on axis 1"),
    ("[:, 9:]", r"selects none of the input's 9 columns"),
    ("[0:1]", r"indexes the batch axis \(axis 0\) of a tensor input"),
    ("[0]", r"indexes the batch axis"),
    ("[:, 12]", r"index 12 on axis 1 is outside the input's width 9"),
    ("[:, :, 1]", r"has 3 indices but the input has 2 axes"),
])
def test_input_slice_against_the_group_width(slice_, message):
    model = MLP.replace('inputs { feature_group_name: "all" }',
                        f'inputs {{ feature_group_name: "all" input_slice: "{slice_}" }}')
    refused(tiny_config(model), rf"t.config:\d+: block 'mlp': input_slice .*{message}")


def test_good_slices_and_raw_input_widths_pass():
    model = textwrap.dedent("""
        backbone {
          blocks { name: "ids" inputs { feature_group_name: "user" } raw_input {} }
          blocks { name: "a" inputs { feature_group_name: "all" input_slice: "[:, 0:4]" }
                   inputs { feature_group_name: "all" input_slice: "[..., -1:]" }
                   inputs { block_name: "ids" input_slice: "[:, 0:1]"
                            input_fn: "lambda x: tf.cast(x, tf.float32)" } }
          concat_blocks: "a"
        }""")
    spec_of(tiny_config(model))
    bad = model.replace('input_slice: "[:, 0:1]"', 'input_slice: "[:, 1:2]"')
    refused(tiny_config(bad), r"block 'a': input_slice \[:, 1:2\] selects beyond the "
                              "input's 1 columns")


def test_slice_of_a_block_output_is_checked_when_built(tmp_path):
    model = ('backbone { blocks { name: "mlp" inputs { feature_group_name: "all" } '
             'keras_layer { class_name: "MLP" mlp { hidden_units: [4] } } } '
             'blocks { name: "pick" inputs { block_name: "mlp" input_slice: "[0]" } } '
             'concat_blocks: "pick" }')
    path = tmp_path / "t.config"
    path.write_text(tiny_config(model))
    spec_of(tiny_config(model))  # a block's output: not known statically
    with pytest.raises(ConfigError, match=r"t.config:\d+: block 'pick'.*input_slice \[0\] "
                                          "indexes the batch axis"):
        api.validate_config(str(path))


def test_set_replaces_a_list_instead_of_appending(tmp_path):
    path = tmp_path / "t.config"
    path.write_text(tiny_config(MLP, "train_config { optimizer_config { adam_optimizer { "
                                     "learning_rate { constant_learning_rate { learning_rate: "
                                     "0.01 } } } } }"))
    spec = api.resolve(str(path), overrides=[
        "train_config { optimizer_config { sgd_optimizer { learning_rate { "
        "constant_learning_rate { learning_rate: 0.5 } } } } }",
        'model_config { backbone { blocks { name: "mlp" inputs { feature_group_name: "all" } '
        'keras_layer { class_name: "MLP" mlp { hidden_units: [7, 3] } } } } }'])
    assert spec.train.optimizer.kind == "sgd"
    assert spec.train.optimizer.learning_rate.learning_rate == pytest.approx(0.5)
    assert spec.model.backbone.dag.blocks["mlp"].steps[0].layer.params["hidden_units"] == [7, 3]
    spec = api.resolve(str(path), overrides=["train_config { seed: 7 }"])
    assert spec.train.seed == 7 and spec.train.optimizer.kind == "adam"  # merged, not replaced


# ---- item 11: heads, losses, domains ------------------------------------------------------

def test_zero_class_towers_and_multi_class_regression_are_refused():
    text = tiny_config(MLP).replace('model_class: "RankModel"',
                                    'model_class: "RankModel"\n  num_class: 0')
    refused(text, r"t.config:\d+: tower 'clk': num_class 0 gives no output")
    text = tiny_config(MLP).replace('model_class: "RankModel"',
                                    'model_class: "RankModel"\n  num_class: 2\n'
                                    '  loss_type: L2_LOSS')
    refused(text, r"tower 'clk': num_class 2: L2_LOSS predicts one number; it needs num_class 1")


def test_multi_class_towers_have_class_id_labels_and_their_metrics():
    # multi-class towers (softmax, EasyRec's num_class > 1) are accepted: their label is a
    # class id, and without one positive score more than two classes are evaluated with
    # logloss and accuracy
    for n, metrics in [(2, ["auc", "logloss"]), (3, ["logloss", "accuracy"])]:
        text = tiny_config(MLP).replace('model_class: "RankModel"',
                                        f'model_class: "RankModel"\n  num_class: {n}')
        spec = spec_of(text)
        tower = spec.towers[0]
        assert tower.is_multiclass and tower.prediction_key == "probs_clk"
        assert tower.metrics == metrics
        assert spec.data.label_rules == {"clk": f"class:{n}"}


def test_regression_tower_spec_and_mixed_losses():
    text = tiny_config(MLP).replace('model_class: "RankModel"',
                                    'model_class: "RankModel"\n  loss_type: L2_LOSS')
    tower = spec_of(text).towers[0]
    assert tower.is_regression and tower.prediction_key == "y_clk"
    assert tower.metrics == ["mean_squared_error", "mean_absolute_error"]
    assert spec_of(text).data.label_rules == {"clk": "number"}
    mixed = tiny_config(MLP).replace('model_class: "RankModel"', 'model_class: "RankModel"\n'
                                     "  losses { loss_type: L2_LOSS } losses { loss_type: "
                                     "CLASSIFICATION }")
    refused(mixed, r"L2_LOSS .* and CLASSIFICATION \(a probability\) cannot be mixed")


def test_two_losses_of_one_type_keep_distinct_names():
    import tensorflow as tf

    from easyblocks.models.build import build_and_initialize

    text = tiny_config(MLP).replace('model_class: "RankModel"', 'model_class: "RankModel"\n'
                                    "  losses { loss_type: CLASSIFICATION weight: 1.0 }\n"
                                    "  losses { loss_type: CLASSIFICATION weight: 0.5 }")
    spec = spec_of(text)
    assert [loss.key for loss in spec.towers[0].losses] == ["classification", "classification_1"]
    model, _ = build_and_initialize(spec)
    outputs = {"logits_clk": tf.constant([0.3, -1.0]), "probs_clk": tf.sigmoid([0.3, -1.0])}
    terms = model.compute_losses({"clk": tf.constant([1.0, 0.0])}, outputs, tf.constant(0.0))
    first = float(terms["loss/clk/classification"])
    assert float(terms["loss/clk/classification_1"]) == pytest.approx(first * 0.5)
    assert float(terms["loss/total"]) == pytest.approx(first * 1.5)


STAR = textwrap.dedent("""
    backbone {
      blocks { name: "domain_id" inputs { feature_group_name: "dom" } raw_input {} }
      blocks { name: "star" inputs { feature_group_name: "all" } inputs { block_name: "domain_id" }
               merge_inputs_into_list: true
               keras_layer { class_name: "STAR" star { num_domains: %d hidden_units: [4] } } }
      concat_blocks: "star"
    }""")


def test_num_domains_against_the_domain_features_ids():
    text = tiny_config(STAR % 2).replace(
        'feature_groups { group_name: "user" feature_names: "user" }',
        'feature_groups { group_name: "user" feature_names: "user" }\n'
        '  feature_groups { group_name: "dom" feature_names: "pid" }')
    text = text.replace('input_fields { input_name: "price"',
                        'input_fields { input_name: "pid" input_type: STRING }\n'
                        '  input_fields { input_name: "price"')
    text = text.replace("feature_config {", 'feature_config {\n  features { input_names: "pid" '
                        'feature_type: IdFeature embedding_dim: 2 vocab_list: ["a", "b", "c"] }')
    refused(text, r"block 'star': num_domains 2, but its domain ids come from feature 'pid' "
                  r"\(raw_input 'domain_id'\), which has 4 ids \(a vocab_list of 3 values \+ 1 "
                  r"for unseen values\): .* set num_domains: 4")
    spec_of(text.replace("num_domains: 2", "num_domains: 4"))


# ---- item 12: plugins, expressions and sizes ----------------------------------------------

def test_a_config_may_name_plugin_modules_but_not_files(tmp_path):
    plugin = tmp_path / "evil.py"
    plugin.write_text("open(__file__ + '.ran', 'w').write('ran')\n")
    text = f'plugins: "{plugin}"\n' + tiny_config(MLP)
    refused(text, r"t.config:1: plugins: '.*evil.py' is not a module name; a config may name "
                  "importable modules only")
    path = tmp_path / "t.config"
    path.write_text(text)
    with pytest.raises(ConfigError, match="not a module name"):
        api.resolve(str(path))
    assert not (tmp_path / "evil.py.ran").exists()
    api.resolve(str(path), allow_config_plugins=True)  # the command line allows it
    assert (tmp_path / "evil.py.ran").exists()
    spec_of(tiny_config(MLP, 'plugins: "my_team.blocks"\n'))  # a module name resolves


@pytest.mark.parametrize("expression, message", [
    ("lambda x: x * ('a' * 1500000000)", "repeating a string"),
    ("lambda x: " + "x + " * 50000 + "x", r"expression of 2000\d\d characters; at most 10000"),
    ("lambda x: " + "(" * 3000 + "x" + ")" * 3000, "cannot parse expression|not allowed"),
    ("lambda x: x" + "[0]" * 2000, r"expression nested \d+ levels deep; at most 100"),
])
def test_expression_limits(expression, message):
    model = ('backbone { blocks { name: "f" inputs { feature_group_name: "all" } lambda { '
             f'expression: "{expression}" }} }} concat_blocks: "f" }}')
    refused(tiny_config(model), message)


def test_table_memory_is_estimated_and_refused_above_the_limit(tmp_path):
    text = tiny_config(MLP).replace("embedding_dim: 4 hash_bucket_size: 100",
                                    "embedding_dim: 100000000 hash_bucket_size: 100")
    path = tmp_path / "big.config"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"the embedding tables need 112 GiB with the "
                                          r"optimizer's slots \(user 112 GiB.*above the limit "
                                          "of 8 GiB.*--max_memory_gb"):
        api.resolve(str(path), training=True)
    with pytest.raises(ConfigError, match=r"need 37.3 GiB \(user"):  # no slots to evaluate
        api.resolve(str(path))
    api.resolve(str(path), training=True, max_memory_gb=200)


# ---- item 13: config errors instead of internal ones --------------------------------------

def test_internal_errors_that_are_config_errors(tmp_path):
    model = MLP.replace('inputs { feature_group_name: "all" }',
                        'inputs { feature_group_name: "all" input_slice: "[:, 0:4//0]" }')
    refused(tiny_config(model), r"index '4//0' in input_slice divides by zero")
    huge = tiny_config(MLP).replace("hash_bucket_size: 100", "hash_bucket_size: "
                                    "18446744073709551615")
    refused(huge, r"feature 'user': a table of 18446744073709551615 rows; at most 2147483647")
    packed = tmp_path / "c.config.gz"
    packed.write_bytes(gzip.compress(tiny_config(MLP).encode()))
    with pytest.raises(ConfigError, match=r"c.config.gz: a gzip file, not a text config"):
        load_config(str(packed))
    binary = tmp_path / "b.config"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match=r"b.config: not a UTF-8 text config"):
        load_config(str(binary))


def test_plugin_calling_sys_exit_is_a_config_error(tmp_path):
    from easyblocks.blocks.plugins import load_plugin

    plugin = tmp_path / "exits.py"
    plugin.write_text("import sys\nsys.exit(3)\n")
    with pytest.raises(ConfigError, match=r"plugin '.*exits.py' called sys.exit\(3\) while "
                                          r"being imported \(at .*exits.py:2\)"):
        load_plugin(str(plugin))


def test_header_detection_rules():
    from easyblocks.data.csv_input import is_header

    data = spec_of(tiny_config(MLP)).data
    assert not data.with_header
    assert is_header(["clk", "buy", "user", "tags", "price"], data)
    assert is_header(["price", "user", "extra_column"], data)  # two known names, any order
    assert not is_header(["1", "0", "u1", "t1|t2", "0.5"], data)
    assert not is_header(["user", "user", "x"], data)
    headed = spec_of(tiny_config(MLP).replace("batch_size: 4", "batch_size: 4 with_header: true"))
    assert is_header(["label", "b", "u", "t", "p"], headed.data)  # "label" is not an INT32
    assert is_header(["clk", "x", "y", "z", "w"], headed.data)
    assert not is_header(["1", "0", "u1", "t1|t2", "0.5"], headed.data)  # a data row


def test_layout_difference_names_what_changed():
    from easyblocks.models.checkpoints import layout_difference

    base = {"format": 1, "features": {"u": {"column": "u", "kind": "id", "table": "u",
                                            "rows": 10, "dim": 4, "ids": "a"}},
            "groups": {"g": {"features": ["u"], "wide": False}}, "towers": {"clk": "clk"},
            "variables": [["features/embedding_u", [10, 4]]]}
    assert layout_difference(base, base) is None
    vocab = {**base, "features": {"u": {**base["features"]["u"], "ids": "b"}}}
    assert layout_difference(base, vocab) == (
        "feature 'u': its vocabulary or boundaries differs ('a' in the checkpoint, 'b' in this "
        "config)")
    shape = {**base, "variables": [["features/embedding_u", [12, 4]]]}
    assert layout_difference(base, shape) == (
        "variable 'features/embedding_u' is 10x4 in the checkpoint, 12x4 in this config")
    towers = {**base, "towers": {"ctr": "clk"}}
    assert "towers {'clk': 'clk'} in the checkpoint" in layout_difference(base, towers)
    assert "has format" in layout_difference({**base, "format": 0}, base)


def test_state_file_naming_a_missing_checkpoint_is_rebuilt(tmp_path):
    from easyblocks.models.checkpoints import repair_state

    for n in (5, 10):
        (tmp_path / f"ckpt-{n}.index").write_text("")
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "ckpt-30"\n'
                                         'all_model_checkpoint_paths: "ckpt-30"\n')
    repair_state(str(tmp_path))
    assert (tmp_path / "checkpoint").read_text() == (
        'model_checkpoint_path: "ckpt-10"\nall_model_checkpoint_paths: "ckpt-5"\n'
        'all_model_checkpoint_paths: "ckpt-10"\n')
    before = (tmp_path / "checkpoint").read_text()
    repair_state(str(tmp_path))  # a good state file is left alone
    assert (tmp_path / "checkpoint").read_text() == before
