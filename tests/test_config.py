"""Config parsing and semantic validation: errors name file, line and field."""

import os
import re

import pytest
from conftest import SEEDS, tiny_config

from easyblocks.config.loader import load_config, parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError
from easyblocks.protos.loss_pb2 import LossType

SEED_004 = os.path.join(SEEDS, "004_4cd2d19f9128db1a.txt")
ELIDED = ("cms_group_id age_level pvalue_level shopping_level occupation new_user_class_level "
          "adgroup_id cate_id campaign_id customer brand price pid tag_category_list").split()


def seed_model_config() -> str:
    """The model_config block of seed 004, with the document's `...` elision filled in."""
    if not os.path.isfile(SEED_004):
        pytest.skip("seed 004 is not available")
    text = open(SEED_004, encoding="utf-8").read()
    start = text.index("model_config {")
    depth, end = 0, start
    for i in range(start, len(text)):
        depth += text[i] == "{"
        depth -= text[i] == "}"
        if depth == 0 and text[i] == "}":
            end = i + 1
            break
    block = text[start:end]
    filled = "\n".join(f'    feature_names: "{f}"' for f in ELIDED)
    return block.replace("    ...\n", filled + "\n")


def test_seed_004_model_config_parses():
    loaded = parse_config_text(seed_model_config(), "seed004")
    model = loaded.proto.model_config
    assert model.model_class == "MultiTaskModel"
    assert [b.name for b in model.backbone.blocks] == [
        "share_bottom", "ctr_tower", "cvr_tower", "cvr_aitm"]
    assert list(model.backbone.output_blocks) == ["ctr_tower", "cvr_aitm"]
    assert list(model.backbone.blocks[0].keras_layer.mlp.hidden_units) == [512, 256]
    aitm = model.backbone.blocks[3]
    assert aitm.merge_inputs_into_list
    assert aitm.keras_layer.class_name == "AITMTower"
    assert list(aitm.keras_layer.aitm.transfer_mlp.hidden_units) == [128]
    cvr = model.model_params.task_towers[1]
    assert [LossType.Name(loss.loss_type) for loss in cvr.losses] == [
        "CLASSIFICATION", "ORDER_CALIBRATE_LOSS"]
    assert model.model_params.l2_regularization == pytest.approx(1e-6)
    assert model.embedding_regularization == pytest.approx(5e-6)
    assert len(model.feature_groups[0].feature_names) == 17


def test_syntax_error_names_file_line_column(write_config):
    path = write_config('model_dir: "x"\ntrain_config {\n  num_stepz: 3\n}\n')
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}:3:")
    assert "num_stepz" in msg and "did you mean: num_steps" in msg


def test_missing_file():
    with pytest.raises(ConfigError, match="no such config file"):
        load_config("/nonexistent/x.config")


def _validate(text):
    return resolve(parse_config_text(text, "t.config"))


def test_valid_tiny_config():
    resolved = _validate(tiny_config('backbone { blocks { name: "b" inputs { feature_group_name: '
                                     '"all" } } }'))
    assert {g: list(s.features) for g, s in resolved.groups.items()} == \
        {"all": ["user", "tags", "price"], "user": ["user"]}
    assert [t.name for t in resolved.towers] == ["clk"]


@pytest.mark.parametrize("broken, expected", [
    ('feature_names: ["user", "tags", "price"]', r"t.config:\d+: feature group 'all': unknown "
     r"feature 'pricee' \(did you mean: price\?\)"),
    ('label_fields: "clk"', r"label field 'clkk' is not an input field \(did you mean: clk\?\)"),
    ('input_names: "user"', r"input 'usr' is not in data_config.input_fields \(did you mean: "
     r"user\?\)"),
    ('model_class: "RankModel"', r"model_class 'RankModdel' is not supported \(did you mean: "
     r"RankModel"),
])
def test_semantic_errors_name_the_place(broken, expected):
    text = tiny_config('backbone { blocks { name: "b" inputs { feature_group_name: "all" } } }')
    fixes = {
        'feature_names: ["user", "tags", "price"]': 'feature_names: ["user", "tags", "pricee"]',
        'label_fields: "clk"': 'label_fields: "clkk"',
        'input_names: "user"': 'input_names: "usr"',
        'model_class: "RankModel"': 'model_class: "RankModdel"',
    }
    text = text.replace(broken, fixes[broken], 1)
    with pytest.raises(ConfigError) as e:
        _validate(text)
    assert re.search(expected, str(e.value)), str(e.value)


def test_feature_needs_exactly_one_id_mapping():
    text = tiny_config('backbone { blocks { name: "b" inputs { feature_group_name: "all" } } }')
    text = text.replace("hash_bucket_size: 100", "hash_bucket_size: 100 vocab_list: ['a']")
    with pytest.raises(ConfigError, match="feature 'user': set exactly one of hash_bucket_size"):
        _validate(text)


def test_shared_embedding_name_needs_equal_shapes():
    text = tiny_config('backbone { blocks { name: "b" inputs { feature_group_name: "all" } } }')
    text = text.replace("embedding_dim: 4 hash_bucket_size: 100",
                        'embedding_dim: 4 hash_bucket_size: 100 embedding_name: "shared"')
    text = text.replace("embedding_dim: 4 hash_bucket_size: 50",
                        'embedding_dim: 4 hash_bucket_size: 50 embedding_name: "shared"')
    with pytest.raises(ConfigError, match="share embedding_name 'shared' but have different"):
        _validate(text)


def test_order_calibrate_loss_without_relation_is_an_error_when_not_inferable():
    text = tiny_config("""
      model_params {
        task_towers { tower_name: "a" label_name: "clk" }
        task_towers { tower_name: "b" label_name: "buy"
                      losses { loss_type: CLASSIFICATION }
                      losses { loss_type: ORDER_CALIBRATE_LOSS } }
      }
      backbone { blocks { name: "x" inputs { feature_group_name: "all" } } }
    """).replace('"RankModel"', '"MultiTaskModel"')
    with pytest.raises(ConfigError, match="tower 'b': ORDER_CALIBRATE_LOSS needs "
                                          "relation_tower_names"):
        _validate(text)
