"""DIN (Zhou et al., KDD 2018, "Deep Interest Network for Click-Through Rate Prediction"):
attention pooling of a user's behaviour sequence with respect to the candidate item.

    v_U(A) = sum_j a(e_j, v_A) * e_j                                         (paper eq. 3)

e_j the embedding of behaviour j, v_A the candidate's embedding, a(.) the local activation unit:
an MLP over [e_j, v_A, e_j - v_A, e_j * v_A] followed by a linear Dense(1). As in the paper the
weights are NOT normalised by default ("normalization with softmax on the output of a(.) is
abandoned", to keep the intensity of the user's interests).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from easyblocks.blocks.inputs import expect_list
from easyblocks.blocks.mlp import MLP
from easyblocks.blocks.registry import register_block
from easyblocks.errors import ConfigError

# The activation unit of the authors' public code (din/model.py): 80 -> 40 sigmoid units with
# biases and no batch norm, then a linear output unit.
DEFAULT_ATTENTION_MLP = {
    "hidden_units": [80, 40],
    "activation": "sigmoid",
    "final_activation": "sigmoid",
    "use_bn": False,
    "use_final_bn": False,
    "use_bias": True,
    "use_final_bias": True,
    "initializer": "glorot_uniform",
}
_NORMALIZE = ("none", "softmax")


@register_block("DIN")
class DIN(keras.layers.Layer):
    """Deep Interest Network attention pooling (the local activation unit and weighted sum).

    For each behaviour b_j of the sequence and the candidate c:
        a_j = Dense_1( MLP([b_j, c, b_j - c, b_j * c]) )        (unnormalised score)
        out = sum_j mask_j * a_j * b_j                            (batch, d)
    where mask_j = 0 at padded positions (id < 0; the framework writes -1), so a padded position
    has weight exactly 0 whatever its embedding holds. Padded behaviours are also replaced by
    zeros before the MLP, so their content cannot reach the output through batch-norm
    statistics either (with `use_bn`, the zero rows still count in those statistics).

    With `normalize="softmax"` (as in the authors' public code, not the paper) the scores of
    the valid positions are softmax-normalised: padded scores are set to the lowest float
    before the softmax and their weights to 0 after it; a sequence with no valid position
    pools to zeros. (The public code also divides the scores by sqrt(d) first; a scale of the
    scores is absorbed by the learned Dense_1 weights, so it is not repeated here.)

    Activations: the paper's PReLU / Dice are learnable activations and not (yet) available in
    the activation names of `easyblocks.blocks.activations`; the default here is the sigmoid of
    the authors' public code. Any activation name accepted by MLP ('relu', 'sigmoid', ...) works.

    Args:
      attention_mlp: keyword arguments of the activation unit's MLP (see
        `easyblocks.blocks.mlp.MLP`). Keys not given take DIN's defaults, not MLP's:
        hidden_units [80, 40], activation and final_activation "sigmoid", no batch norm, biases
        on, glorot_uniform initializer.
      normalize: "none" (the paper) or "softmax" (masked softmax over the valid positions).
      concat_candidate: return concat[pooled, candidate] (batch, 2d) instead of the pooled
        interest alone (batch, d), for a following MLP.

    Call args:
      inputs: a list [sequence embeddings (batch, L, d) float (all-zero at padded positions),
        sequence ids (batch, L) int (negative = padding; (batch, L, 1) is accepted too),
        candidate embedding (batch, d) (or (batch, 1, d))] (`merge_inputs_into_list: true`).

    Returns:
      (batch, d), or (batch, 2 d) with `concat_candidate`.
    """

    def __init__(
        self,
        attention_mlp: dict[str, Any] | None = None,
        normalize: str = "none",
        concat_candidate: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        what = f"DIN {self.name!r}"
        if normalize not in _NORMALIZE:
            raise ConfigError(
                f"{what}: expected `normalize` to be one of {', '.join(_NORMALIZE)}, received: "
                f"normalize={normalize!r}"
            )
        self.attention_mlp = {**DEFAULT_ATTENTION_MLP, **dict(attention_mlp or {})}
        self.normalize = normalize
        self.concat_candidate = bool(concat_candidate)
        try:
            self.attention = MLP(name="attention_mlp", **self.attention_mlp)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{what}: bad `attention_mlp` parameters: {e}") from None
        self.score = keras.layers.Dense(1, name="attention_score")

    def build(self, input_shape):
        shapes = list(input_shape) if isinstance(input_shape, (list, tuple)) else []
        if len(shapes) == 3 and all(isinstance(s, (list, tuple)) for s in shapes):
            d = shapes[0][-1]
            if d is not None and len(shapes[0]) == 3:
                # MLP has no build(): a symbolic call creates its weights, as Keras would
                self.attention(keras.KerasTensor((None, None, 4 * int(d))))
                self.score.build((None, None, self.attention.hidden_units[-1]))
        # else: call() reports the bad inputs as a ConfigError

    def _split(self, inputs: Any) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        what = f"DIN {self.name!r}"
        expected = (
            "a list [sequence embeddings (batch, L, d), sequence ids (batch, L) with -1 at "
            "padding, candidate embedding (batch, d)]"
        )
        seq, ids, cand = (tf.convert_to_tensor(t) for t in expect_list(inputs, 3, what, expected))
        if ids.shape.rank == 3 and ids.shape[-1] == 1:
            ids = ids[..., 0]
        if cand.shape.rank == 3 and cand.shape[1] == 1:
            cand = cand[:, 0, :]
        ok = (
            seq.shape.rank == 3 and ids.shape.rank == 2 and cand.shape.rank == 2
            and seq.shape[-1] == cand.shape[-1]
            and (ids.shape[1] is None or seq.shape[1] is None or ids.shape[1] == seq.shape[1])
        )
        if not ok:
            raise ConfigError(
                f"{what}: expected {expected}, with the same L and d, received shapes "
                f"{tuple(seq.shape)}, {tuple(ids.shape)}, {tuple(cand.shape)}"
            )
        return seq, ids, cand

    def _weights(self, inputs: Any, training=None) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(weights (batch, L), masked sequence (batch, L, d), candidate (batch, d))."""
        seq, ids, cand = self._split(inputs)
        if ids.dtype.is_floating:
            ids = tf.round(ids)
        mask = tf.cast(ids, tf.int64) >= 0  # (batch, L)
        seq = tf.where(mask[..., None], seq, tf.zeros_like(seq))
        cand = tf.cast(cand, seq.dtype)
        c = tf.broadcast_to(cand[:, None, :], tf.shape(seq))  # (batch, L, d)
        unit_in = tf.concat([seq, c, seq - c, seq * c], axis=-1)  # (batch, L, 4d)
        scores = self.score(self.attention(unit_in, training=training))[..., 0]  # (batch, L)
        if self.normalize == "softmax":
            lowest = tf.fill(tf.shape(scores), tf.constant(scores.dtype.min, scores.dtype))
            scores = tf.nn.softmax(tf.where(mask, scores, lowest), axis=-1)
        return tf.where(mask, scores, tf.zeros_like(scores)), seq, cand

    def call(self, inputs, training=None):
        weights, seq, cand = self._weights(inputs, training)
        pooled = tf.reduce_sum(weights[..., None] * seq, axis=1)  # (batch, d)
        if self.concat_candidate:
            return tf.concat([pooled, cand], axis=-1)
        return pooled

    def attention_weights(self, inputs, training=None) -> tf.Tensor:
        """The weights a_j that `call` uses (0 at padded positions), (batch, L); to inspect."""
        return self._weights(inputs, training)[0]

    def compute_output_shape(self, input_shape):
        batch, d = input_shape[0][0], input_shape[0][-1]
        return (batch, 2 * d if self.concat_candidate and d is not None else d)

    def get_config(self):
        config = super().get_config()
        config.update(
            attention_mlp=dict(self.attention_mlp),
            normalize=self.normalize,
            concat_candidate=self.concat_candidate,
        )
        return config
