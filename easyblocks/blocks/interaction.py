"""Feature-interaction blocks over per-field embeddings: FM, InnerProduct, PNN, DotInteraction
and CIN.

All of them take the embeddings of F fields of one dimension d:
- a (batch, F, d) tensor: an `input_layer { only_output_3d_tensor: true }` block, or
- a list of (batch, d) tensors (`merge_inputs_into_list: true`); a (batch, F_k, d) tensor in
  the list counts as F_k fields. The list is stacked on a new fields axis, in list order.

- `FM` (Rendle, ICDM 2010): the second-order term sum_{i<j} <v_i, v_j>, in O(F d).
- `InnerProduct` (the IPNN product layer of Qu et al., ICDM 2016): every <v_i, v_j>, i < j.
- `PNN`: MLP(concat[z, p]), z the flattened embeddings, p their inner products.
- `DotInteraction` (DLRM, Naumov et al. 2019): every <v_i, v_j>, in EasyRec's order.
- `CIN` (xDeepFM, Lian et al., KDD 2018): the compressed interaction network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from easyblocks.blocks.mlp import MLP
from easyblocks.blocks.registry import register_block
from easyblocks.errors import ConfigError

_FIELDS_EXPECTED = (
    "a 3-D input (batch, num_fields, d) (an `input_layer { only_output_3d_tensor: true }` block) "
    "or a list of (batch, d) tensors (`merge_inputs_into_list: true`)"
)


def _describe(inputs: Any) -> str:
    if isinstance(inputs, (list, tuple)):
        return "a list of shapes " + str([tuple(tf.convert_to_tensor(t).shape) for t in inputs])
    return f"shape {tuple(tf.convert_to_tensor(inputs).shape)}"


def stack_fields(inputs: Any, what: str) -> tf.Tensor:
    """Returns the field embeddings as one (batch, F, d) tensor; ConfigError otherwise.

    Args:
      inputs: a (batch, F, d) tensor, or a list of (batch, d) / (batch, F_k, d) tensors that
        all have the same d.
      what: names the block in error messages.
    """
    if isinstance(inputs, (list, tuple)):
        if not inputs:
            raise ConfigError(f"{what}: expected {_FIELDS_EXPECTED}, received: an empty list")
        parts = [tf.convert_to_tensor(t) for t in inputs]
        if any(p.shape.rank not in (2, 3) for p in parts):
            raise ConfigError(f"{what}: expected {_FIELDS_EXPECTED}, received: {_describe(inputs)}")
        dims = {int(p.shape[-1]) if p.shape[-1] is not None else None for p in parts}
        if len(dims) != 1:
            raise ConfigError(
                f"{what}: expected every field embedding to have the same dimension d, "
                f"received: {_describe(inputs)}"
            )
        parts = [p[:, None, :] if p.shape.rank == 2 else p for p in parts]
        return parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)
    x = tf.convert_to_tensor(inputs)
    if x.shape.rank != 3:
        raise ConfigError(f"{what}: expected {_FIELDS_EXPECTED}, received: {_describe(inputs)}")
    return x


def _is_shape_list(input_shape: Any) -> bool:
    return bool(input_shape) and isinstance(input_shape[0], (list, tuple))


def _batch_fields_dim(input_shape: Any) -> tuple[Any, int | None, int | None]:
    """(batch, F, d) from the shape of a (batch, F, d) input or of a list of inputs."""
    if not _is_shape_list(input_shape):
        return input_shape[0], input_shape[1], input_shape[-1]
    fields: int | None = 0
    for s in input_shape:
        n = 1 if len(s) == 2 else s[1]
        fields = None if fields is None or n is None else fields + int(n)
    return input_shape[0][0], fields, input_shape[0][-1]


def pair_indices(num_fields: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (i, j), i < j, in the fixed order (0,1), (0,2), ..., (0,F-1), (1,2), ..."""
    rows, cols = np.triu_indices(num_fields, k=1)
    return rows.astype("int32"), cols.astype("int32")


@register_block("FM", params="fm")
class FM(keras.layers.Layer):
    """Factorization machine second-order term (Rendle, ICDM 2010; the O(kn) form of its Lemma 3.1).

        sum_{i<j} <v_i, v_j> = 0.5 * sum_d [ (sum_i v_{i,d})^2 - sum_i v_{i,d}^2 ]

    computed in O(F d). The first-order part (w_0 + sum_i w_i x_i) is not in this block: in a
    config it is a linear term over the features (e.g. a Dense(1) block, or the tower's logit).

    Args:
      use_variant: return the (batch, d) vector 0.5 * ((sum_i v_i)^2 - sum_i v_i^2) before the
        final sum over d, as EasyRec's `use_variant` (for DeepFM-style concatenation with other
        blocks).

    Call args:
      inputs: (batch, F, d), or a list of (batch, d) tensors (see the module docstring).

    Returns:
      (batch, 1), or (batch, d) with `use_variant`.
    """

    def __init__(self, use_variant: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.use_variant = bool(use_variant)

    def call(self, inputs, training=None):
        v = stack_fields(inputs, f"FM {self.name!r}")
        square_of_sum = tf.square(tf.reduce_sum(v, axis=1))  # (batch, d)
        sum_of_square = tf.reduce_sum(tf.square(v), axis=1)  # (batch, d)
        cross = 0.5 * (square_of_sum - sum_of_square)
        if self.use_variant:
            return cross
        return tf.reduce_sum(cross, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        batch, _, d = _batch_fields_dim(input_shape)
        return (batch, d) if self.use_variant else (batch, 1)

    def get_config(self):
        config = super().get_config()
        config.update(use_variant=self.use_variant)
        return config


@register_block("InnerProduct")
class InnerProduct(keras.layers.Layer):
    """All pairwise inner products of the field embeddings (IPNN's product signals, Qu et al.
    2016, "Product-based Neural Networks for User Response Prediction").

        p_(i,j) = <v_i, v_j>,  i < j, in the order (0,1), (0,2), ..., (0,F-1), (1,2), ...

    Computed as the batched Gram matrix V V^T (batch, F, F) and its strict upper triangle, so
    memory is O(F^2) per example (not O(F^2 d)).

    Call args:
      inputs: (batch, F, d), or a list of (batch, d) tensors (see the module docstring); F >= 2.

    Returns:
      (batch, F (F - 1) / 2).
    """

    def call(self, inputs, training=None):
        v = stack_fields(inputs, f"InnerProduct {self.name!r}")
        return inner_products(v, f"InnerProduct {self.name!r}")

    def compute_output_shape(self, input_shape):
        batch, f, _ = _batch_fields_dim(input_shape)
        return (batch, None if f is None else f * (f - 1) // 2)


def inner_products(v: tf.Tensor, what: str) -> tf.Tensor:
    """(batch, F, d) -> (batch, F (F-1) / 2): <v_i, v_j> for i < j (see `pair_indices`)."""
    f = v.shape[1]
    if f is None:
        raise ConfigError(f"{what}: the number of fields must be known, received: {v.shape}")
    if f < 2:
        raise ConfigError(
            f"{what}: expected at least 2 fields to form pairs, received: {f} (shape {v.shape})"
        )
    gram = tf.matmul(v, v, transpose_b=True)  # (batch, F, F)
    rows, cols = pair_indices(int(f))
    flat = tf.reshape(gram, [-1, int(f) * int(f)])
    return tf.gather(flat, rows * int(f) + cols, axis=1)


@register_block("PNN")
class PNN(keras.layers.Layer):
    """Product-based neural network, inner-product variant (IPNN, Qu et al. ICDM 2016).

        output = MLP(concat[z, p]),  z = flatten(v_1..v_F) (batch, F d)  (the linear signals),
                                     p = (<v_i, v_j>)_{i<j}  (batch, F (F-1) / 2)

    The paper's first hidden layer is l_1 = relu(W_z (.) z + W_p (.) p + b_1) and, for IPNN, it
    factorises each W_p^n as theta^n theta^n^T (rank 1) to save computation. Here the first MLP
    layer takes every inner product with its own weight (a full W_p), as DeepCTR and most
    public implementations do: F(F-1)/2 products is small, and the full weights contain the
    rank-1 case.

    OPNN (`product="outer"`) is not supported: its pairwise outer products v_i v_j^T are
    F(F-1)/2 matrices of d x d, O(F^2 d^2) memory per example (F=20, d=16: 48,640 floats, about
    200 MB for a batch of 1024, versus 190 floats for the inner products), and the paper's
    cheaper form sums them into one f_S f_S^T (f_S = sum_i v_i), which no longer has the
    pairwise signals.

    Args:
      hidden_units: the MLP's layer widths.
      product: "inner" (the only supported variant).
      mlp: further keyword arguments of the MLP block (activation, use_bn, dropout_ratio,
        final_activation, ...; see `easyblocks.blocks.mlp.MLP`), with MLP's defaults.

    Call args:
      inputs: (batch, F, d), or a list of (batch, d) tensors (see the module docstring); F >= 2.

    Returns:
      (batch, hidden_units[-1]).
    """

    def __init__(
        self,
        hidden_units: Sequence[int] | int,
        product: str = "inner",
        mlp: dict[str, Any] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        what = f"PNN {self.name!r}"
        if product == "outer":
            raise ConfigError(
                f"{what}: product='outer' (OPNN) is not supported: the pairwise outer products "
                "v_i v_j^T need O(F^2 d^2) memory per example (F=20, d=16: 48,640 floats per "
                "example, ~200 MB per batch of 1024) and the paper's sum-pooled shortcut loses "
                "the pairwise signals; use product='inner'"
            )
        if product != "inner":
            raise ConfigError(
                f"{what}: expected product='inner', received: product={product!r}"
            )
        mlp = dict(mlp or {})
        if isinstance(hidden_units, int):
            hidden_units = [hidden_units]
        hidden_units = list(hidden_units)
        if "hidden_units" in mlp and list(mlp["hidden_units"]) != hidden_units:
            raise ConfigError(
                f"{what}: give the MLP widths once, as `hidden_units`; received hidden_units="
                f"{hidden_units} and mlp.hidden_units={mlp['hidden_units']}"
            )
        mlp.pop("hidden_units", None)
        self.hidden_units = hidden_units
        self.product = product
        self.mlp_kwargs = mlp
        try:
            self.mlp = MLP(hidden_units=hidden_units, name="mlp", **mlp)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{what}: bad `mlp` parameters: {e}") from None

    def build(self, input_shape):
        if _is_shape_list(input_shape):
            ok = all(len(s) in (2, 3) for s in input_shape)
        else:
            ok = len(input_shape) == 3
        _, f, d = _batch_fields_dim(input_shape) if ok else (None, None, None)
        if f is not None and d is not None and f >= 2:
            # MLP has no build(): a symbolic call creates its weights, as Keras would
            self.mlp(keras.KerasTensor((None, int(f) * int(d) + int(f) * (int(f) - 1) // 2)))
        # otherwise call() reports the bad inputs as a ConfigError

    def call(self, inputs, training=None):
        what = f"PNN {self.name!r}"
        v = stack_fields(inputs, what)
        p = inner_products(v, what)
        z = tf.reshape(v, [-1, int(v.shape[1]) * int(v.shape[2])])
        return self.mlp(tf.concat([z, p], axis=-1), training=training)

    def compute_output_shape(self, input_shape):
        batch, _, _ = _batch_fields_dim(input_shape)
        return (batch, self.hidden_units[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_units=self.hidden_units, product=self.product, mlp=dict(self.mlp_kwargs)
        )
        return config


def lower_triangle_indices(num_fields: int, self_interaction: bool) -> np.ndarray:
    """Flat indices i * F + j of the pairs j < i (j <= i with self_interaction), row by row:
    (1,0), (2,0), (2,1), (3,0), ... — the order of EasyRec's (and DLRM's) dot interaction."""
    rows, cols = np.tril_indices(num_fields, k=0 if self_interaction else -1)
    return (rows * num_fields + cols).astype("int32")


@register_block("DotInteraction", params="dot_interaction")
class DotInteraction(keras.layers.Layer):
    """DLRM's dot interaction (Naumov et al. 2019, "Deep Learning Recommendation Model for
    Personalization and Recommendation Systems", section 2.1.3).

        z_(i,j) = <v_i, v_j>  for j < i  (j <= i with `self_interaction`)

    in the row-major order of the Gram matrix's lower triangle: (1,0), (2,0), (2,1), (3,0), ...
    (EasyRec's order; `InnerProduct` gives the same numbers in upper-triangle order).

    Args:
      self_interaction: also output the squared norms <v_i, v_i>.
      skip_gather: output the whole Gram matrix, flattened row by row, with the entries outside
        the selected triangle set to 0 (F^2 values, half of them zeros), as EasyRec does.

    Call args:
      inputs: (batch, F, d), or a list of (batch, d) tensors (see the module docstring). In
        DLRM the list is the bottom MLP's output followed by the sparse features' embeddings.

    Returns:
      (batch, F (F - 1) / 2), (batch, F (F + 1) / 2) with `self_interaction`, or (batch, F^2)
      with `skip_gather`.
    """

    def __init__(self, self_interaction: bool = False, skip_gather: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.self_interaction = bool(self_interaction)
        self.skip_gather = bool(skip_gather)

    def _width(self, f: int | None) -> int | None:
        if f is None:
            return None
        if self.skip_gather:
            return f * f
        return f * (f + 1) // 2 if self.self_interaction else f * (f - 1) // 2

    def call(self, inputs, training=None):
        what = f"DotInteraction {self.name!r}"
        v = stack_fields(inputs, what)
        f = v.shape[1]
        if f is None:
            raise ConfigError(f"{what}: the number of fields must be known, received: {v.shape}")
        f = int(f)
        if f < 2 and not self.self_interaction:
            raise ConfigError(f"{what}: expected at least 2 fields to form pairs, received: {f} "
                              f"(shape {v.shape})")
        gram = tf.reshape(tf.matmul(v, v, transpose_b=True), [-1, f * f])  # (batch, F^2)
        keep = lower_triangle_indices(f, self.self_interaction)
        if not self.skip_gather:
            return tf.gather(gram, keep, axis=1)
        mask = np.zeros(f * f, dtype="float32")
        mask[keep] = 1.0
        return gram * tf.constant(mask, dtype=gram.dtype)

    def compute_output_shape(self, input_shape):
        batch, f, _ = _batch_fields_dim(input_shape)
        return (batch, self._width(f))

    def get_config(self):
        config = super().get_config()
        config.update(self_interaction=self.self_interaction, skip_gather=self.skip_gather)
        return config


@register_block("CIN", params="cin")
class CIN(keras.layers.Layer):
    """xDeepFM's Compressed Interaction Network (Lian et al., KDD 2018, eq. 6), as EasyRec has it.

    With X^0 = the (H_0 = F fields) x d input embeddings, layer k computes H_k feature maps

        X^k_(h,:) = relu( sum_i sum_j W^k_(h,i,j) (X^(k-1)_(i,:) * X^0_(j,:)) + b^k_h )

    (* element-wise over the d dimensions), i.e. vector-wise interactions of every row of the
    previous layer with every input field, compressed by W^k (H_k x H_(k-1) x H_0). Each layer
    is sum-pooled over d, and the pooled layers are concatenated. As in EasyRec: a ReLU and a
    bias on every feature map (the paper allows any activation), no split-half.

    Weights: kernel_k (H_k, H_(k-1), H_0) he_normal, bias_k (H_k,) zeros.

    Args:
      hidden_feature_sizes: H_1, ..., H_K.

    Call args:
      inputs: (batch, F, d), or a list of (batch, d) tensors (see the module docstring).

    Returns:
      (batch, H_1 + ... + H_K).
    """

    def __init__(self, hidden_feature_sizes: Sequence[int] | int, **kwargs):
        super().__init__(**kwargs)
        if isinstance(hidden_feature_sizes, int):
            hidden_feature_sizes = [hidden_feature_sizes]
        sizes = [int(h) for h in hidden_feature_sizes or []]
        if not sizes or any(h <= 0 for h in sizes):
            raise ConfigError(
                f"CIN {self.name!r}: expected `hidden_feature_sizes` to be positive integers, "
                f"received: {list(hidden_feature_sizes or [])}"
            )
        self.hidden_feature_sizes = sizes
        self.kernels: list = []
        self.biases: list = []

    def build(self, input_shape):
        ok = all(len(s) in (2, 3) for s in input_shape) if _is_shape_list(input_shape) \
            else len(input_shape) == 3
        _, h0, _ = _batch_fields_dim(input_shape) if ok else (None, None, None)
        if h0 is None:
            return  # call() reports the bad inputs as a ConfigError
        sizes = [int(h0)] + self.hidden_feature_sizes
        for k in range(len(self.hidden_feature_sizes)):
            self.kernels.append(self.add_weight(
                shape=(sizes[k + 1], sizes[k], sizes[0]), initializer="he_normal",
                name=f"kernel_{k}"))
            self.biases.append(self.add_weight(shape=(sizes[k + 1],), initializer="zeros",
                                               name=f"bias_{k}"))

    def call(self, inputs, training=None):
        what = f"CIN {self.name!r}"
        x0 = stack_fields(inputs, what)  # (batch, H0, d)
        if not self.kernels or x0.shape[1] != self.kernels[0].shape[2]:
            raise ConfigError(f"{what}: expected {_FIELDS_EXPECTED} with a known number of "
                              f"fields, received: {_describe(inputs)}")
        h0, d = int(x0.shape[1]), x0.shape[2]
        x, pooled = x0, []
        for kernel, bias in zip(self.kernels, self.biases):
            h_prev = int(x.shape[1])
            # z_(i,j,:) = x_i * x0_j: (batch, H_(k-1) * H0, d)
            z = tf.reshape(x[:, :, None, :] * x0[:, None, :, :], [-1, h_prev * h0, d])
            w = tf.reshape(kernel, [int(kernel.shape[0]), h_prev * h0])
            x = tf.nn.relu(tf.einsum("hm,bmd->bhd", w, z) + bias[None, :, None])  # (b, H_k, d)
            pooled.append(tf.reduce_sum(x, axis=-1))
        return tf.concat(pooled, axis=-1)

    def compute_output_shape(self, input_shape):
        batch, _, _ = _batch_fields_dim(input_shape)
        return (batch, sum(self.hidden_feature_sizes))

    def l2_weights(self) -> list:
        """l2_regularization applies to the CIN kernels W^k (not the biases)."""
        return list(self.kernels)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_feature_sizes=self.hidden_feature_sizes)
        return config
