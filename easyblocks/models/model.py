"""CTRModel: features -> backbone -> task towers, and its named losses.

RankModel is the one-tower case of MultiTaskModel; both are this class.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from easyblocks.backbone.dag import Backbone
from easyblocks.blocks.mlp import MLP
from easyblocks.blocks.weights import l2_weights
from easyblocks.config.specs import (
    LOSS_COLUMN,
    SAMPLE_WEIGHT,
    FeatureSpec,
    ModelSpec,
    TowerSpec,
)
from easyblocks.errors import ConfigError
from easyblocks.features.embedding import FeatureGroups
from easyblocks.models import losses as L

# forward()'s output holding the feature groups' variational dropout term (training only)
VARIATIONAL_DROPOUT = "variational_dropout_loss"


class TaskTower(keras.layers.Layer):
    """Optional `dnn` MLP, then Dense(num_class): (batch, d) -> logits (batch, num_class).

    The `dnn` is EasyRec's DNN: per layer Dense (with bias, glorot_uniform) -> [BatchNorm]
    -> activation -> [dropout]. A RankModel tower (`logit_if_num_class`) without a dnn
    whose input already has num_class units takes it as the logit, like EasyRec's
    RankModel.
    """

    def __init__(self, spec: TowerSpec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.dnn = None
        self.logits = None
        if spec.logit_from_backbone:
            return
        if spec.dnn:
            self.dnn = MLP(name="dnn", **spec.dnn)

    def build(self, input_shape):
        if self.spec.logit_from_backbone:
            return
        if self.dnn is None and self.spec.logit_if_num_class and \
                input_shape[-1] == self.spec.num_class:
            return  # EasyRec's RankModel: the backbone output is the logit
        self.logits = keras.layers.Dense(self.spec.num_class, name="logits")

    def call(self, x, training=None):
        if self.spec.logit_from_backbone:
            if x.shape[-1] != self.spec.num_class:
                raise ConfigError(
                    f"tower {self.spec.name!r}: logit_from_backbone needs an input of shape "
                    f"(batch, {self.spec.num_class}), got {tuple(x.shape)}")
            return x
        if self.dnn is not None:
            x = self.dnn(x, training=training)
        return x if self.logits is None else self.logits(x)


class CTRModel(keras.Model):
    """The model a config describes.

    Call with the dict made by `Preprocessor`; returns {"logits_<tower>": (batch,),
    "probs_<tower>": (batch,)} ((batch, num_class) for a multi-class tower); a regression
    (L2_LOSS) tower returns "y_<tower>", its logit, instead of probs; a ZILN tower returns
    its logits (batch, 3), probs (p(y > 0)) and "y_<tower>" (the expected value). A tower with
    prob_product_of (ESMM) also returns "cond_probs_<tower>", its own factor (e.g. pCVR).
    """

    def __init__(self, features: dict[str, FeatureSpec], spec: ModelSpec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.tower_specs = spec.towers
        self.l2_regularization = spec.l2_regularization
        self.embedding_regularization = spec.embedding_regularization
        self.feature_groups = FeatureGroups(features, spec.groups, spec.variational_dropout,
                                            name="features")
        self.logit_blocks = spec.logit_blocks
        self.extra_blocks = spec.extra_blocks
        self.backbone = Backbone(spec.backbone, name="backbone", extra_outputs=self.extra_blocks)
        self.towers = [TaskTower(t, name=f"tower_{t.name}") for t in spec.towers]
        self.similarity_layers = {t.name: self._similarity_layer(t) for t in spec.towers
                                  if t.in_batch}
        # no weights of its own: each child builds on its first call. Unbuilt, Keras would
        # first trace the whole model symbolically to build it (every block once more)
        self.built = True

    def _similarity_layer(self, spec: TowerSpec):
        """The layer of an in-batch softmax tower's similarity block: it scores all pairs."""
        block = spec.in_batch.similarity_block
        layers = self.backbone.dag.blocks[block].layers
        if len(layers) != 1 or not hasattr(layers[0], "pair_logits"):
            found = type(layers[0]).__name__ if layers else "no layer"
            raise ConfigError(
                f"tower {spec.name!r}: SOFTMAX_CROSS_ENTROPY over in-batch negatives needs block "
                f"{block!r} to be a Similarity block (a layer with pair_logits), got {found}")
        return layers[0]

    def forward(self, features: dict, training=None) -> tuple[dict, tf.Tensor]:
        """Returns (outputs, embedding_l2); through __call__, so that the losses blocks add
        with `add_loss` are those of this call."""
        return self(features, training=training, return_aux=True)

    def call(self, features, training=None, return_aux=False):
        fg = self.feature_groups(features, training=training)
        out = self.backbone(fg, training=training)
        extras = {}
        if self.extra_blocks:
            out, extras = out
        if isinstance(out, (list, tuple)):
            if len(out) == 1:
                out = out[0]
            elif len(out) != len(self.towers):
                raise ConfigError(
                    f"backbone: output_blocks give {len(out)} outputs but there are "
                    f"{len(self.towers)} task towers "
                    f"({', '.join(t.name for t in self.tower_specs)}); "
                    "give one output per tower, in tower order, or one shared output"
                )
        outputs = {}
        for i, tower in enumerate(self.towers):
            x = out[i] if isinstance(out, (list, tuple)) else out
            logits = tower(x, training=training)
            name = tower.spec.name
            for block in tower.spec.add_to_logit:
                logits = logits + self._logit_part(extras[block], block, tower.spec)
            if tower.spec.is_regression:  # the prediction is the logit itself
                logits = tf.reshape(logits, [-1])
                outputs[f"logits_{name}"] = logits
                outputs[tower.spec.prediction_key] = logits
                continue
            if tower.spec.ziln is not None:  # EasyRec's ZILN head: p(y > 0) and E[y]
                p = tower.spec.ziln.params
                probs, outputs[tower.spec.prediction_key] = L.ziln_predictions(
                    logits, p["max_sigma"], p["max_log_clip_value"], p["return_log_pred_value"])
            elif tower.spec.num_class == 1:
                logits = tf.reshape(logits, [-1])
                probs = tf.sigmoid(logits)
            else:
                probs = tf.nn.softmax(logits)
            if tower.spec.prob_product_of:  # ESMM: p = p_own x p_r ...
                outputs[f"cond_probs_{name}"] = probs
                for r in tower.spec.prob_product_of:
                    probs = probs * outputs[f"probs_{r}"]
                p = tf.clip_by_value(probs, 1e-7, 1 - 1e-7)
                logits = tf.math.log(p) - tf.math.log1p(-p)
            outputs[f"logits_{name}"] = logits
            outputs[f"probs_{name}"] = probs
            if return_aux and tower.spec.in_batch:  # for the loss only, never served
                outputs.update(self._in_batch_outputs(tower.spec, extras, features))
        if return_aux and "variational_dropout" in fg:  # for the loss only, never served
            outputs[VARIATIONAL_DROPOUT] = fg["variational_dropout"]
        return (outputs, fg["embedding_l2"]) if return_aux else outputs

    def _in_batch_outputs(self, spec: TowerSpec, extras: dict, features: dict) -> dict:
        """Every (user, item) pair of the batch scored, the positive pairs' similarity and the
        items' ids: what SOFTMAX_CROSS_ENTROPY over in-batch negatives reads."""
        ib, layer = spec.in_batch, self.similarity_layers[spec.name]
        pair = [extras[ib.user_block], extras[ib.item_block]]
        out = {f"pair_logits_{spec.name}": layer.pair_logits(pair),
               f"pos_similarity_{spec.name}": layer.similarity(pair)}
        if ib.item_feature:
            out[f"item_ids_{spec.name}"] = features[ib.item_feature]
        return out

    @staticmethod
    def _logit_part(value, block: str, spec: TowerSpec):
        if isinstance(value, (list, tuple)) or value.shape[-1] != spec.num_class:
            shape = [v.shape for v in value] if isinstance(value, (list, tuple)) else value.shape
            raise ConfigError(
                f"tower {spec.name!r}: add_to_logit block {block!r} must output shape "
                f"(batch, {spec.num_class}), got {shape}"
            )
        return value

    def dense_kernels(self) -> list:
        """Weights that model_params.l2_regularization applies to: what each block declares
        (easyblocks.blocks.weights), the kernels of raw-feature projections, of the top MLP
        and of the towers; never the embedding tables."""
        tables = {id(v) for v in self.feature_groups.table_variables}
        layers = [self.feature_groups, self.backbone] + list(self.towers)
        out, seen = [], set()
        for layer in layers:
            for v in l2_weights(layer):
                if id(v) not in seen and id(v) not in tables:
                    seen.add(id(v))
                    out.append(v)
        return out

    def block_losses(self) -> dict:
        """Losses that blocks added with `self.add_loss(value)` in their last call, summed per
        block and named "loss/<block name>" (e.g. a plugin's auxiliary loss)."""
        named = {}
        for prefix, dag in self.backbone.dags():
            for name, added in dag.block_losses().items():
                named[f"loss/{prefix}{name}"] = tf.add_n(added)
        return named

    def compute_losses(self, labels: dict, outputs: dict, embedding_l2: tf.Tensor) -> dict:
        """Every loss term by name, each already multiplied by its weights, and the total.

        Keys: "loss/<tower>/<loss>" (tower weight x loss weight x value), "loss/<block>"
        (what a block added with `add_loss`), "loss/variational_dropout" (with
        model_config.variational_dropout: EasyRec's variational_dropout_loss, the groups'
        terms summed, unweighted), "loss/regularization" and "loss/total" (the sum of all of
        them).
        """
        terms = {}
        for spec in self.tower_specs:
            logits = outputs[f"logits_{spec.name}"]
            probs = outputs.get(f"probs_{spec.name}")  # a regression tower has none
            # data_config.sample_weight (EasyRec: TF1's weighted reduction of each loss)
            weights = labels.get(SAMPLE_WEIGHT) if spec.use_sample_weight else None
            for loss in spec.losses:
                if loss.loss_type == "CLASSIFICATION" and spec.prob_product_of:
                    value = L.classification_loss_on_probs(labels[spec.label], probs) \
                        if weights is None else L.weighted_classification_loss_on_probs(
                            labels[spec.label], probs, weights)
                elif loss.loss_type == "CLASSIFICATION" and weights is not None:
                    value = L.weighted_classification_loss(labels[spec.label], logits,
                                                           spec.num_class, weights)
                elif loss.loss_type == "CLASSIFICATION":
                    value = L.classification_loss(labels[spec.label], logits, spec.num_class)
                elif loss.loss_type == "L2_LOSS" and weights is not None:
                    value = L.weighted_l2_loss(labels[spec.label], logits, weights)
                elif loss.loss_type == "L2_LOSS":
                    value = L.l2_loss(labels[spec.label], logits)
                elif loss.loss_type == "F1_REWEIGHTED_LOSS":
                    value = L.f1_reweighted_loss(labels[spec.label], logits,
                                                 loss.params["f1_beta_square"],
                                                 loss.params["label_smoothing"], weights)
                elif loss.loss_type == "PAIR_WISE_LOSS":
                    column = loss.params.get("session_column")
                    value = L.pairwise_loss(
                        labels[spec.label], logits,
                        labels[LOSS_COLUMN + column] if column else None,
                        loss.params["margin"], loss.params["temperature"], weights)
                elif loss.loss_type == "ZILN_LOSS":
                    p = loss.params
                    value = L.ziln_loss(labels[spec.label], logits, p["max_sigma"],
                                        p["mu_regularization"], p["sigma_regularization"],
                                        p["classification_weight"], p["regression_weight"])
                elif loss.loss_type == "SOFTMAX_CROSS_ENTROPY":
                    value = L.in_batch_softmax_loss(labels[spec.label],
                                                    outputs[f"pair_logits_{spec.name}"],
                                                    outputs.get(f"item_ids_{spec.name}"),
                                                    weights)
                    # EasyRec's reg_pos_loss beside it, with the same weights (a second
                    # in-batch loss of the tower: "reg_pos_1", like its own "..._1")
                    reg_pos = "reg_pos" + loss.key[len("softmax_cross_entropy"):]
                    terms[f"loss/{spec.name}/{reg_pos}"] = spec.weight * loss.weight * \
                        L.positive_similarity_hinge(labels[spec.label],
                                                    outputs[f"pos_similarity_{spec.name}"],
                                                    weights)
                else:  # ORDER_CALIBRATE_LOSS
                    value = L.order_calibrate_loss(
                        probs, [outputs[f"probs_{r}"] for r in spec.relation_tower_names]
                    )
                terms[f"loss/{spec.name}/{loss.key}"] = spec.weight * loss.weight * value
        reg = tf.constant(0.0)
        kernels = self.dense_kernels() if self.l2_regularization else []
        if kernels:  # a model may have none (EasyRec's FM: tables and a bias)
            reg += self.l2_regularization * tf.add_n(
                [tf.reduce_sum(tf.square(v)) for v in kernels]
            )
        if self.embedding_regularization:
            reg += self.embedding_regularization * embedding_l2
        weight_losses = self._get_regularization_losses()  # blocks' kernel regularizers
        if weight_losses:
            reg += tf.add_n(weight_losses)
        terms.update(self.block_losses())
        if VARIATIONAL_DROPOUT in outputs:  # EasyRec's variational_dropout_loss
            terms["loss/variational_dropout"] = outputs[VARIATIONAL_DROPOUT]
        terms["loss/regularization"] = reg
        terms["loss/total"] = tf.add_n(list(terms.values()))
        return terms
