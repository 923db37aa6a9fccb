"""STAR (Sheng et al., CIKM 2021, "One Model to Serve All"): star-topology FC layers and
partitioned normalization for multi-domain CTR prediction.

One model serves M domains. The domain of each example is an input (an id feature), and a
batch may mix domains freely: nothing below loops over examples.

- `StarDense`: one star-topology fully connected layer. Shared W (d x h), b (h) and per-domain
  W_p (M x d x h, initialised to ones), b_p (M x h, zeros); an example of domain p gets
  x (W ⊙ W_p) + b + b_p (the paper's star topology FCN).
- `PartitionedNormalization` (PN): batch norm with per-domain scale, shift and
  moving statistics.
- `STAR`: PN on the block input (the paper's place: right after the embedding layer, before the
  star FCN), then the star FC layers, each followed by an optional PN, the activation
  and dropout.

The paper's auxiliary network (a small MLP on [domain embedding, features] whose logit is added
to the main logit) is not part of this block: it is an ordinary MLP block in the config.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from easyblocks.blocks import normalization
from easyblocks.blocks.activations import get_activation
from easyblocks.blocks.inputs import expect_list
from easyblocks.blocks.mlp import per_layer
from easyblocks.blocks.normalization import EPSILON, BatchNorm
from easyblocks.blocks.registry import register_block
from easyblocks.errors import ConfigError


def domain_index(domain_ids: tf.Tensor, num_domains: int) -> tf.Tensor:
    """Turns a domain-id input into int32 indices of shape (batch,).

    Accepts shape (batch,) or (batch, 1), integer ids (a `raw_input` of an IdFeature) or float
    ids (a RawFeature; rounded). Ids outside [0, num_domains) are clipped into it (negative ->
    0, too large -> num_domains - 1): an index out of range would make `tf.gather` fail on CPU
    and silently read zeros on GPU, and an assertion is dropped under XLA. Give the domain
    feature exactly num_domains buckets so that clipping never happens.
    """
    ids = tf.convert_to_tensor(domain_ids)
    if ids.shape.rank == 2:
        if ids.shape[-1] not in (None, 1):
            raise ValueError(
                f"expected domain ids of shape (batch,) or (batch, 1), received: {ids.shape}"
            )
        ids = tf.reshape(ids, [-1])
    elif ids.shape.rank != 1:
        raise ValueError(
            f"expected domain ids of shape (batch,) or (batch, 1), received: {ids.shape}"
        )
    if ids.dtype.is_floating:
        ids = tf.round(ids)
    ids = tf.cast(ids, tf.int32)
    return tf.clip_by_value(ids, 0, num_domains - 1)


def _check_num_domains(num_domains, what: str) -> int:
    if num_domains is None or int(num_domains) < 1:
        raise ConfigError(f"{what}: expected `num_domains` >= 1, received: {num_domains}")
    return int(num_domains)


def _split_inputs(inputs, what: str):
    return expect_list(inputs, 2, what, "inputs [x (batch, d), domain ids (batch,) or (batch, 1)]")


def _check_pair_shapes(input_shape, what: str) -> None:
    ok = (
        isinstance(input_shape, (list, tuple))
        and len(input_shape) == 2
        and all(isinstance(s, (list, tuple)) for s in input_shape)
    )
    if not ok:
        raise ConfigError(
            f"{what}: expected inputs [x (batch, d), domain ids (batch,) or (batch, 1)] "
            f"(set `merge_inputs_into_list: true`), received shape(s): {input_shape}"
        )


@register_block("PartitionedNormalization")
class PartitionedNormalization(BatchNorm):
    """Partitioned normalization (STAR): batch norm with per-domain parameters.

    For an example z of domain p:
        z' = (gamma * gamma_p) * (z - mu) / sqrt(var + eps) + (beta + beta_p)

    Training: mu and var are the statistics of the examples of domain p in the batch. The paper
    describes PN for a mini-batch sampled from one domain p, normalised by that mini-batch's
    mean and variance, so its batch statistics are domain p's statistics; computing them per
    domain inside a mixed batch gives exactly that for single-domain batches, and keeps training
    consistent with inference, which normalises each domain by its own moving statistics
    E_p, Var_p (whole-batch statistics would mix the domains' distributions, which is what PN
    exists to avoid). The moving statistics of domain p are `BatchNorm`'s with one partition
    per domain: updated only from its own examples, in batches holding at least two of them,
    and debiased by domain p's own update count, so a rarely seen domain does not keep its
    initial values. Inference (training falsy, or the layer frozen): each example uses its own
    domain's moving statistics. As with batch norm, a domain with a single example in a
    training batch has zero batch variance, and that example is normalised to beta + beta_p.

    Args:
      num_domains: number of domains M.
      momentum: moving-average momentum; None: the default of easyblocks.blocks.normalization.
      epsilon: added to the variance.

    Call args:
      inputs: [z (batch, d) float, domain ids (batch,) or (batch, 1)].
      training: batch statistics (and moving-average updates) when true.

    Returns:
      (batch, d).
    """

    def __init__(self, num_domains: int, momentum: float | None = None, epsilon: float = EPSILON,
                 **kwargs):
        super().__init__(momentum=momentum, epsilon=epsilon, **kwargs)
        self.num_domains = _check_num_domains(
            num_domains, f"PartitionedNormalization {self.name!r}")
        self.num_partitions = self.num_domains  # one set of moving statistics per domain

    def build(self, input_shape):
        _check_pair_shapes(input_shape, f"PartitionedNormalization {self.name!r}")
        d = int(input_shape[0][-1])
        m = self.num_domains
        self.gamma = self.add_weight(shape=(d,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(d,), initializer="zeros", name="beta")
        self.domain_gamma = self.add_weight(shape=(m, d), initializer="ones", name="domain_gamma")
        self.domain_beta = self.add_weight(shape=(m, d), initializer="zeros", name="domain_beta")
        self._build_statistics(d)

    def call(self, inputs, training=None):
        z, ids = _split_inputs(inputs, f"PartitionedNormalization {self.name!r}")
        dom = domain_index(ids, self.num_domains)
        scale = self.gamma * tf.gather(self.domain_gamma, dom)
        shift = self.beta + tf.gather(self.domain_beta, dom)
        return scale * self.standardize(z, dom, training) + shift

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        for key in ("center", "scale"):
            config.pop(key)
        config.update(num_domains=self.num_domains)
        return config


def all_domain_star_dense(x, dom, kernel, bias, domain_kernel, domain_bias):
    """x (W ⊙ W_p) + b + b_p through every domain's kernel: x @ [W ⊙ W_1 | ... | W ⊙ W_M]
    (batch x M*h), then each example's own slice. One GEMM, but M times a Dense's FLOPs, and
    the gradient of domain_kernel is dense (M x d x h). StarDense's formula up to 2026-11; kept
    for the tests and benchmarks/domain_scaling.py, which compare the grouped path with it.

    x: (batch, d); dom: int32 (batch,) in [0, M); kernel (d, h); bias (h,); domain_kernel
    (M, d, h); domain_bias (M, h)."""
    m, d, h = domain_kernel.shape
    kernels = kernel[None] * domain_kernel  # (M, d, h): W ⊙ W_p for every p
    stacked = tf.reshape(tf.transpose(kernels, [1, 0, 2]), [d, m * h])
    y_all = tf.reshape(tf.matmul(x, stacked), [-1, m, h])  # (batch, M, h)
    y = tf.gather(y_all, dom, batch_dims=1)  # (batch, h): own domain's output
    return y + bias + tf.gather(domain_bias, dom)


def grouped_star_dense(x, dom, kernel, bias, domain_kernel, domain_bias):
    """x (W ⊙ W_p) + b + b_p with work that depends on the batch and on the domains present in
    it, not on M (the same math as `all_domain_star_dense`).

    The examples are grouped by domain (a stable sort) and each domain's group is cut into
    chunks of c = ceil(batch / U) rows, U the number of domains present; the last chunk of a
    group is zero-padded. Every chunk then belongs to one domain, and one batched matmul
    (T, c, d) @ (T, d, h) computes all of them, T <= 2U chunks (sum of ceil(n_p / c)
    <= U + batch / c), at most ~2x the rows of the batch. Only the rows of the present domains
    are read: `tf.gather(domain_kernel, chunk domains)`, so domain_kernel's gradient is an
    IndexedSlices over those rows (T x d x h values), not M x d x h. The per-domain work
    (forming W ⊙ W_p, its gradient) is O(U d h) <= O(min(M, batch) d h).
    """
    d, h = kernel.shape
    n = tf.shape(x)[0]
    present, local = tf.unique(dom)  # local: (batch,) index of each example's domain in present
    u = tf.shape(present)[0]
    c = tf.maximum((n + u - 1) // tf.maximum(u, 1), 1)  # rows per chunk
    counts = tf.math.unsorted_segment_sum(tf.ones_like(local), local, u)  # (U,) examples
    chunks = (counts + c - 1) // c  # (U,) chunks per present domain
    first_chunk = tf.cumsum(chunks, exclusive=True)
    t = tf.reduce_sum(chunks)
    order = tf.argsort(local, stable=True)  # example positions grouped by domain
    sorted_local = tf.gather(local, order)
    rank = tf.range(n) - tf.gather(tf.cumsum(counts, exclusive=True), sorted_local)
    # row of each example in the padded (T * c, d) buffer: its domain's first chunk, then rank
    slot_sorted = tf.gather(first_chunk, sorted_local) * c + rank
    slot = tf.gather(slot_sorted, tf.math.invert_permutation(order))  # (batch,)
    xs = tf.reshape(tf.scatter_nd(slot[:, None], x, tf.stack([t * c, d])), tf.stack([t, c, d]))
    chunk_domain = tf.repeat(present, chunks)  # (T,) domain of each chunk
    kernels = kernel[None] * tf.gather(domain_kernel, chunk_domain)  # (T, d, h)
    ys = tf.reshape(tf.matmul(xs, kernels), tf.stack([t * c, h]))
    y = tf.gather(ys, slot)  # (batch, h)
    return y + bias + tf.gather(domain_bias, dom)


@keras.saving.register_keras_serializable(package="easyblocks")
class StarDense(keras.layers.Layer):
    """One star-topology FC layer (no activation): x (W ⊙ W_p) + b + b_p for domain p.

    Mixed-domain batches: the examples are grouped by domain and each group multiplied by its
    own domain's kernel W ⊙ W_p (`grouped_star_dense`): the work per step depends on the batch
    and on the domains present in it, not on M, and domain_kernel's gradient covers only the
    present domains' rows (an IndexedSlices). Up to `GEMM_MAX_DOMAINS` domains, x is multiplied
    by every domain's kernel in one GEMM instead, x @ [W ⊙ W_1 | ... | W ⊙ W_M]
    (`all_domain_star_dense`: M times a Dense's FLOPs, but no sorting, scattering or padding).
    Default 0 (always grouped): at the samples' sizes (d = 272, hidden [512, 256, 128, 64],
    batch 1024) the grouped path measured faster already at M = 3 (0.66-0.86x the step time;
    docs/benchmarks/domain_scaling.md); only at tiny layers (d = 12, h = 8, batch 64, a step of
    1-3 ms) was the GEMM faster. A per-example kernel gather (batch x d x h) is
    bandwidth-bound and not used.

    Args:
      units: output width h.
      num_domains: M.
      initializer: initializer of the shared W.

    Call args:
      inputs: [x (batch, d), domain ids (batch,) or (batch, 1)].
    """

    # all-domain GEMM up to this many domains, grouped above (0: always grouped; see above)
    GEMM_MAX_DOMAINS = 0

    def __init__(self, units: int, num_domains: int, initializer: str = "he_uniform", **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.num_domains = _check_num_domains(num_domains, f"StarDense {self.name!r}")
        self.initializer = initializer

    def build(self, input_shape):
        _check_pair_shapes(input_shape, f"StarDense {self.name!r}")
        d = int(input_shape[0][-1])
        m, h = self.num_domains, self.units
        self.kernel = self.add_weight(shape=(d, h), initializer=self.initializer, name="kernel")
        self.bias = self.add_weight(shape=(h,), initializer="zeros", name="bias")
        self.domain_kernel = self.add_weight(
            shape=(m, d, h), initializer="ones", name="domain_kernel"
        )
        self.domain_bias = self.add_weight(shape=(m, h), initializer="zeros", name="domain_bias")

    def call(self, inputs):
        x, ids = _split_inputs(inputs, f"StarDense {self.name!r}")
        dom = domain_index(ids, self.num_domains)
        formula = (all_domain_star_dense if self.num_domains <= self.GEMM_MAX_DOMAINS
                   else grouped_star_dense)
        return formula(x, dom, self.kernel, self.bias, self.domain_kernel, self.domain_bias)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:-1]) + (self.units,)

    def l2_weights(self) -> list:
        """l2_regularization applies to the shared W only: the domain kernels W_p start at
        ones and scale W, so pulling them towards 0 would shrink every domain's layer."""
        return [self.kernel]

    def row_sparse_weights(self) -> list:
        """The per-domain weights (M rows each), whose gradient covers only the rows of the
        domains present in the batch (IndexedSlices). Keras' dense optimizers densify such a
        gradient and update all M rows every step (Adam's moments move even rows with a zero
        gradient); a row-wise optimizer (the tables' SparseTableOptimizer) touches only the
        present rows, which keeps the update independent of M
        (benchmarks/domain_scaling.py, `star_rowwise`)."""
        return [self.domain_kernel, self.domain_bias]

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, num_domains=self.num_domains, initializer=self.initializer)
        return config


@register_block("STAR", params="star")
class STAR(keras.layers.Layer):
    """STAR's star-topology fully connected network with partitioned normalization.

    x -> [PN] -> for each layer: StarDense -> [PN] -> activation -> [dropout].
    The first PN (`use_partitioned_norm`) is the paper's (after the embedding layer); the PN
    after each star FC layer (`partitioned_norm_hidden`) is optional, off by default.

    Args:
      num_domains: number of domains M (required); ids are clipped into [0, M).
      hidden_units: width of each star FC layer.
      activation: activation of every layer but the last.
      use_partitioned_norm: PN on the block input.
      dropout_ratio: one rate for every layer, or one per layer.
      momentum, epsilon: of the partitioned normalizations.
      final_activation: activation of the last layer; None: `activation`.
      partitioned_norm_hidden: PN after every star FC layer, before its activation.
      initializer: initializer of the shared kernels.

    Call args:
      inputs: [x (batch, d) float, domain ids (batch,) or (batch, 1), int or float].

    Returns:
      (batch, hidden_units[-1]).
    """

    def __init__(
        self,
        num_domains: int,
        hidden_units: Sequence[int],
        activation: str = "relu",
        use_partitioned_norm: bool = True,
        dropout_ratio: Sequence[float] | float | None = None,
        momentum: float | None = None,
        epsilon: float = EPSILON,
        final_activation: str | None = None,
        partitioned_norm_hidden: bool = False,
        initializer: str = "he_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        what = f"STAR {self.name!r}"
        self.num_domains = _check_num_domains(num_domains, what)
        if isinstance(hidden_units, int):
            hidden_units = [hidden_units]
        hidden_units = [int(u) for u in hidden_units]
        if not hidden_units or any(u <= 0 for u in hidden_units):
            raise ConfigError(
                f"{what}: expected `hidden_units` to be positive integers, received: "
                f"{hidden_units}"
            )
        self.hidden_units = hidden_units
        self.activation = activation
        self.use_partitioned_norm = bool(use_partitioned_norm)
        self.dropout_ratio = per_layer(dropout_ratio, len(hidden_units), what)
        self.momentum = normalization.MOMENTUM if momentum is None else float(momentum)
        self.epsilon = float(epsilon)
        self.final_activation = final_activation
        self.partitioned_norm_hidden = bool(partitioned_norm_hidden)
        self.initializer = initializer

        def pn(name):
            return PartitionedNormalization(
                self.num_domains, momentum=self.momentum, epsilon=epsilon, name=name
            )

        self.input_norm = pn("input_pn") if self.use_partitioned_norm else None
        last = len(hidden_units) - 1
        self.star_layers, self.hidden_norms, self.activations, self.dropouts = [], [], [], []
        for i, units in enumerate(hidden_units):
            self.star_layers.append(
                StarDense(units, self.num_domains, initializer=initializer, name=f"star_{i}")
            )
            self.hidden_norms.append(pn(f"pn_{i}") if self.partitioned_norm_hidden else None)
            act = final_activation if (i == last and final_activation is not None) else activation
            self.activations.append(get_activation(act))
            rate = self.dropout_ratio[i]
            self.dropouts.append(keras.layers.Dropout(rate, name=f"dropout_{i}") if rate else None)

    def build(self, input_shape):
        _check_pair_shapes(input_shape, f"STAR {self.name!r}")
        ids = (None,)
        width = int(input_shape[0][-1])
        if self.input_norm is not None:
            self.input_norm.build([(None, width), ids])
        for star, norm, units in zip(self.star_layers, self.hidden_norms, self.hidden_units):
            star.build([(None, width), ids])
            if norm is not None:
                norm.build([(None, units), ids])
            width = units

    def call(self, inputs, training=None):
        x, ids = _split_inputs(inputs, f"STAR {self.name!r}")
        dom = domain_index(ids, self.num_domains)
        if self.input_norm is not None:
            x = self.input_norm([x, dom], training=training)
        for star, norm, act, drop in zip(
            self.star_layers, self.hidden_norms, self.activations, self.dropouts
        ):
            x = star([x, dom])
            if norm is not None:
                x = norm([x, dom], training=training)
            if act is not None:
                x = act(x)
            if drop is not None:
                x = drop(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:-1]) + (self.hidden_units[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_domains=self.num_domains,
            hidden_units=self.hidden_units,
            activation=self.activation,
            use_partitioned_norm=self.use_partitioned_norm,
            dropout_ratio=self.dropout_ratio,
            momentum=self.momentum,
            epsilon=self.epsilon,
            final_activation=self.final_activation,
            partitioned_norm_hidden=self.partitioned_norm_hidden,
            initializer=self.initializer,
        )
        return config
