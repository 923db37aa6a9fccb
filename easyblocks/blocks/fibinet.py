"""FiBiNet's blocks: SENet field re-weighting, bilinear interactions, and FiBiNet++ itself.

References: Huang et al., RecSys 2019, "FiBiNET: Combining Feature Importance and Bilinear
feature Interaction for Click-Through Rate Prediction"; Zhang et al. 2022, "FiBiNet++:
Improving FiBiNet by Greatly Reducing Model Size for CTR Prediction" (whose SENet+ and
bilinear+ variants EasyRec implements, and so do these blocks).

All three take the field embeddings as a list of (batch, d_i) tensors (an `input_layer {
only_output_feature_list: true }` block, as EasyRec's configs do); a (batch, F, d) tensor, or
(batch, F_k, d) parts in the list, count as F (F_k) fields of width d.
"""

from __future__ import annotations

import itertools
from typing import Any

import keras
import tensorflow as tf

from easyblocks.blocks.mlp import MLP
from easyblocks.blocks.registry import register_block
from easyblocks.errors import ConfigError

_FIELDS_EXPECTED = (
    "a list of (batch, d_i) field embeddings (an `input_layer { only_output_feature_list: true }` "
    "block) or a (batch, F, d) tensor"
)


def field_list(inputs: Any, what: str) -> list[tf.Tensor]:
    """The field embeddings as a list of (batch, d_i) tensors; ConfigError otherwise."""
    parts = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    parts = [tf.convert_to_tensor(p) for p in parts]
    if not parts or any(p.shape.rank not in (2, 3) for p in parts) or (
            not isinstance(inputs, (list, tuple)) and parts[0].shape.rank != 3):
        shapes = [tuple(p.shape) for p in parts]
        raise ConfigError(f"{what}: expected {_FIELDS_EXPECTED}, received shapes {shapes}")
    fields = []
    for p in parts:
        if p.shape.rank == 3:
            if p.shape[1] is None:
                raise ConfigError(f"{what}: the number of fields must be known, received: "
                                  f"{tuple(p.shape)}")
            fields.extend(tf.unstack(p, axis=1))
        else:
            fields.append(p)
    return fields


def field_dims(input_shape: Any) -> list[int] | None:
    """The field widths d_i from the input shape(s); None when they are not all known."""
    shapes = list(input_shape) if input_shape and isinstance(input_shape[0], (list, tuple)) \
        else [input_shape]
    dims: list[int] = []
    for s in shapes:
        if len(s) == 2 and s[-1] is not None:
            dims.append(int(s[-1]))
        elif len(s) == 3 and s[1] is not None and s[2] is not None:
            dims.extend([int(s[2])] * int(s[1]))
        else:
            return None
    return dims


@register_block("SENet", params="senet")
class SENet(keras.layers.Layer):
    """Squeeze-excitation re-weighting of field embeddings: FiBiNet++'s SENet+ (section 3.3).

    Each field v_i (width d_i) is split into g = `num_squeeze_group` groups of d_i / g values;
    the squeeze takes each group's max and mean:

        z = [max(v_1^1), ..., max(v_1^g), mean(v_1^1), ..., mean(v_1^g), ..., mean(v_F^g)]
            (batch, 2 g F)
        a = W_2 relu(W_1 z + b_1) + b_2       (batch, sum_i d_i): one weight per bit
        out = LN(v * a + v)                   (v = concat of the fields)

    W_1 has max(1, 2 g F // reduction_ratio) units (he_normal), W_2 one per bit
    (glorot_normal). `use_skip_connection` adds + v, `use_output_layer_norm` the LayerNorm.
    (The original FiBiNet's SENet is g = 1 with mean pooling only and one weight per field.)

    Args:
      reduction_ratio: r; W_1's width is 2 g F // r (at least 1).
      num_squeeze_group: g; every d_i must be a multiple of g.
      use_skip_connection: add the input to the re-weighted embeddings.
      use_output_layer_norm: LayerNorm the output.

    Call args:
      inputs: the F field embeddings (see the module docstring).

    Returns:
      (batch, sum_i d_i).
    """

    def __init__(self, reduction_ratio: int = 4, num_squeeze_group: int = 2,
                 use_skip_connection: bool = True, use_output_layer_norm: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        what = f"SENet {self.name!r}"
        if int(reduction_ratio) <= 0 or int(num_squeeze_group) <= 0:
            raise ConfigError(f"{what}: expected positive `reduction_ratio` and "
                              f"`num_squeeze_group`, received: reduction_ratio={reduction_ratio}, "
                              f"num_squeeze_group={num_squeeze_group}")
        self.reduction_ratio = int(reduction_ratio)
        self.num_squeeze_group = int(num_squeeze_group)
        self.use_skip_connection = bool(use_skip_connection)
        self.use_output_layer_norm = bool(use_output_layer_norm)
        self.layer_norm = keras.layers.LayerNormalization(name="output_ln") \
            if self.use_output_layer_norm else None
        self.reduce_layer = None
        self.excite_layer = None
        self.dims: list[int] | None = None

    def _check_dims(self, dims: list[int]) -> None:
        g = self.num_squeeze_group
        bad = [d for d in dims if d < g or d % g]
        if bad:
            raise ConfigError(f"SENet {self.name!r}: every field width must be a multiple of "
                              f"num_squeeze_group={g}, received widths {dims}")

    def build(self, input_shape):
        dims = field_dims(input_shape)
        if dims is None:
            return  # call() reports the bad inputs as a ConfigError
        self._check_dims(dims)
        self.dims = dims
        g = self.num_squeeze_group
        reduction = max(1, len(dims) * g * 2 // self.reduction_ratio)
        self.reduce_layer = keras.layers.Dense(reduction, activation="relu",
                                               kernel_initializer="he_normal", name="W1")
        self.reduce_layer.build((None, 2 * g * len(dims)))
        self.excite_layer = keras.layers.Dense(sum(dims), kernel_initializer="glorot_normal",
                                               name="W2")
        self.excite_layer.build((None, reduction))
        if self.layer_norm is not None:
            self.layer_norm.build((None, sum(dims)))

    def call(self, inputs, training=None):
        what = f"SENet {self.name!r}"
        fields = field_list(inputs, what)
        dims = [int(f.shape[-1]) if f.shape[-1] is not None else -1 for f in fields]
        if self.dims is None or dims != self.dims:
            self._check_dims(dims)
            raise ConfigError(f"{what}: the layer was built for field widths {self.dims}, "
                              f"received {dims}")
        g = self.num_squeeze_group
        squeezed = []
        for f, d in zip(fields, dims):
            groups = tf.reshape(f, [-1, g, d // g])
            squeezed += [tf.reduce_max(groups, axis=-1), tf.reduce_mean(groups, axis=-1)]
        z = tf.concat(squeezed, axis=1)  # (batch, 2 g F)
        weights = self.excite_layer(self.reduce_layer(z))  # (batch, sum d_i)
        v = tf.concat(fields, axis=-1)
        out = v * weights
        if self.use_skip_connection:
            out = out + v
        if self.layer_norm is not None:
            out = self.layer_norm(out)
        return out

    def compute_output_shape(self, input_shape):
        dims = field_dims(input_shape)
        batch = input_shape[0][0] if isinstance(input_shape[0], (list, tuple)) \
            else input_shape[0]
        return (batch, None if dims is None else sum(dims))

    def get_config(self):
        config = super().get_config()
        config.update(reduction_ratio=self.reduction_ratio,
                      num_squeeze_group=self.num_squeeze_group,
                      use_skip_connection=self.use_skip_connection,
                      use_output_layer_norm=self.use_output_layer_norm)
        return config


BILINEAR_TYPES = ("all", "each", "interaction")


@register_block("Bilinear", params="bilinear")
class Bilinear(keras.layers.Layer):
    """Bilinear feature interactions (FiBiNET section 3.4; bilinear+ of FiBiNet++ section 3.4),
    then a linear output layer.

    For every pair i < j, in the order (0,1), (0,2), ..., (1,2), ...:

        use_plus:      p_ij = <W v_i, v_j>        (batch, 1)    (bilinear+)
        not use_plus:  p_ij = (W v_i) * v_j       (batch, d_j)  (the original's Hadamard form)

    with W (each a Dense with bias, as EasyRec's) shared by all pairs (`type: "all"`), one per
    field i (`"each"`), or one per pair (`"interaction"`, d_i -> d_j: fields may differ in
    width). out = Dense(num_output_units)(concat_ij p_ij).

    EasyRec's "interaction" type looks its per-pair layers up at the wrong index (i * F + j in
    a list of F (F - 1) / 2), which fails for F >= 3; here each pair has its own W_ij.

    Args:
      num_output_units: width of the output layer.
      type: "all", "each" or "interaction".
      use_plus: bilinear+ (inner products) instead of Hadamard products.

    Call args:
      inputs: the F >= 2 field embeddings (see the module docstring); "all" and "each" need
        one width d for all of them.

    Returns:
      (batch, num_output_units).
    """

    def __init__(self, num_output_units: int, type: str = "interaction",  # noqa: A002
                 use_plus: bool = True, **kwargs):
        super().__init__(**kwargs)
        what = f"Bilinear {self.name!r}"
        kind = str(type).lower()
        if kind not in BILINEAR_TYPES:
            raise ConfigError(f"{what}: expected `type` to be one of {', '.join(BILINEAR_TYPES)}, "
                              f"received: type={type!r}")
        if int(num_output_units) <= 0:
            raise ConfigError(f"{what}: expected `num_output_units` to be a positive integer, "
                              f"received: num_output_units={num_output_units}")
        self.num_output_units = int(num_output_units)
        self.type = kind
        self.use_plus = bool(use_plus)
        self.output_layer = keras.layers.Dense(self.num_output_units, name="output")
        self.pair_layers: list = []
        self.dims: list[int] | None = None

    def build(self, input_shape):
        dims = field_dims(input_shape)
        if dims is None:
            return  # call() reports the bad inputs as a ConfigError
        what = f"Bilinear {self.name!r}"
        if len(dims) < 2:
            raise ConfigError(f"{what}: expected at least 2 fields to form pairs, received "
                              f"{len(dims)}")
        if self.type != "interaction" and len(set(dims)) != 1:
            raise ConfigError(f"{what}: type {self.type!r} needs fields of one width, received "
                              f"widths {dims} (use type 'interaction')")
        self.dims = dims
        f = len(dims)
        if self.type == "all":
            self.pair_layers = [keras.layers.Dense(dims[0], name="all")]
            self.pair_layers[0].build((None, dims[0]))
        elif self.type == "each":
            self.pair_layers = [keras.layers.Dense(dims[0], name=f"each_{i}")
                                for i in range(f - 1)]
            for layer in self.pair_layers:
                layer.build((None, dims[0]))
        else:
            for i, j in itertools.combinations(range(f), 2):
                layer = keras.layers.Dense(dims[j], name=f"interaction_{i}_{j}")
                layer.build((None, dims[i]))
                self.pair_layers.append(layer)
        pairs = f * (f - 1) // 2
        width = pairs if self.use_plus else sum(dims[j] for _, j in
                                                itertools.combinations(range(f), 2))
        self.output_layer.build((None, width))

    def call(self, inputs, training=None):
        what = f"Bilinear {self.name!r}"
        fields = field_list(inputs, what)
        dims = [int(f.shape[-1]) if f.shape[-1] is not None else -1 for f in fields]
        if self.dims is None or dims != self.dims:
            raise ConfigError(f"{what}: the layer was built for field widths {self.dims}, "
                              f"received {dims}")
        f = len(fields)
        if self.type == "all":
            projected = [self.pair_layers[0](v) for v in fields[:-1]]
        elif self.type == "each":
            projected = [layer(v) for layer, v in zip(self.pair_layers, fields[:-1])]
        products = []
        for k, (i, j) in enumerate(itertools.combinations(range(f), 2)):
            wv = self.pair_layers[k](fields[i]) if self.type == "interaction" else projected[i]
            if self.use_plus:
                products.append(tf.reduce_sum(wv * fields[j], axis=-1, keepdims=True))
            else:
                products.append(wv * fields[j])
        return self.output_layer(tf.concat(products, axis=-1))

    def compute_output_shape(self, input_shape):
        batch = input_shape[0][0] if isinstance(input_shape[0], (list, tuple)) \
            else input_shape[0]
        return (batch, self.num_output_units)

    def get_config(self):
        config = super().get_config()
        config.update(num_output_units=self.num_output_units, type=self.type,
                      use_plus=self.use_plus)
        return config


@register_block("FiBiNet", params="fibinet")
class FiBiNet(keras.layers.Layer):
    """FiBiNet++ as EasyRec composes it: MLP(concat[SENet(v), Bilinear(v)]).

    Both branches read the same field embeddings v (FiBiNet++'s form; the original FiBiNET
    also applies the bilinear layer to the SENet output). Without `bilinear` only the SENet
    branch is used; without `mlp` the concatenation is the output.

    Args:
      senet: SENet's parameters (see `SENet`); unset: SENet's defaults (EasyRec requires the
        message, usually as `senet { reduction_ratio: 4 }`).
      bilinear: Bilinear's parameters (see `Bilinear`), or None.
      mlp: MLP's parameters (see `easyblocks.blocks.mlp.MLP`), or None.

    Call args:
      inputs: the field embeddings (see the module docstring).

    Returns:
      (batch, mlp.hidden_units[-1]), or without mlp (batch, sum_i d_i [+ num_output_units]).
    """

    def __init__(self, senet: dict[str, Any] | None = None,
                 bilinear: dict[str, Any] | None = None, mlp: dict[str, Any] | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        what = f"FiBiNet {self.name!r}"
        self.senet_kwargs = dict(senet or {})
        self.bilinear_kwargs = None if bilinear is None else dict(bilinear)
        self.mlp_kwargs = None if mlp is None else dict(mlp)
        try:
            self.senet = SENet(name="senet", **self.senet_kwargs)
            self.bilinear = None if bilinear is None else Bilinear(name="bilinear",
                                                                   **self.bilinear_kwargs)
            self.mlp = None if mlp is None else MLP(name="mlp", **self.mlp_kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{what}: bad parameters: {e}") from None

    def build(self, input_shape):
        dims = field_dims(input_shape)
        if dims is None:
            return  # call() reports the bad inputs
        self.senet.build(input_shape)
        width = sum(dims)
        if self.bilinear is not None:
            self.bilinear.build(input_shape)
            width += self.bilinear.num_output_units
        if self.mlp is not None:
            # MLP has no build(): a symbolic call creates its weights, as Keras would
            self.mlp(keras.KerasTensor((None, width)))

    def call(self, inputs, training=None):
        out = self.senet(inputs)
        if self.bilinear is not None:
            out = tf.concat([out, self.bilinear(inputs)], axis=-1)
        if self.mlp is not None:
            out = self.mlp(out, training=training)
        return out

    def compute_output_shape(self, input_shape):
        batch = input_shape[0][0] if isinstance(input_shape[0], (list, tuple)) \
            else input_shape[0]
        if self.mlp is not None:
            return (batch, self.mlp.hidden_units[-1])
        dims = field_dims(input_shape)
        width = None if dims is None else sum(dims) + (
            self.bilinear.num_output_units if self.bilinear is not None else 0)
        return (batch, width)

    def get_config(self):
        config = super().get_config()
        config.update(senet=dict(self.senet_kwargs), bilinear=self.bilinear_kwargs,
                      mlp=self.mlp_kwargs)
        return config
