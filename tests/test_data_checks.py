"""Issue 11, items 4 (inputs), 7, 8, 9 and 11 (ids): labels, non-finite numbers, empty files,
header lines and predict's column mapping are checked against the data, at file:line."""

import csv
import logging
import os

import numpy as np
import pytest
from reliability_helpers import make_run, rows, write_rows

from easyblocks import api
from easyblocks.errors import DataError

HEADER = "clk,buy,user,tags,price"


def _train_file(tmp_path, lines, name="train.csv", header=None):
    return write_rows(tmp_path / name, lines, header)


# ---- item 8: labels -----------------------------------------------------------------------

@pytest.mark.parametrize("bad, message", [
    ("", r"label 'clk' is empty"),
    ("2", r"label 'clk' is '2'; a CLASSIFICATION tower needs labels 0 or 1"),
    ("-1", r"label 'clk' is '-1'"),
])
def test_bad_labels_are_data_errors_at_file_line(tmp_path, bad, message):
    lines = rows(40)
    lines[7] = bad + lines[7][1:]
    run = make_run(tmp_path, train=_train_file(tmp_path, lines), num_steps=4)
    with pytest.raises(DataError, match=rf"train.csv:8: {message}"):
        api.train(run["config"])


def test_a_bad_label_past_the_first_thousand_rows_is_found_by_the_pipeline(tmp_path):
    lines = rows(1500)
    lines[1299] = "7" + lines[1299][1:]
    run = make_run(tmp_path, train=_train_file(tmp_path, lines), num_steps=400,
                   save_every=1000, log_every=1000)
    with pytest.raises(DataError, match=r"train.csv:1300: label 'clk' is '7'"):
        api.train(run["config"])
    assert not [f for f in os.listdir(run["model_dir"]) if f.startswith("ckpt-")]


def test_regression_labels_may_be_any_number(tmp_path):
    lines = [f"{i % 7}.5" + line[1:] for i, line in enumerate(rows(40))]
    run = make_run(tmp_path, train=_train_file(tmp_path, lines), num_steps=4,
                   extra="")
    text = open(run["config"]).read().replace('input_name: "clk" input_type: INT32',
                                              'input_name: "clk" input_type: FLOAT')
    text = text.replace('model_class: "RankModel"', 'model_class: "RankModel"\n'
                        '  loss_type: L2_LOSS')
    open(run["config"], "w").write(text)
    results = api.train(run["config"])
    overall = results["towers"]["clk"]["overall"]
    assert set(overall) == {"count", "mean_squared_error", "mean_absolute_error"}
    # the prediction is the logit (not a probability): scored as a number
    out = os.path.join(tmp_path, "y.csv")
    api.predict(run["config"], run["data"], out)
    scored = list(csv.reader(open(out)))
    assert scored[0] == ["y_clk"]
    y = np.array([float(r[0]) for r in scored[1:]])
    labels = np.array([float(line.split(",")[0]) for line in lines])
    assert overall["mean_squared_error"] == pytest.approx(float(np.mean((y - labels) ** 2)),
                                                          rel=1e-4)
    assert overall["mean_absolute_error"] == pytest.approx(float(np.mean(np.abs(y - labels))),
                                                           rel=1e-4)


# ---- item 4: non-finite inputs ------------------------------------------------------------

@pytest.mark.parametrize("line", [5, 1200])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_raw_feature_is_a_data_error(tmp_path, line, value):
    lines = rows(1300 if line > 1000 else 40)
    lines[line - 1] = lines[line - 1].rsplit(",", 1)[0] + "," + value
    run = make_run(tmp_path, train=_train_file(tmp_path, lines), num_steps=400,
                   save_every=1000, log_every=1000)
    with pytest.raises(DataError, match=rf"train.csv:{line}: column 'price' has '{value}': "
                                        "NaN and inf are not accepted"):
        api.train(run["config"])


# ---- item 9: empty files and headers ------------------------------------------------------

def test_empty_and_header_only_training_files_are_refused(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    run = make_run(tmp_path, train=str(empty), num_steps=4)
    with pytest.raises(DataError, match=r"train_input_path: .*empty.csv: no data rows"):
        api.train(run["config"])
    header_only = write_rows(tmp_path / "header.csv", [], header=HEADER)
    run = make_run(tmp_path, train=header_only, num_steps=4, data_extra="  with_header: true",
                   name="h.config")
    with pytest.raises(DataError, match=r"header.csv: no data rows"):
        api.train(run["config"])


def test_empty_eval_file_is_refused(tmp_path):
    run = make_run(tmp_path, num_steps=3)
    api.train(run["config"])
    empty = tmp_path / "eval.csv"
    empty.write_text("\n")
    with pytest.raises(DataError, match=r"eval_input_path: .*eval.csv: no data rows"):
        api.evaluate(run["config"], overrides=[f'eval_input_path: "{empty}"'])


def test_header_handling_is_per_file(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="easyblocks")
    train = write_rows(tmp_path / "train.csv", rows(40), header=HEADER)
    run = make_run(tmp_path, train=train, num_steps=3, data_extra="  with_header: true")
    api.train(run["config"])
    headerless = write_rows(tmp_path / "eval.csv", rows(9, seed=8))
    results = api.evaluate(run["config"], overrides=[f'eval_input_path: "{headerless}"'])
    assert results["towers"]["clk"]["overall"]["count"] == 9  # the first row is not lost
    assert "eval.csv: with_header is true but its first line is a data row" in caplog.text
    # the opposite: a header in a file of a config without with_header is skipped
    text = open(run["config"]).read().replace("  with_header: true\n", "")
    open(run["config"], "w").write(text)
    with_header = write_rows(tmp_path / "eval2.csv", rows(9, seed=8), header=HEADER)
    results = api.evaluate(run["config"], overrides=[f'eval_input_path: "{with_header}"'])
    assert results["towers"]["clk"]["overall"]["count"] == 9


# ---- item 7: predict maps columns by the header -------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict")
    run = make_run(tmp, num_steps=10)
    api.train(run["config"])
    return run


def _scores(path):
    return [float(r[-1]) for r in list(csv.reader(open(path)))[1:]]


def test_predict_maps_columns_by_header_names(trained, tmp_path):
    lines = rows(30, seed=11)
    plain = write_rows(tmp_path / "plain.csv", lines)
    api.predict(trained["config"], plain, str(tmp_path / "a.csv"), keep_columns=["user"])
    # the same rows, columns reordered and the labels dropped, with a header
    reordered = [",".join([c[4], c[2], c[3]]) for c in (line.split(",") for line in lines)]
    shuffled = write_rows(tmp_path / "shuffled.csv", reordered, header="price,user,tags")
    api.predict(trained["config"], shuffled, str(tmp_path / "b.csv"), keep_columns=["user"])
    np.testing.assert_allclose(_scores(tmp_path / "b.csv"), _scores(tmp_path / "a.csv"),
                               rtol=1e-5)
    a = list(csv.reader(open(tmp_path / "a.csv")))
    b = list(csv.reader(open(tmp_path / "b.csv")))
    assert [r[0] for r in a] == [r[0] for r in b]  # user kept by name


def test_predict_refuses_a_file_missing_a_feature_column(trained, tmp_path):
    lines = rows(10, seed=12)
    # with a header: the missing column is named
    no_tags = [",".join(c[:3] + c[4:]) for c in (line.split(",") for line in lines)]
    path = write_rows(tmp_path / "no_tags.csv", no_tags, header="clk,buy,user,price")
    with pytest.raises(DataError, match=r"no_tags.csv:1: the header has no column tags, "
                                        "which the model reads"):
        api.predict(trained["config"], path, str(tmp_path / "out.csv"))
    # without a header, a count that fits neither layout
    short = [",".join(c[:2] + c[3:]) for c in (line.split(",") for line in lines)]
    short = [",".join(line.split(",")[:3]) for line in short]
    path = write_rows(tmp_path / "short.csv", short)
    with pytest.raises(DataError, match=r"short.csv:1: 3 columns fit neither layout of a file "
                                        r"without a header: 5 \(the config's input fields\) or "
                                        r"4 \(without clk\)"):
        api.predict(trained["config"], path, str(tmp_path / "out.csv"))
    assert not os.path.exists(tmp_path / "out.csv")


# ---- item 11: integer ids beyond num_buckets ----------------------------------------------

def test_ids_outside_num_buckets_are_counted_in_a_warning(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="easyblocks")
    run = make_run(tmp_path, num_steps=2)
    text = open(run["config"]).read().replace(
        "features { input_names: \"price\" feature_type: RawFeature }",
        "features { input_names: \"price\" feature_type: RawFeature }\n"
        "  features { input_names: \"buy\" feature_name: \"buy_id\" feature_type: IdFeature "
        "embedding_dim: 2 num_buckets: 1 }")
    text = text.replace('feature_names: "user"', 'feature_names: ["user", "buy_id"]')
    open(run["config"], "w").write(text)
    api.train(run["config"])
    ones = sum(line.split(",")[1] == "1" for line in open(run["data"]))
    assert f"feature 'buy_id': {ones} of the first 64 rows have ids outside [0, 1)" \
        in caplog.text


def test_multi_class_labels_are_class_ids_and_the_tower_trains_evaluates_and_predicts(tmp_path):
    # a num_class 3 tower (softmax): labels 0, 1, 2; evaluated with logloss and accuracy;
    # predict writes one probability per class
    lines = [f"{i % 3}" + line[1:] for i, line in enumerate(rows(40))]
    run = make_run(tmp_path, train=_train_file(tmp_path, lines), num_steps=4)
    text = open(run["config"]).read().replace('model_class: "RankModel"',
                                              'model_class: "RankModel"\n  num_class: 3')
    open(run["config"], "w").write(text)
    overall = api.train(run["config"])["towers"]["clk"]["overall"]
    assert set(overall) == {"count", "logloss", "accuracy"}
    assert 0.0 <= overall["accuracy"] <= 1.0 and overall["logloss"] > 0
    out = os.path.join(tmp_path, "p.csv")
    api.predict(run["config"], run["data"], out)
    scored = list(csv.reader(open(out)))
    assert scored[0] == ["probs_clk_0", "probs_clk_1", "probs_clk_2"]
    probs = np.array([[float(x) for x in r] for r in scored[1:]])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # the accuracy of what predict wrote
    labels = np.array([int(line[0]) for line in lines])
    assert overall["accuracy"] == pytest.approx(float(np.mean(probs.argmax(axis=1) == labels)))

    lines[5] = "3" + lines[5][1:]
    bad = _train_file(tmp_path, lines, name="bad.csv")
    open(run["config"], "w").write(text.replace(run["data"], bad))
    with pytest.raises(DataError, match=r"bad.csv:6: label 'clk' is '3'; a tower of num_class 3 "
                                        r"needs class ids 0 to 2"):
        api.train(run["config"])
