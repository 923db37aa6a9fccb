"""Every shipped sample config parses, validates and builds (no training)."""

import glob
import os

import pytest
from conftest import ROOT, SAMPLES

from easyblocks import api
from easyblocks.tools.describe import describe

CONFIGS = sorted(glob.glob(os.path.join(SAMPLES, "configs", "*.config")))


def test_there_are_samples():
    assert len(CONFIGS) >= 10


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_sample_builds(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    info = describe(api.resolve(path))
    assert info.blocks and info.towers and info.total_params > 0
