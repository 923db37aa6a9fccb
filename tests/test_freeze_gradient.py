"""EasyRec's train_config.freeze_gradient: variables whose name a pattern finds are not
trained; here the names are easyblocks' checkpoint keys, and a pattern that finds none (an
EasyRec TF1 name) is one error line."""

import numpy as np
import pytest
from reliability_helpers import make_run

from easyblocks import api
from easyblocks.config.loader import load_config
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError
from easyblocks.train.loop import Trainer


def test_frozen_variables_do_not_move_and_the_others_do(tmp_path):
    run = make_run(tmp_path, num_steps=3, extra='train_config {\n  freeze_gradient: '
                   '"^features/embedding_user$"\n  freeze_gradient: "logits/bias"\n}\n')
    trainer = Trainer(resolve(load_config(run["config"])))
    keyed = dict(trainer.state.keyed_variables)
    before = {k: v.numpy().copy() for k, v in keyed.items()}
    assert [trainer.state.key_of(t) for t in trainer.tables] == ["features/embedding_tags"]
    trainer.train()
    assert int(trainer.step.numpy()) == 3
    for key in ("features/embedding_user", "tower_clk/logits/bias"):
        np.testing.assert_array_equal(keyed[key].numpy(), before[key], err_msg=key)
    for key in ("features/embedding_tags", "tower_clk/logits/kernel",
                "backbone/dag/mlp/dense#0/kernel"):
        assert not np.array_equal(keyed[key].numpy(), before[key]), key


def test_a_pattern_that_finds_nothing_is_one_line_at_validate(tmp_path):
    run = make_run(tmp_path, extra='train_config {\n  freeze_gradient: '
                   '"input_layer_1.*embedding_weights"\n}\n')
    line = open(run["config"]).read().splitlines().index(
        '  freeze_gradient: "input_layer_1.*embedding_weights"') + 1
    with pytest.raises(ConfigError) as e:
        api.validate_config(run["config"])
    assert str(e.value).startswith(
        f"{run['config']}:{line}: train_config.freeze_gradient: "
        "'input_layer_1.*embedding_weights' finds none of the model's trainable variables, "
        "which are named by their checkpoint keys (e.g. features/embedding_user, ")


def test_a_bad_regular_expression_is_one_line(tmp_path):
    run = make_run(tmp_path, extra='train_config { freeze_gradient: "features/(" }\n')
    with pytest.raises(ConfigError, match=r"c\.config:\d+: train_config\.freeze_gradient: "
                                          r"'features/\(' is not a regular expression"):
        resolve(load_config(run["config"]))
