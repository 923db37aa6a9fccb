"""Issue 13's end-to-end test: one config in EasyRec's style (merge semantics, sync_replicas,
an input_layer block named after its group with output_2d_tensor_and_feature_list, a group
with sequence_features, min_val / max_val, ComboFeature, sample_weight, max_f1) validates,
and trains on the same rows as CSV, TFRecord and Parquet with the same result; a model
trained on Parquet exports a SavedModel that takes the CSV's raw columns."""

import json
import os
import random

import numpy as np
import pytest
import tensorflow as tf

from easyblocks import api
from easyblocks.config.loader import load_config
from easyblocks.data.parquet_input import ParquetInput
from easyblocks.data.tfrecord_input import TFRecordInput
from easyblocks.errors import DataError

pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")

FIELDS = [("clk", "INT32"), ("weight", "FLOAT"), ("user", "STRING"), ("item", "INT64"),
          ("cate", "STRING"), ("price", "DOUBLE"), ("hist_item", "STRING"),
          ("hist_cate", "STRING")]

CONFIG = """
train_input_path: "{train}"
eval_input_path: "{train}"
model_dir: "{model_dir}"

train_config {{
  log_step_count_steps: 100
  optimizer_config: {{
    adam_optimizer: {{
      learning_rate: {{ constant_learning_rate {{ learning_rate: 0.01 }} }}
    }}
    use_moving_average: false
  }}
  num_steps: 4
  sync_replicas: true
  log_step_count_steps: 2
}}

eval_config {{
  metrics_set: {{ auc {{}} }}
  metrics_set: {{ max_f1 {{}} }}
  metrics_set: {{ mean_absolute_error {{}} }}
}}

data_config {{
{fields}
  label_fields: "clk"
  sample_weight: "weight"
  batch_size: 16
  num_epochs: 0
  shuffle: false
  input_type: {input_type}
}}

feature_config: {{
  features: {{ input_names: "user" feature_type: IdFeature embedding_dim: 4
               hash_bucket_size: 50 }}
  features: {{ input_names: "item" feature_type: IdFeature embedding_dim: 4
               hash_bucket_size: 100 embedding_name: "item_emb" }}
  features: {{ input_names: "cate" feature_type: IdFeature embedding_dim: 4
               hash_bucket_size: 20 embedding_name: "cate_emb" }}
  features: {{ feature_name: "user_cate" input_names: "user" input_names: "cate"
               feature_type: ComboFeature embedding_dim: 4 hash_bucket_size: 200 }}
  features: {{ input_names: "price" feature_type: RawFeature min_val: 0.0 max_val: 200.0 }}
  features: {{ input_names: "hist_item" feature_type: SequenceFeature separator: "|"
               embedding_dim: 4 hash_bucket_size: 100 embedding_name: "item_emb" }}
  features: {{ input_names: "hist_cate" feature_type: SequenceFeature separator: "|"
               embedding_dim: 4 hash_bucket_size: 20 embedding_name: "cate_emb" }}
}}

model_config: {{
  model_class: "RankModel"
  feature_groups: {{
    group_name: "all"
    feature_names: "user"
    feature_names: "item"
    feature_names: "cate"
    feature_names: "user_cate"
    feature_names: "price"
    wide_deep: DEEP
    sequence_features: {{
      group_name: "seq_fea"
      tf_summary: false
      seq_att_map: {{
        key: "item"
        key: "cate"
        hist_seq: "hist_item"
        hist_seq: "hist_cate"
      }}
    }}
  }}
  backbone {{
    blocks {{
      name: "all"
      inputs {{ feature_group_name: "all" }}
      input_layer {{ output_2d_tensor_and_feature_list: true }}
    }}
    blocks {{
      name: "mlp"
      inputs {{ block_name: "all" input_slice: "[0]" }}
      keras_layer {{ class_name: "MLP" mlp {{ hidden_units: [16, 8] }} }}
    }}
    concat_blocks: "mlp"
  }}
  embedding_regularization: 1e-5
}}
"""


def _rows(n: int = 64) -> list[list]:
    rng = random.Random(7)
    rows = []
    for _ in range(n):
        k = rng.randint(0, 3)
        rows.append([rng.randint(0, 1), rng.choice([0.5, 1.0, 2.0]), f"u{rng.randint(0, 9)}",
                     rng.randint(0, 40), f"c{rng.randint(0, 5)}", round(rng.uniform(0, 250), 2),
                     [rng.randint(0, 40) for _ in range(k)],
                     [f"c{rng.randint(0, 5)}" for _ in range(k)]])
    return rows


def _csv_value(v):
    return "|".join(str(x) for x in v) if isinstance(v, list) else str(v)


def write_inputs(folder) -> dict[str, str]:
    rows = _rows()
    paths = {"CSVInput": str(folder / "rows.csv"), "TFRecordInput": str(folder / "rows.tfrecord"),
             "ParquetInput": str(folder / "rows.parquet")}
    with open(paths["CSVInput"], "w") as f:
        f.writelines(",".join(_csv_value(v) for v in r) + "\n" for r in rows)
    with tf.io.TFRecordWriter(paths["TFRecordInput"]) as w:
        for r in rows:
            feature = {}
            for (name, ftype), v in zip(FIELDS, r):
                if ftype in ("INT32", "INT64"):
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))
                elif ftype in ("FLOAT", "DOUBLE"):
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
                else:
                    feature[name] = tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[_csv_value(v).encode()]))
            w.write(tf.train.Example(features=tf.train.Features(feature=feature))
                    .SerializeToString())
    columns = {name: [r[i] for r in rows] for i, (name, _) in enumerate(FIELDS)}
    # the sequences as Parquet list columns (joined by the features' separator when read)
    table = pa.table({**columns, "hist_item": pa.array(columns["hist_item"],
                                                       pa.list_(pa.int64()))})
    pq.write_table(table, paths["ParquetInput"])
    return paths


def write_config(folder, input_type: str, train: str) -> str:
    fields = "\n".join(f'  input_fields {{ input_name: "{n}" input_type: {t} }}'
                       for n, t in FIELDS)
    path = folder / f"{input_type}.config"
    path.write_text(CONFIG.format(train=train, model_dir=folder / f"model_{input_type}",
                                  fields=fields, input_type=input_type))
    return str(path)


def test_easyrec_style_config_validates(tmp_path, caplog):
    paths = write_inputs(tmp_path)
    config = write_config(tmp_path, "ParquetInput", paths["ParquetInput"])
    assert load_config(config).proto.train_config.log_step_count_steps == 2  # merge semantics
    caplog.set_level("WARNING", logger="easyblocks")
    report = api.validate_config(config)
    assert "train_config.sync_replicas" in caplog.text
    spec = api.resolve(config)
    # user, item, cate, combo (4 each), price (1), then the attention over [item, cate]
    # sequences (8) and the key (8)
    assert spec.groups["all"].seq_att[0].output_dim == 16
    assert "all" in str(report)


@pytest.mark.slow
def test_trains_the_same_on_csv_tfrecord_and_parquet_and_exports_the_raw_columns(tmp_path):
    paths = write_inputs(tmp_path)
    results = {}
    for input_type, path in paths.items():
        config = write_config(tmp_path, input_type, path)
        results[input_type] = api.train(config)
        with open(tmp_path / f"model_{input_type}" / "eval_results.json") as f:
            assert json.load(f)["towers"]["clk"]["overall"]["count"] == 64
    metrics = {k: r["towers"]["clk"]["overall"] for k, r in results.items()}
    for name in ("auc", "logloss", "max_f1", "mean_absolute_error"):
        values = [m[name] for m in metrics.values()]
        assert np.isfinite(values).all()
        np.testing.assert_allclose(values, values[0], rtol=1e-5, err_msg=name)

    config = write_config(tmp_path, "ParquetInput", paths["ParquetInput"])
    export_dir = str(tmp_path / "export")
    api.export(config, export_dir=export_dir)
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    inputs = serve.structured_input_signature[1]
    assert sorted(inputs) == ["cate", "hist_cate", "hist_item", "item", "price", "user"]
    assert inputs["hist_item"].dtype == tf.string  # a list column in Parquet, text here
    scores = tmp_path / "scores.csv"
    api.predict(config, paths["CSVInput"], str(scores), export_dir=export_dir)
    in_process = tmp_path / "scores_in_process.csv"
    api.predict(config, paths["CSVInput"], str(in_process))
    a = np.loadtxt(scores, delimiter=",", skiprows=1)
    b = np.loadtxt(in_process, delimiter=",", skiprows=1)
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_tfrecord_and_parquet_files_are_checked_by_name(tmp_path):
    paths = write_inputs(tmp_path)
    spec = api.resolve(write_config(tmp_path, "ParquetInput", paths["ParquetInput"]))
    from easyblocks.features.preprocess import Preprocessor

    pre = Preprocessor(spec.features)
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"clk": [1]}), str(bad))
    with pytest.raises(DataError, match=r"bad.parquet: no column 'weight'"):
        ParquetInput(spec.data, pre, spec.labels).check_files([str(bad)])
    tf_spec = api.resolve(write_config(tmp_path, "TFRecordInput", paths["TFRecordInput"]))
    with pytest.raises(DataError, match="rows.csv: not a TFRecord file"):
        TFRecordInput(tf_spec.data, pre, tf_spec.labels).check_files([paths["CSVInput"]])
    ParquetInput(spec.data, pre, spec.labels).check_files([paths["ParquetInput"]])
    TFRecordInput(tf_spec.data, pre, tf_spec.labels).check_files([paths["TFRecordInput"]])


def test_parquet_input_without_pyarrow_is_one_clear_line(tmp_path, monkeypatch):
    import builtins

    from easyblocks.errors import ConfigError

    paths = write_inputs(tmp_path)
    spec = api.resolve(write_config(tmp_path, "ParquetInput", paths["ParquetInput"]))
    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    from easyblocks.features.preprocess import Preprocessor

    with pytest.raises(ConfigError, match=r"needs pyarrow.*pip install 'easyblocks\[parquet\]'"):
        ParquetInput(spec.data, Preprocessor(spec.features), spec.labels)
    assert os.path.exists(paths["ParquetInput"])


def test_the_held_out_split_of_tfrecord_and_parquet_rows_is_a_partition(tmp_path):
    # eval_config.holdout_fraction on any input: a hash of each record (a serialized example,
    # or a Parquet row's values) puts it in exactly one part
    from easyblocks.data import make_input
    from easyblocks.features.preprocess import Preprocessor

    paths = write_inputs(tmp_path)
    for input_type in ("TFRecordInput", "ParquetInput", "CSVInput"):
        spec = api.resolve(write_config(tmp_path, input_type, paths[input_type]))
        reader = make_input(spec.data, Preprocessor(spec.features), spec.labels, ["user"])
        counts = []
        for heldout in (False, True, True):
            ds = reader.dataset([paths[input_type]], 16, training=False, holdout_fraction=0.3,
                                heldout=heldout)
            counts.append(sum(int(cols["user"].shape[0]) for _, _, cols in ds))
        kept, held, held_again = counts
        assert kept + held == 64 and 0 < held < 64 and held == held_again, input_type
