"""easyblocks against FuxiCTR 2.3.10 (PyTorch) on the same data, sizes and training settings.

Pairs (FuxiCTR model zoo model vs easyblocks sample config):

  dnn    FuxiCTR DNN         vs samples/configs/mlp_on_taobao.config
  mmoe   FuxiCTR MMoE        vs samples/configs/mmoe_on_taobao.config   (clk and buy)
  ppnet  FuxiCTR PPNet       vs samples/configs/pepnet_on_taobao.config
  apg    FuxiCTR APG_DeepFM  vs samples/configs/apg_on_taobao.config    (2.3.10 ships no APG_DNN)

FuxiCTR is never a dependency of easyblocks: it lives in its own venv, made by

  python benchmarks/peer_fuxictr.py --setup

(`benchmarks/.venv-fuxictr`: torch==2.13.0, the CPU wheel on this machine's disk, then
fuxictr==2.3.10 from PyPI; the pip package carries no model zoo, so the zoo's model sources of
the pairs are copied from a FuxiCTR git checkout or bare mirror, `--fuxictr_repo`, into the
venv; nothing of FuxiCTR is committed here). Its side runs as a subprocess in that venv.

Per pair and seed, the frameworks alternate run by run, each run a fresh process:

  * steady examples/s: examples / seconds over steps 21..last of the one epoch, from the
    end timestamp of every training step (both sides: the step function is wrapped in the
    worker process; easyblocks' compiled step, FuxiCTR's `BaseModel.train_step`). On CPU
    both step calls return when the step's work is done.
  * whole training phase (seconds): from the call that starts training from the CSV files
    (easyblocks: `api.train`, i.e. config resolve, model build, input pipeline, data checks;
    FuxiCTR: `FeatureProcessor` + `build_dataset` (CSV -> vocabularies + parquet), FeatureMap,
    model build, `RankDataLoader` (Ray Data)) to the end of the epoch's training: easyblocks:
    entering the final evaluation (its checkpoints every 100 steps and at the end are before
    that); FuxiCTR: entering its end-of-epoch validation, plus the seconds of its checkpoint
    save (which comes after that validation). Evaluation is excluded on both sides; imports
    of TensorFlow / torch are excluded on both sides. FuxiCTR's phase is also given without
    its CSV preprocessing (`build_dataset`), as if its parquet files were built beforehand.
  * test AUC: both workers save (label, prediction) for every test row; ONE exact AUC
    function (`exact_auc`, rank statistic with ties at half) computes both.

Ids: FuxiCTR keys exact vocabularies of the training file; the easyblocks side by default gets
the same (`--ids vocab`: every id/tag feature's hash_bucket_size replaced by a vocab_list of the
column's training values, one OOV row); `--ids buckets`: hash_bucket_size = max(the sample's,
10 x distinct values); `--sample_buckets`: the sample's own sizes. The generated config is kept
in each run's folder (WORKDIR/PAIR_SEED_easyblocks/easyblocks.config).

`--smoke` converts a few thousand rows, validates the generated FuxiCTR configs, trains the
easyblocks side for a few steps, and the FuxiCTR side only when its venv exists.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(HERE, ".venv-fuxictr")
VENV_PY = os.path.join(VENV, "bin", "python")
ZOO = os.path.join(VENV, "model_zoo")
DEFAULT_REPO = "/work/.mirror/reczoo+FuxiCTR/repo"
FUXICTR_VERSION = "2.3.10"
TORCH_VERSION = "2.13.0"
WARMUP_STEPS = 20

# the columns of samples/data (samples/configs/mlp_on_taobao.config's data_config, in order)
COLUMNS = ["clk", "buy", "pid", "adgroup_id", "cate_id", "campaign_id", "customer", "brand",
           "user_id", "cms_segid", "cms_group_id", "final_gender_code", "age_level",
           "pvalue_level", "shopping_level", "occupation", "new_user_class_level",
           "tag_category_list", "tag_brand_list", "price"]
LABELS = ["clk", "buy"]
CATEGORICAL = COLUMNS[2:17]
SEQUENCES = ["tag_category_list", "tag_brand_list"]  # TagFeature, combiner mean, separator |
# the sample's RawFeature price: boundaries -> an embedded bucket id (precomputed here)
PRICE_BOUNDARIES = [10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000]
PERSONA = ["user_id", "age_level", "pvalue_level", "shopping_level", "new_user_class_level"]

# what the two sides train, per pair; the FuxiCTR params mirror the easyblocks sample
PAIRS = {
    "dnn": {"config": "mlp_on_taobao", "model": "DNN", "zoo": "model_zoo/DNN/DNN_torch/src",
            "labels": ["clk"],
            "params": {"hidden_units": [512, 256, 128, 64], "hidden_activations": "relu",
                       "net_dropout": 0, "batch_norm": False}},
    "mmoe": {"config": "mmoe_on_taobao", "model": "MMoE", "zoo": "model_zoo/multitask/MMoE/src",
             "labels": ["clk", "buy"],
             "params": {"num_tasks": 2, "task": ["binary_classification"] * 2,
                        "num_experts": 4, "expert_hidden_units": [256, 128],
                        "gate_hidden_units": [], "tower_hidden_units": [64],
                        # the sample's expert MLP and tower DNN keep use_bn's default true
                        # (Dense without bias -> BatchNorm -> relu); FuxiCTR's MLP_Block with
                        # batch_norm: Linear -> BatchNorm1d -> relu (its gates have no hidden
                        # layer, so no BatchNorm, as the sample's)
                        "hidden_activations": "relu", "net_dropout": 0, "batch_norm": True,
                        "net_regularizer": "l2(1e-06)"}},
    "ppnet": {"config": "pepnet_on_taobao", "model": "PPNet", "zoo": "model_zoo/PEPNet/src",
              "labels": ["clk"],
              "params": {"hidden_units": [512, 256, 128, 64], "hidden_activations": "relu",
                         "gate_emb_dim": 16, "gate_priors": PERSONA + ["pid"],
                         "gate_hidden_dim": 64, "net_dropout": 0, "batch_norm": False}},
    "apg": {"config": "apg_on_taobao", "model": "APG_DeepFM", "zoo": "model_zoo/APG/src",
            "labels": ["clk"],
            "params": {"hidden_units": [512, 256, 128, 64], "hidden_activations": "relu",
                       "net_dropout": 0, "batch_norm": False,
                       "hypernet_config": {"hidden_units": [64], "hidden_activations": "relu",
                                           "dropout_rates": 0},
                       "condition_features": ["pid"], "condition_mode": "group-wise",
                       "new_condition_emb": False, "rank_k": 32, "overparam_p": 64,
                       "generate_bias": True}},
}

# what could not be made equal (stated in the report)
MISMATCHES = [
    "ids: FuxiCTR builds a vocabulary from the training file (min_categr_count 1; test ids "
    "not in it share one OOV row). easyblocks, by --ids: `vocab` (the default since round 2) "
    "uses an exact vocab_list with one OOV row (FuxiCTR's encoding); `buckets` "
    "hashes every id/tag feature into max(the sample's hash_bucket_size, 10 x the column's "
    "distinct training values) buckets (few collisions, tables ~10x FuxiCTR's rows); "
    "`sample` keeps the "
    "sample's sizes (round 1: user_id 29,211 values in 50,000 buckets, adgroup_id 5,963 in "
    "10,000).",
    "embedding regularization 1e-6: easyblocks penalizes the looked-up rows; FuxiCTR's "
    "embedding_regularizer penalizes whole tables every step (dense Adam over whole tables).",
    "FuxiCTR clips the gradient norm at its default max_gradient_norm 10; the samples do not "
    "clip. Initializers are each framework's own (FuxiCTR: xavier_normal Linear, normal(0, "
    "1e-4) embeddings).",
    "shuffling: easyblocks shuffles with a 10000-row buffer; FuxiCTR (Ray Data, one parquet "
    "file) shuffles the whole file.",
    "checkpoints: easyblocks saves every 100 steps and at the end (the sample's "
    "save_checkpoints_steps); FuxiCTR saves once, after its end-of-epoch validation.",
    "sequence features: FuxiCTR pads/truncates to max_len (the longest list in the training "
    "file) and mean-pools with MaskedAveragePooling; easyblocks mean-pools the ragged lists.",
    "mmoe (checked line by line against FuxiCTR's model_zoo/multitask/MMoE yaml and "
    "src/MMoE.py; the yaml's defaults 8 experts [512,256,128], gates [128,64], towers "
    "[128,64], emb 64, batch 128 are replaced by the sample's): 4 experts [256, 128], relu, "
    "gates one linear layer + softmax (gate_hidden_units []), towers [64] + a 1-unit output, "
    "dropout 0, loss = clk loss + buy loss (FuxiCTR loss_weight EQ, the towers' weight 1.0), "
    "Adam lr 1e-3, batch 1024, emb 16 - equal. BatchNorm: the sample's expert MLP and tower "
    "DNN use BatchNorm (use_bn's default), so since round 2 FuxiCTR runs with batch_norm True "
    "(round 1 ran it without: not comparable). Left different: the sample's BN layers have "
    "no Dense bias (FuxiCTR: Linear with bias, then BatchNorm1d; equivalent up to the bias "
    "the BN removes); BN momentum 0.9 on both sides (easyblocks' moving statistics are "
    "debiased), epsilon 1e-3 vs torch's 1e-5; l2 1e-6: easyblocks "
    "1e-6 x sum(w^2) on dense kernels, FuxiCTR net_regularizer 1e-6/2 x ||w||^2 on every "
    "non-embedding weight and bias (BN's included).",
    "ppnet: FuxiCTR's PPNet feeds every feature (pid included) to the main MLP and gates it "
    "with persona + pid embeddings (separate gate tables of dim 16); the easyblocks sample's "
    "main group has no pid (pid is its domain group).",
    "apg: FuxiCTR 2.3.10 ships APG_DeepFM / APG_DCNv2, not an APG MLP: APG_DeepFM adds an FM "
    "term the easyblocks sample (APG MLP only) does not have; condition = pid's embedding "
    "(group-wise), rank_k 32, overparam_p 64, hypernet [64] as the sample.",
]


# ---- data ------------------------------------------------------------------------------------
def price_bucket(value: str) -> str:
    try:
        return str(bisect.bisect_right(PRICE_BOUNDARIES, float(value)))
    except ValueError:
        return ""


def convert(src: str, dst_fuxi: str, dst_easy: str | None, rows: int | None) -> dict:
    """Writes FuxiCTR's CSV (header; price as its bucket id) and, when `dst_easy` is given,
    the same rows in the sample layout (for a subset); returns row count, longest lists and
    the distinct non-empty values (tokens of the lists) of every id/tag column."""
    longest = {s: 1 for s in SEQUENCES}
    distinct = {c: set() for c in CATEGORICAL + SEQUENCES}
    n = 0
    with open(src, newline="", encoding="utf-8") as f, \
            open(dst_fuxi, "w", newline="", encoding="utf-8") as out:
        easy = open(dst_easy, "w", newline="", encoding="utf-8") if dst_easy else None
        try:
            writer = csv.writer(out)
            writer.writerow(COLUMNS)
            for row in csv.reader(f):
                if len(row) != len(COLUMNS):
                    raise SystemExit(f"{src}: row {n + 1} has {len(row)} columns, expected "
                                     f"{len(COLUMNS)} ({', '.join(COLUMNS)})")
                if easy:
                    easy.write(",".join(row) + "\n")
                for s in SEQUENCES:
                    v = row[COLUMNS.index(s)]
                    longest[s] = max(longest[s], v.count("|") + 1 if v else 1)
                    distinct[s].update(t for t in v.split("|") if t)
                for c in CATEGORICAL:
                    if row[COLUMNS.index(c)]:
                        distinct[c].add(row[COLUMNS.index(c)])
                row[-1] = price_bucket(row[-1])
                writer.writerow(row)
                n += 1
                if rows and n >= rows:
                    break
        finally:
            if easy:
                easy.close()
    return {"rows": n, "max_len": longest,
            "distinct": {c: sorted(v) for c, v in distinct.items()}}


def fuxi_configs(pair: str, seed: int, data_dir: str, model_root: str, max_len: dict,
                 train_csv: str, test_csv: str) -> tuple[dict, dict]:
    """(dataset_config, model_config) for FuxiCTR's load_config, dataset id per run."""
    p = PAIRS[pair]
    dataset_id = f"taobao_{pair}_{seed}"
    feature_cols = [{"name": list(CATEGORICAL) + ["price"], "active": True, "dtype": "str",
                     "type": "categorical"}]
    for s in SEQUENCES:
        feature_cols.append({"name": s, "active": True, "dtype": "str", "type": "sequence",
                             "splitter": "|", "max_len": max_len[s], "padding": "post",
                             "encoder": "MaskedAveragePooling"})
    labels = [{"name": lb, "dtype": "float"} for lb in p["labels"]]
    dataset = {dataset_id: {
        "data_root": data_dir, "data_format": "csv",
        "train_data": train_csv, "valid_data": test_csv, "test_data": test_csv,
        "min_categr_count": 1, "feature_cols": feature_cols,
        "label_col": labels if len(labels) > 1 else labels[0]}}
    expid = f"{p['model']}_{pair}_{seed}"
    model = {"Base": {"model_root": model_root, "num_workers": 3, "verbose": 0,
                      "early_stop_patience": 2, "pickle_feature_encoder": True,
                      "save_best_only": True, "eval_steps": None, "debug_mode": False,
                      "group_id": None, "use_features": None, "feature_specs": None,
                      "feature_config": None},
             expid: {"model": p["model"], "dataset_id": dataset_id,
                     "loss": "binary_crossentropy", "metrics": ["logloss", "AUC"],
                     "task": "binary_classification", "optimizer": "adam",
                     "learning_rate": 1e-3, "embedding_regularizer": "l2(1e-06)",
                     "net_regularizer": 0.0, "batch_size": 1024, "embedding_dim": 16,
                     "epochs": 1, "shuffle": True, "seed": seed, "monitor": "AUC",
                     "monitor_mode": "max", **p["params"]}}
    if len(p["labels"]) > 1:  # one loss per task; the monitored AUC is their mean
        model[expid]["loss"] = ["binary_crossentropy"] * len(p["labels"])
    return dataset, model


def validate_fuxi_configs(dataset: dict, model: dict, header: list[str]) -> list[str]:
    """The checks FuxiCTR would fail on later, done before anything runs; returns problems."""
    problems = []
    (dataset_id, d), = dataset.items()
    expids = [k for k in model if k != "Base"]
    if len(expids) != 1:
        problems.append(f"model_config: expected one experiment, found {expids}")
    m = model[expids[0]] if expids else {}
    if m.get("dataset_id") != dataset_id:
        problems.append(f"model_config dataset_id {m.get('dataset_id')!r} != {dataset_id!r}")
    pair = next((k for k, v in PAIRS.items() if v["model"] == m.get("model")), None)
    if pair is None:
        known = [v["model"] for v in PAIRS.values()]
        problems.append(f"model {m.get('model')!r} is none of {known}")
    names = []
    for col in d["feature_cols"]:
        names += col["name"] if isinstance(col["name"], list) else [col["name"]]
        if col["type"] == "sequence" and not (col.get("splitter") and col.get("max_len", 0) > 0):
            problems.append(f"sequence feature {col['name']}: needs splitter and max_len > 0")
    labels = d["label_col"] if isinstance(d["label_col"], list) else [d["label_col"]]
    for name in names + [lb["name"] for lb in labels]:
        if name not in header:
            problems.append(f"column {name!r} is not in the converted CSV's header {header}")
    for key in ("train_data", "valid_data", "test_data"):
        if not os.path.isfile(d[key]):
            problems.append(f"{key}: {d[key]} does not exist")
    if pair is not None:
        want = PAIRS[pair]["labels"]
        if [lb["name"] for lb in labels] != want:
            problems.append(f"labels {[lb['name'] for lb in labels]} != the sample's {want}")
        for f in m.get("gate_priors", []) + m.get("condition_features", []):
            if f not in names:
                problems.append(f"{m['model']}: feature {f!r} is not a feature column")
    for key in ("batch_size", "embedding_dim", "learning_rate", "epochs"):
        if key not in m:
            problems.append(f"model_config: {key} missing")
    json.dumps([dataset, model])  # plain data only (the YAML files are written as JSON)
    return problems


# ---- the workers (each in its own process) ---------------------------------------------------
def _step_summary(starts: list[float], ends: list[float], batches: list[int]) -> dict:
    n = len(ends)
    s = {"steps": n, "examples": sum(batches), "step_starts": starts, "step_ends": ends,
         "batches": batches}
    if n > WARMUP_STEPS + 1:
        s["steady_examples_per_sec"] = (sum(batches[WARMUP_STEPS:]) /
                                        (ends[-1] - ends[WARMUP_STEPS - 1]))
    return s


def worker_easyblocks(pair: str, seed: int, config_text: str, workdir: str, out: str) -> None:
    import numpy as np

    from easyblocks import api
    from easyblocks.train import loop

    starts, ends, batches, saves = [], [], [], []
    marks: dict = {}
    orig_step_fn, orig_save = loop.Trainer._train_step_fn, loop.Trainer.save
    orig_final, orig_init = loop.Trainer._final_evaluation, loop.Trainer.__init__
    orig_train, orig_input = loop.Trainer.train, loop.Trainer._input

    def train(self):
        marks["train_start"] = time.perf_counter()
        return orig_train(self)

    def make_input(self, *a, **k):
        marks["input_start"] = time.perf_counter()
        try:
            return orig_input(self, *a, **k)
        finally:
            marks["input_end"] = time.perf_counter()

    def step_fn(self, *a, **k):
        fn = orig_step_fn(self, *a, **k)

        def timed(features, labels, stop):
            starts.append(time.perf_counter())
            result = fn(features, labels, stop)
            ends.append(time.perf_counter())
            batches.append(int(next(iter(labels.values())).shape[0]))
            return result
        return timed

    def save(self, step):
        t = time.perf_counter()
        try:
            return orig_save(self, step)
        finally:
            saves.append([t, time.perf_counter()])

    def final(self):
        marks["train_end"] = time.perf_counter()
        return orig_final(self)

    def init(self, *a, **k):
        marks["init_start"] = time.perf_counter()
        orig_init(self, *a, **k)
        marks["init_end"] = time.perf_counter()

    loop.Trainer._train_step_fn, loop.Trainer.save = step_fn, save
    loop.Trainer._final_evaluation, loop.Trainer.__init__ = final, init
    loop.Trainer.train, loop.Trainer._input = train, make_input
    config = os.path.join(workdir, "model.config")
    with open(config, "w", encoding="utf-8") as f:
        f.write(config_text)
    t0 = time.perf_counter()
    api.train(config, model_dir=os.path.join(workdir, "model"))
    t_done = time.perf_counter()
    pred = os.path.join(workdir, "pred.csv")
    labels = PAIRS[pair]["labels"]
    api.predict(config, eval_input_path(config_text), pred, keep_columns=labels,
                model_dir=os.path.join(workdir, "model"))
    with open(pred, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    probs = [c for c in header if c.startswith("probs_")]
    # towers in config order are the labels in order (ctr: clk, cvr: buy)
    y = np.array([[float(r[header.index(lb)]) for lb in labels] for r in rows])
    p = np.array([[float(r[header.index(c)]) for c in probs] for r in rows])
    np.savez(os.path.join(workdir, "test_pred.npz"), y=y, p=p)
    import tensorflow as tf
    res = {"framework": "easyblocks", "t0": t0, **marks, "saves": saves,
           "after_train_s": t_done - marks["train_end"], "threads": {
               "intra": tf.config.threading.get_intra_op_parallelism_threads(),
               "inter": tf.config.threading.get_inter_op_parallelism_threads()},
           **_step_summary(starts, ends, batches)}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(res, f)


def worker_fuxictr(pair: str, seed: int, config_dir: str, workdir: str, out: str) -> None:
    import logging

    import numpy as np
    import torch
    from fuxictr.features import FeatureMap
    from fuxictr.preprocess import FeatureProcessor, build_dataset
    from fuxictr.pytorch.dataloaders import RankDataLoader
    from fuxictr.pytorch.torch_utils import seed_everything
    from fuxictr.utils import load_config

    logging.basicConfig(level=logging.WARNING)
    sys.path.insert(0, os.path.join(ZOO, pair))
    import src  # the model zoo's package of this pair (copied by --setup)

    p = PAIRS[pair]
    expid = f"{p['model']}_{pair}_{seed}"
    params = load_config(config_dir, expid)
    params["gpu"] = -1
    seed_everything(seed=params["seed"])
    data_dir = os.path.join(params["data_root"], params["dataset_id"])
    t0 = time.perf_counter()
    feature_encoder = FeatureProcessor(**params)
    params["train_data"], params["valid_data"], params["test_data"] = \
        build_dataset(feature_encoder, **params)
    t_prep = time.perf_counter()
    feature_map = FeatureMap(params["dataset_id"], data_dir)
    feature_map.load(os.path.join(data_dir, "feature_map.json"), params)
    model = getattr(src, params["model"])(feature_map, **params)
    t_model = time.perf_counter()
    train_gen, valid_gen = RankDataLoader(feature_map, stage="train", **params)
    t_loader = time.perf_counter()
    starts, ends, batches, saves = [], [], [], []
    marks: dict = {}
    orig_step, orig_eval, orig_save = model.train_step, model.eval_step, model.save_weights
    label0 = p["labels"][0]

    def train_step(batch_data):
        starts.append(time.perf_counter())
        loss = orig_step(batch_data)
        loss.item()
        ends.append(time.perf_counter())
        batches.append(int(batch_data[label0].shape[0]))
        return loss

    def eval_step():
        marks.setdefault("train_end", time.perf_counter())
        return orig_eval()

    def save_weights(path):
        t = time.perf_counter()
        orig_save(path)
        saves.append([t, time.perf_counter()])

    model.train_step, model.eval_step, model.save_weights = train_step, eval_step, save_weights
    os.makedirs(model.model_dir, exist_ok=True)  # run_expid's set_logger makes it
    model.fit(train_gen, validation_data=valid_gen, **params)
    test_gen = RankDataLoader(feature_map, stage="test", **params)
    model.eval()
    ys, ps = [], []
    with torch.no_grad():
        for batch in test_gen:
            pred = model.forward(batch)
            ps.append(np.concatenate([pred[f"{lb}_pred"].numpy().reshape(-1, 1) for lb in
                                      p["labels"]], axis=1) if len(p["labels"]) > 1 else
                      pred["y_pred"].numpy().reshape(-1, 1))
            ys.append(np.stack([batch[lb].numpy().reshape(-1) for lb in p["labels"]], axis=1))
    np.savez(os.path.join(workdir, "test_pred.npz"), y=np.concatenate(ys),
             p=np.concatenate(ps))
    import fuxictr
    res = {"framework": "fuxictr", "t0": t0, "prep_end": t_prep, "model_end": t_model,
           "loader_end": t_loader, **marks, "saves": saves,
           "threads": {"torch": torch.get_num_threads()},
           "versions": {"fuxictr": fuxictr.__version__, "torch": torch.__version__},
           **_step_summary(starts, ends, batches)}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(res, f)
    import ray  # FuxiCTR's data loading started Ray's local processes
    ray.shutdown()


# ---- the driver ------------------------------------------------------------------------------
def eval_input_path(config_text: str) -> str:
    import re
    return re.search(r'eval_input_path:\s*"([^"]*)"', config_text).group(1)


def easyblocks_config(pair: str, seed: int, train: str, test: str, model_dir: str,
                      ids: str = "vocab", distinct: dict | None = None) -> tuple[str, dict]:
    """The sample config of the pair on these files, and {column: what its ids are} (the
    hash_bucket_size used, or "vocab N").

    ids "buckets": every id/tag feature's hash_bucket_size = max(the sample's, 10 x the
    distinct values (tag tokens) of its column in the training file), so that few ids collide;
    "vocab": an exact vocabulary (vocab_list of the training file's values, unseen ones to one
    extra row), FuxiCTR's encoding (min_categr_count 1, one OOV row); "sample": the sample's
    own hash_bucket_size."""
    import re
    with open(os.path.join(ROOT, "samples", "configs", PAIRS[pair]["config"] + ".config"),
              encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r'train_input_path:\s*"[^"]*"', f'train_input_path: "{train}"', text)
    text = re.sub(r'eval_input_path:\s*"[^"]*"', f'eval_input_path: "{test}"', text)
    text = re.sub(r'model_dir:\s*"[^"]*"', f'model_dir: "{model_dir}"', text)
    text = re.sub(r"train_config\s*\{", f"train_config {{\n  seed: {seed}", text, count=1)
    used = {}
    n_hashed = len(re.findall(r"hash_bucket_size:", text))

    def sub(m):
        line, col, size = m.group(0), m.group(1), int(m.group(2))
        if ids == "sample" or col not in (distinct or {}):
            used[col] = size
            return line
        if ids == "vocab":
            words = ", ".join(json.dumps(v) for v in distinct[col])
            used[col] = f"vocab {len(distinct[col])}"
            return re.sub(r"hash_bucket_size:\s*\d+", f"vocab_list: [{words}]", line)
        used[col] = max(size, 10 * len(distinct[col]))
        return re.sub(r"hash_bucket_size:\s*\d+", f"hash_bucket_size: {used[col]}", line)
    text = re.sub(r'features\s*\{[^{}\n]*?input_names:\s*"([^"]+)"[^{}\n]*?'
                  r'hash_bucket_size:\s*(\d+)[^{}\n]*\}', sub, text)
    if ids != "sample" and len(used) != n_hashed:
        raise SystemExit(f"{pair}: {n_hashed} features with hash_bucket_size, {len(used)} "
                         "rewritten (one feature per line with input_names and "
                         "hash_bucket_size expected)")
    return text, used


def exact_auc(y, p) -> float:
    """Exact ROC AUC: P(score of a positive > score of a negative), ties counted 1/2."""
    import numpy as np

    y, p = np.asarray(y, dtype=np.float64) > 0.5, np.asarray(p, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return float("nan")
    # 1-based ranks of the scores, tied scores sharing their average rank
    order = np.argsort(p, kind="mergesort")
    sorted_p = p[order]
    first = np.r_[True, sorted_p[1:] != sorted_p[:-1]]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], p.size]
    ranks = np.empty(p.size)
    ranks[order] = ((starts + 1 + ends) / 2.0)[group]
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def phase(r: dict) -> dict:
    """The timeline of one run, seconds from its clock start."""
    t0, starts, ends = r["t0"], r["step_starts"], r["step_ends"]
    w = min(WARMUP_STEPS, len(ends))  # a smoke run has fewer steps
    saves_s = sum(b - a for a, b in r["saves"])
    out = {"steps": r["steps"], "steady": r.get("steady_examples_per_sec"),
           "setup_s": starts[0] - t0, "first_step_s": ends[0] - starts[0],
           "steps_2_20_s": ends[w - 1] - ends[0],
           "steady_s": ends[-1] - ends[w - 1],
           "last_step_s": ends[-1] - starts[-1],
           "median_step_s": statistics.median(b - a for a, b in zip(starts, ends)),
           "input_wait_s": sum(starts[i + 1] - ends[i] for i in range(len(ends) - 1)),
           "saves_s": saves_s, "n_saves": len(r["saves"])}
    if r["framework"] == "easyblocks":
        in_loop = sum(b - a for a, b in r["saves"] if a < ends[-1])
        out.update(whole_s=r["train_end"] - t0, prep_s=0.0,
                   init_s=r["init_end"] - r["init_start"],
                   before_init_s=r["init_start"] - t0,
                   # Trainer.train: file checks, lock, restore, up to building the input
                   train_checks_s=r["input_start"] - r["train_start"],
                   input_s=r["input_end"] - r["input_start"],
                   input_to_step1_s=starts[0] - r["input_end"],
                   after_last_step_s=r["train_end"] - ends[-1], saves_in_loop_s=in_loop)
    else:
        out.update(whole_s=r["train_end"] - t0 + saves_s, prep_s=r["prep_end"] - t0,
                   model_s=r["model_end"] - r["prep_end"],
                   loader_s=r["loader_end"] - r["model_end"],
                   after_last_step_s=r["train_end"] - ends[-1])
    out["whole_no_prep_s"] = out["whole_s"] - out["prep_s"]
    return out


def run_worker(framework: str, pair: str, seed: int, workdir: str, env_extra: dict,
               timeout: int = 1800) -> dict:
    out = os.path.join(workdir, "result.json")
    py = VENV_PY if framework == "fuxictr" else sys.executable
    cmd = [py, os.path.abspath(__file__), "--worker", framework, "--pair", pair,
           "--seed", str(seed), "--workdir", workdir]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED=str(seed), **env_extra)
    if framework == "fuxictr":
        env.pop("PYTHONPATH", None)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise SystemExit(f"{framework} {pair} seed {seed} failed (exit {proc.returncode}):\n"
                         f"{tail}")
    with open(out, encoding="utf-8") as f:
        r = json.load(f)
    import numpy as np
    z = np.load(os.path.join(workdir, "test_pred.npz"))
    r["auc"] = [exact_auc(z["y"][:, i], z["p"][:, i]) for i in range(z["y"].shape[1])]
    r["test_rows"], r["test_positives"] = int(z["y"].shape[0]), z["y"].sum(axis=0).tolist()
    r["phase"] = phase(r)
    r["loadavg"] = os.getloadavg()
    for k in ("step_starts", "step_ends", "batches"):
        r.pop(k)
    return r


def prepare(workdir: str, rows: int | None, test_rows: int | None) -> dict:
    data = os.path.join(workdir, "data")
    os.makedirs(data, exist_ok=True)
    src = os.path.join(ROOT, "samples", "data")
    info = {}
    for split, n in (("train", rows), ("test", test_rows)):
        easy = os.path.join(data, f"easy_{split}.csv") if n else None
        info[split] = convert(os.path.join(src, f"taobao_{split}.csv"),
                              os.path.join(data, f"fuxi_{split}.csv"), easy, n)
        info[split]["fuxi"] = os.path.join(data, f"fuxi_{split}.csv")
        info[split]["easy"] = easy or os.path.join(src, f"taobao_{split}.csv")
    return info


def write_fuxi(pair: str, seed: int, info: dict, rundir: str) -> str:
    config_dir = os.path.join(rundir, "config")
    os.makedirs(config_dir, exist_ok=True)
    dataset, model = fuxi_configs(pair, seed, os.path.join(rundir, "fuxi_data"),
                                  os.path.join(rundir, "fuxi_ckpt"),
                                  info["train"]["max_len"], info["train"]["fuxi"],
                                  info["test"]["fuxi"])
    with open(info["train"]["fuxi"], encoding="utf-8") as f:
        header = f.readline().strip().split(",")
    problems = validate_fuxi_configs(dataset, model, header)
    if problems:
        raise SystemExit("generated FuxiCTR config is wrong: " + "; ".join(problems))
    for name, obj in (("dataset_config.yaml", dataset), ("model_config.yaml", model)):
        with open(os.path.join(config_dir, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1)  # JSON is YAML
    return config_dir


def fuxi_ready() -> str | None:
    """None when the FuxiCTR side can run, else why not."""
    if not os.path.exists(VENV_PY):
        return f"{os.path.relpath(VENV, ROOT)} does not exist (run --setup)"
    missing = [p for p in PAIRS if not os.path.isdir(os.path.join(ZOO, p))]
    if missing:
        return f"model zoo sources missing in {ZOO} for {missing} (run --setup)"
    return None


def setup(repo: str) -> None:
    if not os.path.exists(VENV_PY):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    pip = [VENV_PY, "-m", "pip", "install", "-q"]
    subprocess.run(pip + [f"torch=={TORCH_VERSION}"], check=True)
    # fuxictr 2.3.10 calls polars.scan_csv(dtypes=...), removed in polars 2
    subprocess.run(pip + [f"fuxictr=={FUXICTR_VERSION}", "polars<2"], check=True)
    bare = not os.path.isdir(os.path.join(repo, ".git"))
    git = ["git", f"--git-dir={repo if bare else os.path.join(repo, '.git')}"]
    version = subprocess.run(git + ["show", "HEAD:fuxictr/version.py"], check=True,
                             capture_output=True, text=True).stdout
    if FUXICTR_VERSION not in version:
        print(f"warning: {repo} HEAD is {version.strip()}, not {FUXICTR_VERSION}")
    for pair, p in PAIRS.items():
        dst = os.path.join(ZOO, pair, "src")
        shutil.rmtree(dst, ignore_errors=True)
        os.makedirs(dst)
        names = subprocess.run(git + ["ls-tree", "--name-only", f"HEAD:{p['zoo']}"],
                               check=True, capture_output=True, text=True).stdout.split()
        for name in names:
            if name.endswith(".py"):
                text = subprocess.run(git + ["show", f"HEAD:{p['zoo']}/{name}"], check=True,
                                      capture_output=True, text=True).stdout
                with open(os.path.join(dst, name), "w", encoding="utf-8") as f:
                    f.write(text)
    print(f"FuxiCTR {FUXICTR_VERSION} in {VENV}; model zoo of {list(PAIRS)} in {ZOO}")


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def seed_means(rs: list[dict], i: int) -> list[float]:
    """AUC i per seed (runs of one seed averaged: a seed rerun for speed counts once)."""
    by: dict = {}
    for r in rs:
        by.setdefault(r["seed"], []).append(r["auc"][i])
    return [statistics.mean(v) for _, v in sorted(by.items())]


def fmt(values, spec=".0f"):
    m, s = mean_std(values)
    return f"{m:{spec}} ± {s:{spec}}"


def report(args, runs: list[dict], info: dict, elapsed: float, skipped: str | None) -> str:
    import numpy as np
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import tensorflow as tf
    fx = next((r.get("versions") for r in runs if r["framework"] == "fuxictr"), None)
    lines = [
        "# easyblocks vs FuxiCTR (peer framework, CPU)", "",
        f"Date {now}. Machine: {os.cpu_count()} CPU cores ({cpu}), shared with other jobs "
        "(load average printed per run). easyblocks on TensorFlow "
        f"{tf.__version__}; FuxiCTR {fx['fuxictr'] if fx else FUXICTR_VERSION} on torch "
        f"{fx['torch'] if fx else TORCH_VERSION} (CPU) in its own venv. "
        + (f"Report rebuilt by `{' '.join(['python', 'benchmarks/peer_fuxictr.py'] + args.argv)}`"
           " from the runs stored by one command per (pair, seed), each `flock /tmp/bench.lock "
           "python benchmarks/peer_fuxictr.py --pairs P --seeds S --results FILE` "
           "(benchmarks/README.md)." if args.report_only else
           f"Command: `{' '.join(['python', 'benchmarks/peer_fuxictr.py'] + args.argv)}` "
           f"(under `flock /tmp/bench.lock`), {elapsed:.0f} s."), "",
        f"Data: samples/data, {info['train']['rows']} training rows, {info['test']['rows']} "
        "test rows, one epoch, batch 1024, embedding dim 16, Adam lr 0.001, the sample's "
        "hidden units. Every run a fresh process; per seed the two frameworks alternate "
        "(easyblocks first for odd seeds, FuxiCTR first for even seeds).", ""]
    if skipped:
        lines += [f"FuxiCTR side skipped: {skipped}.", ""]
    lines += ["## Side by side (AUC: mean ± sample std over seeds, a seed run twice counted "
              "once; speed: mean ± std over all runs)", "",
              "| pair | framework | test AUC | steady examples/s (steps 21..end) | whole "
              "training phase s | phase s without FuxiCTR's CSV preprocessing | steady ratio "
              "eb/fx (per seed) | phase ratio fx/eb (per seed; > 1: easyblocks faster) | "
              "phase ratio without preprocessing |", "|" + "---|" * 9]
    verdicts = []

    def same_batch(a, b):  # run in one command (old runs without "batch": the same seed)
        return a["seed"] == b["seed"] and a.get("batch") == b.get("batch")
    for pair in args.pairs:
        fx = [r for r in runs if r["pair"] == pair and r["framework"] == "fuxictr"]
        modes = sorted({r.get("ids", "sample") for r in runs
                        if r["pair"] == pair and r["framework"] == "easyblocks"})
        groups = [(f"easyblocks, ids {m}", [r for r in runs if r["pair"] == pair and
                                             r["framework"] == "easyblocks" and
                                             r.get("ids", "sample") == m]) for m in modes]
        for name, rs in groups + [("FuxiCTR", fx)]:
            if not rs:
                continue
            steady_r, phase_r, phase_np = [], [], []
            for r in rs if name != "FuxiCTR" else []:
                f = next((x for x in fx if same_batch(r, x)), None)
                if f is None:
                    continue
                if r["phase"]["steady"] and f["phase"]["steady"]:
                    steady_r.append(r["phase"]["steady"] / f["phase"]["steady"])
                phase_r.append(f["phase"]["whole_s"] / r["phase"]["whole_s"])
                phase_np.append(f["phase"]["whole_no_prep_s"] / r["phase"]["whole_s"])
            auc = " / ".join(fmt(seed_means(rs, i), ".4f") for i in range(len(rs[0]["auc"])))
            row = [pair, f"{name} ({len(rs)} runs, seeds "
                   f"{','.join(str(x) for x in sorted({r['seed'] for r in rs}))})", auc,
                   fmt([r["phase"]["steady"] for r in rs]),
                   fmt([r["phase"]["whole_s"] for r in rs], ".1f"),
                   fmt([r["phase"]["whole_no_prep_s"] for r in rs], ".1f")]
            if steady_r:
                row += [f"{fmt(steady_r, '.2f')} ({', '.join(f'{x:.2f}' for x in steady_r)})",
                        f"{fmt(phase_r, '.2f')} ({', '.join(f'{x:.2f}' for x in phase_r)})",
                        f"{fmt(phase_np, '.2f')} ({', '.join(f'{x:.2f}' for x in phase_np)})"]
            else:
                row += ["", "", ""]
            lines.append("| " + " | ".join(row) + " |")
            if steady_r and phase_r and fx:
                auc_eb = mean_std(seed_means(rs, 0))[0]
                auc_fx = mean_std(seed_means(fx, 0))[0]
                verdicts.append(
                    f"- {pair}, {name}: steady state "
                    f"{'wins' if min(steady_r) > 1 else 'does not win in every paired run'}"
                    f" (eb/fx {min(steady_r):.2f}-{max(steady_r):.2f}); whole phase "
                    f"{'wins' if min(phase_r) > 1 else 'loses' if max(phase_r) < 1 else 'mixed'}"
                    f" (fx/eb {min(phase_r):.2f}-{max(phase_r):.2f}; without FuxiCTR's "
                    f"preprocessing {min(phase_np):.2f}-{max(phase_np):.2f}); "
                    f"{PAIRS[pair]['labels'][0]} AUC {auc_eb:.4f} vs {auc_fx:.4f} "
                    f"({'equal or better' if auc_eb >= auc_fx - 0.001 else 'worse'}).")
    sizes = {}
    for r in runs:
        if r["framework"] == "easyblocks" and r.get("buckets"):
            sizes.setdefault((r["pair"], r.get("ids", "sample")), r["buckets"])
    if sizes:
        cols = list(dict.fromkeys(c for b in sizes.values() for c in b))
        lines += ["", "easyblocks' id/tag tables (hash_bucket_size, or vocab_list size + 1 "
                  "OOV row) per pair and --ids; distinct values (tokens) in the training "
                  "file: " + ", ".join(f"{c} {len(v)}" for c, v in
                                       info["train"]["distinct"].items()) + ".",
                  "", "| pair, ids | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
        for (pair, mode), b in sorted(sizes.items()):
            lines.append(f"| {pair}, {mode} | " + " | ".join(str(b.get(c, "")) for c in cols)
                         + " |")
    lines += ["", "AUC: one exact AUC function (`exact_auc`: rank statistic, ties 1/2) over "
              "each framework's predictions of the same test rows (labels in task order; "
              "row counts and positives checked equal).", ""]
    if verdicts:
        lines += ["## Against the target", ""] + verdicts + [""]
    lines += ["## Where the whole phase goes (seconds from each run's clock start; mean "
              "over seeds)", "",
              "| pair | framework | setup before step 1 (FuxiCTR: preprocessing / model / "
              "loader) | step 1 | steps 2-20 | steps 21..end | last step | median step | "
              "input wait between steps (total) | checkpoint saves (n) | after last step to "
              "end | whole |", "|" + "---|" * 12]
    for pair in args.pairs:
        for name in ("easyblocks", "fuxictr"):
            rs = [r["phase"] for r in runs if r["pair"] == pair and r["framework"] == name]
            if not rs:
                continue

            def m(k, rs=rs):  # (runs stored before a field was recorded lack it)
                have = [r[k] for r in rs if k in r]
                return float(np.mean(have)) if have else float("nan")
            setup_txt = f"{m('setup_s'):.2f}"
            if name == "fuxictr":
                setup_txt += (f" ({m('prep_s'):.2f} / {m('model_s'):.2f} / "
                              f"{m('loader_s'):.2f})")
            else:
                setup_txt += (f" (resolve {m('before_init_s'):.2f}, Trainer() "
                              f"{m('init_s'):.2f}, train() checks "
                              f"{m('train_checks_s'):.2f}, input {m('input_s'):.2f}, to step 1 "
                              f"{m('input_to_step1_s'):.2f})")
            lines.append(
                f"| {pair} | {name} | {setup_txt} | {m('first_step_s'):.2f} | "
                f"{m('steps_2_20_s'):.2f} | {m('steady_s'):.2f} | {m('last_step_s'):.3f} | "
                f"{m('median_step_s'):.3f} | {m('input_wait_s'):.2f} | {m('saves_s'):.2f} "
                f"({m('n_saves'):.0f}) | {m('after_last_step_s'):.2f} | {m('whole_s'):.2f} |")
    lines += ["", "## Per run", "",
              "| pair | seed | command (UTC) | order | framework | AUC | steady examples/s | "
              "whole s | steps | threads | load average |", "|" + "---|" * 11]
    for r in runs:
        fw = r["framework"] + (f", ids {r.get('ids', 'sample')}"
                               if r["framework"] == "easyblocks" else "")
        lines.append(
            f"| {r['pair']} | {r['seed']} | {r.get('batch', 'round 1')} | {r['order']} | {fw} | "
            f"{' / '.join(f'{a:.4f}' for a in r['auc'])} | {r['phase']['steady'] or 0:.0f} | "
            f"{r['phase']['whole_s']:.2f} | {r['phase']['steps']} | "
            f"{json.dumps(r['threads'])} | {' '.join(f'{x:.2f}' for x in r['loadavg'])} |")
    lines += ["", "## Clocks", "",
              "- easyblocks: the clock starts at the call of `api.train` (TensorFlow and "
              "easyblocks already imported) and stops when the Trainer enters its final "
              "evaluation, after the last checkpoint save.",
              "- FuxiCTR: the clock starts before `FeatureProcessor(...)` + `build_dataset` "
              "(torch and fuxictr imported) and stops when `fit` enters its end-of-epoch "
              "`eval_step`; the seconds of its checkpoint save (after that validation) are "
              "added.",
              "- steady examples/s: examples of steps 21..last / (end of the last step - end "
              "of step 20), from per-step timestamps taken around each framework's step call "
              "in the worker process.", "",
              "## Mismatches that remain", ""] + [f"- {m}" for m in MISMATCHES]
    return "\n".join(lines) + "\n"


RUN_MARKER = ".peer_fuxictr_run"


def fresh_run_dir(path: str) -> str:
    """An empty run folder at path (a fresh run never restores an earlier command's
    checkpoint). A folder already there is deleted only if this script made it (it holds
    RUN_MARKER); anything else there stops the benchmark with a message."""
    if os.path.lexists(path):
        if not os.path.isfile(os.path.join(path, RUN_MARKER)):
            raise SystemExit(f"{path} exists and was not made by this benchmark: choose another "
                             "--workdir or move it away")
        shutil.rmtree(path)
    os.makedirs(path)
    with open(os.path.join(path, RUN_MARKER), "w", encoding="utf-8") as f:
        f.write("made by benchmarks/peer_fuxictr.py; deleted when the same run is made again\n")
    return path


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--setup", action="store_true", help="create the FuxiCTR venv")
    ap.add_argument("--fuxictr_repo", default=DEFAULT_REPO,
                    help="FuxiCTR git checkout or bare mirror (model zoo sources, --setup)")
    ap.add_argument("--pairs", nargs="+", default=["dnn"], choices=list(PAIRS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    ap.add_argument("--rows", type=int, default=0, help="training rows (0: all)")
    ap.add_argument("--test_rows", type=int, default=0, help="test rows (0: all)")
    ap.add_argument("--workdir", default=None, help="default: a temporary folder")
    ap.add_argument("--out", default=None)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--ids", choices=["buckets", "vocab", "sample"], default="vocab",
                    help="easyblocks' id/tag features: vocab (default): an exact vocab_list "
                         "of the training file's values, one OOV row (FuxiCTR's encoding); "
                         "buckets: hash_bucket_size = max(the sample's, 10 x the column's "
                         "distinct training values); sample: the sample's own hash_bucket_size")
    ap.add_argument("--sample_buckets", action="store_const", const="sample", dest="ids",
                    help="same as --ids sample")
    ap.add_argument("--skip_fuxictr", action="store_true",
                    help="run only the easyblocks side (the FuxiCTR configs are still "
                         "generated and validated)")
    ap.add_argument("--results", default=None,
                    help="JSON-lines file: each run is appended; the report covers every run "
                         "in it of --pairs (so that seeds can run as separate commands, each "
                         "under its own flock)")
    ap.add_argument("--report_only", action="store_true",
                    help="with --results: write the report from the runs stored there")
    ap.add_argument("--worker", choices=["easyblocks", "fuxictr"], help=argparse.SUPPRESS)
    ap.add_argument("--pair", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.argv = argv
    if args.worker:
        out = os.path.join(args.workdir, "result.json")
        if args.worker == "easyblocks":
            with open(os.path.join(args.workdir, "easyblocks.config"), encoding="utf-8") as f:
                worker_easyblocks(args.pair, args.seed, f.read(), args.workdir, out)
        else:
            worker_fuxictr(args.pair, args.seed, os.path.join(args.workdir, "config"),
                           args.workdir, out)
        return 0
    if args.setup:
        setup(args.fuxictr_repo)
        return 0
    if args.smoke:
        args.rows, args.test_rows, args.seeds = args.rows or 3000, args.test_rows or 1000, [1]
    tmp = tempfile.mkdtemp(prefix="peer_fuxictr_") if not args.workdir else None
    workdir = args.workdir or tmp
    start = time.perf_counter()
    try:
        info = prepare(workdir, args.rows or None, args.test_rows or None)
        skipped = "--skip_fuxictr given" if args.skip_fuxictr else fuxi_ready()
        if skipped:
            print(f"FuxiCTR side skipped: {skipped}", flush=True)
        runs = []
        if args.results and os.path.exists(args.results):
            with open(args.results, encoding="utf-8") as f:
                runs = [r for r in map(json.loads, f) if r["pair"] in args.pairs]
        batch = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S")
        for seed in [] if args.report_only else args.seeds:
            for pair in args.pairs:
                order = ["easyblocks", "fuxictr"] if seed % 2 else ["fuxictr", "easyblocks"]
                for i, fw in enumerate(order):
                    rundir = fresh_run_dir(os.path.join(workdir, f"{pair}_{seed}_{fw}"))
                    # written (and for FuxiCTR validated) even when its side is skipped
                    config_dir = write_fuxi(pair, seed, info, rundir)
                    if fw == "fuxictr" and skipped:
                        continue
                    text, used = easyblocks_config(pair, seed, info["train"]["easy"],
                                                   info["test"]["easy"],
                                                   os.path.join(rundir, "model"), args.ids,
                                                   info["train"]["distinct"])
                    # the generated config stays next to the run (rundir/easyblocks.config)
                    with open(os.path.join(rundir, "easyblocks.config"), "w",
                              encoding="utf-8") as f:
                        f.write(text)
                    del config_dir
                    r = run_worker(fw, pair, seed, rundir, {})
                    r.update(pair=pair, seed=seed, order=i + 1, batch=batch)
                    if fw == "easyblocks":
                        r.update(ids=args.ids, buckets=used)
                    runs.append(r)
                    if args.results:
                        with open(args.results, "a", encoding="utf-8") as f:
                            f.write(json.dumps(r) + "\n")
                    ph = r["phase"]
                    print(f"{pair} seed {seed} {fw}: AUC "
                          f"{' / '.join(f'{a:.4f}' for a in r['auc'])}, steady "
                          f"{ph['steady'] or 0:.0f} examples/s, whole phase "
                          f"{ph['whole_s']:.2f} s (setup {ph['setup_s']:.2f}, step 1 "
                          f"{ph['first_step_s']:.2f}, saves {ph['saves_s']:.2f}), load "
                          f"{' '.join(f'{x:.2f}' for x in r['loadavg'])}", flush=True)
        runs.sort(key=lambda r: (r["pair"], r["seed"], r.get("batch", ""), r["order"]))
        text = report(args, runs, info, time.perf_counter() - start, skipped)
        out = args.out or (os.path.join(tempfile.gettempdir(), "peer_fuxictr_smoke.md")
                           if args.smoke else
                           os.path.join(ROOT, "docs", "benchmarks", "peer_fuxictr.md"))
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
        print(text)
        print(f"report written to {out}")
        return 0
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
