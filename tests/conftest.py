"""Shared fixtures: config text helpers and paths to the shipped and shared data."""

from __future__ import annotations

import os
import textwrap

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "samples")
# ../shared/data beside the project; EASYBLOCKS_SHARED_DATA points elsewhere (a worktree
# whose parent folder has no shared/)
SHARED_DATA = os.environ.get("EASYBLOCKS_SHARED_DATA",
                             os.path.join(os.path.dirname(ROOT), "shared", "data"))
SEEDS = os.path.join(os.path.dirname(ROOT), "shared", "seeds")

# A tiny schema used by the unit tests: 3 columns + 2 labels.
TINY_DATA = """
data_config {
  batch_size: 4
  num_epochs: 1
  input_fields { input_name: "clk" input_type: INT32 }
  input_fields { input_name: "buy" input_type: INT32 }
  input_fields { input_name: "user" input_type: STRING }
  input_fields { input_name: "tags" input_type: STRING }
  input_fields { input_name: "price" input_type: FLOAT default_val: "1.5" }
  label_fields: "clk"
}
feature_config {
  features { input_names: "user" feature_type: IdFeature embedding_dim: 4 hash_bucket_size: 100 }
  features { input_names: "tags" feature_type: TagFeature embedding_dim: 4 hash_bucket_size: 50
             combiner: "mean" }
  features { input_names: "price" feature_type: RawFeature }
}
"""


def tiny_config(model: str, extra: str = "") -> str:
    """TINY_DATA plus a model_config body (group 'all' = user, tags, price is predefined)."""
    return TINY_DATA + extra + textwrap.dedent(
        """
        model_config {
          model_class: "RankModel"
          feature_groups { group_name: "all" feature_names: ["user", "tags", "price"] }
          feature_groups { group_name: "user" feature_names: "user" }
        """
    ) + model + "\n}\n"


@pytest.fixture
def write_config(tmp_path):
    """Writes config text to a file and returns its path."""

    def write(text: str, name: str = "test.config") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


def shared_data(name: str) -> str:
    path = os.path.join(SHARED_DATA, name)
    if not os.path.isdir(path):
        pytest.skip(f"shared data folder {path} is missing (only CI and dev machines have it)")
    return path


def create_layer(proto, name: str, where: str):
    """Builds the layer a KerasLayer message describes (through its LayerSpec, as the
    backbone does)."""
    from easyblocks.blocks.registry import create_layer as create
    from easyblocks.config.dag import layer_spec

    return create(layer_spec(proto, where), name, where)


def layer_kwargs(proto, registered, where: str) -> dict:
    """The constructor kwargs a KerasLayer message gives the registered block."""
    from easyblocks.blocks.registry import layer_kwargs as kwargs
    from easyblocks.config.dag import layer_spec

    return kwargs(layer_spec(proto, where), registered, where)
