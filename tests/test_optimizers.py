"""Row-wise table updates: exact for SGD and Adagrad, lazy Adam on the touched rows."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config

from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.train.optimizers import SparseTableOptimizer, dense_optimizer


def train_config(text):
    """The OptimizerSpec of a config whose train_config is `text`."""
    config = tiny_config('backbone { blocks { name: "b" inputs { feature_group_name: "all" } } }',
                         extra=f"train_config {{ {text} }}\n")
    return resolve(parse_config_text(config, "t.config")).train.optimizer


CONFIGS = {
    "sgd": "optimizer_config { sgd_optimizer { learning_rate { constant_learning_rate { "
           "learning_rate: 0.1 } } } }",
    "sgd_momentum": "optimizer_config { sgd_optimizer { momentum: 0.9 learning_rate { "
                    "constant_learning_rate { learning_rate: 0.1 } } } }",
    "adagrad": "optimizer_config { adagrad_optimizer { learning_rate { constant_learning_rate { "
               "learning_rate: 0.1 } } } }",
    "adam": "optimizer_config { adam_optimizer { learning_rate { constant_learning_rate { "
            "learning_rate: 0.1 } } } }",
}


@pytest.mark.parametrize("name", ["sgd", "sgd_momentum", "adagrad", "adam"])
def test_rowwise_update_matches_keras_on_touched_rows(name):
    tc = train_config(CONFIGS[name])
    init = np.arange(12, dtype=np.float32).reshape(6, 2) / 10
    sparse_var = keras.Variable(init)
    dense_var = keras.Variable(init)
    sparse_opt = SparseTableOptimizer(tc, [sparse_var])
    dense_opt = dense_optimizer(tc)
    ids = tf.constant([1, 3, 1])
    for _ in range(3):  # the same rows every step: lazy Adam equals Adam there
        for var, apply in ((sparse_var, lambda g: sparse_opt.apply([g], [sparse_var])),
                           (dense_var, lambda g: dense_opt.apply_gradients([(
                               tf.convert_to_tensor(g), dense_var)]))):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(tf.gather(var, ids) - 1.0))
            apply(tape.gradient(loss, var))
    np.testing.assert_allclose(sparse_var.numpy(), dense_var.numpy(), rtol=1e-5, atol=1e-6)
    untouched = [0, 2, 4, 5]
    np.testing.assert_allclose(sparse_var.numpy()[untouched], init[untouched])


def test_exponential_decay_with_floor():
    tc = train_config("optimizer_config { adam_optimizer { learning_rate { "
                      "exponential_decay_learning_rate { initial_learning_rate: 1.0 "
                      "decay_steps: 1 decay_factor: 0.5 min_learning_rate: 0.2 } } } }")
    opt = SparseTableOptimizer(tc, [])
    lrs = []
    for _ in range(4):
        lrs.append(float(opt.current_lr()))
        opt.apply([], [])
    np.testing.assert_allclose(lrs, [1.0, 0.5, 0.25, 0.2])


def applied_learning_rates(text: str, steps: int) -> tuple[list[float], list[float]]:
    """The learning rates SGD actually applies at steps 0..steps-1, measured from the
    updates: for the dense Keras optimizer on a variable and for the row-wise table
    optimizer on one looked-up row, both with gradient 1 (loss = the sum of the values)."""
    tc = train_config("optimizer_config { sgd_optimizer { learning_rate { " + text + " } } }")
    dense_var, table = keras.Variable(np.zeros(1, np.float32)), keras.Variable(np.zeros((3, 1),
                                                                                    np.float32))
    dense_opt, table_opt = dense_optimizer(tc), SparseTableOptimizer(tc, [table])
    dense_lrs, table_lrs = [], []
    for _ in range(steps):
        before = dense_var.numpy()[0], table.numpy()[1, 0]
        with tf.GradientTape(persistent=True) as tape:
            dense_loss = tf.reduce_sum(dense_var)
            table_loss = tf.reduce_sum(tf.gather(table, [1]))
        dense_opt.apply_gradients([(tape.gradient(dense_loss, dense_var), dense_var)])
        table_opt.apply([tape.gradient(table_loss, table)], [table])
        dense_lrs.append(float(before[0] - dense_var.numpy()[0]))
        table_lrs.append(float(before[1] - table.numpy()[1, 0]))
    return dense_lrs, table_lrs


def test_cosine_decay_with_warmup_by_hand():
    """Linear warmup 0.01 -> 0.1 over 10 steps, held 5 steps, cosine to 0 at step 35, then 0;
    the dense and the table optimizer apply the same rate at every step."""
    dense, table = applied_learning_rates(
        "cosine_decay_learning_rate { learning_rate_base: 0.1 warmup_learning_rate: 0.01 "
        "warmup_steps: 10 hold_base_rate_steps: 5 total_steps: 35 }", 38)
    np.testing.assert_allclose(dense, table, rtol=1e-6, atol=1e-9)
    expected = {0: 0.01, 5: 0.055, 9: 0.091, 10: 0.1, 15: 0.1,
                20: 0.05 * (1 + np.cos(np.pi / 4)),  # (20 - 15) / (35 - 15) of the way
                25: 0.05, 30: 0.05 * (1 + np.cos(np.pi * 3 / 4)), 35: 0.0, 37: 0.0}
    for step, lr in expected.items():
        assert dense[step] == pytest.approx(lr, abs=2e-7), step


def test_exponential_decay_with_burnin_by_hand():
    """EasyRec's burn-in: linear 0.2 -> 1.0 over 4 steps, then 1.0 x 0.5 ^ floor((step - 4)
    / 2), at least 0.1; without a burn-in rate the first 4 steps run at 1.0."""
    dense, table = applied_learning_rates(
        "exponential_decay_learning_rate { initial_learning_rate: 1.0 decay_steps: 2 "
        "decay_factor: 0.5 burnin_learning_rate: 0.2 burnin_steps: 4 min_learning_rate: 0.1 }",
        14)
    np.testing.assert_allclose(dense, table, rtol=1e-6)
    np.testing.assert_allclose(dense, [0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25,
                                       0.125, 0.125, 0.1, 0.1], rtol=1e-5)
    dense, table = applied_learning_rates(
        "exponential_decay_learning_rate { initial_learning_rate: 1.0 decay_steps: 2 "
        "decay_factor: 0.5 burnin_steps: 4 }", 8)
    np.testing.assert_allclose(dense, table, rtol=1e-6)
    np.testing.assert_allclose(dense, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5], rtol=1e-5)


@pytest.mark.parametrize("text, message", [
    ("cosine_decay_learning_rate { learning_rate_base: 0.1 warmup_learning_rate: 0.2 }",
     "warmup_learning_rate 0.2 is above learning_rate_base 0.1"),
    ("cosine_decay_learning_rate { warmup_steps: 10 hold_base_rate_steps: 5 total_steps: 15 }",
     "total_steps 15 must be larger than warmup_steps + hold_base_rate_steps (10 + 5)"),
    ("exponential_decay_learning_rate { decay_steps: 0 }", "decay_steps must be positive"),
])
def test_learning_rate_errors(text, message):
    from easyblocks.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)):
        train_config("optimizer_config { adam_optimizer { learning_rate { " + text + " } } }")


def test_checkpoint_restores_every_model_variable(tmp_path):
    """Tables, BN statistics, dense weights and optimizer slots all come back."""
    from conftest import tiny_config

    from easyblocks.config.loader import parse_config_text
    from easyblocks.config.resolve import resolve
    from easyblocks.train.loop import Trainer

    text = tiny_config('backbone { blocks { name: "m" inputs { feature_group_name: "all" } '
                       'keras_layer { class_name: "MLP" mlp { hidden_units: [4] } } } '
                       'concat_blocks: "m" }')

    def trainer():
        return Trainer(resolve(parse_config_text(text, "t.config")), model_dir=str(tmp_path))

    first = trainer()
    for i, v in enumerate(first.model.variables):
        v.assign(np.full(v.shape, i + 0.5, np.float32))
    first.table_opt.slots[0][0].assign(tf.fill(first.table_opt.slots[0][0].shape, 7.0))
    first.step.assign(11)
    first.manager.save(checkpoint_number=11)
    second = trainer()
    assert second.restore().endswith("ckpt-11")
    assert int(second.step.numpy()) == 11
    paths = [v.path for v in second.model.variables]
    assert any("embedding_user" in p for p in paths) and any("moving_mean" in p for p in paths)
    for i, v in enumerate(second.model.variables):
        np.testing.assert_allclose(v.numpy(), i + 0.5, err_msg=v.path)
    np.testing.assert_allclose(second.table_opt.slots[0][0].numpy(), 7.0)


def test_resume_in_the_same_process_with_dropout(tmp_path):
    """Keras numbers a Dropout's seed generator per process; the checkpoint must not care."""
    from conftest import tiny_config

    from easyblocks.config.loader import parse_config_text
    from easyblocks.config.resolve import resolve
    from easyblocks.train.loop import Trainer

    text = tiny_config('backbone { blocks { name: "m" inputs { feature_group_name: "all" } '
                       'keras_layer { class_name: "MLP" mlp { hidden_units: [4] '
                       'dropout_ratio: 0.5 } } } concat_blocks: "m" }')
    first = Trainer(resolve(parse_config_text(text, "t.config")), model_dir=str(tmp_path))
    first.manager.save(checkpoint_number=1)
    second = Trainer(resolve(parse_config_text(text, "t.config")), model_dir=str(tmp_path))
    assert {v.path for v in first.model.variables} != {v.path for v in second.model.variables}
    assert second.restore().endswith("ckpt-1")
    for a, b in zip(first.model.variables, second.model.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
