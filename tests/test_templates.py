"""EasyRec's model classes as templates: each expands into a backbone of registered blocks plus
towers (the blocks it produces, the math of the expanded model pinned by hand where it is a
sum), validates, trains a few steps, and `validate --expand` prints a config that builds the
same model. The configs (tests/zoo_configs.py) are written for these tests in EasyRec's style.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import zoo_configs as Z
from conftest import ROOT, SAMPLES

from easyblocks import api
from easyblocks.config import templates
from easyblocks.config.loader import load_config, parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError
from easyblocks.models.build import build_and_initialize, dummy_columns


def _resolve(text: str, write_config):
    return resolve(load_config(write_config(text)))


def _structure(spec) -> list[tuple[str, str, list[str]]]:
    """(block, class, inputs) in run order."""
    dag = spec.model.backbone.dag
    return [(n, dag.blocks[n].class_name, [i.name + (f"[{i.index}]" if i.index is not None else "")
                                           for i in dag.blocks[n].inputs]) for n in dag.order]


def _values(spec, model, pre):
    features = model.feature_groups(pre(dummy_columns(spec, batch=6)))
    return features, model.backbone.dag.block_values(features, training=False)


# ---- every template: validates, and the expansion is a base model class ---------------------

@pytest.mark.parametrize("name", sorted(Z.MODELS))
def test_every_template_validates_and_expands_into_a_base_model(name, write_config):
    path = write_config(Z.config(name))
    table = api.validate_config(path)
    spec = api.resolve(path)
    model_class = Z.MODELS[name][1].split('"')[1]
    assert spec.model.expanded_from == model_class
    assert spec.model.model_class in ("RankModel", "MultiTaskModel")
    assert table.startswith(f"model_class {model_class}: expanded into a "
                            f"{spec.model.model_class}")


def test_registry_lists_the_built_in_templates():
    classes = templates.registered_model_classes()
    assert sorted(classes) == ["AutoInt", "DBMTL", "DCN", "DLRM", "DSSM", "DSSM_SENet", "DeepFM",
                               "ESMM", "FM", "MMoE", "MultiTower", "PLE", "SimpleMultiTask",
                               "WideAndDeep"]
    assert classes["DeepFM"].params == "deepfm" and classes["DeepFM"].source == "built-in"
    assert classes["DBMTL"].summary.startswith("Deep Bayesian multi-target learning")
    with pytest.raises(ConfigError, match="already registered"):
        templates.register_model_class("DeepFM", "deepfm", lambda ctx: ctx.model)
    with pytest.raises(ConfigError, match="params 'deep_fm' is not a field .*did you mean"):
        templates.register_model_class("X", "deep_fm", lambda ctx: ctx.model)


# ---- the blocks each template produces -------------------------------------------------------

MLP = "MLP"


def test_multi_tower_expansion(write_config):
    spec = _resolve(Z.config("MultiTower"), write_config)
    assert _structure(spec) == [
        ("user_fea_bn", "BatchNorm", ["user"]), ("user_dnn", MLP, ["user_fea_bn"]),
        ("item_fea_bn", "BatchNorm", ["item"]), ("item_dnn", MLP, ["item_fea_bn"]),
        ("pid_fea_bn", "BatchNorm", ["pid"]), ("pid_dnn", MLP, ["pid_fea_bn"]),
        ("final_dnn", MLP, ["user_dnn", "item_dnn", "pid_dnn"]),
        ("output", "Dense", ["final_dnn"])]
    (tower,) = spec.towers
    assert tower.logit_from_backbone and tower.label == "clk"
    assert spec.model.l2_regularization == pytest.approx(1e-6)
    # EasyRec's DNN: Dense with bias, glorot_uniform, BN and ReLU on every layer
    params = spec.model.backbone.dag.blocks["user_dnn"].steps[0].layer.params
    assert params["hidden_units"] == [32, 16] and params["use_bias"] and params["use_final_bn"]
    assert params["initializer"] == "glorot_uniform" and params["final_activation"] == "tf.nn.relu"


def test_deepfm_expansion_with_final_dnn(write_config):
    spec = _resolve(Z.config("DeepFM"), write_config)
    assert _structure(spec) == [
        ("wide", "input_layer", ["wide"]), ("wide_logit", "lambda", ["wide"]),
        ("deep_fields", "input_layer", ["deep"]), ("fm_feature", "FM", ["deep_fields"]),
        ("deep_feature", MLP, ["deep"]),
        ("final_dnn", MLP, ["wide_logit", "fm_feature", "deep_feature"]),
        ("output", "Dense", ["final_dnn"])]
    assert spec.groups["wide"].wide_dim == 4  # wide_output_dim
    model, pre = build_and_initialize(spec)
    features, values = _values(spec, model, pre)
    wide = features["groups"]["wide"].numpy()
    assert wide.shape == (6, 18 * 4)
    # EasyRec's wide part with num_class 1: every wide weight summed
    np.testing.assert_allclose(values["wide_logit"].numpy(), wide.sum(1, keepdims=True),
                               rtol=1e-5, atol=1e-6)
    assert tuple(values["fm_feature"].shape) == (6, 8)  # the (batch, d) vector form


def test_deepfm_without_final_dnn_sums_wide_fm_and_deep_logits(write_config):
    spec = _resolve(Z.config("DeepFM_no_final"), write_config)
    assert [b for b, _, _ in _structure(spec)][-3:] == ["fm_logits", "deep_logits", "output"]
    model, pre = build_and_initialize(spec)
    wide_table = model.feature_groups.wide_tables["user_id"]
    wide_table.assign(np.random.default_rng(0).normal(size=wide_table.shape) * 0.1)
    features, values = _values(spec, model, pre)
    fields = np.stack([f.numpy() for f in features["lists"]["deep"]], axis=1)  # (6, 18, 8)
    fm = 0.5 * (fields.sum(1) ** 2 - (fields ** 2).sum(1))
    np.testing.assert_allclose(values["fm_feature"].numpy(), fm, rtol=1e-4, atol=1e-5)
    want = (features["groups"]["wide"].numpy().sum(1, keepdims=True) + fm.sum(1, keepdims=True)
            + values["deep_logits"].numpy())
    np.testing.assert_allclose(values["output"].numpy(), want, rtol=1e-4, atol=1e-5)
    logits = model(pre(dummy_columns(spec, batch=6)), training=False)["logits_clk"].numpy()
    np.testing.assert_allclose(logits, want[:, 0], rtol=1e-4, atol=1e-5)


def test_wide_and_deep_expansion(write_config):
    spec = _resolve(Z.config("WideAndDeep"), write_config)
    assert _structure(spec) == [
        ("wide", "input_layer", ["wide"]), ("wide_logit", "lambda", ["wide"]),
        ("deep_feature", MLP, ["deep"]), ("final_dnn", MLP, ["wide_logit", "deep_feature"]),
        ("output", "Dense", ["final_dnn"])]
    model, pre = build_and_initialize(spec)
    table = model.feature_groups.wide_tables["cate_id"]
    table.assign(np.random.default_rng(1).normal(size=table.shape))
    features, values = _values(spec, model, pre)
    parts = [f.numpy() for f in features["lists"]["wide"]]  # 18 x (batch, 8)
    assert parts[0].shape == (6, 8)
    # EasyRec: tf.add_n of the features' wide_output_dim-wide weights
    np.testing.assert_allclose(values["wide_logit"].numpy(), np.sum(parts, axis=0), rtol=1e-5,
                               atol=1e-6)


def test_fm_is_wide_plus_fm_plus_a_bias(write_config):
    spec = _resolve(Z.config("FM"), write_config)
    assert _structure(spec) == [
        ("wide", "input_layer", ["wide"]), ("wide_logit", "lambda", ["wide"]),
        ("deep_fields", "input_layer", ["deep"]), ("fm_feature", "FM", ["deep_fields"]),
        ("output", "Sequential", ["wide_logit", "fm_feature"])]
    model, pre = build_and_initialize(spec)
    bias = model.backbone.dag.blocks["output"].layers[1]
    bias.bias.assign([0.75])
    features, values = _values(spec, model, pre)
    fields = np.stack([f.numpy() for f in features["lists"]["deep"]], axis=1)
    fm = 0.5 * (fields.sum(1) ** 2 - (fields ** 2).sum(1)).sum(1, keepdims=True)
    want = features["groups"]["wide"].numpy().sum(1, keepdims=True) + fm + 0.75
    np.testing.assert_allclose(values["output"].numpy(), want, rtol=1e-4, atol=1e-5)


def test_dcn_expansion_crosses_the_input_cross_num_times(write_config):
    spec = _resolve(Z.config("DCN"), write_config)
    assert _structure(spec) == [
        ("dnn", MLP, ["all"]), ("cross", "recurrent", ["all", "all"]),
        ("final_dnn", MLP, ["dnn", "cross"]), ("output", "Dense", ["final_dnn"])]
    step = spec.model.backbone.dag.blocks["cross"].steps[0]
    assert (step.num, step.fixed_input_index, step.layer.class_name) == (3, 0, "CrossV1")
    model, pre = build_and_initialize(spec)
    features, values = _values(spec, model, pre)
    x0 = x = features["groups"]["all"].numpy()
    for layer in model.backbone.dag.blocks["cross"].layers:
        w, b = (v.numpy() for v in layer.weights)
        x = x0 * (x @ w) + b + x  # DCN eq. 3
    np.testing.assert_allclose(values["cross"].numpy(), x, rtol=1e-4, atol=1e-5)


def test_dlrm_expansion_interacts_the_bottom_mlp_with_the_sparse_fields(write_config):
    spec = _resolve(Z.config("DLRM"), write_config)
    assert _structure(spec) == [
        ("bot_dnn", MLP, ["dense"]), ("sparse_fields", "input_layer", ["sparse"]),
        ("interaction", "DotInteraction", ["bot_dnn", "sparse_fields"]),
        ("top_dnn", MLP, ["interaction", "sparse"]), ("output", "Dense", ["top_dnn"])]
    model, pre = build_and_initialize(spec)
    features, values = _values(spec, model, pre)
    vectors = np.stack([values["bot_dnn"].numpy()] + [f.numpy() for f in
                                                      features["lists"]["sparse"]], axis=1)
    gram = np.einsum("bnd,bmd->bnm", vectors, vectors)
    rows, cols = np.tril_indices(17, k=-1)  # 17 vectors: 136 pairs, each once
    assert values["interaction"].shape == (6, 136)
    np.testing.assert_allclose(np.sort(values["interaction"].numpy(), 1),
                               np.sort(gram[:, rows, cols], 1), rtol=1e-4, atol=1e-5)


def test_autoint_expansion(write_config):
    spec = _resolve(Z.config("AutoInt"), write_config)
    assert _structure(spec) == [
        ("all_fields", "input_layer", ["all"]),
        ("interacting_layers", "recurrent", ["all_fields"]),
        ("output", "Sequential", ["interacting_layers"])]
    model, pre = build_and_initialize(spec)
    _, values = _values(spec, model, pre)
    assert tuple(values["interacting_layers"].shape) == (6, 18, 8)  # 2 heads x 4
    assert len(model.backbone.dag.blocks["interacting_layers"].layers) == 2


def test_dssm_expansion_and_similarity_by_hand(write_config):
    spec = _resolve(Z.config("DSSM"), write_config)
    assert _structure(spec) == [
        ("user_tower", "Sequential", ["user"]), ("item_tower", "Sequential", ["item"]),
        ("similarity", "Similarity", ["user_tower", "item_tower"])]
    mlp = spec.model.backbone.dag.blocks["user_tower"].steps[0].layer.params
    assert (mlp["use_final_bn"], mlp["final_activation"]) == (False, "linear")  # linear last
    model, pre = build_and_initialize(spec)
    sim = model.backbone.dag.blocks["similarity"].layers[0]
    assert (sim.simi_func, sim.temperature, sim.scale_simi) == ("COSINE", pytest.approx(0.1),
                                                                 True)  # EasyRec's default
    sim.scale.assign([-2.0])
    sim.shift.assign([0.5])
    _, values = _values(spec, model, pre)
    u, v = values["user_tower"].numpy(), values["item_tower"].numpy()
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, rtol=1e-5)  # normalised
    want = (u * v).sum(1, keepdims=True) / 0.1 * 2.0 + 0.5
    np.testing.assert_allclose(values["similarity"].numpy(), want, rtol=1e-4, atol=1e-4)


def test_dssm_senet_expansion(write_config):
    spec = _resolve(Z.config("DSSM_SENet"), write_config)
    assert _structure(spec)[:3] == [
        ("user_fields", "input_layer", ["user"]), ("user_senet", "SENet", ["user_fields"]),
        ("user_tower", "Sequential", ["user_senet"])]
    senet = spec.model.backbone.dag.blocks["user_senet"].steps[0].layer.params
    # EasyRec's DSSM_SENet: the original SENet, whatever the proto defaults say
    assert senet == {"reduction_ratio": 4, "num_squeeze_group": 2, "use_skip_connection": False,
                     "use_output_layer_norm": False}


def test_mmoe_expansions(write_config):
    spec = _resolve(Z.config("MMoE"), write_config)
    assert _structure(spec) == [("mmoe", "MMoE", ["all"])]
    assert spec.model.backbone.dag.outputs == ["mmoe"]
    assert [(t.name, t.label, t.dnn["hidden_units"]) for t in spec.towers] == [
        ("ctr", "clk", [16, 8]), ("cvr", "buy", [16, 8])]
    params = spec.model.backbone.dag.blocks["mmoe"].steps[0].layer.params
    assert (params["num_task"], params["num_expert"]) == (2, 3)
    spec = _resolve(Z.config("MMoE_experts"), write_config)
    assert _structure(spec) == [
        ("wide_expert", MLP, ["all"]), ("deep_expert", MLP, ["all"]),
        ("mmoe", "MMoE", ["wide_expert", "deep_expert", "all"])]


def test_esmm_expansion_multiplies_cvr_by_ctr(write_config):
    spec = _resolve(Z.config("ESMM"), write_config)
    assert _structure(spec) == [
        ("user_dnn", MLP, ["user"]), ("item_dnn", MLP, ["item"]),
        ("bottom", "Identity", ["user_dnn", "item_dnn"])]
    ctr, cvr = spec.towers
    assert (ctr.name, ctr.label, cvr.name, cvr.label) == ("ctr", "clk", "cvr", "buy")
    assert cvr.prob_product_of == ["ctr"] and ctr.prob_product_of == []


def test_esmm_takes_easyrecs_labels_cvr_first(write_config):
    text = Z.config("ESMM").replace('      label_name: "buy"\n', "").replace(
        '      label_name: "clk"\n', "")
    spec = _resolve(text, write_config)
    assert [(t.name, t.label) for t in spec.towers] == [("ctr", "buy"), ("cvr", "clk")]


def test_dbmtl_expansion_relation_towers(write_config):
    spec = _resolve(Z.config("DBMTL"), write_config)
    assert _structure(spec) == [
        ("bottom_dnn", MLP, ["all"]), ("ctr_dnn", MLP, ["bottom_dnn"]),
        ("ctr_relation_dnn", MLP, ["ctr_dnn"]), ("cvr_dnn", MLP, ["bottom_dnn"]),
        ("cvr_relation_dnn", MLP, ["cvr_dnn", "ctr_relation_dnn"])]
    assert spec.model.backbone.dag.outputs == ["ctr_relation_dnn", "cvr_relation_dnn"]
    assert all(t.dnn is None for t in spec.towers)  # moved into the backbone
    spec = _resolve(Z.config("DBMTL_mmoe"), write_config)
    assert _structure(spec) == [
        ("bottom_dnn", MLP, ["all"]), ("mmoe", "MMoE", ["bottom_dnn"]),
        ("ctr_dnn", MLP, ["mmoe[0]"]), ("ctr_relation_dnn", MLP, ["ctr_dnn"]),
        ("cvr_relation_dnn", MLP, ["mmoe[1]", "ctr_relation_dnn"])]
    model, pre = build_and_initialize(spec)
    _, values = _values(spec, model, pre)
    relation = model.backbone.dag.blocks["cvr_relation_dnn"].layers[0]
    want = relation(tf.concat([values["mmoe"][1], values["ctr_relation_dnn"]], -1))
    np.testing.assert_allclose(values["cvr_relation_dnn"].numpy(), want.numpy(), rtol=1e-5)


def test_multi_task_model_relation_dnn_expands_too(write_config):
    text = Z.data("a.csv", "b.csv", ("clk", "buy")) + Z.model(
        "MultiTaskModel", Z.group("all", Z.ALL), """
  backbone {
    blocks { name: "bottom" inputs { feature_group_name: "all" }
             keras_layer { class_name: "MLP" mlp { hidden_units: [16] } } }
  }
  model_params {
    task_towers { tower_name: "ctr" label_name: "clk" dnn { hidden_units: [8] }
                  relation_dnn { hidden_units: [4] } }
    task_towers { tower_name: "cvr" label_name: "buy" relation_tower_names: "ctr"
                  relation_dnn { hidden_units: [4] } }
    task_towers { tower_name: "plain" label_name: "clk" dnn { hidden_units: [2] } }
    l2_regularization: 1e-6
  }""")
    spec = _resolve(text, write_config)
    assert spec.model.expanded_from is None
    assert _structure(spec) == [
        ("bottom", MLP, ["all"]), ("ctr_dnn", MLP, ["bottom"]),
        ("ctr_relation_dnn", MLP, ["ctr_dnn"]),
        ("cvr_relation_dnn", MLP, ["bottom", "ctr_relation_dnn"])]
    assert spec.model.backbone.dag.outputs == ["ctr_relation_dnn", "cvr_relation_dnn", "bottom"]
    assert [t.dnn and t.dnn["hidden_units"] for t in spec.towers] == [None, None, [2]]
    bad = text.replace('relation_tower_names: "ctr"', 'relation_tower_names: "plain"')
    with pytest.raises(ConfigError, match="tower 'cvr': relation_dnn reads the relation_dnn "
                                          "output of tower 'plain', which is not an earlier"):
        _resolve(bad, write_config)


def test_simple_multi_task_and_ple_expansions(write_config):
    spec = _resolve(Z.config("SimpleMultiTask"), write_config)
    assert _structure(spec) == [("all", "input_layer", ["all"])]
    assert spec.model.backbone.dag.outputs == ["all"] and len(spec.towers) == 2
    spec = _resolve(Z.config("PLE"), write_config)
    assert _structure(spec) == [("ple", "PLE", ["all"])]
    params = spec.model.backbone.dag.blocks["ple"].steps[0].layer.params
    assert params["num_task"] == 2 and len(params["extraction_networks"]) == 2
    assert params["extraction_networks"][1]["task_expert_net"]["hidden_units"] == [16]


# ---- validate --expand: a config a user can copy ---------------------------------------------

@pytest.mark.parametrize("name", ["DeepFM", "DBMTL_mmoe", "DSSM_softmax", "ESMM"])
def test_expanded_config_builds_the_same_model(name, write_config):
    text = Z.config(name)
    loaded = load_config(write_config(text))
    expanded = templates.expanded_text(loaded)
    assert expanded.startswith(f"# model_class {Z.MODELS[name][1].split(chr(34))[1]} "
                               "(built-in template), expanded by easyblocks")
    body = expanded[expanded.index("model_config {"):]
    copied = text[:text.index("model_config {")] + body
    direct, again = resolve(loaded), resolve(parse_config_text(copied, "copy.config"))
    assert again.model.expanded_from is None and again.model.model_class == \
        direct.model.model_class
    assert _structure(again) == _structure(direct)
    assert [b.steps for b in again.model.backbone.dag.blocks.values()] == \
        [b.steps for b in direct.model.backbone.dag.blocks.values()]
    assert again.towers == direct.towers and again.groups == direct.groups


def test_validate_expand_on_the_command_line(write_config):
    path = write_config(Z.config("MultiTower"))
    out = subprocess.run([sys.executable, "-m", "easyblocks.cli", "validate", "--expand",
                          "--config", path], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert 'model_class: "RankModel"' in out.stdout and 'name: "final_dnn"' in out.stdout
    assert "model_class MultiTower: expanded into a RankModel" in out.stdout
    assert out.stdout.rstrip().endswith(": OK")


def test_template_expansion_needs_no_tensorflow(write_config):
    path = write_config(Z.config("DBMTL_mmoe"))
    code = ("import sys\nfrom easyblocks.config.loader import load_config\n"
            "from easyblocks.config.resolve import resolve\n"
            f"spec = resolve(load_config({path!r}))\nprint(spec.model.expanded_from)\n"
            "print('TF', any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split() == ["DBMTL", "TF", "False"], out.stderr


# ---- errors: one line, file:line --------------------------------------------------------------

def _error(text: str, write_config) -> tuple[str, str]:
    path = write_config(text)
    with pytest.raises(ConfigError) as e:
        resolve(load_config(path))
    return str(e.value), path


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_errors_name_the_line_and_the_model_class(write_config):
    text = Z.config("DeepFM").replace('group_name: "deep"', 'group_name: "dense"')
    msg, path = _error(text, write_config)
    assert msg == (f"{path}:{_line(text, 'feature_groups')}: model_class DeepFM: needs the "
                   "feature group(s) 'deep' (EasyRec's DeepFM reads groups 'wide', 'deep'); the "
                   "config has 'wide', 'dense'")
    text = Z.config("DeepFM_no_final").replace("l2_regularization: 1e-5",
                                               "wide_output_dim: 8")
    msg, path = _error(text, write_config)
    assert msg == (f"{path}:{_line(text, 'wide_output_dim')}: model_class DeepFM: without "
                   "final_dnn, wide_output_dim (8) must equal num_class (1) (the wide part is "
                   "added to the logit)")
    text = Z.config("MultiTower").replace('model_class: "MultiTower"', 'model_class: "DeepFM"')
    msg, path = _error(text, write_config)
    assert msg == (f"{path}:{_line(text, 'model_class')}: model_class DeepFM takes its "
                   "parameters from deepfm {}, got multi_tower {}")


def test_more_template_errors(write_config):
    text = Z.config("DLRM").replace("bot_dnn { hidden_units: [16, 8] }",
                                    "bot_dnn { hidden_units: [16, 4] }")
    msg, _ = _error(text, write_config)
    assert "arch_interaction_op 'dot' needs the bot_dnn output (4) and every sparse embedding " \
           "(8) to have one width" in msg
    text = Z.config("DCN").replace("  dcn {", '  backbone { blocks { name: "x" inputs { '
                                              'feature_group_name: "all" } } }\n  dcn {')
    msg, _ = _error(text, write_config)
    assert "model_class DCN: takes no backbone (EasyRec builds it without one)" in msg
    text = Z.config("ESMM").replace("      loss_type: CLASSIFICATION\n      metrics_set { auc {} }"
                                    "\n      dnn { hidden_units: [16, 8] }\n    }\n    ctr_tower",
                                    "      loss_type: L2_LOSS\n    }\n    ctr_tower")
    msg, _ = _error(text, write_config)
    assert "the cvr tower must be a binary CLASSIFICATION tower (num_class 1); L2_LOSS" in msg
    text = Z.config("DBMTL").replace('relation_tower_names: ["ctr"]',
                                     'relation_tower_names: ["ctrr"]')
    msg, _ = _error(text, write_config)
    assert "tower 'cvr': relation_dnn reads the relation_dnn output of tower 'ctrr', which is " \
           "not an earlier tower with relation_dnn (did you mean: ctr?)" in msg


def test_refused_fields_and_classes_of_the_zoo(write_config):
    text = Z.config("DSSM").replace("simi_func: COSINE", "simi_func: EUCLID")
    msg, path = _error(text, write_config)
    assert msg == (f"{path}:{_line(text, 'EUCLID')}: model_config.dssm.simi_func = EUCLID: "
                   "EasyRec computes an inner product for EUCLID (a defect); use COSINE or "
                   "INNER_PRODUCT")
    text = Z.config("DSSM").replace("temperature: 0.1", "ignore_in_batch_neg_sam: true")
    msg, _ = _error(text, write_config)
    assert "ignore_in_batch_neg_sam: without a negative sampler" in msg
    text = Z.config("MultiTower").replace("final_dnn {", 'din_towers { input: "user" }\n'
                                                         "    final_dnn {")
    msg, _ = _error(text, write_config)
    assert "multi_tower.din_towers[0]: din_towers (model_class MultiTowerDIN) reads " \
           "seq_att_groups, which are not implemented yet" in msg
    text = Z.config("MultiTower").replace('"MultiTower"', '"MultiTowerDIN"')
    msg, path = _error(text, write_config)
    assert msg == (f"{path}:{_line(text, 'MultiTowerDIN')}: model_config.model_class = "
                   "'MultiTowerDIN': model_class MultiTowerDIN is not available yet: its "
                   "din_towers read seq_att_groups, which are not implemented yet")
    text = Z.config("MultiTower").replace('"MultiTower"', '"MultiTowr"')
    msg, _ = _error(text, write_config)
    assert "model_class 'MultiTowr' is not supported (did you mean: MultiTower" in msg


# ---- a plugin registers a model class like a block --------------------------------------------

PLUGIN = '''
from easyblocks import register_model_class
from easyblocks.config.templates.build import G, Backbone, base_model, rank_output


@register_model_class("TwoLayerNet", "model_params")
def two_layer_net(ctx):
    """A plugin's model class: an MLP on group `all`, then the logit."""
    build = Backbone(ctx.model)
    hidden = build.keras("hidden", [G("all")], "Dense", st={"units": 4, "activation": "relu"})
    out = build.dense("output", [build_input(hidden)], 1)
    return rank_output(base_model(ctx.model, "RankModel", 0.0), out)


def build_input(name):
    from easyblocks.config.templates.build import B
    return B(name)
'''


def test_a_plugin_registers_a_model_class(write_config, tmp_path):
    plugin = tmp_path / "my_model_classes.py"
    plugin.write_text(PLUGIN)
    text = (f'plugins: "{plugin}"\n' + Z.data("a.csv", "b.csv") + Z.model(
        "TwoLayerNet", Z.group("all", Z.ALL), "  model_params { }"))
    path = write_config(text)
    # the plugin policy holds for a model class's plugins too: a config names modules only, a
    # .py file runs only with --allow-config-plugins (it is refused before it is imported)
    with pytest.raises(ConfigError, match=r"test.config:1: plugins: .* is not a module name"):
        api.validate_config(path)
    assert templates.get_model_class("TwoLayerNet") is None
    table = api.validate_config(path, allow_config_plugins=True)
    assert table.splitlines()[0].startswith("model_class TwoLayerNet: expanded into a RankModel")
    spec = api.resolve(path, allow_config_plugins=True)
    assert _structure(spec) == [("hidden", "Dense", ["all"]), ("output", "Dense", ["hidden"])]
    assert templates.get_model_class("TwoLayerNet").source.startswith("plugin module")


BAD_TEMPLATES = '''
from easyblocks import register_model_class
from easyblocks.config.templates.build import G, Backbone, base_model, rank_output


@register_model_class("WideSliceNet", "model_params")
def wide_slice_net(ctx):
    """Slices columns 0:1000 of group `all` (narrower than that)."""
    build = Backbone(ctx.model)
    inp = G("all")
    inp.input_slice = "[:, 0:1000]"
    out = build.dense("output", [inp], 1)
    return rank_output(base_model(ctx.model, "RankModel", 0.0), out)


@register_model_class("NanNet", "model_params")
def nan_net(ctx):
    """Computes a non-finite l2_regularization."""
    build = Backbone(ctx.model)
    out = build.dense("output", [G("all")], 1)
    return rank_output(base_model(ctx.model, "RankModel", float("inf") * 0), out)
'''


@pytest.mark.parametrize("name, message", [
    ("WideSliceNet", r"input_slice \[:, 0:1000\] selects beyond the input's 144 columns "
                     r"on axis 1"),
    ("NanNet", r"model_config.model_params.l2_regularization is nan; every number in a config "
               r"must be finite"),
])
def test_static_checks_read_the_expanded_model(name, message, write_config, tmp_path):
    """config/checks.py runs on what a template built, not only on what the file says."""
    plugin = tmp_path / "bad_model_classes.py"
    plugin.write_text(BAD_TEMPLATES)
    path = write_config(Z.data("a.csv", "b.csv") + Z.model(
        name, Z.group("all", Z.ALL), "  model_params { }"))
    with pytest.raises(ConfigError, match=message):
        api.resolve(path, [str(plugin)])


# ---- training: every model class trains a few steps ------------------------------------------

TRAIN = os.path.join(SAMPLES, "data", "taobao_train.csv")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoo_data")
    lines = open(TRAIN).read().splitlines()
    buys = [line for line in lines[:20000] if line.startswith("1,1,")][:64]  # buy = 1 rows
    rows = [line for line in lines[:1000] if not line.startswith("1,1,")][:448] + buys
    np.random.default_rng(0).shuffle(rows)  # both labels in both files
    (folder / "train.csv").write_text("\n".join(rows[:256]) + "\n")
    (folder / "test.csv").write_text("\n".join(rows[256:]) + "\n")
    return str(folder / "train.csv"), str(folder / "test.csv")


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in sorted(Z.MODELS) if n not in (
    "DeepFM_no_final", "MMoE_experts", "DBMTL_mmoe")])
def test_every_model_class_trains_a_few_steps(name, tiny_data, write_config, tmp_path):
    path = write_config(Z.config(name, *tiny_data))
    results = api.train(path, model_dir=str(tmp_path / "run"))
    assert results["step"] == 3
    for tower in results["towers"].values():
        assert 0.0 <= tower["overall"]["auc"] <= 1.0 and tower["overall"]["count"] == 256
        assert np.isfinite(tower["overall"]["logloss"])


def test_l2_regularization_of_a_model_without_dense_kernels(write_config):
    """EasyRec's FM has wide tables and a bias, no kernel: its l2 term is 0, not an error."""
    spec = _resolve(Z.config("FM"), write_config)
    assert spec.model.l2_regularization == pytest.approx(1e-4)  # FMModel's default
    model, pre = build_and_initialize(spec)
    assert model.dense_kernels() == []
    outputs, emb_l2 = model.forward(pre(dummy_columns(spec)), training=True)
    terms = model.compute_losses({"clk": tf.constant([1, 0, 0, 1])}, outputs, emb_l2)
    assert float(terms["loss/regularization"]) == pytest.approx(1e-7 * float(emb_l2), rel=1e-4)


def test_softmax_cross_entropy_needs_a_two_tower_similarity(write_config):
    text = Z.data("a.csv", "b.csv") + Z.model("RankModel", Z.group("all", Z.ALL), """
  backbone {
    blocks { name: "mlp" inputs { feature_group_name: "all" }
             keras_layer { class_name: "MLP" mlp { hidden_units: [1] } } }
    concat_blocks: "mlp"
  }""", "  loss_type: SOFTMAX_CROSS_ENTROPY\n  logit_from_backbone: true\n")
    msg, path = _error(text, write_config)
    assert msg == (f"{path}:{_line(text, 'SOFTMAX_CROSS_ENTROPY')}: tower 'clk': "
                   "SOFTMAX_CROSS_ENTROPY over in-batch negatives needs its logit to be a "
                   "two-tower similarity: logit_from_backbone and one backbone output block (a "
                   "Similarity block) with two block inputs, the user and the item vectors, "
                   "merge_inputs_into_list; output block 'mlp' is not")
    text = Z.config("DSSM_softmax").replace('item_id: "adgroup_id"', 'item_id: "adgroup"')
    msg, _ = _error(text, write_config)
    assert "tower 'clk': item_id 'adgroup' is not a feature (did you mean: adgroup_id" in msg
    spec = _resolve(Z.config("DSSM_softmax"), write_config)
    spec.towers[0].in_batch = type(spec.towers[0].in_batch)("user_tower", "user_tower",
                                                            "item_tower")
    with pytest.raises(ConfigError, match="needs block 'user_tower' to be a Similarity block "
                                          r"\(a layer with pair_logits\), got MLP"):
        build_and_initialize(spec)


@pytest.mark.slow
def test_dssm_towers_export_alone_and_reproduce_the_logit(tiny_data, write_config, tmp_path):
    from easyblocks.data.csv_input import CSVInput
    from easyblocks.models.state import ModelState

    path = write_config(Z.config("DSSM", *tiny_data))
    model_dir = str(tmp_path / "run")
    api.train(path, model_dir=model_dir)
    exported = {b: api.export(path, model_dir=model_dir, export_dir=str(tmp_path / b),
                              blocks=[b]) for b in ("user_tower", "item_tower")}
    user, item = (tf.saved_model.load(exported[b]).signatures["serving_default"]
                  for b in ("user_tower", "item_tower"))
    user_cols, item_cols = (set(s.structured_input_signature[1]) for s in (user, item))
    assert "user_id" in user_cols and "adgroup_id" not in user_cols
    assert "adgroup_id" in item_cols and "user_id" not in item_cols
    state = ModelState(api.resolve(path), model_dir=model_dir)
    state.restore(required=True)
    rows = open(tiny_data[1]).read().splitlines()[:32]
    columns = CSVInput(state.spec.data, state.preprocessor, []).parse(tf.constant(rows))
    logits = state.model(state.preprocessor(columns), training=False)["logits_clk"].numpy()
    u = user(**{k: columns[k] for k in user_cols})["user_tower"].numpy()
    v = item(**{k: columns[k] for k in item_cols})["item_tower"].numpy()
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, rtol=1e-5)  # COSINE: unit
    sim = state.model.backbone.dag.blocks["similarity"].layers[0]
    want = (u * v).sum(1) / 0.1 * abs(float(sim.scale.numpy()[0])) + float(sim.shift.numpy()[0])
    np.testing.assert_allclose(logits, want, rtol=1e-4, atol=1e-4)
