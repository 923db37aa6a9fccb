"""CSV input: parsing, defaults, headers, and bad rows named by file and line."""

import numpy as np
import pytest
from conftest import TINY_DATA

from easyblocks.config.features import build_feature_specs
from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import data_spec
from easyblocks.data.csv_input import CSVInput, expand_paths, find_bad_line
from easyblocks.errors import DataError
from easyblocks.features.preprocess import Preprocessor


def make_input(extra=""):
    text = TINY_DATA.replace("batch_size: 4", "batch_size: 4\n" + extra)
    loaded = parse_config_text(text, "t.config")
    pre = Preprocessor(build_feature_specs(loaded))
    data = data_spec(loaded)
    return data, CSVInput(data, pre, ["clk"], ["user"])


def test_reads_batches_with_defaults(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("1,0,u1,a|b,2.5\n0,0,u2,c,\n1,1,u3,,3\n")
    _, inp = make_input()
    batches = list(inp.dataset([str(path)], 2, training=False))
    assert len(batches) == 2
    features, labels, cols = batches[0]
    np.testing.assert_allclose(labels["clk"].numpy(), [1.0, 0.0])
    np.testing.assert_allclose(features["price"].numpy(), [[2.5], [1.5]])  # default_val 1.5
    assert list(cols["user"].numpy()) == [b"u1", b"u2"]


def test_header_is_skipped(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("clk,buy,user,tags,price\n1,0,u1,a,2\n")
    data, inp = make_input("with_header: true")
    find_bad_line([str(path)], data)
    batches = list(inp.dataset([str(path)], 8, training=False))
    assert batches[0][1]["clk"].shape == (1,)


@pytest.mark.parametrize("rows, message", [
    ("1,0,u1,a,2\n1,0,u1,a\n", r"d.csv:2: expected 5 columns \(clk, buy, user, tags, \.\.\.\), "
                              "found 4"),
    ("1,0,u1,a,2\n1,0,u1,a,2\nx,0,u1,a,2\n", r"d.csv:3: column 'clk' \(INT32\) has 'x', not a "
                                            "number"),
    ("1,0,u1,a,2.x\n", r"d.csv:1: column 'price' \(FLOAT\) has '2.x', not a number"),
])
def test_bad_rows_are_named_by_file_and_line(tmp_path, rows, message):
    path = tmp_path / "d.csv"
    path.write_text(rows)
    data, _ = make_input()
    with pytest.raises(DataError, match=message):
        find_bad_line([str(path)], data)


def test_missing_input_file():
    with pytest.raises(DataError, match="file not found: /nope.csv"):
        expand_paths("/nope.csv", "train_input_path")


def test_glob_and_comma_separated_paths(tmp_path):
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text("1,0,u,a,1\n")
    files = expand_paths(f"{tmp_path}/*.csv,{tmp_path}/a.csv")
    assert [f.split("/")[-1] for f in files] == ["a.csv", "b.csv", "a.csv"]
