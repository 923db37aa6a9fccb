"""Optimizers from train_config: Keras optimizers for dense weights, row-wise
updates for embedding tables.

Keras 3 optimizers apply dense updates to a whole embedding table even when its
gradient is sparse (keras-team/keras#19992): with 100k-row tables that update
dominates the step. Embedding tables are therefore updated row by row, only for
the rows the batch looked up, by `SparseTableOptimizer`. For SGD and Adagrad this
is exactly the dense update (rows without gradient do not move); for Adam it is
"lazy Adam": the moments of rows that were not looked up are not decayed.

Under a distribution strategy the gradients given to `apply` are those of the whole step
(summed over replicas by the caller), so every replica applies the same update to its
copy of each table; a table sharded across parameter servers is updated shard by shard,
each shard by the rows of it the batch looked up.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from easyblocks.config.specs import LearningRateSpec, OptimizerSpec
from easyblocks.features.embedding import table_shards


class _FloorDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Exponential decay that never goes below min_learning_rate."""

    def __init__(self, decay, minimum: float):
        self.decay = decay
        self.minimum = minimum

    def __call__(self, step):
        return tf.maximum(self.decay(step), self.minimum)

    def get_config(self):
        return {"decay": self.decay.get_config(), "minimum": self.minimum}


def learning_rate(spec: LearningRateSpec):
    """A float, or a schedule of the optimizer's iterations."""
    if spec.kind == "constant":
        return spec.learning_rate
    decay = keras.optimizers.schedules.ExponentialDecay(
        spec.learning_rate, spec.decay_steps, spec.decay_factor, staircase=spec.staircase
    )
    return _FloorDecay(decay, spec.min_learning_rate) if spec.min_learning_rate else decay


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


def table_parts(tables: list) -> list:
    """The variables to differentiate for `tables`: each table's shards when it is sharded
    across parameter servers, else the table itself (in order, flattened)."""
    return [p for t in tables for p in (table_shards(t) or [t])]


def _slot(table, name: str, value: float):
    """A slot variable shaped like `table`, filled with `value`; for a sharded table, a
    ShardedVariable whose shards sit beside the table's (and save as one tensor, like the
    slot of an unsharded table)."""
    shards = table_shards(table)
    if shards is None:
        return tf.Variable(tf.fill(table.shape, value), name=name)
    strategy = tf.distribute.get_strategy()
    parts = []
    for i, shard in enumerate(shards):
        # the initial value is made on the ps that holds the shard, not sent there
        with strategy.extended.colocate_vars_with(shard), tf.device(shard.device):
            parts.append(tf.Variable(tf.fill(shard.shape, value), name=f"{name}/part_{i}"))
    return tf.__internal__.distribute.ShardedVariable(parts)


def _slot_parts(slot) -> list:
    return list(slot.variables) if isinstance(
        slot, tf.__internal__.distribute.ShardedVariable) else [slot]


class SparseTableOptimizer(tf.Module):
    """Row-wise Adam (lazy), Adagrad or SGD for embedding tables (see module docstring)."""

    def __init__(self, spec: OptimizerSpec, tables: list):
        super().__init__(name="table_optimizer")
        self.kind = spec.kind
        self.lr = learning_rate(spec.learning_rate)
        self.beta1, self.beta2, self.epsilon = spec.beta1, spec.beta2, spec.epsilon
        self.momentum = spec.momentum if spec.kind == "sgd" else 0.0
        # counted once per step however many replicas run it
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations",
                                      aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.slots = []
        for t in tables:
            name = t.path.replace("/", "_")
            if spec.kind == "adam":
                self.slots.append([_slot(t, f"{name}_m", 0.0), _slot(t, f"{name}_v", 0.0)])
            elif spec.kind == "adagrad":
                self.slots.append([_slot(t, f"{name}_accumulator",
                                         spec.initial_accumulator_value)])
            elif self.momentum:
                self.slots.append([_slot(t, f"{name}_momentum", 0.0)])
            else:
                self.slots.append([])

    def current_lr(self) -> tf.Tensor:
        lr = self.lr(self.iterations) if callable(self.lr) else self.lr
        return tf.cast(lr, tf.float32)

    def apply(self, grads: list, tables: list) -> None:
        """grads: one per variable of `table_parts(tables)` (None: the table is left alone),
        already summed over the step's replicas."""
        lr = self.current_lr()
        self.iterations.assign_add(1)
        t = tf.cast(self.iterations, tf.float32)
        updates = []  # (variable, its slots, unique rows, their summed gradient)
        grads = iter(grads)
        for table, slots in zip(tables, self.slots):
            parts = table_shards(table) or [table]
            slot_parts = [_slot_parts(s) for s in slots]
            for i, part in enumerate(parts):
                grad = next(grads)
                if grad is None:
                    continue
                if isinstance(grad, tf.IndexedSlices):
                    rows, pos = tf.unique(grad.indices)
                    g = tf.math.unsorted_segment_sum(grad.values, pos, tf.shape(rows)[0])
                else:
                    rows, g = tf.range(tf.shape(grad)[0]), grad
                var = part.value if isinstance(part, keras.Variable) else part
                updates.append((var, [sp[i] for sp in slot_parts], rows, g))
        if not updates:
            return

        def update_all(strategy, rows, values, lr, t):
            # each replica's copy of a table (or the ps holding a shard) gets the same update
            for (var, slots, _, _), r, g in zip(updates, rows, values):
                strategy.extended.update(var, self._update_rows, args=(slots, r, g, lr, t),
                                         group=False)

        rows = [u[2] for u in updates]
        values = [u[3] for u in updates]
        ctx = tf.distribute.get_replica_context()
        if ctx is None:  # cross-replica context
            update_all(tf.distribute.get_strategy(), rows, values, lr, t)
        else:
            ctx.merge_call(update_all, args=(rows, values, lr, t))

    def _update_rows(self, var, slots, rows, g, lr, t):
        """The row-wise update of `var` (one device's copy or one shard) and its slots."""
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
        return var.scatter_sub(tf.IndexedSlices(update, rows))
