"""The seed's AITM config (EasyRec docs, seed 004) trains as written; the calibration loss acts."""

import logging
import os
import re

import numpy as np
import pytest
from conftest import ROOT, SAMPLES
from test_config import seed_model_config

from easyblocks import api
from easyblocks.eval.evaluator import Evaluator
from easyblocks.train.loop import Trainer

pytestmark = pytest.mark.slow
AITM = os.path.join(SAMPLES, "configs", "aitm_on_taobao.config")


@pytest.fixture(autouse=True)
def run_from_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_sample_holds_the_seed_model_config_unchanged():
    text = open(AITM).read()
    assert seed_model_config() in text


def test_seed_config_trains_end_to_end_with_every_loss_term(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="easyblocks")
    results = api.train(AITM, model_dir=str(tmp_path))
    assert "tower 'cvr': ORDER_CALIBRATE_LOSS relation towers inferred from the DAG: ctr" \
        in caplog.text
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert progress and all("loss/cvr/order_calibrate" in line and
                            "loss/cvr/classification" in line and
                            "loss/ctr/classification" in line for line in progress)
    towers = results["towers"]
    # measured (seed 2024): ctr 0.61, cvr 0.61-0.67 after one epoch
    assert towers["ctr"]["overall"]["auc"] > 0.58
    assert towers["cvr"]["overall"]["auc"] > 0.58


def _violations(config: str, tmp_path, name: str, steps: int = 20, seed: int = 1) -> float:
    resolved = api.resolve(config, num_steps=steps, overrides=[f"train_config {{ seed: {seed} }}"])
    trainer = Trainer(resolved, model_dir=str(tmp_path / name))
    trainer._train_loop([os.path.join(SAMPLES, "data", "taobao_train.csv")], 0)
    test_file = os.path.join(SAMPLES, "data", "taobao_test.csv")
    arrays = Evaluator(trainer.state).predict_arrays([test_file], 10000)
    return float(np.mean(arrays["probs_cvr"] > arrays["probs_ctr"]))


def test_calibration_loss_lowers_order_violations(tmp_path):
    """p(buy) > p(clk) is rare after a full epoch with or without the loss (the base rates
    are 1% and 6%), so the effect is measured early in training, with a strong alpha:
    measured over seeds 1-3 at 20 steps, 0.001-0.055 with alpha 20 against 0.24-0.70
    without the loss."""
    text = open(AITM).read()
    strong = tmp_path / "strong.config"
    strong.write_text(text.replace("loss_type: ORDER_CALIBRATE_LOSS",
                                   "loss_type: ORDER_CALIBRATE_LOSS weight: 20"))
    without = tmp_path / "without.config"
    without.write_text(re.sub(r"\s*losses \{\s*loss_type: ORDER_CALIBRATE_LOSS\s*\}", "", text))
    with_loss = _violations(str(strong), tmp_path, "strong")
    without_loss = _violations(str(without), tmp_path, "without")
    assert with_loss < 0.1
    assert without_loss > 0.2
    assert with_loss < without_loss / 3
