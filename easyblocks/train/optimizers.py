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

import dataclasses
import math

import keras
import tensorflow as tf

from easyblocks.config.specs import LearningRateSpec, OptimizerSpec


class Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate of a LearningRateSpec at a step (the number of updates already
    made): warmup, then exponential or cosine decay (see LearningRateSpec). Both the
    dense and the table optimizer evaluate this one schedule at their own update count,
    which is the training step for both."""

    def __init__(self, spec: LearningRateSpec):
        self.spec = spec

    def __call__(self, step):
        s = self.spec
        step = tf.cast(step, tf.float32)
        base = tf.constant(s.learning_rate, tf.float32)
        if s.kind == "cosine_decay":
            decay_start = s.warmup_steps + s.hold_steps
            # SGDR (Loshchilov & Hutter 2017), eq. 5 with one cycle and eta_min 0
            progress = (step - decay_start) / float(s.total_steps - decay_start)
            decayed = 0.5 * base * (1.0 + tf.cos(math.pi * progress))
            lr = tf.where(step > decay_start, decayed, base)
            lr = tf.where(step > s.total_steps, 0.0, lr)
        else:  # exponential_decay
            exponent = (step - s.warmup_steps) / s.decay_steps
            if s.staircase:
                exponent = tf.floor(exponent)
            lr = base * tf.pow(tf.constant(s.decay_factor, tf.float32), exponent)
        if s.warmup_steps:
            if s.kind == "exponential_decay" and not s.warmup_learning_rate:
                warm = base  # EasyRec's burn-in without a burn-in rate: the base rate
            else:
                slope = (s.learning_rate - s.warmup_learning_rate) / s.warmup_steps
                warm = s.warmup_learning_rate + slope * step
            lr = tf.where(step < s.warmup_steps, warm, lr)
        if s.kind == "exponential_decay":
            lr = tf.maximum(lr, s.min_learning_rate)
        return lr

    def get_config(self):
        return dataclasses.asdict(self.spec)

    @classmethod
    def from_config(cls, config):
        return cls(LearningRateSpec(**config))


def learning_rate(spec: LearningRateSpec):
    """A float (constant), or the Schedule of the optimizer's update count."""
    if spec.kind == "constant":
        return spec.learning_rate
    return Schedule(spec)


def dense_optimizer(spec: OptimizerSpec) -> keras.optimizers.Optimizer:
    """The Keras optimizer for every weight but the embedding tables."""
    lr = learning_rate(spec.learning_rate)
    clip = spec.clip_norm or None
    if spec.kind == "adam":
        return keras.optimizers.Adam(learning_rate=lr, beta_1=spec.beta1, beta_2=spec.beta2,
                                     epsilon=spec.epsilon, global_clipnorm=clip)
    if spec.kind == "adagrad":
        return keras.optimizers.Adagrad(
            learning_rate=lr, initial_accumulator_value=spec.initial_accumulator_value,
            global_clipnorm=clip)
    return keras.optimizers.SGD(learning_rate=lr, momentum=spec.momentum, global_clipnorm=clip)


class SparseTableOptimizer(tf.Module):
    """Row-wise Adam (lazy), Adagrad or SGD for embedding tables (see module docstring)."""

    def __init__(self, spec: OptimizerSpec, tables: list, names: list[str] | None = None):
        """names: each table's stable name (its checkpoint key); default its Keras path."""
        super().__init__(name="table_optimizer")
        self.kind = spec.kind
        self.lr = learning_rate(spec.learning_rate)
        self.beta1, self.beta2, self.epsilon = spec.beta1, spec.beta2, spec.epsilon
        self.momentum = spec.momentum if spec.kind == "sgd" else 0.0
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        names = names or [t.path for t in tables]
        # checkpointed by table name (not by position): a dict, tracked under its keys
        self.slots_by_table = {}
        for t, key in zip(tables, names):
            shape, name = t.shape, t.path.replace("/", "_")
            if spec.kind == "adam":
                slots = [tf.Variable(tf.zeros(shape), name=f"{name}_m"),
                         tf.Variable(tf.zeros(shape), name=f"{name}_v")]
            elif spec.kind == "adagrad":
                slots = [tf.Variable(tf.fill(shape, spec.initial_accumulator_value),
                                     name=f"{name}_accumulator")]
            elif self.momentum:
                slots = [tf.Variable(tf.zeros(shape), name=f"{name}_momentum")]
            else:
                slots = []
            self.slots_by_table[key] = slots
        self._table_names = list(names)

    @property
    def slots(self) -> list[list]:
        """Each table's slot variables, in the order of the tables."""
        return [self.slots_by_table[k] for k in self._table_names]

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
            if self.kind == "adam":
                m, v = slots
                m_rows = self.beta1 * tf.gather(m, rows) + (1 - self.beta1) * g
                v_rows = self.beta2 * tf.gather(v, rows) + (1 - self.beta2) * tf.square(g)
                m.scatter_update(tf.IndexedSlices(m_rows, rows))
                v.scatter_update(tf.IndexedSlices(v_rows, rows))
                step = lr * tf.sqrt(1 - self.beta2**t) / (1 - self.beta1**t)
                update = step * m_rows / (tf.sqrt(v_rows) + self.epsilon)
            elif self.kind == "adagrad":
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


class DenseOptimizerState(tf.Module):
    """A Keras optimizer's state for tf.train.Checkpoint, keyed by the stable names of the
    variables it updates ("<key>/momentum", ...) and its iteration count.

    Its learning-rate variable is left out, so that a resumed run uses the config's learning
    rate, not the one saved.
    """

    def __init__(self, optimizer: keras.optimizers.Optimizer, keyed: list[tuple[str, object]]):
        super().__init__(name="dense_optimizer_state")
        # a slot is named "<its variable's path with / as _>_<kind>" by Keras
        prefixes = sorted(((v.path.replace("/", "_") + "_", key) for key, v in keyed),
                          key=lambda p: -len(p[0]))
        slots, unmatched = {}, []
        for v in optimizer.variables:
            if v is optimizer.iterations or v.name == "learning_rate":
                continue
            match = next(((p, key) for p, key in prefixes if v.name.startswith(p)), None)
            if match is None:
                unmatched.append(v)
            else:
                slots[f"{match[1]}/{v.name[len(match[0]):]}"] = v
        for i, v in enumerate(unmatched):
            slots[f"unmatched#{i}/{v.name}"] = v
        self.iterations = optimizer.iterations
        self.slots = slots
