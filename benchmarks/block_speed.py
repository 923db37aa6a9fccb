"""Each block vs the same math hand-written in plain Keras: training examples/s, block by block.

The product promise checked here: every block (MLP, MMoE, AITM, STAR, PEPNet, APG and the
classic ones) trains at least 0.95x as many examples/s as the same model hand-written in plain
Keras, on the same inputs, batch size, loss and optimizer.

    python benchmarks/block_speed.py [--blocks mlp mmoe ...] [--batch 1024] [--rounds 7]
        [--steps 10] [--out docs/benchmarks/block_speed.md]
    python benchmarks/block_speed.py --smoke        # every block, batch 16, 2 steps: seconds

Per block (CASES below):
  (a) easyblocks: the block as the product builds it (`registry.create_layer`) from the block's
      parameters in a sample config (samples/configs/*_on_taobao.config), so the sizes are the
      samples' (embedding dim 16, their hidden units);
  (b) hand-written: the same math written with keras.layers / keras.ops / tf ops the way a
      competent Keras user would write it (a small Layer subclass where Keras has no layer).
  Both get the same random inputs (shapes as the sample feeds the block), the same head (one
  Dense(1) logit per block output, 3-D outputs flattened), binary cross-entropy on the logits
  (summed over outputs) plus the weight regularizers (mlr's L2 on both sides; the other cases
  have none), Adam(1e-3), and a tf.function train step each. Their trainable
  parameter counts are asserted equal.

Timing: after warm-up (tracing + `--warmup` steps each), `--rounds` rounds of `--steps` steps
of each model, interleaved (A B, then B A, ...), each round synchronised on its last loss.
Reported: examples/s from the median step time of each, and the ratio easyblocks / hand-written
as the median of the per-round ratios, with their min-max (the spread). The machine is shared,
so read only ratios from one run, never absolute numbers.

Batch norm: the hand-written side uses Keras' BatchNormalization (momentum 0.9, epsilon 1e-3 as
easyblocks' default), whose moving statistics are the plain exponential average (2 variable
updates per step); easyblocks' BatchNorm keeps debiased moving statistics (normalization.py's
docstring: a per-layer update count and rate, 3 variable updates and a few scalar ops per step).
The training-mode math is the same (the check below); the easyblocks side does that little more
work per step, and the ratio includes it.

Numerical check: where the two models have the same weights in the same roles (matched in order
by shape: every case marked `copy`), the easyblocks weights are copied into the hand-written
model and both must compute the same logits (inference and training mode) on the same batch,
so that the comparison is between the same function. A failed check stops the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "samples", "configs")
DIM = 16  # embedding dim of every sample feature
BN_MOMENTUM, BN_EPSILON = 0.9, 1e-3  # easyblocks' normalization defaults


# ---- the easyblocks side: blocks built from the sample configs' parameters ----------------------


@functools.cache
def sample_spec(config: str):
    """The resolved samples/configs/<config>."""
    from easyblocks.config.loader import load_config
    from easyblocks.config.resolve import resolve

    return resolve(load_config(os.path.join(CONFIGS, config)))


def sample_layer(config: str, block: str, index: int = 0):
    """The LayerSpec of `block` (its `index`-th keras layer) in samples/configs/<config>."""
    blocks = sample_spec(config).model.backbone.dag.blocks
    layers = [s.layer for s in blocks[block].steps if s.layer is not None]
    return layers[index]


def create_block(config: str, block: str, index: int = 0, name: str | None = None):
    """The block as the product creates it from the sample config."""
    from easyblocks.blocks.registry import create_layer

    return create_layer(sample_layer(config, block, index), name or block,
                        f"{config}: block {block!r}")


class Chain(keras.layers.Layer):
    """Runs x_{l+1} = layer_l([x_0, x_l]) (the template's `recurrent` block, e.g. DCN's cross)."""

    def __init__(self, layers, **kwargs):
        super().__init__(**kwargs)
        self.chain = list(layers)

    def call(self, x0):
        x = x0
        for layer in self.chain:
            x = layer([x0, x])
        return x


# ---- the hand-written side ----------------------------------------------------------------------


class HandMLP(keras.layers.Layer):
    """Dense -> [BatchNormalization] -> ReLU per layer, as a Keras user writes an MLP."""

    def __init__(self, units, batch_norm: bool, use_bias: bool, init="he_uniform", **kwargs):
        super().__init__(**kwargs)
        self.seq = []
        for u in units:
            self.seq.append(keras.layers.Dense(u, use_bias=use_bias, kernel_initializer=init))
            if batch_norm:
                self.seq.append(keras.layers.BatchNormalization(momentum=BN_MOMENTUM,
                                                                epsilon=BN_EPSILON))
            self.seq.append(keras.layers.ReLU())

    def call(self, x, training=None):
        for layer in self.seq:
            x = layer(x, training=training)
        return x


class HandMMoE(keras.layers.Layer):
    def __init__(self, num_task, num_expert, units, batch_norm, use_bias, **kwargs):
        super().__init__(**kwargs)
        self.experts = [HandMLP(units, batch_norm, use_bias) for _ in range(num_expert)]
        self.gates = [keras.layers.Dense(num_expert, activation="softmax")
                      for _ in range(num_task)]

    def call(self, x, training=None):
        experts = tf.stack([e(x, training=training) for e in self.experts], axis=1)  # (b, E, w)
        return [tf.einsum("be,bew->bw", g(x), experts) for g in self.gates]


class HandAITM(keras.layers.Layer):
    """AIT module (paper form): transfer Dense+BN+ReLU, shared h1 h2 h3, softmax over 2."""

    def __init__(self, width, **kwargs):
        super().__init__(**kwargs)
        self.transfer = HandMLP([width], batch_norm=True, use_bias=False)
        self.h1, self.h2, self.h3 = (keras.layers.Dense(width, use_bias=False) for _ in range(3))
        self.scale = 1.0 / math.sqrt(width)

    def call(self, inputs, training=None):
        own, prev = inputs
        u = tf.stack([own, self.transfer(prev, training=training)], axis=1)  # (b, 2, d)
        w = tf.nn.softmax(tf.reduce_sum(self.h1(u) * self.h2(u), -1) * self.scale, axis=-1)
        return tf.einsum("bu,bud->bd", w, self.h3(u))


class HandStarDense(keras.layers.Layer):
    """x (W * W_p) + b + b_p: every domain's kernel in one matmul, the own domain picked by a
    one-hot product."""

    def __init__(self, units, num_domains, **kwargs):
        super().__init__(**kwargs)
        self.units, self.m = units, num_domains

    def build(self, input_shape):
        d = int(input_shape[0][-1])
        self.w = self.add_weight(shape=(d, self.units), initializer="he_uniform")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros")
        self.wp = self.add_weight(shape=(self.m, d, self.units), initializer="ones")
        self.bp = self.add_weight(shape=(self.m, self.units), initializer="zeros")

    def call(self, inputs):
        x, onehot = inputs  # onehot (b, M)
        y_all = tf.einsum("bd,mdh->bmh", x, self.w[None] * self.wp)
        return tf.einsum("bm,bmh->bh", onehot, y_all) + self.b + tf.matmul(onehot, self.bp)


class HandSTAR(keras.layers.Layer):
    def __init__(self, units, num_domains, **kwargs):
        super().__init__(**kwargs)
        self.m = num_domains
        self.star = [HandStarDense(u, num_domains) for u in units]

    def call(self, inputs):
        x, ids = inputs
        onehot = tf.one_hot(ids, self.m)
        for layer in self.star:
            x = tf.nn.relu(layer([x, onehot]))
        return x


class HandGate(keras.layers.Layer):
    """gamma * sigmoid(Dense(relu(Dense(x))))."""

    def __init__(self, hidden, out, gamma=2.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(hidden, activation="relu", kernel_initializer="he_uniform")
        self.out = keras.layers.Dense(out, kernel_initializer="he_uniform")
        self.gamma = gamma

    def call(self, x):
        return self.gamma * tf.sigmoid(self.out(self.hidden(x)))


class HandPEPNet(keras.layers.Layer):
    """EPNet gate on the embeddings, then one tower whose layers are each scaled by a gate."""

    def __init__(self, e_width, cond_width, gate_in_width, units, **kwargs):
        super().__init__(**kwargs)
        self.epnet = HandGate(cond_width + e_width, e_width)
        self.gates = [HandGate(u, u) for u in units]
        self.layers_ = [keras.layers.Dense(u, activation="relu", kernel_initializer="he_uniform")
                        for u in units]

    def call(self, inputs):
        e, domain, persona = inputs
        e = self.epnet(tf.concat([domain, tf.stop_gradient(e)], -1)) * e
        gate_in = tf.concat([persona, tf.stop_gradient(e)], -1)
        h = e
        for gate, layer in zip(self.gates, self.layers_):
            h = gate(gate_in) * layer(h)
        return h


class HandAPGDense(keras.layers.Layer):
    """y = x U_l U_r S(z) V_l V_r + b, S(z) = reshape(Dense(relu(Dense(z))), K x K)."""

    def __init__(self, units, k, p, gen_hidden, **kwargs):
        super().__init__(**kwargs)
        self.units, self.k, self.p = units, k, p
        self.gen_hidden = keras.layers.Dense(gen_hidden, activation="relu")
        self.gen = keras.layers.Dense(
            k * k, bias_initializer=keras.initializers.Constant(np.eye(k).reshape(-1)))

    def build(self, input_shape):
        n = int(input_shape[0][-1])
        k, p, m = self.k, self.p, self.units
        self.ul = self.add_weight(shape=(n, p), initializer="glorot_normal")
        self.ur = self.add_weight(shape=(p, k), initializer="glorot_normal")
        self.vl = self.add_weight(shape=(k, p), initializer="glorot_normal")
        self.vr = self.add_weight(shape=(p, m), initializer="glorot_normal")
        self.gen_hidden.build(input_shape[1])
        self.gen.build((None, self.gen_hidden.units))
        self.b = self.add_weight(shape=(m,), initializer="zeros")

    def call(self, inputs):
        x, z = inputs
        s = tf.reshape(self.gen(self.gen_hidden(z)), [-1, self.k, self.k])
        h = tf.einsum("bk,bkl->bl", x @ (self.ul @ self.ur), s)
        return h @ (self.vl @ self.vr) + self.b


class HandAPG(keras.layers.Layer):
    def __init__(self, units, k, p, gen_hidden, **kwargs):
        super().__init__(**kwargs)
        self.apg = [HandAPGDense(u, k, p, gen_hidden) for u in units]

    def call(self, inputs):
        x, z = inputs
        for layer in self.apg:
            x = tf.nn.relu(layer([x, z]))
        return x


class HandCross(keras.layers.Layer):
    """DCN v1: x_{l+1} = x_0 (x_l . w_l) + b_l + x_l."""

    def __init__(self, num, **kwargs):
        super().__init__(**kwargs)
        self.num = num

    def build(self, input_shape):
        d = int(input_shape[-1])
        self.w = [(self.add_weight(shape=(d, 1), initializer="glorot_uniform"),
                   self.add_weight(shape=(d,), initializer="zeros")) for _ in range(self.num)]

    def call(self, x0):
        x = x0
        for w, b in self.w:
            x = x0 * (x @ w) + b + x
        return x


class HandFM(keras.layers.Layer):
    def call(self, v):  # (b, F, d) -> (b, 1)
        s = tf.reduce_sum(v, axis=1)
        return 0.5 * tf.reduce_sum(s * s - tf.reduce_sum(v * v, axis=1), -1, keepdims=True)


class HandDot(keras.layers.Layer):
    """DLRM: the pairwise dot products of [bottom output, fields] (strict lower triangle)."""

    def call(self, inputs):
        bottom, fields = inputs
        v = tf.concat([bottom[:, None, :], fields], axis=1)
        f = v.shape[1]
        rows, cols = np.tril_indices(f, -1)
        gram = tf.matmul(v, v, transpose_b=True)
        return tf.gather(tf.reshape(gram, [-1, f * f]), rows * f + cols, axis=1)


class HandAutoInt(keras.layers.Layer):
    """AutoInt's interacting layer: multi-head self-attention + ReLU(residual projection)."""

    def __init__(self, heads, size, **kwargs):
        super().__init__(**kwargs)
        self.h, self.s = heads, size
        self.q, self.k, self.v, self.r = (keras.layers.Dense(heads * size, use_bias=False)
                                          for _ in range(4))

    def call(self, e):  # (b, F, d)
        f = e.shape[1]

        def heads(x):
            return tf.reshape(x, [-1, f, self.h, self.s])

        q, k, v = heads(self.q(e)), heads(self.k(e)), heads(self.v(e))
        a = tf.nn.softmax(tf.einsum("bfhs,bghs->bhfg", q, k) / math.sqrt(self.s), axis=-1)
        out = tf.reshape(tf.einsum("bhfg,bghs->bfhs", a, v), [-1, f, self.h * self.s])
        return tf.nn.relu(out + self.r(e))


class HandCosine(keras.layers.Layer):
    def __init__(self, temperature, **kwargs):
        super().__init__(**kwargs)
        self.t = temperature

    def call(self, inputs):
        u, v = (tf.math.l2_normalize(x, axis=-1, epsilon=1e-12) for x in inputs)
        return tf.reduce_sum(u * v, -1, keepdims=True) / self.t


class HandMLR(keras.layers.Layer):
    """MLR with a bias model: p = sum_i softmax(x_d A)_i sigmoid(x_f B)_i * sigmoid(x_b c);
    returns the logit log p - log(1 - p), computed in log space."""

    def __init__(self, pieces, l2, **kwargs):
        super().__init__(**kwargs)
        self.m, self.reg = pieces, keras.regularizers.L2(l2)

    def build(self, input_shape):
        (nd, nf, nb), m = (int(s[-1]) for s in input_shape), self.m
        self.a = self.add_weight(shape=(nd, m), initializer="glorot_uniform", regularizer=self.reg)
        self.b = self.add_weight(shape=(nf, m), initializer="glorot_uniform", regularizer=self.reg)
        self.a0 = self.add_weight(shape=(m,), initializer="zeros")
        self.b0 = self.add_weight(shape=(m,), initializer="zeros")
        self.c = self.add_weight(shape=(nb, 1), initializer="glorot_uniform", regularizer=self.reg)
        self.c0 = self.add_weight(shape=(1,), initializer="zeros")

    def call(self, inputs):
        xd, xf, xb = inputs
        log_pi = tf.nn.log_softmax(xd @ self.a + self.a0, -1)
        z, b = xf @ self.b + self.b0, xb @ self.c + self.c0
        log_f = tf.reduce_logsumexp(log_pi + tf.math.log_sigmoid(z), -1, keepdims=True)
        log_1mf = tf.reduce_logsumexp(log_pi + tf.math.log_sigmoid(-z), -1, keepdims=True)
        log_1mp = tf.reduce_logsumexp(  # 1 - f g = (1 - f) + f (1 - g)
            tf.concat([log_1mf, log_f + tf.math.log_sigmoid(-b)], -1), -1, keepdims=True)
        return log_f + tf.math.log_sigmoid(b) - log_1mp


class HandPLE(keras.layers.Layer):
    """PLE with 2 extraction networks; experts Dense+BN+ReLU MLPs, softmax gates."""

    def __init__(self, num_task, nets, **kwargs):
        super().__init__(**kwargs)
        self.t, self.nets = num_task, nets
        self.task_experts, self.share_experts, self.task_gates, self.share_gates = [], [], [], []
        for level, (nt, ns, units) in enumerate(nets):
            self.task_experts.append([[HandMLP(units, True, True, "glorot_uniform")
                                       for _ in range(nt)] for _ in range(num_task)])
            self.share_experts.append([HandMLP(units, True, True, "glorot_uniform")
                                       for _ in range(ns)])
            self.task_gates.append([keras.layers.Dense(nt + ns, activation="softmax")
                                    for _ in range(num_task)])
            self.share_gates.append(None if level == len(nets) - 1 else
                                    keras.layers.Dense(num_task * nt + ns, activation="softmax"))

    def call(self, x, training=None):
        task_in, shared = [x] * self.t, x
        for level in range(len(self.nets)):
            s_out = [e(shared, training=training) for e in self.share_experts[level]]
            t_out = [[e(task_in[t], training=training) for e in es]
                     for t, es in enumerate(self.task_experts[level])]
            new = [tf.einsum("be,bew->bw", self.task_gates[level][t](task_in[t]),
                             tf.stack(t_out[t] + s_out, 1)) for t in range(self.t)]
            if self.share_gates[level] is not None:
                shared = tf.einsum("be,bew->bw", self.share_gates[level](shared),
                                   tf.stack(sum(t_out, []) + s_out, 1))
            task_in = new
        return task_in


# ---- the cases ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    name: str
    what: str  # sample config / block, for the report
    inputs: list  # per input: a shape without batch (floats) or ("ids", M) (int32 ids in [0, M))
    easyblocks: Callable[[], keras.layers.Layer]
    hand: Callable[[], keras.layers.Layer]
    # weights copyable (the body's and the head's): check that both compute the same function
    copy: bool = False


def _mmoe_without_bn():
    from easyblocks.blocks.multitask import MMoE

    kwargs = dict(sample_layer("mmoe_on_taobao.config", "mmoe").params)
    kwargs["expert_mlp"] = dict(kwargs["expert_mlp"], use_bn=False, use_final_bn=False,
                                use_bias=True, use_final_bias=True)
    return MMoE(name="mmoe", **kwargs)


def _ple_nets():
    nets = sample_layer("ple_on_taobao.config", "ple").params["extraction_networks"]
    return [(int(n.get("expert_num_per_task", 0)), int(n.get("share_num", 0)),
             list(n["task_expert_net"]["hidden_units"])) for n in nets]


def cases() -> list[Case]:
    f18 = 18 * DIM  # the 18 features of mlp_on_taobao's group `all`, dim 16
    e17 = 17 * DIM  # STAR / PEPNet / APG: group `all` without pid
    return [
        Case("mlp", "mlp_on_taobao: MLP [512,256,128,64], bias, no BN", [(f18,)],
             lambda: create_block("mlp_on_taobao.config", "mlp"),
             lambda: HandMLP([512, 256, 128, 64], batch_norm=False, use_bias=True), copy=True),
        Case("mlp_bn", "shared_bottom_on_taobao: MLP [512,256], BN, no bias", [(f18,)],
             lambda: create_block("shared_bottom_on_taobao.config", "share_bottom"),
             lambda: HandMLP([512, 256], batch_norm=True, use_bias=False), copy=True),
        Case("mmoe", "mmoe_on_taobao: MMoE 4 experts [256,128] (BN), 2 tasks", [(f18,)],
             lambda: create_block("mmoe_on_taobao.config", "mmoe"),
             lambda: HandMMoE(2, 4, [256, 128], batch_norm=True, use_bias=False), copy=True),
        Case("mmoe_nobn", "mmoe_on_taobao's MMoE with BN off, biases on (isolates MMoE's own "
             "code from BatchNorm)", [(f18,)],
             lambda: _mmoe_without_bn(),
             lambda: HandMMoE(2, 4, [256, 128], batch_norm=False, use_bias=True), copy=True),
        Case("aitm", "aitm_on_taobao: AITMTower (paper), transfer MLP [128] (BN)",
             [(128,), (128,)],
             lambda: create_block("aitm_on_taobao.config", "cvr_aitm"),
             lambda: HandAITM(128), copy=True),
        Case("ple", "ple_on_taobao: PLE 2 levels, 2+2 experts [256,128] (BN)", [(f18,)],
             lambda: create_block("ple_on_taobao.config", "ple"),
             lambda: HandPLE(2, _ple_nets()), copy=True),
        Case("star", "star_on_taobao: STAR 4 domains [512,256,128,64]",
             [(e17,), ("ids", 4)],
             lambda: create_block("star_on_taobao.config", "star"),
             lambda: HandSTAR([512, 256, 128, 64], 4), copy=True),
        Case("pepnet", "pepnet_on_taobao: PEPNet 1 task [512,256,128,64]",
             [(e17,), (DIM,), (5 * DIM,)],
             lambda: create_block("pepnet_on_taobao.config", "pepnet"),
             lambda: HandPEPNet(e17, DIM, 5 * DIM + e17, [512, 256, 128, 64]), copy=True),
        Case("apg", "apg_on_taobao: APG [512,256,128,64], K 32, P 64, generator [64]",
             [(e17,), (DIM,)],
             lambda: create_block("apg_on_taobao.config", "apg"),
             lambda: HandAPG([512, 256, 128, 64], 32, 64, 64), copy=True),
        Case("cross", "dcn_on_taobao: 3 x CrossV1 (DCN v1)", [(f18,)],
             lambda: Chain([create_block("dcn_on_taobao.config", "cross", name=f"cross_{i}")
                            for i in range(3)]),
             lambda: HandCross(3), copy=True),
        Case("fm", "deepfm_on_taobao: FM on 18 fields", [(18, DIM)],
             lambda: create_block("deepfm_on_taobao.config", "fm"), HandFM, copy=True),
        Case("dot", "dlrm_on_taobao: DotInteraction, bottom (16) + 17 fields",
             [(DIM,), (17, DIM)],
             lambda: create_block("dlrm_on_taobao.config", "interaction"), HandDot, copy=True),
        Case("autoint", "autoint_on_taobao: InteractingLayer 2 heads x 16, residual",
             [(18, DIM)],
             lambda: create_block("autoint_on_taobao.config", "interacting_layers"),
             lambda: HandAutoInt(2, 16), copy=True),
        Case("mlr", "mlr_on_taobao: MLR 12 pieces, user divides, ad fits, pid bias (product)",
             [(11 * DIM,), (6 * DIM,), (DIM,)],
             lambda: create_block("mlr_on_taobao.config", "mlr"),
             lambda: HandMLR(12, 1e-6), copy=True),
        Case("cosine", "dssm_on_taobao: Cosine (temperature 0.1) of two 64-d towers",
             [(64,), (64,)],
             lambda: create_block("dssm_on_taobao.config", "similarity"),
             lambda: HandCosine(0.1), copy=True),
    ]


# ---- models, training, timing -------------------------------------------------------------------


def make_inputs(case: Case, batch: int, seed: int) -> list[tf.Tensor]:
    rng = np.random.default_rng(seed)
    out = []
    for spec in case.inputs:
        if spec[0] == "ids":
            out.append(tf.constant(rng.integers(0, spec[1], size=(batch,)), tf.int32))
        else:
            out.append(tf.constant(rng.normal(0, 0.5, size=(batch,) + tuple(spec)), tf.float32))
    return out


def make_model(case: Case, body: keras.layers.Layer) -> keras.Model:
    """Inputs -> body -> one Dense(1) logit per output (3-D outputs flattened)."""
    inputs = [keras.Input(shape=(), dtype="int32") if s[0] == "ids" else keras.Input(shape=s)
              for s in case.inputs]
    out = body(inputs if len(inputs) > 1 else inputs[0])
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    logits = []
    for y in outs:
        if len(y.shape) > 2:
            y = keras.layers.Flatten()(y)
        logits.append(keras.layers.Dense(1)(y))
    return keras.Model(inputs, logits)


def n_params(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def train_step_fn(model: keras.Model, compiled: bool = True):
    """A train step: BCE on the logits (summed over outputs), Adam(1e-3); a tf.function unless
    `compiled` is false (--smoke: eager, so that it checks the blocks without tracing each)."""
    opt = keras.optimizers.Adam(1e-3)

    def step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            logits = logits if isinstance(logits, (list, tuple)) else [logits]
            loss = tf.add_n([tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, z))
                             for z in logits])
            if model.losses:  # weight regularizers (only mlr's: L2 1e-6, on both sides)
                loss += tf.add_n(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return tf.function(step) if compiled else step


def copy_weights(src: keras.Model, dst: keras.Model) -> None:
    """Copies src's trainable weights into dst's, matched in order by shape (the i-th weight of
    a shape to the i-th of that shape); ValueError if the shapes do not pair up."""
    queues: dict[tuple, list] = {}
    for w in dst.trainable_weights:
        queues.setdefault(tuple(w.shape), []).append(w)
    for w in src.trainable_weights:
        q = queues.get(tuple(w.shape))
        if not q:
            raise ValueError(f"no hand-written weight of shape {tuple(w.shape)} for {w.path}")
        q.pop(0).assign(w)
    left = [tuple(w.shape) for q in queues.values() for w in q]
    if left:
        raise ValueError(f"hand-written weights left without a counterpart: {left}")


def check_same_function(case: Case, eb: keras.Model, hand: keras.Model, x) -> float:
    """Copies eb's weights into hand; returns the largest |logit difference| (inference and
    training mode). Raises AssertionError above 1e-4 relative."""
    copy_weights(eb, hand)
    worst = 0.0
    for training in (False, True):
        a, b = eb(x, training=training), hand(x, training=training)
        a = a if isinstance(a, (list, tuple)) else [a]
        b = b if isinstance(b, (list, tuple)) else [b]
        for u, v in zip(a, b):
            u, v = np.asarray(u), np.asarray(v)
            diff = float(np.max(np.abs(u - v)))
            scale = max(1.0, float(np.max(np.abs(u))))
            if not diff <= 1e-4 * scale:
                raise AssertionError(f"{case.name}: easyblocks and hand-written logits differ "
                                     f"by {diff:.3g} (training={training})")
            worst = max(worst, diff)
    return worst


def run_steps(step, x, y, n: int) -> float:
    if n == 0:
        return 0.0
    t0 = time.perf_counter()
    for _ in range(n):
        loss = step(x, y)
    float(loss)  # wait for the last step
    return (time.perf_counter() - t0) / n


def bench_case(case: Case, args) -> dict:
    keras.utils.set_random_seed(args.seed)
    eb = make_model(case, case.easyblocks())
    hand = make_model(case, case.hand())
    pa, pb = n_params(eb), n_params(hand)
    if pa != pb:
        raise AssertionError(f"{case.name}: parameter counts differ: easyblocks {pa}, "
                             f"hand-written {pb}")
    x = make_inputs(case, args.batch, args.seed)
    x = x if len(x) > 1 else x[0]
    y = tf.constant(np.random.default_rng(args.seed + 1).integers(0, 2, (args.batch, 1)),
                    tf.float32)
    diff = check_same_function(case, eb, hand, x) if case.copy else None
    steps = {"easyblocks": train_step_fn(eb, not args.smoke),
             "hand": train_step_fn(hand, not args.smoke)}
    for step in steps.values():  # tracing + warm-up
        run_steps(step, x, y, args.warmup)
    times: dict[str, list[float]] = {"easyblocks": [], "hand": []}
    for r in range(args.rounds):
        order = ["easyblocks", "hand"] if r % 2 == 0 else ["hand", "easyblocks"]
        for who in order:
            times[who].append(run_steps(steps[who], x, y, args.steps))
    ratios = [h / e for e, h in zip(times["easyblocks"], times["hand"])]
    return {
        "name": case.name, "what": case.what, "params": pa, "max_diff": diff,
        "eb_ex_s": args.batch / statistics.median(times["easyblocks"]),
        "hand_ex_s": args.batch / statistics.median(times["hand"]),
        "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
    }


def report(results: list[dict], args, seconds: float) -> str:
    load = os.getloadavg()
    cmd = "python benchmarks/block_speed.py " + " ".join(sys.argv[1:])
    lines = [
        "| block | sample / block | params | hand-written ex/s | easyblocks ex/s | "
        "ratio (min-max) | same function | >= 0.95? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        same = "not checked" if r["max_diff"] is None else f"yes (max diff {r['max_diff']:.1e})"
        lines.append(
            f"| {r['name']} | {r['what']} | {r['params']:,} | {r['hand_ex_s']:,.0f} | "
            f"{r['eb_ex_s']:,.0f} | {r['ratio']:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f})"
            f" | {same} | {'yes' if r['ratio'] >= 0.95 else '**no**'} |")
    cpu = platform.processor() or platform.machine()
    head = (f"Command: `{cmd}`  \nMachine: nproc {os.cpu_count()}, {cpu}, Python "
            f"{platform.python_version()}, TensorFlow {tf.__version__}, Keras "
            f"{keras.__version__}; load average at the end "
            f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; batch {args.batch}, {args.rounds} "
            f"rounds x {args.steps} steps each after {args.warmup} warm-up steps; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {seconds:.0f} s.")
    return head + "\n\n" + "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--blocks", nargs="*", help="case names (default: all)")
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--steps", type=int, default=4, help="steps per model per round")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", help="write the report (markdown) here")
    p.add_argument("--smoke", action="store_true",
                   help="every block, batch 16, 1 round of 2 eager steps (no tf.function): "
                   "checks that everything runs, in seconds; its numbers mean nothing")
    args = p.parse_args(argv)
    if args.smoke:
        args.batch, args.rounds, args.steps, args.warmup = 16, 1, 2, 0
    all_cases = cases()
    names = [c.name for c in all_cases]
    if args.blocks:
        unknown = [b for b in args.blocks if b not in names]
        if unknown:
            p.error(f"unknown blocks {unknown}; known: {', '.join(names)}")
        all_cases = [c for c in all_cases if c.name in args.blocks]
    t0 = time.time()
    results = []
    for case in all_cases:
        t_case = time.time()
        r = bench_case(case, args)
        print(f"({time.time() - t_case:.1f} s)", end=" ")
        print(f"{r['name']:<8} params {r['params']:>9,}  hand {r['hand_ex_s']:>9,.0f} ex/s  "
              f"easyblocks {r['eb_ex_s']:>9,.0f} ex/s  ratio {r['ratio']:.2f} "
              f"({r['ratio_min']:.2f}-{r['ratio_max']:.2f})  load {os.getloadavg()[0]:.2f}",
              flush=True)
        results.append(r)
    text = report(results, args, time.time() - t0)
    out = args.out
    if out is None and args.smoke:
        out = os.path.join(tempfile.mkdtemp(prefix="block_speed_"), "block_speed.md")
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"report: {out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
