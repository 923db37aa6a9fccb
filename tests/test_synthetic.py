"""Tests for the synthetic Taobao-like data generator."""

import csv
import os
from dataclasses import replace

import numpy as np
import pytest

from easyblocks.data import synthetic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INT_COLUMNS = ["clk", "buy", "price"]
LIST_COLUMNS = ["tag_category_list", "tag_brand_list"]


@pytest.fixture(scope="module")
def world() -> synthetic.TaobaoWorld:
    return synthetic.TaobaoWorld(seed=7)


@pytest.fixture(scope="module")
def big_sample(world):
    """50k labelled impressions, their rows and oracle probabilities."""
    imp, probs, clk, buy = world.labelled_impressions(
        50_000, np.random.default_rng([7, 1]))
    return imp, world.rows(imp, clk, buy), probs


def test_columns_and_types():
    rows, probs = synthetic.generate(500, seed=3, num_users=200, num_ads=100)
    assert len(synthetic.COLUMNS) == 20
    assert synthetic.COLUMNS[:3] == ["clk", "buy", "pid"]
    assert synthetic.COLUMNS[-1] == "price"
    assert len(rows) == 500 and probs.shape == (500, 2)
    col = {name: i for i, name in enumerate(synthetic.COLUMNS)}
    for row in rows:
        assert len(row) == 20
        assert all(isinstance(v, str) and v and "," not in v and '"' not in v
                   for v in row)
        for name in INT_COLUMNS:
            int(row[col[name]])
        assert row[col["clk"]] in ("0", "1") and row[col["buy"]] in ("0", "1")
        assert int(row[col["price"]]) >= 1
        for name in LIST_COLUMNS:
            ids = row[col[name]].split("|")
            assert 1 <= len(ids) <= 5 and all(ids)
            assert len(set(ids)) == len(ids)
        assert row[col["pid"]] in synthetic.PIDS
    assert np.all((probs > 0) & (probs < 1))
    assert np.all(probs[:, 1] <= probs[:, 0])


def test_buy_implies_click(big_sample):
    _, rows, _ = big_sample
    clk = np.array([r[0] == "1" for r in rows])
    buy = np.array([r[1] == "1" for r in rows])
    assert not np.any(buy & ~clk)
    assert 0.04 < clk.mean() < 0.11
    assert 0.08 < buy.sum() / clk.sum() < 0.3


def test_deterministic(tmp_path):
    a = synthetic.generate(300, seed=11, num_users=100, num_ads=50)
    b = synthetic.generate(300, seed=11, num_users=100, num_ads=50)
    c = synthetic.generate(300, seed=12, num_users=100, num_ads=50)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    assert a[0] != c[0]
    for d in ("x", "y"):
        synthetic.write_split(str(tmp_path / d), 200, 100, seed=5,
                              num_users=100, num_ads=50)
    names = sorted(os.listdir(tmp_path / "x"))
    assert names == ["taobao_test.csv", "taobao_test.oracle.csv",
                     "taobao_train.csv", "taobao_train.oracle.csv"]
    for name in names:
        assert (tmp_path / "x" / name).read_bytes() == \
            (tmp_path / "y" / name).read_bytes()
    train = (tmp_path / "x" / "taobao_train.csv").read_text()
    test = (tmp_path / "x" / "taobao_test.csv").read_text()
    assert train != test  # a different rng stream of the same world


def test_oracle_auc_in_band(big_sample):
    imp, rows, probs = big_sample
    clk = np.array([r[0] == "1" for r in rows])
    buy = np.array([r[1] == "1" for r in rows])
    assert 0.70 <= synthetic.auc(clk, probs[:, 0]) <= 0.80
    assert 0.70 <= synthetic.auc(buy, probs[:, 1]) <= 0.92


def test_pids_differ(world, big_sample):
    imp, rows, probs = big_sample
    pids = np.array([r[2] for r in rows])
    counts = [np.sum(pids == p) for p in synthetic.PIDS]
    assert counts[0] > 1.5 * counts[1] > 2.25 * counts[2]
    rates = [probs[pids == p, 0].mean() for p in synthetic.PIDS]
    assert max(rates) - min(rates) > 0.02

    # Score the same impressions under every scenario: the logits are not
    # just shifted copies of each other (different effect structure) ...
    n = len(rows)
    per_pid = np.stack([
        world.probabilities(replace(imp, pid=np.full(n, k)))[:, 0]
        for k in range(len(synthetic.PIDS))])
    assert np.allclose(per_pid[imp.pid, np.arange(n)], probs[:, 0])
    corr = np.corrcoef(np.log(per_pid / (1 - per_pid)))
    assert np.all(corr[np.triu_indices(3, 1)] < 0.9)
    assert np.all(corr > 0.3)
    # ... and knowing the domain beats a pid-marginalised score within each.
    clk = np.array([r[0] == "1" for r in rows])
    pooled = synthetic.PID_SHARE @ per_pid
    for k in range(len(synthetic.PIDS)):
        m = imp.pid == k
        assert synthetic.auc(clk[m], probs[m, 0]) > \
            synthetic.auc(clk[m], pooled[m]) + 0.005


def test_auc_hand_computed():
    # Positives at 0.8 and 0.4; negatives at 0.4, 0.1 and 0.8.
    # Pairs (pos, neg): (0.8,0.4)=1 (0.8,0.1)=1 (0.8,0.8)=.5
    #                   (0.4,0.4)=.5 (0.4,0.1)=1 (0.4,0.8)=0 -> 4/6.
    labels = [1, 0, 1, 0, 0]
    scores = [0.8, 0.4, 0.4, 0.1, 0.8]
    assert synthetic.auc(labels, scores) == pytest.approx(4 / 6)
    assert synthetic.auc([0, 1], [0.1, 0.9]) == 1.0
    assert synthetic.auc([1, 0], [0.1, 0.9]) == 0.0
    assert synthetic.auc([1, 0, 1, 0], [0.5] * 4) == 0.5
    assert np.isnan(synthetic.auc([1, 1], [0.1, 0.2]))


def test_shipped_sample_data():
    path = os.path.join(REPO, "samples", "data", "taobao_test.csv")
    oracle = os.path.join(REPO, "samples", "data", "taobao_test.oracle.csv")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 50_000
    assert all(len(r) == 20 for r in rows)
    probs = np.loadtxt(oracle, delimiter=",")
    assert probs.shape == (50_000, 2)


def test_structure_parameters_change_the_world():
    """Long tails and scenario mixes: the parameters benchmarks/quality.py uses."""
    col = {name: i for i, name in enumerate(synthetic.COLUMNS)}
    base = synthetic.TaobaoWorld(seed=4, num_users=2_000, num_ads=500)
    tail = synthetic.TaobaoWorld(seed=4, num_users=2_000, num_ads=500, user_activity_sigma=3.0,
                                 pid_share=[0.0, 0.0, 1.0])
    rng = np.random.default_rng
    rows_base, _ = base.sample(4_000, rng(1))
    rows_tail, _ = tail.sample(4_000, rng(1))
    # a longer tail of activity: the most active 1 % of users hold more of the rows
    def top_share(rows):
        counts = np.sort(np.unique([r[col["user_id"]] for r in rows], return_counts=True)[1])
        return counts[-20:].sum() / len(rows)
    assert top_share(rows_tail) > top_share(rows_base) + 0.1
    assert {r[col["pid"]] for r in rows_tail} == {synthetic.PIDS[2]}
    with pytest.raises(ValueError, match="pid_share"):
        synthetic.TaobaoWorld(seed=4, num_users=10, num_ads=10, pid_share=[1.0, 0.0])


def test_time_sorted_split_ads_live_in_windows_and_test_comes_later(tmp_path):
    out = synthetic.write_split(str(tmp_path), 3_000, 1_000, seed=6, num_users=500,
                                num_ads=400, ad_lifetime=0.2, pid_share=[1.0, 0.0, 0.0])
    world = synthetic.TaobaoWorld(seed=6, num_users=500, num_ads=400, ad_lifetime=0.2,
                                  pid_share=[1.0, 0.0, 0.0])
    imp, _, _, _ = world.labelled_impressions(3_000, np.random.default_rng([6, 1]), (0.0, 1.0))
    assert np.all(np.diff(imp.time) >= 0)  # rows in time order
    launch = world.ad_launch[imp.ad]
    slot_mid = (np.floor(imp.time * 100) + 0.5) / 100
    assert np.all((launch <= slot_mid) & (slot_mid < launch + 0.2))  # each ad live when shown
    # the scenario mix drifts from pid_share (all scenario 0) to its reverse (all scenario 2)
    assert np.mean(imp.pid[imp.time < 0.2] == 2) < 0.15  # mostly scenario 0 early
    assert np.mean(imp.pid[imp.time > 0.8] == 2) > 0.85  # mostly scenario 2 late
    assert set(imp.pid) == {0, 2}
    col = {name: i for i, name in enumerate(synthetic.COLUMNS)}
    test_pids = {r[col["pid"]] for r in out["test"][0]}
    assert test_pids == {synthetic.PIDS[2]}  # the test period comes after: the reversed mix
    train_ads = {r[col["adgroup_id"]] for r in out["train"][0]}
    test_ads = [r[col["adgroup_id"]] for r in out["test"][0]]
    assert np.mean([a not in train_ads for a in test_ads]) > 0.2  # ads launched later are new
