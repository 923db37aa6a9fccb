"""EasyRec's config language: merge semantics, the field table (every field has a state,
refused fields are one error line with file:line, not-applicable ones one warning line),
`validate --explain`, input blocks named like their group, the RankModel logit rule.

The configs here are written for these tests in EasyRec's style.
"""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np
import pytest
from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor

from easyblocks.config import easyrec_fields as T
from easyblocks.config.easyrec_check import check_fields, enforce, field_lines
from easyblocks.config.loader import load_config, parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError
from easyblocks.protos import pipeline_pb2

# An EasyRec-style config: train_config as EasyRec writes it (sync_replicas, the step
# count repeated), an input_layer block named after its feature group.
EASYREC_STYLE = """\
train_input_path: "data/train.csv"
eval_input_path: "data/eval.csv"
model_dir: "experiments/rank"
train_config {
  log_step_count_steps: 100
  optimizer_config: {
    adam_optimizer: {
      learning_rate: {
        exponential_decay_learning_rate {
          initial_learning_rate: 0.001
          decay_steps: 1000
          decay_factor: 0.5
          min_learning_rate: 0.00001
        }
      }
    }
    use_moving_average: false
  }
  log_step_count_steps: 200
  sync_replicas: true
  num_steps: 100
}
eval_config {
  metrics_set: {
    auc {}
  }
}
data_config {
  input_fields {
    input_name: "clk"
    input_type: INT32
  }
  input_fields {
    input_name: "user_id"
    input_type: STRING
  }
  input_fields {
    input_name: "price"
    input_type: DOUBLE
  }
  label_fields: "clk"
  batch_size: 32
  num_epochs: 1
  prefetch_size: 4
  input_type: CSVInput
}
feature_config: {
  features: {
    input_names: "user_id"
    feature_type: IdFeature
    embedding_dim: 4
    hash_bucket_size: 100
  }
  features: {
    input_names: "price"
    feature_type: RawFeature
    boundaries: [1.0, 10.0]
    embedding_dim: 4
  }
}
model_config: {
  model_class: "RankModel"
  feature_groups: {
    group_name: "all"
    feature_names: "user_id"
    feature_names: "price"
    wide_deep: DEEP
  }
  backbone {
    blocks {
      name: "all"
      inputs {
        feature_group_name: "all"
      }
      input_layer {
        only_output_3d_tensor: true
      }
    }
    blocks {
      name: "flat"
      inputs {
        feature_group_name: "all"
      }
      lambda {
        expression: "lambda x: tf.reshape(x, [-1, 8])"
      }
    }
    blocks {
      name: "mlp"
      inputs {
        block_name: "flat"
      }
      keras_layer {
        class_name: "MLP"
        mlp {
          hidden_units: [8, 4]
        }
      }
    }
    concat_blocks: "mlp"
  }
  model_params {
    l2_regularization: 1e-6
  }
  embedding_regularization: 1e-5
}
"""


def _line_of(text: str, needle: str, nth: int = 0) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return lines[nth]


class _Captured(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def easyblocks_log():
    handler = _Captured()
    log = logging.getLogger("easyblocks")
    log.addHandler(handler)
    try:
        yield handler.messages
    finally:
        log.removeHandler(handler)


# ---- merge semantics, warnings, the input_layer rule -----------------------------------------

def test_easyrec_style_config_validates_with_merge_semantics_and_one_warning(write_config):
    path = write_config(EASYREC_STYLE, "rank.config")
    loaded = load_config(path)
    assert loaded.proto.train_config.log_step_count_steps == 200  # written twice: last wins
    with easyblocks_log() as messages:
        resolved = resolve(loaded)
    warnings = [m for m in messages if "not applicable" in m]
    assert len(warnings) == 1
    line = _line_of(EASYREC_STYLE, "sync_replicas")
    assert warnings[0] == (
        f"warning: {path}: accepted, not applicable in easyblocks (no effect on the model; "
        f"easyblocks validate --explain says why): train_config.sync_replicas (line {line})")
    assert resolved.towers[0].label == "clk"


def test_input_layer_block_named_after_its_group_feeds_feature_group_inputs(write_config):
    from easyblocks.models.build import build_and_initialize, dummy_columns

    resolved = resolve(load_config(write_config(EASYREC_STYLE, "rank.config")))
    model, pre = build_and_initialize(resolved)
    features = model.feature_groups(pre(dummy_columns(resolved)))
    values = model.backbone.dag.block_values(features, training=False)
    # `flat` reads feature_group_name "all": the output of block "all" (its options: 3-d)
    assert tuple(values["all"].shape) == (4, 2, 4)
    np.testing.assert_allclose(values["flat"].numpy(),
                               values["all"].numpy().reshape(4, 8))
    assert model.backbone.dag.order.index("all") < model.backbone.dag.order.index("flat")


def test_only_input_blocks_may_take_a_group_name(write_config):
    backbone = EASYREC_STYLE[EASYREC_STYLE.index("  backbone {"):
                             EASYREC_STYLE.index("  model_params {")]
    text = EASYREC_STYLE.replace(backbone, """  backbone {
    blocks {
      name: "all"
      inputs {
        feature_group_name: "all"
      }
      keras_layer {
        class_name: "MLP"
        mlp {
          hidden_units: [4]
        }
      }
    }
  }
""")
    with pytest.raises(ConfigError, match="block 'all': a block may not have the name of a "
                                          "feature group"):
        resolve(load_config(write_config(text)))


DEEPFM_BACKBONE = """
  feature_groups: {
    group_name: "wide"
    feature_names: "user_id"
    feature_names: "price"
    wide_deep: WIDE
  }
  backbone {
    blocks {
      name: "wide"
      inputs {
        feature_group_name: "wide"
      }
      input_layer {
        wide_output_dim: 1
      }
    }
    blocks {
      name: "wide_logit"
      inputs {
        feature_group_name: "wide"
      }
      lambda {
        expression: "lambda x: tf.reduce_sum(x, axis=1, keepdims=True)"
      }
    }
    blocks {
      name: "deep_features"
      inputs {
        feature_group_name: "all"
      }
      input_layer {
        output_2d_tensor_and_feature_list: true
      }
    }
    blocks {
      name: "fm"
      inputs {
        block_name: "deep_features"
        input_slice: "[1]"
      }
      keras_layer {
        class_name: "FM"
        st_params {
          fields {
            key: "use_variant"
            value { bool_value: true }
          }
        }
      }
    }
    blocks {
      name: "deep"
      inputs {
        block_name: "deep_features"
        input_slice: "[0]"
      }
      keras_layer {
        class_name: "MLP"
        mlp {
          hidden_units: [8, 4]
        }
      }
    }
    concat_blocks: ["wide_logit", "fm", "deep"]
  }
"""


def test_deepfm_style_backbone_with_input_layer_output_options(write_config):
    from easyblocks.models.build import build_and_initialize, dummy_columns

    backbone = EASYREC_STYLE[EASYREC_STYLE.index("  backbone {"):
                             EASYREC_STYLE.index("  model_params {")]
    text = EASYREC_STYLE.replace(backbone, DEEPFM_BACKBONE)
    resolved = resolve(load_config(write_config(text)))
    model, pre = build_and_initialize(resolved)
    features = model.feature_groups(pre(dummy_columns(resolved)))
    values = model.backbone.dag.block_values(features, training=False)
    concat, fields = values["deep_features"]  # [the 2-d concatenation, the feature list]
    assert tuple(concat.shape) == (4, 8) and [tuple(f.shape) for f in fields] == [(4, 4)] * 2
    np.testing.assert_allclose(concat.numpy(), np.concatenate([f.numpy() for f in fields], -1))
    v1, v2 = (f.numpy() for f in fields)
    np.testing.assert_allclose(values["fm"].numpy(), v1 * v2, rtol=1e-5, atol=1e-7)  # 2 fields
    wide = features["groups"]["wide"].numpy()  # one 1-d weight per feature (wide_output_dim 1)
    assert wide.shape == (4, 2)
    np.testing.assert_allclose(values["wide_logit"].numpy(), wide.sum(1, keepdims=True))
    assert tuple(model.backbone(features, training=False).shape) == (4, 1 + 4 + 4)


def test_wide_output_dim_sets_the_width_of_every_wide_feature(write_config):
    from easyblocks.models.build import build_and_initialize, dummy_columns

    backbone = EASYREC_STYLE[EASYREC_STYLE.index("  backbone {"):
                             EASYREC_STYLE.index("  model_params {")]
    text = EASYREC_STYLE.replace(backbone, DEEPFM_BACKBONE.replace("wide_output_dim: 1",
                                                                   "wide_output_dim: 16"))
    resolved = resolve(load_config(write_config(text)))
    assert resolved.groups["wide"].wide_dim == 16 and resolved.groups["all"].wide_dim == 1
    model, pre = build_and_initialize(resolved)
    assert tuple(model.feature_groups.wide_tables["user_id"].shape) == (100, 16)
    features = model.feature_groups(pre(dummy_columns(resolved)))
    assert [tuple(f.shape) for f in features["lists"]["wide"]] == [(4, 16), (4, 16)]
    assert model.feature_groups.group_dims()["wide"] == 32
    two = text.replace('name: "deep_features"\n      inputs {\n        feature_group_name: "all"'
                       '\n      }\n      input_layer {',
                       'name: "deep_features"\n      inputs {\n        feature_group_name: "all"'
                       '\n      }\n      input_layer {\n        wide_output_dim: 4')
    with pytest.raises(ConfigError, match="input_layer wide_output_dim must be one value for "
                                          r"the model, got \[4, 16\]"):
        resolve(load_config(write_config(two)))


# ---- refused fields: one error line each -----------------------------------------------------

def _honoured_paths() -> dict[str, tuple]:
    """For each message type reachable through honoured fields: one path of field
    descriptors from EasyRecConfig to it (breadth first: the shortest)."""
    root = pipeline_pb2.EasyRecConfig.DESCRIPTOR
    paths = {"EasyRecConfig": ()}
    queue = [(root, ())]
    while queue:
        desc, path = queue.pop(0)
        for field in desc.fields:
            if field.type != FieldDescriptor.TYPE_MESSAGE:
                continue
            key = f"{_short(desc)}.{field.name}"
            state = T.FIELDS.get(key)
            if state is None or state.state != T.HONOURED or _is_block_params(desc, field):
                continue
            name = _short(field.message_type)
            if name not in paths:
                paths[name] = path + (field,)
                queue.append((field.message_type, path + (field,)))
    return paths


def _short(desc) -> str:
    return desc.full_name.split(".", 2)[-1]


def _is_block_params(desc, field) -> bool:
    key = f"{_short(desc)}.{field.name}"
    return key in T.BLOCK_PARAM_FIELDS or (
        _short(desc) == "KerasLayer" and field.containing_oneof is not None)


def _set(msg, field, state: T.FieldState):
    """Sets `field` of msg to a value that is not honoured (not in state.ok)."""
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        sub = getattr(msg, field.name)
        (sub.add() if field.is_repeated else sub).SetInParent()
        return
    if field.type == FieldDescriptor.TYPE_BOOL:
        value = False if True in state.ok else True
    elif field.type == FieldDescriptor.TYPE_STRING:
        value = "x"
    elif field.type == FieldDescriptor.TYPE_ENUM:
        value = [v.number for v in field.enum_type.values if v.number not in state.ok][-1]
    else:
        value = 7
    if field.is_repeated:
        getattr(msg, field.name).append(value)
    else:
        setattr(msg, field.name, value)


def _build(path: tuple, leaf, state) -> tuple[pipeline_pb2.EasyRecConfig, str]:
    """A config setting only `leaf` at `path`; returns it and the field path text."""
    root = pipeline_pb2.EasyRecConfig()
    msg, parts = root, []
    for field in path:
        sub = getattr(msg, field.name)
        if field.is_repeated:
            sub = sub.add()
            parts.append(f"{field.name}[0]")
        else:
            sub.SetInParent()
            parts.append(field.name)
        msg = sub
    _set(msg, leaf, state)
    parts.append(f"{leaf.name}[0]" if leaf.is_repeated else leaf.name)
    return root, ".".join(parts)


def _cases(wanted: str):
    paths = _honoured_paths()
    for key, state in sorted(T.FIELDS.items()):
        if state.state != wanted:
            continue
        message, field_name = key.rsplit(".", 1)
        if message not in paths:
            continue  # under a refused field: never reached
        desc = paths[message][-1].message_type if paths[message] else \
            pipeline_pb2.EasyRecConfig.DESCRIPTOR
        yield pytest.param(paths[message], desc.fields_by_name[field_name], state, id=key)


def _text_and_line(root, leaf_name: str, depth: int) -> tuple[str, int]:
    text = text_format.MessageToString(root)
    indent = "  " * depth
    for i, line in enumerate(text.splitlines(), 1):
        if line.startswith(indent + leaf_name) and not line.startswith(indent + " "):
            return text, i
    raise AssertionError(f"{leaf_name} not in\n{text}")


@pytest.mark.parametrize("path, leaf, state", list(_cases(T.REFUSED)))
def test_each_refused_field_is_one_error_line(path, leaf, state, write_config):
    root, field_path = _build(path, leaf, state)
    text, line = _text_and_line(root, leaf.name, len(path))
    config = write_config(text)
    with pytest.raises(ConfigError) as e:
        enforce(load_config(config))
    assert str(e.value) == f"{config}:{line}: {field_path}: {state.reason}"


@pytest.mark.parametrize("path, leaf, state", list(_cases(T.NOT_APPLICABLE)))
def test_each_not_applicable_field_is_named_in_the_warning(path, leaf, state, write_config):
    root, field_path = _build(path, leaf, state)
    text, line = _text_and_line(root, leaf.name, len(path))
    config = write_config(text)
    with easyblocks_log() as messages:
        findings = enforce(load_config(config))
    assert [(f.path, f.state, f.reason, f.line) for f in findings] == [
        (field_path, T.NOT_APPLICABLE, state.reason, line)]
    assert len(messages) == 1 and f"{field_path} (line {line})" in messages[0]


def _enum_cases():
    """Every refused enum value, set on a field of that enum type reachable here."""
    paths = _honoured_paths()
    fields = {}
    for message, path in paths.items():
        desc = path[-1].message_type if path else pipeline_pb2.EasyRecConfig.DESCRIPTOR
        for field in desc.fields:
            if field.type == FieldDescriptor.TYPE_ENUM and \
                    T.FIELDS.get(f"{message}.{field.name}", T.R("")).state == T.HONOURED:
                fields.setdefault(_short(field.enum_type), (path, field))
    for key, state in sorted(T.ENUM_VALUES.items()):
        enum, value = key.rsplit(".", 1)
        if state.state == T.REFUSED:
            yield pytest.param(*fields[enum], value, state, id=key)


@pytest.mark.parametrize("path, field, value, state", list(_enum_cases()))
def test_each_refused_enum_value_is_one_error_line(path, field, value, state, write_config):
    root, field_path = _build(path, field, T.R("", ()))
    msg = root
    for f in path:
        msg = getattr(msg, f.name)
        msg = msg[0] if f.is_repeated else msg
    number = field.enum_type.values_by_name[value].number
    if field.is_repeated:
        getattr(msg, field.name)[0] = number
    else:
        setattr(msg, field.name, number)
    text, line = _text_and_line(root, field.name, len(path))
    config = write_config(text)
    with pytest.raises(ConfigError) as e:
        enforce(load_config(config))
    assert str(e.value) == f"{config}:{line}: {field_path} = {value}: {state.reason}"


def test_refused_fields_in_an_easyrec_config(write_config):
    text = EASYREC_STYLE.replace("    use_moving_average: false", "    use_moving_average: true")
    text = text.replace('  model_class: "RankModel"', '  model_class: "MIND"')
    text = text.replace("    boundaries: [1.0, 10.0]",
                        "    boundaries: [1.0, 10.0]\n    vocab_file: 'v.txt'")
    config = write_config(text)
    with pytest.raises(ConfigError) as e:
        resolve(load_config(config))
    line = _line_of(text, "use_moving_average")
    assert str(e.value) == (
        f"{config}:{line}: train_config.optimizer_config[0].use_moving_average: "
        "use_moving_average (weight averaging) is not implemented yet (and 2 more: "
        "easyblocks validate --explain lists them)")
    findings = check_fields(load_config(config))
    assert [(f.path, f.line) for f in findings if f.state == T.REFUSED] == [
        ("train_config.optimizer_config[0].use_moving_average", line),
        ("feature_config.features[1].vocab_file", _line_of(text, "vocab_file")),
        ('model_config.model_class = \'MIND\'', _line_of(text, "model_class")),
    ]
    assert findings[-1].reason == ("model_class MIND is not available yet: multi-interest "
                                   "capsule network over a behaviour sequence, not implemented "
                                   "yet")


def test_third_optimizer_and_second_gauc_are_refused(write_config):
    text = EASYREC_STYLE.replace("  sync_replicas: true", """  sync_replicas: true
  optimizer_config {
    adagrad_optimizer { learning_rate { constant_learning_rate { learning_rate: 0.1 } } }
  }
  optimizer_config {
    momentum_optimizer { learning_rate { constant_learning_rate { learning_rate: 0.1 } } }
  }""").replace("    auc {}", """    auc {}
  }
  metrics_set {
    gauc { uid_field: "user_id" }
  }
  metrics_set {
    gauc { uid_field: "price" reduction: "mean_by_sample_num" }""")
    findings = [(f.path, f.line) for f in check_fields(parse_config_text(text, "x.config"))
                if f.state == T.REFUSED]
    assert findings == [
        ("train_config.optimizer_config[2]", _line_of(text, "momentum_optimizer") - 1),
        ("eval_config.metrics_set[2].gauc", _line_of(text, "gauc", 1)),
    ]


def test_gauc_reduction_must_be_easyrecs(write_config):
    text = EASYREC_STYLE.replace("    auc {}", '    gauc { uid_field: "user_id" reduction: '
                                             '"median" }')
    with pytest.raises(ConfigError, match=r"x.config:\d+: eval_config.metrics_set\[0\].gauc."
                                          r"reduction: expected reduction mean \| "):
        enforce(parse_config_text(text, "x.config"))


# ---- the table covers every field ------------------------------------------------------------

def test_every_field_reachable_through_honoured_fields_has_a_state():
    paths = _honoured_paths()
    missing, enums = [], set()
    for message, path in paths.items():
        desc = path[-1].message_type if path else pipeline_pb2.EasyRecConfig.DESCRIPTOR
        for field in desc.fields:
            key = f"{message}.{field.name}"
            if key not in T.FIELDS:
                missing.append(key)
            elif field.type == FieldDescriptor.TYPE_ENUM and T.FIELDS[key].state == T.HONOURED:
                enums.add(field.enum_type)
    for enum in enums:
        for value in enum.values:
            if f"{_short(enum)}.{value.name}" not in T.ENUM_VALUES:
                missing.append(f"{_short(enum)}.{value.name}")
    assert not missing, f"fields without a state in easyrec_fields.FIELDS: {missing}"


def test_every_message_of_the_protos_is_part_of_the_config_language():
    """A message that EasyRecConfig cannot reach would escape the table: there is none."""
    import glob
    import importlib
    import os

    import easyblocks.protos

    defined = set()
    for path in glob.glob(os.path.join(os.path.dirname(easyblocks.protos.__file__),
                                       "*_pb2.py")):
        module = importlib.import_module(f"easyblocks.protos.{os.path.basename(path)[:-3]}")
        stack = list(module.DESCRIPTOR.message_types_by_name.values())
        while stack:
            desc = stack.pop()
            defined.add(desc.full_name)
            stack.extend(desc.nested_types)
    reached, stack = set(), [pipeline_pb2.EasyRecConfig.DESCRIPTOR]
    while stack:
        desc = stack.pop()
        if desc.full_name in reached:
            continue
        reached.add(desc.full_name)
        stack.extend(f.message_type for f in desc.fields
                     if f.type == FieldDescriptor.TYPE_MESSAGE)
    assert not sorted(d for d in defined - reached if not d.endswith("Entry"))


def test_every_table_entry_names_a_field_of_the_protos():
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.Default()
    stale = []
    for key in T.FIELDS:
        message, field = key.rsplit(".", 1)
        desc = pool.FindMessageTypeByName(f"easyblocks.protos.{message}")
        if field not in desc.fields_by_name:
            stale.append(key)
    for key in T.ENUM_VALUES:
        enum, value = key.rsplit(".", 1)
        if value not in pool.FindEnumTypeByName(f"easyblocks.protos.{enum}").values_by_name:
            stale.append(key)
    assert not stale


def test_docs_field_table_is_generated_from_the_table():
    import os

    from conftest import ROOT

    doc = open(os.path.join(ROOT, "docs", "easyrec.md"), encoding="utf-8").read()
    assert T.markdown_table() in doc, "docs/easyrec.md is stale: run " \
        "python benchmarks/easyrec_compat.py"


def test_field_lines_follow_merge_semantics():
    text = 'train_config { num_steps: 1 }\ndata_config { input_fields { input_name: "a" } }\n' \
           'train_config {\n num_steps: 2 }\ndata_config { input_fields { input_name: "b" }\n' \
           ' label_fields: ["a",\n "b"] }\n'
    lines = field_lines(text, pipeline_pb2.EasyRecConfig.DESCRIPTOR)
    assert lines[(("train_config", None), ("num_steps", None))] == [1, 4]
    assert lines[(("data_config", None), ("input_fields", 1), ("input_name", None))] == [5]
    assert lines[(("data_config", None), ("label_fields", 1))] == [7]


# ---- validate --explain ----------------------------------------------------------------------

def _main(args: list[str]) -> tuple[int, str]:
    """The CLI in this process; its stdout, and the logger restored afterwards."""
    from easyblocks.cli import main

    log = logging.getLogger("easyblocks")
    saved = (list(log.handlers), log.propagate, log.level)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            rc = main(args)
    finally:
        log.handlers[:] = saved[0]
        log.propagate, log.level = saved[1], saved[2]
    return rc, out.getvalue()


def test_validate_explain_lists_every_field_and_exits_2_when_one_is_refused(write_config):

    text = EASYREC_STYLE.replace("  num_steps: 100", "  num_steps: 100\n  save_summary_steps: 10")
    text = text.replace("    wide_deep: DEEP", "    wide_deep: DEEP\n    negative_sampler: true")
    config = write_config(text)
    rc, out = _main(["validate", "--explain", "--config", config])
    assert rc == 2
    sync, summary = _line_of(text, "sync_replicas"), _line_of(text, "save_summary_steps")
    seq = _line_of(text, "negative_sampler")
    assert out.splitlines() == [
        f"{config}:{sync}: train_config.sync_replicas: accepted, not applicable: replica "
        "synchronisation follows the distribution strategy",
        f"{config}:{summary}: train_config.save_summary_steps: accepted, not applicable: "
        "summaries are written every log_step_count_steps",
        f"{config}:{seq}: model_config.feature_groups[0].negative_sampler: refused: "
        "negative samplers (graph-learn) are not available here",
        f"{config}: 2 field(s) accepted, not applicable; 1 refused",
    ]


def test_validate_explain_then_validates_a_config_without_refused_fields(write_config):
    config = write_config(EASYREC_STYLE)
    rc, out = _main(["validate", "--explain", "--config", config])
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].endswith("train_config.sync_replicas: accepted, not applicable: replica "
                             "synchronisation follows the distribution strategy")
    assert lines[1] == f"{config}: 1 field(s) accepted, not applicable; 0 refused"
    assert lines[-1] == f"{config}: OK"


# ---- EasyRec's RankModel logit rule, label_name, the tower DNN ---------------------------------

def _rank_model(write_config, units: int, extra: str = ""):
    from easyblocks.models.build import build_and_initialize, dummy_columns

    text = EASYREC_STYLE.replace("hidden_units: [8, 4]", f"hidden_units: [8, {units}]")
    text = text.replace('  model_class: "RankModel"', f'  model_class: "RankModel"\n{extra}')
    resolved = resolve(load_config(write_config(text)))
    model, pre = build_and_initialize(resolved)
    features = pre(dummy_columns(resolved))
    return model, features, resolved


def test_rank_model_uses_a_num_class_wide_backbone_output_as_the_logit(write_config):
    model, features, _ = _rank_model(write_config, units=1)
    tower = model.towers[0]
    assert tower.logits is None and not tower.weights  # no extra Dense, like EasyRec
    backbone = model.backbone(model.feature_groups(features), training=False)
    out = model(features, training=False)
    np.testing.assert_allclose(out["logits_clk"].numpy(), backbone.numpy().reshape(-1))
    np.testing.assert_allclose(out["probs_clk"].numpy(),
                               1 / (1 + np.exp(-backbone.numpy().reshape(-1))), rtol=1e-6)


def test_rank_model_adds_a_dense_when_the_width_differs(write_config):
    model, features, _ = _rank_model(write_config, units=4)
    tower = model.towers[0]
    assert [tuple(w.shape) for w in tower.weights] == [(4, 1), (1,)]
    fg = model.feature_groups(features)
    backbone = model.backbone(fg, training=False).numpy()
    kernel, bias = (w.numpy() for w in tower.weights)
    np.testing.assert_allclose(model(features, training=False)["logits_clk"].numpy(),
                               (backbone @ kernel + bias).reshape(-1), rtol=1e-5, atol=1e-6)


def test_rank_model_label_name_picks_the_label(write_config):
    text = EASYREC_STYLE.replace('    input_name: "clk"\n    input_type: INT32\n  }',
                                 '    input_name: "clk"\n    input_type: INT32\n  }\n'
                                 '  input_fields {\n    input_name: "buy"\n'
                                 '    input_type: INT32\n  }')
    text = text.replace('  label_fields: "clk"', '  label_fields: ["clk", "buy"]')
    text = text.replace('  model_class: "RankModel"', '  model_class: "RankModel"\n'
                        '  label_name: "buy"')
    resolved = resolve(load_config(write_config(text)))
    assert [(t.name, t.label) for t in resolved.towers] == [("buy", "buy")]


def test_lazy_adam_is_adam_with_lazy_table_rows(write_config):
    from easyblocks.train.optimizers import SparseTableOptimizer, dense_optimizer

    text = EASYREC_STYLE.replace("    adam_optimizer: {", "    lazy_adam_optimizer: {\n"
                                 "      beta1: 0.8")
    config = resolve(load_config(write_config(text))).train.optimizer
    dense = dense_optimizer(config)
    assert type(dense).__name__ == "Adam"
    assert (dense.beta_1, dense.epsilon) == (pytest.approx(0.8), pytest.approx(1e-8))
    table = SparseTableOptimizer(config, [])
    assert (table.kind, table.beta1, table.epsilon) == ("adam", pytest.approx(0.8),
                                                        pytest.approx(1e-8))


def test_easyrec_block_params_not_available_yet_say_so():
    from easyblocks.protos import backbone_pb2

    have = backbone_pb2.KerasLayer.DESCRIPTOR.fields_by_name
    missing = [name for name in T.EASYREC_BLOCK_PARAMS if name not in have]
    if not missing:
        pytest.skip("every EasyRec block parameter message is available")
    text = ('model_config {\n  backbone {\n    blocks {\n      name: "x"\n      keras_layer {\n'
            f'        class_name: "X"\n        {missing[0]} {{\n        }}\n      }}\n    }}\n'
            '  }\n}\n')
    with pytest.raises(ConfigError) as e:
        parse_config_text(text, "x.config")
    assert str(e.value) == (
        f'x.config:7:9: Message type "easyblocks.protos.KerasLayer" has no field named '
        f'"{missing[0]}". ({missing[0]} {{}}: parameters of an EasyRec block that is not '
        "available yet, EasyRec's model zoo, issue 14)")
