"""Row-wise table updates: exact for SGD and Adagrad, lazy Adam on the touched rows."""

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
