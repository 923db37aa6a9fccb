"""EasyRec-style configs of the model-class templates (written for these tests, in EasyRec's
style: groups named as EasyRec's classes read them, EasyRec's parameter messages), on the
column layout of the shipped Taobao-like data."""

from __future__ import annotations

COLUMNS = ["clk", "buy", "pid", "adgroup_id", "cate_id", "campaign_id", "customer", "brand",
           "user_id", "cms_segid", "cms_group_id", "final_gender_code", "age_level",
           "pvalue_level", "shopping_level", "occupation", "new_user_class_level",
           "tag_category_list", "tag_brand_list", "price"]
USER = ["user_id", "cms_segid", "cms_group_id", "final_gender_code", "age_level",
        "pvalue_level", "shopping_level", "occupation", "new_user_class_level",
        "tag_category_list", "tag_brand_list"]
ITEM = ["adgroup_id", "cate_id", "campaign_id", "customer", "brand", "price"]
ALL = ["pid"] + USER + ITEM
SIZES = {"pid": 10, "adgroup_id": 10000, "cate_id": 1000, "campaign_id": 5000,
         "customer": 2000, "brand": 2000, "user_id": 50000, "cms_segid": 100,
         "cms_group_id": 100, "final_gender_code": 10, "age_level": 10, "pvalue_level": 10,
         "shopping_level": 10, "occupation": 10, "new_user_class_level": 10,
         "tag_category_list": 1000, "tag_brand_list": 2000}


def data(train: str, test: str, labels=("clk",), batch_size: int = 32, dim: int = 8) -> str:
    """train/eval paths, data_config and feature_config (every feature `dim` wide)."""
    fields = "\n".join(
        f'  input_fields {{ input_name: "{c}" input_type: '
        f'{"INT32" if c in ("clk", "buy", "price") else "STRING"} }}' for c in COLUMNS)
    label_lines = "\n".join(f'  label_fields: "{x}"' for x in labels)
    features = []
    for name, size in SIZES.items():
        if name.startswith("tag_"):
            features.append(f'  features {{ input_names: "{name}" feature_type: TagFeature '
                            f'separator: "|" embedding_dim: {dim} hash_bucket_size: {size} }}')
        else:
            features.append(f'  features {{ input_names: "{name}" feature_type: IdFeature '
                            f'embedding_dim: {dim} hash_bucket_size: {size} }}')
    features.append(f'  features {{ input_names: "price" feature_type: RawFeature '
                    f'boundaries: [10, 50, 100, 500] embedding_dim: {dim} }}')
    return f"""train_input_path: "{train}"
eval_input_path: "{test}"
model_dir: "experiments/zoo"
train_config {{
  log_step_count_steps: 100
  optimizer_config {{
    adam_optimizer {{
      learning_rate {{ constant_learning_rate {{ learning_rate: 0.001 }} }}
    }}
    use_moving_average: false
  }}
  num_steps: 3
  sync_replicas: true
}}
eval_config {{
  metrics_set {{ auc {{}} }}
}}
data_config {{
  batch_size: {batch_size}
  num_epochs: 1
{fields}
{label_lines}
}}
feature_config {{
{chr(10).join(features)}
}}
"""


def group(name: str, features: list[str], wide: bool = False) -> str:
    names = "\n".join(f'    feature_names: "{f}"' for f in features)
    return (f'  feature_groups {{\n    group_name: "{name}"\n{names}\n'
            f'    wide_deep: {"WIDE" if wide else "DEEP"}\n  }}\n')


def model(model_class: str, groups: str, params: str, extra: str = "") -> str:
    return (f'model_config {{\n  model_class: "{model_class}"\n{groups}{params}\n'
            f'  embedding_regularization: 1e-7\n{extra}}}\n')


TOWERS = """    task_towers {
      tower_name: "ctr"
      label_name: "clk"
      loss_type: CLASSIFICATION
      metrics_set { auc {} }
      dnn { hidden_units: [16, 8] }
      weight: 1.0
    }
    task_towers {
      tower_name: "cvr"
      label_name: "buy"
      loss_type: CLASSIFICATION
      metrics_set { auc {} }
      dnn { hidden_units: [16, 8] }
      weight: 1.0
    }"""

# model_class -> (labels, model_config text)
MODELS = {
    "MultiTower": (("clk",), model(
        "MultiTower", group("user", USER) + group("item", ITEM) + group("pid", ["pid"]), """
  multi_tower {
    towers { input: "user" dnn { hidden_units: [32, 16] } }
    towers { input: "item" dnn { hidden_units: [32, 16] } }
    towers { input: "pid" dnn { hidden_units: [8] } }
    final_dnn { hidden_units: [32, 8] }
    l2_regularization: 1e-6
  }""")),
    "DeepFM": (("clk",), model(
        "DeepFM", group("wide", ALL, wide=True) + group("deep", ALL), """
  deepfm {
    dnn { hidden_units: [32, 16] }
    final_dnn { hidden_units: [16, 8] }
    wide_output_dim: 4
    l2_regularization: 1e-5
  }""")),
    "DeepFM_no_final": (("clk",), model(
        "DeepFM", group("wide", ALL, wide=True) + group("deep", ALL), """
  deepfm {
    dnn { hidden_units: [32, 16] }
    l2_regularization: 1e-5
  }""")),
    "WideAndDeep": (("clk",), model(
        "WideAndDeep", group("wide", ALL, wide=True) + group("deep", ALL), """
  wide_and_deep {
    dnn { hidden_units: [32, 16] }
    final_dnn { hidden_units: [8] }
    wide_output_dim: 8
    l2_regularization: 1e-5
  }""")),
    "FM": (("clk",), model(
        "FM", group("wide", ALL, wide=True) + group("deep", ALL), """
  fm {
  }""")),
    "DCN": (("clk",), model("DCN", group("all", ALL), """
  dcn {
    deep_tower { input: "all" dnn { hidden_units: [32, 16] } }
    cross_tower { input: "all" cross_num: 3 }
    final_dnn { hidden_units: [16, 8] }
    l2_regularization: 1e-6
  }""")),
    "DLRM": (("clk",), model(
        "DLRM", group("dense", ["price"]) + group("sparse", USER + ITEM[:-1]), """
  dlrm {
    bot_dnn { hidden_units: [16, 8] }
    top_dnn { hidden_units: [32, 16] }
    l2_regularization: 1e-5
  }""")),
    "AutoInt": (("clk",), model("AutoInt", group("all", ALL), """
  autoint {
    multi_head_num: 2
    multi_head_size: 4
    interacting_layer_num: 2
    l2_regularization: 1e-6
  }""")),
    "DSSM": (("clk",), model("DSSM", group("user", ["pid"] + USER) + group("item", ITEM), """
  dssm {
    user_tower { id: "user_id" dnn { hidden_units: [32, 16] } }
    item_tower { id: "adgroup_id" dnn { hidden_units: [32, 16] } }
    simi_func: COSINE
    temperature: 0.1
    l2_regularization: 1e-6
  }""")),
    "DSSM_softmax": (("clk",), model(
        "DSSM", group("user", ["pid"] + USER) + group("item", ITEM), """
  dssm {
    user_tower { id: "user_id" dnn { hidden_units: [32, 16] } }
    item_tower { id: "adgroup_id" dnn { hidden_units: [32, 16] } }
    simi_func: INNER_PRODUCT
    scale_simi: false
    item_id: "adgroup_id"
    l2_regularization: 1e-6
  }""", "  loss_type: SOFTMAX_CROSS_ENTROPY\n")),
    "DSSM_SENet": (("clk",), model(
        "DSSM_SENet", group("user", ["pid"] + USER) + group("item", ITEM), """
  dssm_senet {
    user_tower { id: "user_id" senet { num_squeeze_group: 2 reduction_ratio: 4 }
                 dnn { hidden_units: [32, 16] } }
    item_tower { id: "adgroup_id" senet { num_squeeze_group: 2 reduction_ratio: 4 }
                 dnn { hidden_units: [32, 16] } }
    simi_func: COSINE
    temperature: 0.05
    l2_regularization: 1e-6
  }""")),
    "MMoE": (("clk", "buy"), model("MMoE", group("all", ALL), f"""
  mmoe {{
    expert_dnn {{ hidden_units: [32, 16] }}
    num_expert: 3
{TOWERS}
    l2_regularization: 1e-6
  }}""")),
    "MMoE_experts": (("clk", "buy"), model("MMoE", group("all", ALL), f"""
  mmoe {{
    experts {{ expert_name: "wide_expert" dnn {{ hidden_units: [16] }} }}
    experts {{ expert_name: "deep_expert" dnn {{ hidden_units: [32, 16] }} }}
{TOWERS}
    l2_regularization: 1e-6
  }}""")),
    "ESMM": (("clk", "buy"), model(
        "ESMM", group("user", USER) + group("item", ITEM), """
  esmm {
    groups { input: "user" dnn { hidden_units: [32, 16] } }
    groups { input: "item" dnn { hidden_units: [32, 16] } }
    cvr_tower {
      tower_name: "cvr"
      label_name: "buy"
      loss_type: CLASSIFICATION
      metrics_set { auc {} }
      dnn { hidden_units: [16, 8] }
    }
    ctr_tower {
      tower_name: "ctr"
      label_name: "clk"
      loss_type: CLASSIFICATION
      metrics_set { auc {} }
      dnn { hidden_units: [16, 8] }
    }
    l2_regularization: 1e-6
  }""")),
    "DBMTL": (("clk", "buy"), model("DBMTL", group("all", ALL), """
  dbmtl {
    bottom_dnn { hidden_units: [32] }
    task_towers {
      tower_name: "ctr"
      label_name: "clk"
      loss_type: CLASSIFICATION
      metrics_set { auc {} }
      dnn { hidden_units: [16, 8] }
      relation_dnn { hidden_units: [8] }
      weight: 1.0
    }
    task_towers {
      tower_name: "cvr"
      label_name: "buy"
      loss_type: CLASSIFICATION
      metrics_set { auc {} }
      dnn { hidden_units: [16, 8] }
      relation_tower_names: ["ctr"]
      relation_dnn { hidden_units: [8] }
      weight: 1.0
    }
    l2_regularization: 1e-6
  }""")),
    "DBMTL_mmoe": (("clk", "buy"), model("DBMTL", group("all", ALL), """
  dbmtl {
    bottom_dnn { hidden_units: [32] }
    expert_dnn { hidden_units: [16] }
    num_expert: 3
    task_towers {
      tower_name: "ctr"
      label_name: "clk"
      dnn { hidden_units: [8] }
      relation_dnn { hidden_units: [8] }
    }
    task_towers {
      tower_name: "cvr"
      label_name: "buy"
      relation_tower_names: ["ctr"]
      relation_dnn { hidden_units: [8] }
    }
    l2_regularization: 1e-6
  }""")),
    "SimpleMultiTask": (("clk", "buy"), model("SimpleMultiTask", group("all", ALL), f"""
  simple_multi_task {{
{TOWERS}
    l2_regularization: 1e-7
  }}""")),
    "PLE": (("clk", "buy"), model("PLE", group("all", ALL), f"""
  ple {{
    extraction_networks {{
      network_name: "layer1"
      expert_num_per_task: 2
      share_num: 2
      task_expert_net {{ hidden_units: [32, 16] }}
      share_expert_net {{ hidden_units: [32, 16] }}
    }}
    extraction_networks {{
      network_name: "layer2"
      expert_num_per_task: 2
      share_num: 2
      task_expert_net {{ hidden_units: [16] }}
      share_expert_net {{ hidden_units: [16] }}
    }}
{TOWERS}
    l2_regularization: 1e-6
  }}""")),
}


def config(name: str, train: str = "data/train.csv", test: str = "data/test.csv",
           **kwargs) -> str:
    labels, text = MODELS[name]
    return data(train, test, labels, **kwargs) + text
