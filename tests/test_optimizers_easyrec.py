"""EasyRec's optimizers: TF1's momentum, AdamW / MomentumW's decoupled weight decay, FTRL
(dense and row-wise), embedding_learning_rate_multiplier and clipping with the tables."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config

from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.train.optimizers import SparseTableOptimizer, dense_optimizer, prepare_gradients


def optimizer_spec(text: str, extra: str = ""):
    config = tiny_config('backbone { blocks { name: "b" inputs { feature_group_name: "all" } } }',
                         extra=f"train_config {{ optimizer_config {{ {text} }} {extra} }}\n")
    return resolve(parse_config_text(config, "t.config")).train.optimizer


DECAY = ("learning_rate { exponential_decay_learning_rate { initial_learning_rate: 0.1 "
         "decay_steps: 1 decay_factor: 0.5 } }")


def _steps(spec, grads, table: bool):
    """Applies the gradients (one per step) to a 1-row variable [1.0, 1.0]."""
    var = keras.Variable(np.ones((1, 2), np.float32))
    opt = SparseTableOptimizer(spec, [var]) if table else dense_optimizer(spec)
    for g in grads:
        g = tf.constant([g], tf.float32)
        if table:
            opt.apply([tf.IndexedSlices(g, tf.constant([0]), tf.constant([1, 2]))], [var])
        else:
            opt.apply_gradients([(g, var)])
    return var.numpy()[0]


@pytest.mark.parametrize("table", [False, True])
def test_momentum_is_tf1s_with_a_decaying_learning_rate(table):
    spec = optimizer_spec(f"momentum_optimizer {{ momentum_optimizer_value: 0.9 {DECAY} }}")
    # a1 = 1, var = 1 - 0.1 * 1 = 0.9; a2 = 0.9 + 1 = 1.9, var = 0.9 - 0.05 * 1.9 = 0.805
    # (Keras' SGD would give 0.9 - (0.9 * 0.1 + 0.05) = 0.76)
    np.testing.assert_allclose(_steps(spec, [[1.0, 1.0]] * 2, table), [0.805, 0.805],
                               rtol=1e-6)


@pytest.mark.parametrize("table", [False, True])
def test_adamw_decays_by_weight_decay_not_scaled_by_the_learning_rate(table):
    spec = optimizer_spec("adamw_optimizer { weight_decay: 0.01 learning_rate { "
                          "constant_learning_rate { learning_rate: 0.1 } } }")
    assert spec.epsilon == 1e-8  # TF1's
    # Adam's first step moves by lr * g / |g| = 0.1; the decay 0.01 * 1.0 comes on top
    np.testing.assert_allclose(_steps(spec, [[0.5, -2.0]], table), [0.89, 1.09], rtol=1e-5)


@pytest.mark.parametrize("table", [False, True])
def test_momentumw_by_hand(table):
    spec = optimizer_spec("momentumw_optimizer { weight_decay: 0.1 momentum_optimizer_value: "
                          "0.5 learning_rate { constant_learning_rate { learning_rate: 0.1 } } }")
    # step 1: var = 1 - 0.1 * 1 - 0.1 * 1 = 0.8; step 2: a = 0.5 + 1 = 1.5,
    # var = 0.8 - 0.1 * 0.8 - 0.1 * 1.5 = 0.57
    np.testing.assert_allclose(_steps(spec, [[1.0, 1.0]] * 2, table), [0.57, 0.57], rtol=1e-6)


def test_ftrl_rows_match_tensorflows_ftrl_and_untouched_rows_stay():
    spec = optimizer_spec("ftrl_optimizer { l1_reg: 0.01 l2_reg: 0.1 l2_shrinkage_reg: 0.05 "
                          "learning_rate { constant_learning_rate { learning_rate: 0.2 } } }")
    init = np.arange(12, dtype=np.float32).reshape(6, 2) / 10
    sparse_var, dense_var = keras.Variable(init), keras.Variable(init)
    sparse_opt, dense_opt = SparseTableOptimizer(spec, [sparse_var]), dense_optimizer(spec)
    assert isinstance(dense_opt, keras.optimizers.Ftrl)
    ids = tf.constant([1, 3, 1])
    for _ in range(3):
        for var in (sparse_var, dense_var):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(tf.gather(var, ids) - 1.0))
            g = tape.gradient(loss, var)
            if var is sparse_var:
                sparse_opt.apply([g], [var])
            else:
                dense_opt.apply_gradients([(tf.convert_to_tensor(g), var)])
    touched = [1, 3]
    np.testing.assert_allclose(sparse_var.numpy()[touched], dense_var.numpy()[touched],
                               rtol=1e-5, atol=1e-6)
    # TF1 with sparse gradients leaves the other rows; a dense FTRL step would zero them
    np.testing.assert_allclose(sparse_var.numpy()[[0, 2, 4, 5]], init[[0, 2, 4, 5]])


def test_embedding_multiplier_then_global_clipping_with_the_tables():
    spec = optimizer_spec("sgd_optimizer { learning_rate { constant_learning_rate { "
                          "learning_rate: 0.1 } } } embedding_learning_rate_multiplier: 2.0",
                          "gradient_clipping_by_norm: 5.0")
    assert (spec.embedding_lr_multiplier, spec.clip_norm) == (2.0, 5.0)
    dense = tf.constant([3.0, 4.0])  # norm 5
    table = tf.IndexedSlices(tf.constant([[1.5, 2.0]]), tf.constant([0]), tf.constant([4, 2]))
    out = prepare_gradients([dense, None, table], 2, spec)
    # the table's gradient doubles to [3, 4]; the global norm sqrt(50) is clipped to 5
    scale = 5.0 / np.sqrt(50.0)
    np.testing.assert_allclose(out[0].numpy(), [3 * scale, 4 * scale], rtol=1e-6)
    assert out[1] is None
    np.testing.assert_allclose(out[2].values.numpy(), [[3 * scale, 4 * scale]], rtol=1e-6)
    plain = prepare_gradients([dense, table], 1, optimizer_spec("sgd_optimizer {}"))
    np.testing.assert_allclose(plain[1].values.numpy(), [[1.5, 2.0]])


def test_two_optimizer_configs_the_first_for_the_tables():
    config = tiny_config(
        'backbone { blocks { name: "b" inputs { feature_group_name: "all" } } }',
        extra="train_config { optimizer_config { adagrad_optimizer { learning_rate { "
              "constant_learning_rate { learning_rate: 0.05 } } } "
              "embedding_learning_rate_multiplier: 3 } "
              "optimizer_config { ftrl_optimizer { l1_reg: 0.5 } } }\n")
    train = resolve(parse_config_text(config, "t.config")).train
    assert train.table_optimizer.kind == "adagrad"
    assert train.table_optimizer.learning_rate.learning_rate == pytest.approx(0.05)
    assert (train.optimizer.kind, train.optimizer.l1) == ("ftrl", 0.5)
    # the multiplier is the first optimizer_config's (EasyRec reads optimizer_config[0])
    assert train.optimizer.embedding_lr_multiplier == 3.0
    assert isinstance(dense_optimizer(train.optimizer), keras.optimizers.Ftrl)


@pytest.mark.parametrize("table", [False, True])
@pytest.mark.parametrize("name, same", [("adam_async_optimizer", "adam_optimizer"),
                                        ("adam_asyncw_optimizer", "adamw_optimizer")])
def test_adam_async_is_adams_update_in_one_synchronous_process(name, same, table):
    fields = "beta1: 0.9 beta2: 0.999 learning_rate { constant_learning_rate { " \
             "learning_rate: 0.1 } }" + (" weight_decay: 0" if "w_" in name else "")
    spec = optimizer_spec(f"{name} {{ {fields} }}")
    assert spec == optimizer_spec(f"{same} {{ {fields} }}")
    grads = [[0.5, -2.0], [1.0, 1.0]]
    # by hand, Adam with epsilon hat 1e-8: step 1 moves by lr = 0.1 against the sign; step 2:
    # m = 0.9 m1 + 0.1 g, v = 0.999 v1 + 0.001 g^2, var -= 0.1 sqrt(1 - 0.999^2) / (1 - 0.9^2)
    # * m / sqrt(v): dim 0 (g 0.5, 1): 0.9 - 0.0965181 = 0.8034819; dim 1 (g -2, 1): 1.1266337
    np.testing.assert_allclose(_steps(spec, grads, table), [0.8034819, 1.1266337], rtol=1e-5)
