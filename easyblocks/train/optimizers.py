"""Optimizers from train_config: Keras optimizers for dense weights, row-wise
updates for embedding tables.

Keras 3 optimizers apply dense updates to a whole embedding table even when its
gradient is sparse (keras-team/keras#19992): with 100k-row tables that update
dominates the step. Embedding tables are therefore updated row by row, only for
the rows the batch looked up, by `SparseTableOptimizer`. For SGD and Adagrad this
is exactly the dense update (rows without gradient do not move); for Adam it is
"lazy Adam": the moments of rows that were not looked up are not decayed.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from easyblocks.errors import ConfigError


class _FloorDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Exponential decay that never goes below min_learning_rate."""

    def __init__(self, decay, minimum: float):
        self.decay = decay
        self.minimum = minimum

    def __call__(self, step):
        return tf.maximum(self.decay(step), self.minimum)

    def get_config(self):
        return {"decay": self.decay.get_config(), "minimum": self.minimum}


def learning_rate(lr_config):
    which = lr_config.WhichOneof("learning_rate")
    if which is None:
        return 0.001
    if which == "constant_learning_rate":
        return lr_config.constant_learning_rate.learning_rate
    c = lr_config.exponential_decay_learning_rate
    decay = keras.optimizers.schedules.ExponentialDecay(
        c.initial_learning_rate, c.decay_steps, c.decay_factor, staircase=c.staircase
    )
    return _FloorDecay(decay, c.min_learning_rate) if c.min_learning_rate else decay


def _optimizer_config(train_config):
    if not train_config.optimizer_config:
        return "adam_optimizer", None
    opt = train_config.optimizer_config[0]
    which = opt.WhichOneof("optimizer")
    if which is None:
        raise ConfigError("train_config.optimizer_config names no optimizer "
                          "(adam_optimizer, lazy_adam_optimizer, adagrad_optimizer or "
                          "sgd_optimizer)")
    # EasyRec's LazyAdam (lazy rows, dense Adam elsewhere) is what adam_optimizer does here
    return ("adam_optimizer" if which == "lazy_adam_optimizer" else which), getattr(opt, which)


def dense_optimizer(train_config) -> keras.optimizers.Optimizer:
    which, c = _optimizer_config(train_config)
    lr = learning_rate(c.learning_rate) if c is not None else 0.001
    clip = train_config.gradient_clipping_by_norm or None
    if which == "adam_optimizer":
        kw = {} if c is None else {"beta_1": c.beta1, "beta_2": c.beta2,
                                   "epsilon": getattr(c, "epsilon", 1e-8)}
        return keras.optimizers.Adam(learning_rate=lr, global_clipnorm=clip, **kw)
    if which == "adagrad_optimizer":
        return keras.optimizers.Adagrad(
            learning_rate=lr, initial_accumulator_value=c.initial_accumulator_value,
            global_clipnorm=clip)
    return keras.optimizers.SGD(learning_rate=lr, momentum=c.momentum, global_clipnorm=clip)


class SparseTableOptimizer(tf.Module):
    """Row-wise Adam (lazy), Adagrad or SGD for embedding tables (see module docstring)."""

    def __init__(self, train_config, tables: list):
        super().__init__(name="table_optimizer")
        which, c = _optimizer_config(train_config)
        self.kind = which
        self.lr = learning_rate(c.learning_rate) if c is not None else 0.001
        self.beta1 = c.beta1 if which == "adam_optimizer" and c is not None else 0.9
        self.beta2 = c.beta2 if which == "adam_optimizer" and c is not None else 0.999
        self.epsilon = getattr(c, "epsilon", 1e-8) if which == "adam_optimizer" and c is not None \
            else 1e-7
        self.momentum = c.momentum if which == "sgd_optimizer" else 0.0
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self.slots = []
        for t in tables:
            shape, name = t.shape, t.path.replace("/", "_")
            if which == "adam_optimizer":
                self.slots.append([tf.Variable(tf.zeros(shape), name=f"{name}_m"),
                                   tf.Variable(tf.zeros(shape), name=f"{name}_v")])
            elif which == "adagrad_optimizer":
                self.slots.append([tf.Variable(tf.fill(shape, c.initial_accumulator_value),
                                               name=f"{name}_accumulator")])
            elif self.momentum:
                self.slots.append([tf.Variable(tf.zeros(shape), name=f"{name}_momentum")])
            else:
                self.slots.append([])

    def current_lr(self) -> tf.Tensor:
        lr = self.lr(self.iterations) if callable(self.lr) else self.lr
        return tf.cast(lr, tf.float32)

    def apply(self, grads: list, tables: list) -> None:
        lr = self.current_lr()
        self.iterations.assign_add(1)
        t = tf.cast(self.iterations, tf.float32)
        for grad, table, slots in zip(grads, tables, self.slots):
            if grad is None:
                continue
            var = table.value if hasattr(table, "value") else table
            if isinstance(grad, tf.IndexedSlices):
                rows, pos = tf.unique(grad.indices)
                g = tf.math.unsorted_segment_sum(grad.values, pos, tf.shape(rows)[0])
            else:
                rows, g = tf.range(tf.shape(grad)[0]), grad
            if self.kind == "adam_optimizer":
                m, v = slots
                m_rows = self.beta1 * tf.gather(m, rows) + (1 - self.beta1) * g
                v_rows = self.beta2 * tf.gather(v, rows) + (1 - self.beta2) * tf.square(g)
                m.scatter_update(tf.IndexedSlices(m_rows, rows))
                v.scatter_update(tf.IndexedSlices(v_rows, rows))
                step = lr * tf.sqrt(1 - self.beta2**t) / (1 - self.beta1**t)
                update = step * m_rows / (tf.sqrt(v_rows) + self.epsilon)
            elif self.kind == "adagrad_optimizer":
                (acc,) = slots
                acc_rows = tf.gather(acc, rows) + tf.square(g)
                acc.scatter_update(tf.IndexedSlices(acc_rows, rows))
                update = lr * g / tf.sqrt(acc_rows + self.epsilon)
            elif slots:
                (mom,) = slots
                mom_rows = self.momentum * tf.gather(mom, rows) - lr * g
                mom.scatter_update(tf.IndexedSlices(mom_rows, rows))
                update = -mom_rows
            else:
                update = lr * g
            var.scatter_sub(tf.IndexedSlices(update, rows))
