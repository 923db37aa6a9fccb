"""End to end: the classic CTR samples (seed 002) train on the shipped data.

Each sample trains for one epoch (196 steps) and must reach a test AUC above a floor set
about 0.015-0.025 below the worst seed measured: seeds 1-3 by benchmarks/classic.py (see
docs/benchmarks/classic.md) and the configs' default seed 2024, which these tests use. The MLP
reaches 0.612-0.622 on clk with those seeds; chance is 0.5, the oracle 0.768.
"""

import os

import numpy as np
import pytest
from conftest import ROOT, SAMPLES

from easyblocks import api
from easyblocks.eval.evaluator import Evaluator
from easyblocks.eval.metrics import auc
from easyblocks.train.loop import Trainer

pytestmark = pytest.mark.slow
CONFIGS = os.path.join(SAMPLES, "configs")
TEST_CSV = os.path.join(SAMPLES, "data", "taobao_test.csv")


@pytest.fixture(autouse=True)
def run_from_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # sample configs use paths relative to the project root


def oracle_auc(column: int) -> float:
    oracle = np.loadtxt(os.path.join(SAMPLES, "data", "taobao_test.oracle.csv"), delimiter=",")
    labels = np.loadtxt(TEST_CSV, delimiter=",", usecols=[column], dtype=np.int64)
    return auc(labels, oracle[:, column])


# sample -> clk AUC floor; in the comment the measured AUC at seed 2024 and the worst of seeds 1-3
CLK_FLOORS = {
    "wide_and_deep_on_taobao": 0.60,  # 2024: 0.6285; 1-3: 0.6240
    "deepfm_on_taobao": 0.60,  # 2024: 0.6282; 1-3: 0.6243
    "mlr_on_taobao": 0.59,  # 2024: 0.6084; 1-3: 0.6260
    "pnn_on_taobao": 0.59,  # 2024: 0.6106; 1-3: 0.6186
    "din_on_taobao": 0.58,  # 2024: 0.6016; 1-3: 0.6176
    "dssm_on_taobao": 0.60,  # 2024: 0.6272; 1-3: 0.6211
}


@pytest.mark.parametrize("name", sorted(CLK_FLOORS))
def test_classic_rank_sample_trains(name, tmp_path):
    results = api.train(os.path.join(CONFIGS, f"{name}.config"), model_dir=str(tmp_path))
    assert results["step"] == 196  # one epoch of 200k rows in batches of 1024
    clk = results["towers"]["clk"]["overall"]
    assert clk["count"] == 50000
    assert CLK_FLOORS[name] < clk["auc"] < oracle_auc(0)


def test_esmm_sample_trains_and_ctcvr_is_the_product(tmp_path):
    resolved = api.resolve(os.path.join(CONFIGS, "esmm_on_taobao.config"))
    trainer = Trainer(resolved, model_dir=str(tmp_path))
    results = trainer.train()
    assert results["step"] == 196
    towers = results["towers"]
    assert set(towers) == {"ctr", "ctcvr"}
    assert towers["ctr"]["label"] == "clk" and towers["ctcvr"]["label"] == "buy"
    # 2024: ctr 0.6132, ctcvr 0.6932; worst of seeds 1-3: ctr 0.6135, ctcvr 0.6992
    assert 0.59 < towers["ctr"]["overall"]["auc"] < oracle_auc(0)
    assert 0.67 < towers["ctcvr"]["overall"]["auc"] < oracle_auc(1)

    arrays = Evaluator(trainer.state).predict_arrays([TEST_CSV])
    p_ctr, p_ctcvr, p_cvr = (arrays[k] for k in ("probs_ctr", "probs_ctcvr",
                                                   "cond_probs_ctcvr"))
    assert p_ctcvr.shape == p_cvr.shape == p_ctr.shape == (50000,)
    np.testing.assert_allclose(p_ctcvr, p_cvr * p_ctr, rtol=1e-5, atol=1e-7)
    assert (p_ctcvr <= p_ctr + 1e-7).all()  # the probability of clicking and then buying
    # cvr is supervised only through ctcvr = ctr * cvr: where ctr is small it may saturate
    # (float32 sigmoid reaches 1.0 past a logit of ~17: 351 of 50k rows at seed 2024)
    assert ((p_cvr >= 0) & (p_cvr <= 1)).all()
    assert np.mean((p_cvr > 0) & (p_cvr < 1)) > 0.95 and 0.01 < np.median(p_cvr) < 0.9
    # pCVR ranks buys among the clicked rows (ESMM's CVR task; 2024: 0.5920, worst of seeds
    # 1-3: 0.6081, oracle 0.687), though it is trained only through p_ctcvr
    clicked = arrays["clk"] == 1
    assert 0.57 < auc(arrays["buy"][clicked], p_cvr[clicked])
