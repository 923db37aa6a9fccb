"""Plain, typed specs of a whole config: what every runtime package reads.

`easyblocks.config.resolve` turns the protobuf message of a .config file into a
`PipelineSpec`, applying every default and every check in one place. Nothing here
imports TensorFlow or Keras, and nothing outside `easyblocks.config` reads the
protobuf messages of a config: features, the backbone, the model, training,
evaluation and serving all take these dataclasses.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# ---- data ---------------------------------------------------------------------------------

# the key of data_config.sample_weight's values in the labels dict of an input batch
SAMPLE_WEIGHT = "__sample_weight__"
# the labels dict also holds, under this prefix + column name, the raw columns that losses
# read (a PAIR_WISE_LOSS's session_name)
LOSS_COLUMN = "__column__:"


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One input column: its name, type ("INT32", "INT64", "STRING", "FLOAT", "DOUBLE",
    "BOOL") and the value used when a row leaves it empty (None: 0 or "")."""

    name: str
    type: str
    default: str | None = None

    @property
    def is_string(self) -> bool:
        return self.type == "STRING"

    @property
    def is_float(self) -> bool:
        return self.type in ("FLOAT", "DOUBLE")


@dataclasses.dataclass
class DataSpec:
    """How input files are read (data_config)."""

    fields: list[FieldSpec]
    label_fields: list[str]
    batch_size: int
    eval_batch_size: int
    separator: str = ","
    with_header: bool = False
    shuffle: bool = True
    shuffle_buffer_size: int = 10000
    prefetch_size: int = 32
    input_type: str = "CSVInput"
    # label column -> "binary" (a binary CLASSIFICATION tower's label: 0 or 1), "class:N" (a
    # multi-class tower's: a class id 0 ... N-1) or "number" (a regression or ZILN tower's: any
    # finite number); an empty label is an error either way
    label_rules: dict[str, str] = dataclasses.field(default_factory=dict)
    # columns read by raw or bucketized features: NaN or inf there is a data error. Column ->
    # None (a number column) or the separator of its values (a STRING column of numbers)
    finite_columns: dict[str, str | None] = dataclasses.field(default_factory=dict)
    # EasyRec's data_config.sample_weight: the column whose value weighs each row's loss
    sample_weight: str | None = None
    # raw columns that losses read (in the labels dict under LOSS_COLUMN + name)
    loss_columns: tuple[str, ...] = ()

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> FieldSpec:
        return next(f for f in self.fields if f.name == name)

    def without(self, names) -> DataSpec:
        """The same spec without the given columns (e.g. a file without its labels)."""
        names = set(names)
        return dataclasses.replace(
            self, fields=[f for f in self.fields if f.name not in names],
            label_fields=[n for n in self.label_fields if n not in names],
            label_rules={k: v for k, v in self.label_rules.items() if k not in names})

    def with_fields(self, names: list[str]) -> DataSpec:
        """The same spec for a file whose columns are `names`, in that order (a file with a
        header); a name the config does not declare is read as an unused STRING column."""
        known = {f.name: f for f in self.fields}
        fields = [known.get(n, FieldSpec(n, "STRING")) for n in names]
        present = set(names)
        return dataclasses.replace(
            self, fields=fields, label_fields=[n for n in self.label_fields if n in present],
            label_rules={k: v for k, v in self.label_rules.items() if k in present})


# ---- features -----------------------------------------------------------------------------


@dataclasses.dataclass
class FeatureSpec:
    """One feature: its input column, kind and embedding table.

    kind: "id" (one id per row), "tag" (several ids per row, pooled),
    "seq" (an ordered list of ids, kept as a sequence), "raw" (numbers, used as they
    are or through a projection), or "bucketized" (a number turned into an id by
    `boundaries`).
    """

    name: str
    column: str
    column_type: str  # FieldSpec.type of the column
    kind: str
    embedding_dim: int = 0
    num_ids: int = 0  # rows of the embedding table
    hash_bucket_size: int = 0
    num_buckets: int = 0
    vocab_list: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()
    separator: str = "|"
    combiner: str = "mean"
    # a TagFeature's weighted tags "id<kv_separator>weight" (EasyRec's kv_separator): the
    # tags with a weight > 0, pooled by their weights
    kv_separator: str = ""
    table: str = ""  # embedding table name (shared through embedding_name)
    raw_dim: int = 1
    max_seq_len: int = 0  # seq: keep the first max_seq_len values (0: all)
    log_transform: bool = False
    normalizer_mean: float = 0.0
    normalizer_std: float = 1.0
    # EasyRec's min_val / max_val: a number x becomes (x - min_val) / (max_val - min_val)
    # when max_val > min_val (not clipped, as in EasyRec)
    min_val: float = 0.0
    max_val: float = 0.0
    # ComboFeature: the input columns whose values are crossed (`column` is the first),
    # each split by its separator ("" : one value), joined by combo_join_sep, then hashed
    combo_columns: tuple[str, ...] = ()
    combo_seps: tuple[str, ...] = ()
    combo_join_sep: str = ""
    # ExprFeature: the parsed expression (easyblocks.config.expressions.FeatureExpression)
    expression: Any = None
    # SequenceFeature: numbers (sub_feature_type RawFeature): "ids" (bucketized by
    # `boundaries`) or "raw" (the values); "" for an id sequence
    seq_values: str = ""
    # SequenceFeature: each step holds several values separated by this, pooled by
    # `combiner` into the step's embedding (EasyRec's seq_multi_sep)
    seq_multi_sep: str = ""
    # SequenceFeature: how the sequence is pooled into one vector ("attention", "text_cnn"
    # with its parameters); None keeps the (batch, length, dim) sequence
    seq_combiner: dict | None = None
    # the table's initializer as configured (an Initializer message), None: the default of
    # easyblocks.features.embedding
    initializer: Any = None

    @property
    def input_columns(self) -> tuple[str, ...]:
        """Every input column the feature reads."""
        if self.combo_columns:
            return self.combo_columns
        if self.expression is not None:
            return tuple(self.expression.names)
        return (self.column,)

    @property
    def is_sequence(self) -> bool:
        """A (batch, length, dim) sequence unless a sequence_combiner pools it."""
        return self.kind in ("seq", "seq_raw") and self.seq_combiner is None

    @property
    def uses_table(self) -> bool:
        return self.kind in ("id", "tag", "seq", "bucketized") or (
            self.kind in ("raw", "seq_raw") and self.embedding_dim > 0
        )

    @property
    def item_dim(self) -> int:
        """Width of one value (one sequence step for a sequence)."""
        if self.kind in ("raw", "seq_raw") and self.embedding_dim == 0:
            return self.raw_dim
        return self.embedding_dim

    @property
    def output_dim(self) -> int:
        """Width of this feature in its group's concatenated tensor."""
        if self.seq_combiner is not None and self.seq_combiner["kind"] == "text_cnn":
            return sum(self.seq_combiner["num_filters"])
        return self.item_dim


@dataclasses.dataclass(frozen=True)
class SeqAttSpec:
    """EasyRec's feature-group `sequence_features`: DIN target attention of the key
    features over behaviour sequences, appended to the group's tensor.

    keys: features whose embeddings are concatenated into the query (batch, d_k);
    hist_seqs: sequence features concatenated into the keys/values (batch, L, d_s);
    aux_hist_seqs: sequences pooled with the same attention weights; dnn: MLP kwargs of
    the scoring network (its last layer has 1 unit, no activation, no batch norm).
    """

    name: str
    keys: tuple[str, ...]
    hist_seqs: tuple[str, ...]
    aux_hist_seqs: tuple[str, ...]
    dnn: dict
    need_key_feature: bool = True
    allow_key_transform: bool = False
    transform_dnn: bool = False
    key_dim: int = 0
    seq_dim: int = 0
    aux_dim: int = 0

    @property
    def features(self) -> tuple[str, ...]:
        return self.keys + self.hist_seqs + self.aux_hist_seqs

    @property
    def transforms_key(self) -> bool:
        return self.allow_key_transform and self.key_dim != self.seq_dim

    @property
    def output_dim(self) -> int:
        """The attention output (and the key, with need_key_feature): its width."""
        key = self.seq_dim if self.transforms_key else self.key_dim
        return self.seq_dim + self.aux_dim + (key if self.need_key_feature else 0)


@dataclasses.dataclass(frozen=True)
class FeatureGroupSpec:
    """A named bundle of features. `wide`: each feature gives its `wide_dim`-dimensional
    weight (the linear part; EasyRec's wide_output_dim) instead of its embedding. `seq_att`:
    EasyRec's sequence_features (target attention), whose outputs follow the features in the
    group's tensor."""

    name: str
    features: tuple[str, ...]
    wide: bool = False
    wide_dim: int = 1
    seq_att: tuple[SeqAttSpec, ...] = ()

    sequences: tuple[str, ...] = ()  # its SequenceFeatures without sequence_combiner

    @property
    def is_sequence_group(self) -> bool:
        """One SequenceFeature without combiner: the group is its (batch, L, dim) sequence."""
        return len(self.features) == 1 and len(self.sequences) == 1

    @property
    def needs_seq_output(self) -> bool:
        """Sequences mixed with other features (or several): only an input_layer with
        output_seq_and_normal_feature can read the group (there is no one tensor)."""
        return bool(self.sequences) and not self.is_sequence_group

    @property
    def all_features(self) -> tuple[str, ...]:
        """The features the group reads, those of its sequence_features included."""
        extra = [f for s in self.seq_att for f in s.features if f not in self.features]
        return self.features + tuple(dict.fromkeys(extra))


# ---- backbone -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """Where one input of a block comes from.

    kind: "group" (a feature group), "block", "package" (a package called on
    `package_input`: a block, a group, another package (called on nothing) or nothing),
    "package_input" (inside a package: what the package was called with) or "outer_block"
    (inside a package: a block of the backbone's main DAG, as EasyRec allows; the main DAG
    runs it before any block that calls the package). `index` is the parsed `input_slice`
    (an index usable as x[index]) and `fn` the `input_fn` expression, both optional.
    """

    kind: str
    name: str
    index: Any = None
    fn: str | None = None
    ignore: bool = False
    package_input: str | None = None


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One registered layer: its class_name and parameters.

    params_field: the params field that was set: a typed message such as "mlp",
    "st_params", or None (no parameters). params: that message as constructor kwargs
    (typed), or the Struct as a dict (st_params). The registry turns them into the
    class's kwargs (`easyblocks.blocks.registry.layer_kwargs`).
    """

    class_name: str
    params_field: str | None = None
    params: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """One step of a block: "keras_layer", "lambda", "repeat" or "recurrent"."""

    kind: str
    layer: LayerSpec | None = None
    expression: str | None = None  # lambda
    num: int = 1  # repeat: num_repeat; recurrent: num_steps
    output_concat_axis: int | None = None  # repeat: None outputs the list
    repeat_indices: tuple = ()  # repeat: parsed input_slice per copy (None: no slice)
    repeat_input_fn: str | None = None
    fixed_input_index: int = -1  # recurrent


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """A configured backbone block.

    kind: "layers" (steps run in order), "input_layer" (a group's embeddings),
    "raw_input" (a group's un-embedded values) or "identity". `where` is
    "file:line: block 'name'", for errors raised while the block is built or run.
    """

    name: str
    where: str
    kind: str
    inputs: tuple[InputSpec, ...]
    steps: tuple[StepSpec, ...] = ()
    input_concat_axis: int = -1
    merge_inputs_into_list: bool = False
    extra_input_fn: str | None = None
    only_output_feature_list: bool = False  # input_layer
    only_output_3d_tensor: bool = False  # input_layer
    output_2d_tensor_and_feature_list: bool = False  # input_layer
    # input_layer: [the group's sequences concatenated (batch, L, d), their lengths (batch,),
    # the other features concatenated (batch, d') or none]
    output_seq_and_normal_feature: bool = False
    # input_layer: EasyRec's do_batch_norm ("batch") / do_layer_norm ("layer"), dropout_rate,
    # feature_dropout_rate
    input_norm: str = ""
    dropout_rate: float = 0.0
    feature_dropout_rate: float = 0.0

    @property
    def has_input_options(self) -> bool:
        return bool(self.input_norm) or 0.0 < self.dropout_rate < 1.0 or \
            0.0 < self.feature_dropout_rate < 1.0

    @property
    def class_name(self) -> str:
        if self.kind == "layers" and len(self.steps) == 1 and self.steps[0].kind == "keras_layer":
            return self.steps[0].layer.class_name
        if self.kind == "layers":
            return "Sequential" if len(self.steps) > 1 else self.steps[0].kind
        return {"identity": "Identity"}.get(self.kind, self.kind)

    @property
    def group_inputs(self) -> list[str]:
        return [i.name for i in self.inputs if i.kind == "group"]


@dataclasses.dataclass
class DagSpec:
    """One DAG of blocks: the backbone's main DAG or a package.

    `order` is the topological order (ties broken by config order), `edges` the
    (from, to) pairs between blocks, and `outputs` the blocks whose values make the
    DAG's output: a list (`output_kind` "output_blocks": one per task tower) or
    concatenated ("concat_blocks").
    """

    name: str  # "backbone" or "package 'name'"
    blocks: dict[str, BlockSpec]
    order: list[str]
    edges: list[tuple[str, str]]
    outputs: list[str]
    output_kind: str

    def ancestors(self, name: str) -> set[str]:
        """Every block `name` depends on (not itself)."""
        parents: dict[str, list[str]] = {}
        for a, b in self.edges:
            parents.setdefault(b, []).append(a)
        seen: set[str] = set()
        todo = list(parents.get(name, []))
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(parents.get(n, []))
        return seen

    def leaves(self) -> list[str]:
        has_child = {a for a, _ in self.edges}
        return [n for n in self.order if n not in has_child]


@dataclasses.dataclass
class BackboneSpec:
    dag: DagSpec
    packages: dict[str, DagSpec]
    top_mlp: dict | None = None  # MLP kwargs


# ---- towers and losses --------------------------------------------------------------------


# EasyRec's regression metrics (of a regression tower's value, or of probabilities)
REGRESSION_METRICS = ("mean_absolute_error", "mean_squared_error", "root_mean_squared_error")

LOSS_KEYS = {"CLASSIFICATION": "classification", "L2_LOSS": "l2",
             "ORDER_CALIBRATE_LOSS": "order_calibrate", "F1_REWEIGHTED_LOSS": "f1_reweighted",
             "ZILN_LOSS": "ziln", "PAIR_WISE_LOSS": "pairwise",
             "SOFTMAX_CROSS_ENTROPY": "softmax_cross_entropy"}


@dataclasses.dataclass
class LossSpec:
    """One loss of a tower. `name`: its key in the loss terms (loss/<tower>/<name>); unset:
    the loss type's key ("classification", "l2", "order_calibrate", ...); a second loss of the
    same type in one tower gets "_1", the third "_2", ... (set when the config resolves).
    `params`: the loss's parameters message as a dict (EasyRec's defaults when unset)."""

    loss_type: str  # LossType name
    weight: float
    params: dict = dataclasses.field(default_factory=dict)
    item_id: str = ""  # SOFTMAX_CROSS_ENTROPY: the feature identifying in-batch items
    name: str = ""

    @property
    def key(self) -> str:
        return self.name or LOSS_KEYS[self.loss_type]


@dataclasses.dataclass(frozen=True)
class InBatchSpec:
    """A tower trained with a softmax over in-batch negatives (SOFTMAX_CROSS_ENTROPY): its
    logit is the output of `similarity_block` (a Similarity block) on the outputs of
    `user_block` and `item_block`; `item_feature` (or "") names the feature whose ids tell
    two rows' items apart."""

    similarity_block: str
    user_block: str
    item_block: str
    item_feature: str = ""


@dataclasses.dataclass
class TowerSpec:
    """One task tower: the label it predicts, its losses and its head.

    dnn: MLP kwargs of the tower's hidden layers (defaults applied), or None.
    """

    name: str
    label: str
    losses: list[LossSpec]
    weight: float = 1.0
    num_class: int = 1
    dnn: dict | None = None
    relation_tower_names: list[str] = dataclasses.field(default_factory=list)
    add_to_logit: list[str] = dataclasses.field(default_factory=list)
    logit_from_backbone: bool = False
    prob_product_of: list[str] = dataclasses.field(default_factory=list)
    metrics: list[str] = dataclasses.field(default_factory=lambda: ["auc", "logloss"])
    # EasyRec's RankModel: a backbone output that already has num_class units is the
    # logit (no Dense added)
    logit_if_num_class: bool = False
    # data_config.sample_weight weighs this tower's losses (EasyRec's use_sample_weight)
    use_sample_weight: bool = True
    in_batch: InBatchSpec | None = None

    @property
    def ziln(self) -> LossSpec | None:
        """The tower's ZILN_LOSS: its logits are (positive logit, mu, sigma), its
        probability the positive probability, and it also predicts y_<tower>."""
        return next((loss for loss in self.losses if loss.loss_type == "ZILN_LOSS"), None)

    @property
    def is_regression(self) -> bool:
        """A tower whose losses are all L2_LOSS predicts a number: its prediction is the
        logit itself (no sigmoid), evaluated with mean_squared_error and mean_absolute_error."""
        return bool(self.losses) and all(loss.loss_type == "L2_LOSS" for loss in self.losses)

    @property
    def is_multiclass(self) -> bool:
        """A CLASSIFICATION tower with num_class > 1: softmax probabilities (batch,
        num_class); its label is a class id."""
        return self.num_class > 1 and self.ziln is None

    @property
    def prediction_key(self) -> str:
        """The model output that is this tower's prediction, which regression metrics
        compare with the label: "y_<tower>" (EasyRec's y) for a regression tower (the logit
        itself) and a ZILN tower (the expected value), else "probs_<tower>" (a probability:
        (batch,), or (batch, num_class) for a multi-class tower)."""
        if self.is_regression or self.ziln is not None:
            return f"y_{self.name}"
        return f"probs_{self.name}"

    @property
    def label_rule(self) -> str:
        """What its label may hold (see DataSpec.label_rules)."""
        if self.is_regression or self.ziln is not None:
            return "number"
        return f"class:{self.num_class}" if self.is_multiclass else "binary"


@dataclasses.dataclass(frozen=True)
class VariationalDropoutSpec:
    """EasyRec's model_config.variational_dropout: a learned dropout probability per feature
    of every feature group (per embedding dimension with embedding_wise), and its
    regularization term with coefficient regularization_lambda."""

    regularization_lambda: float = 0.01
    embedding_wise: bool = False


@dataclasses.dataclass
class ModelSpec:
    """The model: model_class is RankModel or MultiTaskModel; expanded_from names the model
    class template it was expanded from (e.g. "DeepFM"), if any."""

    model_class: str
    groups: dict[str, FeatureGroupSpec]
    backbone: BackboneSpec
    towers: list[TowerSpec]
    l2_regularization: float = 0.0
    embedding_regularization: float = 0.0
    expanded_from: str | None = None
    variational_dropout: VariationalDropoutSpec | None = None

    @property
    def logit_blocks(self) -> list[str]:
        """Blocks whose outputs some tower adds to its logit."""
        return sorted({b for t in self.towers for b in t.add_to_logit})

    @property
    def extra_blocks(self) -> list[str]:
        """Blocks whose outputs the model reads beside the backbone's output: the logit blocks
        and the two towers of in-batch softmax towers."""
        pairs = {b for t in self.towers if t.in_batch
                 for b in (t.in_batch.user_block, t.in_batch.item_block)}
        return sorted(set(self.logit_blocks) | pairs)


# ---- training, evaluation, export ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LearningRateSpec:
    """The learning rate as a function of the step (the number of updates made so far).

    kind "constant": learning_rate.
    kind "exponential_decay": learning_rate * decay_factor ** ((step - warmup_steps) /
    decay_steps) (the exponent floored with staircase), at least min_learning_rate; during
    the first warmup_steps steps linear from warmup_learning_rate to learning_rate
    (warmup_learning_rate 0: learning_rate throughout; EasyRec's burn-in).
    kind "cosine_decay": linear from warmup_learning_rate to learning_rate over
    warmup_steps, learning_rate for hold_steps more, then 0.5 * learning_rate * (1 +
    cos(pi * t / (total_steps - warmup_steps - hold_steps))) with t the steps since the
    hold ended; 0 after total_steps.
    """

    kind: str = "constant"
    learning_rate: float = 0.001
    decay_steps: int = 10000
    decay_factor: float = 0.95
    staircase: bool = True
    min_learning_rate: float = 0.0
    warmup_steps: int = 0
    warmup_learning_rate: float = 0.0
    hold_steps: int = 0
    total_steps: int = 0


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """kind: "adam", "adagrad", "sgd", or EasyRec's "momentum", "adamw", "momentumw",
    "ftrl", with that optimizer's settings."""

    kind: str = "adam"
    learning_rate: LearningRateSpec = LearningRateSpec()
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-7
    initial_accumulator_value: float = 0.1
    momentum: float = 0.0
    clip_norm: float = 0.0  # global gradient clipping by norm, tables included (0: off)
    # adamw, momentumw: decoupled weight decay, var -= weight_decay * var at each update
    weight_decay: float = 0.0
    # ftrl: TensorFlow's FTRL-proximal settings
    learning_rate_power: float = -0.5
    l1: float = 0.0
    l2: float = 0.0
    l2_shrinkage: float = 0.0
    # the embedding tables' gradients are multiplied by this (before clipping)
    embedding_lr_multiplier: float = 1.0


@dataclasses.dataclass(frozen=True)
class SelectionSpec:
    """The best checkpoint and early stopping (export_config).

    metric: "tower/metric" (e.g. "ctr/auc"), ranked bigger-is-better when `bigger`.
    keep: how many best checkpoints (successive improvements) model_dir/best keeps.
    early_stop: stop training when the metric has not improved for `patience`
    evaluations (patience > 0), else for max_check_steps steps.
    """

    metric: str
    bigger: bool = True
    keep: int = 1
    early_stop: bool = False
    patience: int = 0
    max_check_steps: int = 10000

    @property
    def tower(self) -> str:
        return self.metric.split("/")[0]

    @property
    def metric_name(self) -> str:
        return self.metric.split("/")[1]


@dataclasses.dataclass
class TrainSpec:
    optimizer: OptimizerSpec
    # the embedding tables' optimizer when it differs (EasyRec's second optimizer_config)
    table_optimizer: OptimizerSpec | None = None
    num_steps: int = 0  # 0: until num_epochs passes end
    num_epochs: int = 1  # 0: repeat forever (only with num_steps)
    save_checkpoints_steps: int = 1000
    log_step_count_steps: int = 100
    keep_checkpoint_max: int = 5  # 0: keep all
    strategy: str = "NoStrategy"
    seed: int = 2024
    selection: SelectionSpec | None = None  # None: no best checkpoint, no early stopping
    # EasyRec's dead_line: training stops after the first step that ends past this Unix time
    dead_line: float | None = None
    dead_line_text: str = ""  # as the config wrote it
    # EasyRec's freeze_gradient: trainable variables whose stable name (checkpoint key) a
    # pattern finds (re.search) are not trained; freeze_where: "file:line" of the field
    freeze_gradient: tuple[str, ...] = ()
    freeze_where: str = ""
    # train_config.jit_compile: the train step compiled with XLA (train/loop.py)
    jit_compile: bool = False


@dataclasses.dataclass
class EvalSpec:
    """Evaluation: gauc groups by uid_field; every metric also per value of domain_field;
    num_examples 0 evaluates the whole input.

    During training: every interval_steps steps and at the end of every interval_epochs
    epochs (0: not); without an eval input, on the holdout_fraction of the training rows
    that a hash of each line sets apart (0: on the training input itself).
    """

    uid_field: str | None = None
    gauc_reduction: str = "mean"  # EasyRec's: mean, mean_by_sample_num, mean_by_positive_num
    domain_field: str | None = None
    num_examples: int = 0
    interval_steps: int = 0
    interval_epochs: int = 0
    holdout_fraction: float = 0.0
    # eval_config's other metrics for every tower: "max_f1", "session_auc", "recall_at_topk"
    metrics: list[str] = dataclasses.field(default_factory=list)
    session_field: str | None = None  # session_auc: the GAUC of this column
    session_reduction: str = "mean"
    recall_topk: int = 5

    def tower_metrics(self, tower: TowerSpec) -> list[str]:
        """The metrics evaluated for a tower: its own, gauc (with a uid_field) and
        eval_config's others; of those, a regression tower gets only the regression ones
        (it has no probability)."""
        names = list(tower.metrics) + (["gauc"] if self.uid_field else []) + list(self.metrics)
        if tower.is_regression:
            names = [n for n in names if n in REGRESSION_METRICS]
        return list(dict.fromkeys(names))

    @property
    def keep_columns(self) -> list[str]:
        """Raw columns the evaluation reads beside the labels."""
        return sorted({c for c in (self.uid_field, self.domain_field, self.session_field)
                       if c})


@dataclasses.dataclass
class ExportSpec:
    export_dir: str = ""


@dataclasses.dataclass
class PipelineSpec:
    """A validated config: everything the runtime needs, resolved."""

    path: str
    train_input_path: str
    eval_input_path: str
    model_dir: str
    data: DataSpec
    features: dict[str, FeatureSpec]
    model: ModelSpec
    train: TrainSpec
    eval: EvalSpec
    export: ExportSpec
    plugins: list[str]

    @property
    def towers(self) -> list[TowerSpec]:
        return self.model.towers

    @property
    def groups(self) -> dict[str, FeatureGroupSpec]:
        return self.model.groups

    @property
    def labels(self) -> list[str]:
        """The label columns the towers read, sorted."""
        return sorted({t.label for t in self.model.towers})

    def serving_fields(self) -> list[FieldSpec]:
        """Input fields that features read (what a served model takes), in input order."""
        used = {c for s in self.features.values() for c in s.input_columns}
        return [f for f in self.data.fields if f.name in used]
