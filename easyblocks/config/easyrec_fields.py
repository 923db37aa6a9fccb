"""The one table of what easyblocks does with each field of EasyRec's pipeline config.

Every field of the config language is in exactly one state:

- *honoured*: the field means what it means in EasyRec (where easyblocks deliberately
  differs, `note` says how and why);
- *accepted, not applicable*: a setting of EasyRec's own infrastructure (or output that
  easyblocks does not produce) that cannot change the model or the data; a config that
  sets it runs, with one warning line naming every such field;
- *refused*: leaving it out would change the model or the data (an input source that
  is not available here, a loss or feature option that is not implemented): one error
  line, file:line, the field and why.

Keys are "Message.field" (nested messages as "Outer.Inner.field") and, for the values
of enums, "Enum.VALUE". A field whose state depends on its value lists the values that
are honoured in `ok` (typically EasyRec's no-op default). Fields under a refused or
not-applicable field are not looked at, so they need no entry; the parameters of blocks
(KerasLayer's typed params, st_params, backbone.top_mlp) are honoured by construction:
they become the block's constructor arguments, and one it does not take is an error.

Pure Python (no TensorFlow): docs/easyrec.md is generated from this table by
benchmarks/easyrec_compat.py, and tests/test_easyrec_compat.py checks that every field
of the protos has a state here.
"""

from __future__ import annotations

import dataclasses

HONOURED = "honoured"
NOT_APPLICABLE = "accepted, not applicable"
REFUSED = "refused"


@dataclasses.dataclass(frozen=True)
class FieldState:
    """The state of one field (or enum value).

    Attributes:
      state: HONOURED, NOT_APPLICABLE or REFUSED.
      reason: why (for the two states that are reported).
      ok: values for which a refused / not-applicable field is honoured after all
        (EasyRec's no-op default, e.g. `use_moving_average: false`).
      note: for honoured fields where easyblocks deliberately differs from EasyRec.
      max_items: a repeated field honoured up to this many entries; more are refused
        with `reason`.
    """

    state: str
    reason: str = ""
    ok: tuple = ()
    note: str = ""
    max_items: int | None = None


def H(note: str = "") -> FieldState:  # noqa: N802  (short names keep the table readable)
    return FieldState(HONOURED, note=note)


def NA(reason: str, ok: tuple = ()) -> FieldState:  # noqa: N802
    return FieldState(NOT_APPLICABLE, reason, ok)


def R(reason: str, ok: tuple = ()) -> FieldState:  # noqa: N802
    return FieldState(REFUSED, reason, ok)


# train_config.train_distribute (docs/distributed.md)
SUPPORTED_STRATEGIES = ("NoStrategy", "MirroredStrategy", "MultiWorkerMirroredStrategy",
                        "PSStrategy")
# why each other EasyRec strategy is refused, and what to use instead
REFUSED_STRATEGIES = {
    "CollectiveAllReduceStrategy": "deprecated in EasyRec and TensorFlow; use "
                                   "MultiWorkerMirroredStrategy",
    "ExascaleStrategy": "exists only on Alibaba's PAI-TF; use PSStrategy for large tables",
    "HorovodStrategy": "needs Horovod; use MultiWorkerMirroredStrategy (tf.distribute's "
                       "all-reduce)",
    "SokStrategy": "needs NVIDIA SOK and GPUs; use PSStrategy to shard large tables",
    "EmbeddingParallelStrategy": "needs Horovod; use PSStrategy to shard large tables",
}
ZOO = "EasyRec's model zoo, issue 14"
ZOO_PARAMS = f"parameters of an EasyRec model class that is not available yet ({ZOO})"
MATCH = f"a MatchModel parameter (model_class MatchModel is not available yet, {ZOO})"
NOT_HERE = "input source not available here"
NO_PYTHON = "a python function in a config is never run (a config is data)"

# The model classes built from `model_params` and the backbone.
MODEL_CLASSES = ("RankModel", "MultiTaskModel")
# EasyRec's model classes that are templates (easyblocks/config/templates): they expand
# into a backbone and towers. A plugin can register more (then honoured the same way).
TEMPLATE_MODEL_CLASSES = (
    "AutoInt", "DBMTL", "DCN", "DLRM", "DSSM", "DSSM_SENet", "DeepFM", "ESMM", "FM", "MMoE",
    "MultiTower", "PLE", "SimpleMultiTask", "WideAndDeep",
)
# EasyRec's other model classes: refused, with why (docs/easyrec.md lists them).
NOT_YET = "not implemented yet"
MODEL_CLASSES_LEFT = {
    "CMBF": f"a multi-modal model (image and text features with cross-modal attention), {NOT_YET}",
    "CoMetricLearningI2I": f"item-to-item metric learning (circle / multi-similarity losses over "
                           f"sessions), {NOT_YET}",
    "DAT": f"dual augmented two towers (adaptive-mimic vectors), {NOT_YET}",
    "DropoutNet": f"needs its softmax loss with negative mining and cold-start dropout, {NOT_YET}",
    "DummyModel": "EasyRec's model for its own tests; not available",
    "MIND": f"multi-interest capsule network over a behaviour sequence, {NOT_YET}",
    "MatchModel": f"EasyRec's two-tower model over a backbone (model_params' user / item tower "
                  f"indices), {NOT_YET}; DSSM is available",
    "MultiTowerBST": "its bst_towers read seq_att_groups, which are not implemented yet",
    "MultiTowerDIN": "its din_towers read seq_att_groups, which are not implemented yet",
    "MultiTowerRecall": f"two towers whose logit is a DNN over both, {NOT_YET}",
    "PDN": f"path-based deep network (trigger and similarity paths), {NOT_YET}",
    "RocketLaunching": f"a booster and a light network trained with distillation, {NOT_YET}",
    "Uniter": f"a multi-modal transformer (image and text features), {NOT_YET}",
}
EASYREC_MODEL_CLASSES = tuple(sorted(TEMPLATE_MODEL_CLASSES + tuple(MODEL_CLASSES_LEFT)))

# EasyRec's typed block parameters (KerasLayer's `params`): those easyblocks' KerasLayer
# does not have yet are a parse error that says so.
EASYREC_BLOCK_PARAMS = (
    "periodic_embedding", "auto_dis_embedding", "nary_dis_embedding", "fm", "mask_block",
    "masknet", "senet", "bilinear", "fibinet", "mlp", "din", "bst", "mmoe", "seq_aug", "ppnet",
    "text_cnn", "highway", "overlap", "dot_product", "attention", "multi_head_attention",
    "transformer", "text_encoder", "gate", "aitm", "cin",
)

_METRIC_NOT_COMPUTED = ("metric not computed yet (easyblocks computes auc, gauc, logloss, "
                        "session_auc, max_f1, recall_at_topk, accuracy and the mean absolute / "
                        "squared errors)")
_REGRESSION_METRIC = ("of EasyRec's y: the logit of an L2_LOSS tower, the expected value of a "
                      "ZILN tower, else the probability")


def _optimizer_todo(name: str) -> str:
    return f"{name} is not implemented yet (adam_optimizer, lazy_adam_optimizer, " \
        "adagrad_optimizer, sgd_optimizer, momentum_optimizer, adamw_optimizer, " \
        "momentumw_optimizer, ftrl_optimizer, adam_async_optimizer and adam_asyncw_optimizer " \
        "are)"


_DECOUPLED = ("decoupled weight decay as TF1's: var -= weight_decay * var (not scaled by the "
              "learning rate) before each update; the tables' rows when looked up")

_ASYNC = ("PAI-TF's {name}: Adam's update with beta powers kept per variable (so that "
          "parameter servers need no shared step); in easyblocks' one synchronous process they "
          "advance with the step, so the update is {same}'s (its tables' rows included); the "
          "asynchronous part is PAI-TF's parameter-server training, not available here")

_PARQUET = ("read with pyarrow (pip install 'easyblocks[parquet]'); each input field is the "
            "column of its name; a list column is joined by its feature's separator, so an "
            "exported model takes the same columns as with CSV")
_MIN_MAX = ("(x - min_val) / (max_val - min_val) when max_val > min_val, not clipped, as in "
            "EasyRec; with num_buckets > 1 the result is bucketized at 0, 1/n, ..., (n-1)/n")
_SEQ_ATT = "reads seq_att_groups, which are not implemented yet"
_SAMPLER = "negative samplers (graph-learn) are not available here"
_TASK_SPACE = "task-space loss weights are not implemented yet"

FIELDS: dict[str, FieldState] = {
    # ---- pipeline -------------------------------------------------------------------
    "EasyRecConfig.train_input_path": H(),
    "EasyRecConfig.kafka_train_input": R(f"{NOT_HERE} (Kafka)"),
    "EasyRecConfig.datahub_train_input": R(f"{NOT_HERE} (Datahub)"),
    "EasyRecConfig.hive_train_input": R(f"{NOT_HERE} (Hive)"),
    "EasyRecConfig.binary_train_input": R(f"{NOT_HERE} (EasyRec's binary input)"),
    "EasyRecConfig.parquet_train_input": H(_PARQUET),
    "EasyRecConfig.eval_input_path": H(),
    "EasyRecConfig.kafka_eval_input": R(f"{NOT_HERE} (Kafka)"),
    "EasyRecConfig.datahub_eval_input": R(f"{NOT_HERE} (Datahub)"),
    "EasyRecConfig.hive_eval_input": R(f"{NOT_HERE} (Hive)"),
    "EasyRecConfig.binary_eval_input": R(f"{NOT_HERE} (EasyRec's binary input)"),
    "EasyRecConfig.parquet_eval_input": H(_PARQUET),
    "EasyRecConfig.model_dir": H(),
    "EasyRecConfig.train_config": H(),
    "EasyRecConfig.eval_config": H(),
    "EasyRecConfig.data_config": H(),
    "EasyRecConfig.feature_configs": H(),
    "EasyRecConfig.feature_config": H(),
    "EasyRecConfig.model_config": H(),
    "EasyRecConfig.export_config": H(),
    "EasyRecConfig.fg_json_path": R("RTP feature generation (fg_json_path) is not available "
                                    "here; declare data_config and feature_config"),
    "EasyRecConfig.plugins": H(),
    # ---- data_config ----------------------------------------------------------------
    "DatasetConfig.batch_size": H(),
    "DatasetConfig.auto_expand_input_fields": H(),
    "DatasetConfig.label_fields": H(),
    "DatasetConfig.label_sep": R("multi-value labels (label_sep) are not implemented yet"),
    "DatasetConfig.label_dim": R("multi-dimensional labels (label_dim) are not implemented yet"),
    "DatasetConfig.extra_label_func": R(NO_PYTHON),
    "DatasetConfig.shuffle": H(),
    "DatasetConfig.shuffle_buffer_size": H("default 10000 rows where EasyRec's is 32, which "
                                           "trains a file sorted by time almost in order "
                                           "(measured: docs/benchmarks/quality.md)"),
    "DatasetConfig.num_epochs": H(),
    "DatasetConfig.prefetch_size": H(),
    "DatasetConfig.shard": NA("sharding follows the distribution strategy"),
    "DatasetConfig.file_shard": NA("sharding follows the distribution strategy"),
    "DatasetConfig.input_type": H(),
    "DatasetConfig.separator": H(),
    "DatasetConfig.num_parallel_calls": NA("parsing parallelism is tuned by tf.data (AUTOTUNE)"),
    "DatasetConfig.selected_cols": R("selected_cols (ODPS/RTP column selection) is not "
                                     "supported; input_fields list the CSV columns in order"),
    "DatasetConfig.selected_col_types": R("selected_col_types (ODPS column types) is not "
                                          "supported"),
    "DatasetConfig.input_fields": H(),
    "DatasetConfig.rtp_separator": R(f"{NOT_HERE} (RTP)"),
    "DatasetConfig.ignore_error": R("rows that cannot be parsed are errors here (file:line), "
                                    "never skipped", (False,)),
    "DatasetConfig.pai_worker_queue": NA("a PAI setting"),
    "DatasetConfig.pai_worker_slice_num": NA("a PAI setting"),
    "DatasetConfig.chief_redundant": NA("a setting of EasyRec's parameter-server training"),
    "DatasetConfig.sample_weight": H(
        "each loss is reduced as TF1's tf.losses with weights: sum(w * loss) / number of "
        "nonzero w (EasyRec); ZILN_LOSS with sample weights is refused (EasyRec ignores them)"),
    "DatasetConfig.data_compression_type": R("compressed input is not implemented yet", ("",)),
    "DatasetConfig.n_data_batch_tfrecord": NA("BatchTFRecordInput reads however many rows "
                                              "each record holds"),
    "DatasetConfig.with_header": H(),
    "DatasetConfig.feature_fields": R("feature_fields is not implemented yet"),
    "DatasetConfig.negative_sampler": R(_SAMPLER),
    "DatasetConfig.negative_sampler_v2": R(_SAMPLER),
    "DatasetConfig.hard_negative_sampler": R(_SAMPLER),
    "DatasetConfig.hard_negative_sampler_v2": R(_SAMPLER),
    "DatasetConfig.negative_sampler_in_memory": R(_SAMPLER),
    "DatasetConfig.eval_batch_size": H(),
    "DatasetConfig.drop_remainder": R("drop_remainder is not implemented yet", (False,)),
    "DatasetConfig.Field.input_name": H(),
    "DatasetConfig.Field.input_type": H(),
    "DatasetConfig.Field.default_val": H(),
    "DatasetConfig.Field.input_dim": R("input_dim > 1 is not implemented yet (write the vector "
                                       "as one separated string and use raw_input_dim)", (1,)),
    "DatasetConfig.Field.input_shape": R("input_shape > 1 is not implemented yet", (1,)),
    "DatasetConfig.Field.user_define_fn": R(NO_PYTHON),
    "DatasetConfig.Field.user_define_fn_path": R(NO_PYTHON),
    "DatasetConfig.Field.user_define_fn_res_type": R(NO_PYTHON),
    "DatasetConfig.Field.ignore_val": R("ignore_val is not implemented yet"),
    # ---- feature_config -------------------------------------------------------------
    "FeatureConfigV2.features": H(),
    "FeatureConfigV2.embedding_on_cpu": NA("device placement is TensorFlow's"),
    "FeatureConfig.feature_name": H(),
    "FeatureConfig.input_names": H(),
    "FeatureConfig.feature_type": H(),
    "FeatureConfig.embedding_name": H(),
    "FeatureConfig.embedding_dim": H(
        "a RawFeature without boundaries is projected by a Dense layer with a bias; EasyRec: "
        "the sum of value x embedding row, no bias"),
    "FeatureConfig.hash_bucket_size": H(),
    "FeatureConfig.num_buckets": H(
        "integer ids outside [0, num_buckets) wrap around (modulo); EasyRec maps them to 0"),
    "FeatureConfig.boundaries": H(),
    "FeatureConfig.separator": H(),
    "FeatureConfig.kv_separator": H(
        "TagFeature only: tags \"id<kv_separator>weight\"; as EasyRec (TensorFlow's weighted "
        "lookup), tags whose weight is not > 0 are dropped, sum = sum w e, mean = sum w e / "
        "sum w; a tag without exactly one kv_separator is an error (EasyRec's reshape fails)"),
    "FeatureConfig.seq_multi_sep": H(
        "SequenceFeature: each step's values (ids, or numbers bucketized by boundaries) are "
        "pooled by `combiner`; on other features, or numeric steps without boundaries, it is "
        "refused (not implemented yet)"),
    "FeatureConfig.max_seq_len": H(),
    "FeatureConfig.vocab_file": R("vocab_file is not implemented yet (vocab_list is)"),
    "FeatureConfig.vocab_list": H(
        "values outside the list get their own extra row; EasyRec maps them to id 0, the "
        "first value's row (a defect: unknown values would share its embedding)"),
    "FeatureConfig.shared_names": H(
        "a copy of the feature per shared name (that name its input), after the others; the "
        "copies share a table only through embedding_name, as in EasyRec"),
    "FeatureConfig.lookup_max_sel_elem_num": R("LookupFeature is not implemented yet"),
    "FeatureConfig.max_partitions": NA("embedding partitioning across parameter servers"),
    "FeatureConfig.combiner": H(),
    "FeatureConfig.initializer": H("the embedding table's initializer (truncated / random "
                                   "normal, glorot normal, TF1's constant fill); unset: "
                                   "truncated normal with stddev 0.01, where EasyRec's is "
                                   "1/sqrt(embedding_dim) (measured: docs/benchmarks/"
                                   "quality.md)"),
    "Initializer.truncated_normal_initializer": H(),
    "Initializer.random_normal_initializer": H(),
    "Initializer.glorot_normal_initializer": H(),
    "Initializer.constant_initializer": H(),
    "TruncatedNormalInitializer.mean": H(),
    "TruncatedNormalInitializer.stddev": H(),
    "RandomNormalInitializer.mean": H(),
    "RandomNormalInitializer.stddev": H(),
    "ConstantInitializer.consts": H("as TF1's constant_initializer (EasyRec's): the values fill "
                                    "the table row by row, the last one fills the rest; more "
                                    "values than entries: an error"),
    "FeatureConfig.precision": R("precision (numbers formatted as ids) is not implemented yet",
                                 (-1,)),
    "FeatureConfig.min_val": H(_MIN_MAX),
    "FeatureConfig.max_val": H(_MIN_MAX),
    "FeatureConfig.normalizer_fn": R(f"{NO_PYTHON}; use log_transform / normalizer_mean / "
                                     "normalizer_std"),
    "FeatureConfig.raw_input_dim": H(),
    "FeatureConfig.sequence_combiner": H(),
    "FeatureConfig.sub_feature_type": H(
        "a numeric sequence (RawFeature) without boundaries or num_buckets: its zero "
        "padding is masked by each row's length (EasyRec pads to sequence_length and counts "
        "the padding as steps)"),
    "FeatureConfig.sequence_length": H(
        "a numeric sequence without boundaries keeps its first sequence_length values (EasyRec "
        "fails on a longer row); unset, all of them (EasyRec's default 1 fails on longer "
        "rows); no effect on other features, as in EasyRec"),
    "FeatureConfig.expression": H(
        "parsed by a small grammar and interpreted, never eval'ed: numbers, input names, "
        "+ - * /, comparisons, & and |, parentheses, with the usual precedence"),
    "SequenceCombiner.attention": H(),
    "SequenceCombiner.multi_head_attention": R(
        "sequence_combiner multi_head_attention is not implemented (nor is it in EasyRec, "
        "which raises NotImplementedError)"),
    "SequenceCombiner.text_cnn": H(),
    "SequenceCombiner.TextCNN.filter_sizes": H(),
    "SequenceCombiner.TextCNN.num_filters": H(),
    "SequenceCombiner.TextCNN.pad_sequence_length": H(),
    "SequenceCombiner.TextCNN.activation": H(),
    "FeatureConfig.ev_params": R("EmbeddingVariable settings (ev_params: frequency filter, "
                                 "eviction) are not available here"),
    "FeatureConfig.combo_join_sep": H(),
    "FeatureConfig.combo_input_seps": H(),
    "FeatureConfig.log_transform": H(),
    "FeatureConfig.normalizer_mean": H(),
    "FeatureConfig.normalizer_std": H(),
    # ---- train_config ---------------------------------------------------------------
    "TrainConfig.optimizer_config": FieldState(
        HONOURED, "a third optimizer_config (EasyRec's WideAndDeep: wide, deep embeddings, "
        "the rest) is not implemented", max_items=2,
        note="two: the first updates the embedding tables, the second the other weights "
        "(EasyRec's grouping; raw-feature projections count as other weights here)"),
    "TrainConfig.gradient_clipping_by_norm": H(
        "every gradient, the embedding tables' included, clipped by their global norm (as "
        "EasyRec's optimize_loss)"),
    "TrainConfig.num_steps": H(),
    "TrainConfig.fine_tune_checkpoint": R("fine_tune_checkpoint is not implemented yet", ("",)),
    "TrainConfig.fine_tune_ckpt_var_map": R("fine_tune_checkpoint is not implemented yet",
                                            ("",)),
    "TrainConfig.sync_replicas": NA("replica synchronisation follows the distribution "
                                    "strategy"),
    "TrainConfig.sparse_accumulator_type": NA("a PAI-TF setting"),
    "TrainConfig.startup_delay_steps": NA("a setting of EasyRec's parameter-server training"),
    "TrainConfig.save_checkpoints_steps": H(),
    "TrainConfig.save_checkpoints_secs": NA("checkpoints are written every "
                                            "save_checkpoints_steps"),
    "TrainConfig.keep_checkpoint_max": H(),
    "TrainConfig.save_summary_steps": NA("summaries are written every log_step_count_steps"),
    "TrainConfig.log_step_count_steps": H(),
    "TrainConfig.is_profiling": NA("profiling is not part of easyblocks' training loop"),
    "TrainConfig.force_restore_shape_compatible": NA(
        "a checkpoint of another shape is an error here, never clipped or padded"),
    "TrainConfig.train_distribute": H(),
    "TrainConfig.num_gpus_per_worker": NA("devices follow the distribution strategy"),
    "TrainConfig.summary_model_vars": NA("variable summaries are not written"),
    "TrainConfig.protocol": NA("a PAI-TF setting"),
    "TrainConfig.inter_op_parallelism_threads": NA("TensorFlow's thread pools are used as "
                                                   "they are"),
    "TrainConfig.intra_op_parallelism_threads": NA("TensorFlow's thread pools are used as "
                                                   "they are"),
    "TrainConfig.tensor_fuse": NA("a PAI-TF setting"),
    "TrainConfig.write_graph": NA("the graph is not written"),
    "TrainConfig.freeze_gradient": H(
        "regular expressions searched (re.search, as EasyRec) in easyblocks' variable names, "
        "their checkpoint keys (features/embedding_<table>, backbone/dag/<block>/..., "
        "tower_<name>/...), not EasyRec's TF1 names; a pattern that finds no trainable "
        "variable is an error"),
    "TrainConfig.incr_save_config": NA("incremental updates for online serving are not "
                                       "written"),
    "TrainConfig.enable_oss_stop_signal": NA("an OSS setting"),
    "TrainConfig.dead_line": H(
        "training stops after the first step that ends past it (EasyRec's two forms: "
        "'YYYYmmdd HH:MM:SS', local time, or Unix seconds), then saves a checkpoint and "
        "evaluates as at the end of training"),
    "TrainConfig.seed": H(),
    "TrainConfig.jit_compile": H(
        "the whole train step is compiled with XLA, in one process (NoStrategy); a block "
        "that cannot compile (e.g. the pooling of multi-value features) is refused on the "
        "first step with a line naming it and the op"),
    "Optimizer.rms_prop_optimizer": R(_optimizer_todo("rms_prop_optimizer")),
    "Optimizer.momentum_optimizer": H("TF1's momentum (a = m a + g; var -= lr a); the "
                                      "tables' rows are updated when looked up"),
    "Optimizer.adam_optimizer": H(
        "embedding tables are updated row-wise for the rows a batch looked up (lazy Adam: "
        "moments of other rows are not decayed), for speed; EasyRec's Adam updates every row"),
    "Optimizer.momentumw_optimizer": H(_DECOUPLED),
    "Optimizer.adamw_optimizer": H(_DECOUPLED),
    "Optimizer.adam_async_optimizer": H(_ASYNC.format(name="AdamAsync", same="adam_optimizer")),
    "Optimizer.adagrad_optimizer": H("Keras' Adagrad adds 1e-7 to the denominator; TF1's "
                                     "had no epsilon"),
    "Optimizer.ftrl_optimizer": H("TensorFlow's FTRL-proximal; the tables' rows are updated "
                                  "when looked up (as TF1 with sparse gradients)"),
    "Optimizer.adam_asyncw_optimizer": H(_ASYNC.format(name="AdamAsyncW",
                                                       same="adamw_optimizer")),
    "Optimizer.lazy_adam_optimizer": H(),
    "Optimizer.sgd_optimizer": H(),
    "Optimizer.use_moving_average": R("use_moving_average (weight averaging) is not "
                                      "implemented yet", (False,)),
    "Optimizer.moving_average_decay": H("used only with use_moving_average"),
    "Optimizer.embedding_learning_rate_multiplier": H(
        "the embedding tables' gradients are multiplied by it before clipping, as in EasyRec "
        "(for Adam-like optimizers a gradient scale barely changes the update)"),
    "MomentumOptimizer.learning_rate": H(),
    "MomentumOptimizer.momentum_optimizer_value": H(),
    "MomentumWOptimizer.learning_rate": H(),
    "MomentumWOptimizer.weight_decay": H(),
    "MomentumWOptimizer.momentum_optimizer_value": H(),
    "AdamWOptimizer.learning_rate": H(),
    "AdamWOptimizer.weight_decay": H(),
    "AdamWOptimizer.beta1": H(),
    "AdamWOptimizer.beta2": H(),
    "FtrlOptimizer.learning_rate": H(),
    "FtrlOptimizer.learning_rate_power": H(),
    "FtrlOptimizer.initial_accumulator_value": H(),
    "FtrlOptimizer.l1_reg": H(),
    "FtrlOptimizer.l2_reg": H(),
    "FtrlOptimizer.l2_shrinkage_reg": H(),
    "AdamOptimizer.learning_rate": H(),
    "AdamOptimizer.beta1": H(),
    "AdamOptimizer.beta2": H(),
    "AdamOptimizer.epsilon": H(),
    "AdamAsyncOptimizer.learning_rate": H(),
    "AdamAsyncOptimizer.beta1": H(),
    "AdamAsyncOptimizer.beta2": H(),
    "AdamAsyncWOptimizer.learning_rate": H(),
    "AdamAsyncWOptimizer.weight_decay": H(),
    "AdamAsyncWOptimizer.beta1": H(),
    "AdamAsyncWOptimizer.beta2": H(),
    "LazyAdamOptimizer.learning_rate": H(),
    "LazyAdamOptimizer.beta1": H(),
    "LazyAdamOptimizer.beta2": H(),
    "AdagradOptimizer.learning_rate": H(),
    "AdagradOptimizer.initial_accumulator_value": H(),
    "SgdOptimizer.learning_rate": H(),
    "SgdOptimizer.momentum": H(),
    "LearningRate.constant_learning_rate": H(),
    "LearningRate.exponential_decay_learning_rate": H(),
    "LearningRate.cosine_decay_learning_rate": H(),
    **{f"LearningRate.{name}": R(f"{name} is not implemented yet") for name in (
        "manual_step_learning_rate", "poly_decay_learning_rate", "transformer_learning_rate")},
    "CosineDecayLearningRate.learning_rate_base": H(),
    "CosineDecayLearningRate.total_steps": H(),
    "CosineDecayLearningRate.warmup_learning_rate": H(),
    "CosineDecayLearningRate.warmup_steps": H(),
    "CosineDecayLearningRate.hold_base_rate_steps": H(),
    "ConstantLearningRate.learning_rate": H(),
    "ExponentialDecayLearningRate.initial_learning_rate": H(),
    "ExponentialDecayLearningRate.decay_steps": H(),
    "ExponentialDecayLearningRate.decay_factor": H(),
    "ExponentialDecayLearningRate.staircase": H(),
    "ExponentialDecayLearningRate.burnin_learning_rate": H(),
    "ExponentialDecayLearningRate.burnin_steps": H(),
    "ExponentialDecayLearningRate.min_learning_rate": H(),
    # ---- eval_config ----------------------------------------------------------------
    "EvalConfig.num_examples": H(),
    "EvalConfig.eval_interval_secs": NA("evaluation during training is scheduled by steps or "
                                        "epochs (eval_interval_steps / eval_interval_epochs), "
                                        "not by a timer"),
    "EvalConfig.max_evals": NA("evaluation during training is scheduled by steps or epochs"),
    "EvalConfig.eval_interval_steps": H("easyblocks-only"),
    "EvalConfig.eval_interval_epochs": H("easyblocks-only"),
    "EvalConfig.holdout_fraction": H("easyblocks-only: training rows held out by a hash of "
                                     "the row (a CSV line, a TFRecord example, a Parquet "
                                     "row's values)"),
    "EvalConfig.save_graph": NA("the graph is not written"),
    "EvalConfig.metrics_set": H(),
    "EvalConfig.eval_online": NA("evaluation runs on eval_input_path"),
    "EvalConfig.domain_field": H(),
    "EvalMetrics.auc": H(),
    "EvalMetrics.recall_at_topk": H("exact, over all evaluated rows; multi-class towers"),
    "EvalMetrics.mean_absolute_error": H(_REGRESSION_METRIC),
    "EvalMetrics.mean_squared_error": H(_REGRESSION_METRIC),
    "EvalMetrics.accuracy": H("multi-class towers: argmax of the probabilities == label"),
    "EvalMetrics.max_f1": H(
        "the exact maximum over every threshold of the probability; EasyRec scans 200 "
        "thresholds in [0, 1] of the logit (a defect: it sees probabilities 0.5-0.73 only)"),
    "EvalMetrics.root_mean_squared_error": H(_REGRESSION_METRIC),
    "EvalMetrics.gauc": H(),
    "EvalMetrics.session_auc": H("one session_auc (session_id_field, reduction) for every "
                                 "tower that asks for it; exact AUC per session"),
    "SessionAUC.session_id_field": H(),
    "SessionAUC.reduction": H(),
    "RecallAtTopK.topk": H(),
    "EvalMetrics.recall": NA(_METRIC_NOT_COMPUTED),
    "EvalMetrics.precision": NA(_METRIC_NOT_COMPUTED),
    "EvalMetrics.precision_at_topk": NA(_METRIC_NOT_COMPUTED),
    "EvalMetrics.logloss": H(),
    "AUC.num_thresholds": NA("AUC is computed exactly (no thresholds)"),
    "GAUC.uid_field": H(),
    "GAUC.reduction": H(),
    # ---- export_config --------------------------------------------------------------
    "ExportConfig.batch_size": NA("the exported model takes any batch size"),
    "ExportConfig.exporter_type": H("\"best\" keeps the best checkpoint in model_dir/best "
                                    "(evaluate / export / predict default to it); models are "
                                    "written by `easyblocks export`"),
    "ExportConfig.best_exporter_metric": H("also \"<tower>/<metric>\""),
    "ExportConfig.metric_bigger": H("when unset, logloss and the regression errors "
                                    "(mean_squared_error, ...) count smaller as better "
                                    "(EasyRec's default true would keep the worst)"),
    "ExportConfig.enable_early_stop": H(),
    "ExportConfig.early_stop_func": R("a Python function named in a config is not run (a "
                                      "config is data); use max_check_steps or "
                                      "early_stop_patience"),
    "ExportConfig.early_stop_params": R("a Python function named in a config is not run (a "
                                        "config is data)"),
    "ExportConfig.max_check_steps": H(),
    "ExportConfig.early_stop_patience": H("easyblocks-only: evaluations without improvement"),
    "ExportConfig.multi_placeholder": NA("the export always takes one input per raw column"),
    "ExportConfig.exports_to_keep": H("best checkpoints kept in model_dir/best"),
    "ExportConfig.multi_value_fields": NA("the export takes multi-value columns as separated "
                                          "strings, like the CSV"),
    "ExportConfig.auto_multi_value": NA("the export takes multi-value columns as separated "
                                        "strings, like the CSV"),
    "ExportConfig.placeholder_named_by_input": NA("serving inputs are always named by input "
                                                  "column"),
    "ExportConfig.filter_inputs": NA("the export takes the input columns the features read"),
    "ExportConfig.export_features": NA("feature values are not exported"),
    "ExportConfig.export_rtp_outputs": NA("RTP outputs are not exported"),
    "ExportConfig.asset_files": NA("asset files are not exported"),
    "ExportConfig.export_dir": H(),
    # ---- model_config ---------------------------------------------------------------
    "EasyRecModel.model_class": H(),  # value-dependent: see MODEL_CLASSES
    "EasyRecModel.model_name": H(),
    "EasyRecModel.feature_groups": H(),
    "EasyRecModel.model_params": H(),
    "EasyRecModel.seq_att_groups": R("seq_att_groups is not implemented yet"),
    "EasyRecModel.embedding_regularization": H(
        "embedding_regularization x (sum of the looked-up embeddings' squared values) / batch "
        "size; EasyRec's TF1 l2_regularizer gives x sum / 2 (so an EasyRec value corresponds "
        "to ours x batch_size / 2)"),
    "EasyRecModel.loss_type": H(),
    "EasyRecModel.num_class": H(),
    "EasyRecModel.ev_params": R("EmbeddingVariable settings (ev_params) are not available "
                                "here"),
    "EasyRecModel.kd": R("knowledge distillation (kd) is not implemented yet"),
    "EasyRecModel.restore_filters": NA("used only with fine_tune_checkpoint"),
    "EasyRecModel.variational_dropout": H(
        "applied to every feature group's features (not to the outputs of its "
        "sequence_features), as EasyRec's input layer; its term is "
        "\"loss/variational_dropout\"; a group with a SequenceFeature without "
        "sequence_combiner is an error (EasyRec fails on it too)"),
    "VariationalDropoutLayer.regularization_lambda": H(),
    "VariationalDropoutLayer.embedding_wise_variational_dropout": H(),
    "EasyRecModel.losses": H(),
    "EasyRecModel.loss_weight_strategy": H(),
    "EasyRecModel.backbone": H(),
    "EasyRecModel.label_name": H(),
    "EasyRecModel.add_to_logit": H(),
    "EasyRecModel.logit_from_backbone": H(),
    "ModelParams.l2_regularization": H(
        "l2_regularization x sum of squares of every dense kernel of the model; EasyRec's TF1 "
        "l2_regularizer gives x sum / 2, on the layers it passes the regularizer to"),
    "ModelParams.outputs": NA("the export returns probs_<tower> and logits_<tower>"),
    "ModelParams.task_towers": H(),
    "ModelParams.user_tower_idx_in_output": R(MATCH),
    "ModelParams.item_tower_idx_in_output": R(MATCH),
    "ModelParams.simi_func": R(MATCH),
    "ModelParams.temperature": R(MATCH),
    "ModelParams.scale_simi": R(MATCH),
    "FeatureGroupConfig.group_name": H(),
    "FeatureGroupConfig.feature_names": H(),
    "FeatureGroupConfig.wide_deep": H(),
    "FeatureGroupConfig.sequence_features": H(
        "several hist_seq must have equal lengths in every row (a runtime check, as in "
        "EasyRec); aux_hist_seq of every seq_att_map is used (EasyRec kept only the last "
        "map's)"),
    "SeqAttGroupConfig.group_name": H(),
    "SeqAttGroupConfig.seq_att_map": H(),
    "SeqAttGroupConfig.tf_summary": NA("TensorBoard histograms of the sequences are not "
                                       "written", (False,)),
    "SeqAttGroupConfig.seq_dnn": H(),
    "SeqAttGroupConfig.allow_key_search": H(
        "no effect, as in EasyRec: a key outside the group is looked up either way"),
    "SeqAttGroupConfig.need_key_feature": H(),
    "SeqAttGroupConfig.allow_key_transform": H(),
    "SeqAttGroupConfig.transform_dnn": H(),
    "SeqAttMap.key": H(),
    "SeqAttMap.hist_seq": H(),
    "SeqAttMap.aux_hist_seq": H(),
    "FeatureGroupConfig.negative_sampler": R(_SAMPLER, (False,)),
    "BayesTaskTower.tower_name": H(),
    "BayesTaskTower.label_name": H(),
    "BayesTaskTower.metrics_set": H(),
    "BayesTaskTower.loss_type": H(),
    "BayesTaskTower.num_class": H(),
    "BayesTaskTower.dnn": H(),
    "BayesTaskTower.relation_tower_names": H(),
    "BayesTaskTower.relation_dnn": H("expanded into backbone blocks <tower>_dnn and "
                                     "<tower>_relation_dnn (easyblocks validate --expand shows "
                                     "them)"),
    "BayesTaskTower.weight": H(),
    "BayesTaskTower.task_space_indicator_label": R(_TASK_SPACE),
    "BayesTaskTower.in_task_space_weight": R(_TASK_SPACE, (1.0,)),
    "BayesTaskTower.out_task_space_weight": R(_TASK_SPACE, (1.0,)),
    "BayesTaskTower.losses": H(),
    "BayesTaskTower.use_sample_weight": H(),
    "BayesTaskTower.task_space_indicator_name": R(_TASK_SPACE),
    "BayesTaskTower.task_space_indicator_value": R(_TASK_SPACE),
    "BayesTaskTower.add_to_logit": H(),
    "BayesTaskTower.logit_from_backbone": H(),
    "BayesTaskTower.prob_product_of": H(),
    "DNN.hidden_units": H(),
    "DNN.dropout_ratio": H(),
    "DNN.activation": H(),
    "DNN.use_bn": H(),
    "Loss.loss_type": H(),
    "Loss.weight": H("each loss of a tower keeps its own weight, times the tower's weight "
                     "(EasyRec gave every loss of a tower the first loss's weight, a defect)"),
    "Loss.loss_name": NA("losses are reported as loss/<tower>/<loss type>"),
    "Loss.learn_loss_weight": R("learned loss weights are not implemented yet", (False,)),
    "Loss.f1_reweighted_loss": H(),
    "Loss.ziln_loss": H(),
    "Loss.pairwise_loss": H(),
    "PairwiseLoss.margin": H(),
    "PairwiseLoss.session_name": H(),
    "PairwiseLoss.temperature": H(),
    "F1ReweighedLoss.f1_beta_square": H(),
    "F1ReweighedLoss.label_smoothing": H(),
    "ZILNLoss.mu_regularization": H(),
    "ZILNLoss.sigma_regularization": H(),
    "ZILNLoss.max_log_clip_value": H(),
    "ZILNLoss.max_sigma": H(),
    "ZILNLoss.return_log_pred_value": H(),
    "ZILNLoss.classification_weight": H(),
    "ZILNLoss.regression_weight": H(),
    "Loss.item_id": H(),
    # ---- the parameters of EasyRec's model classes (templates) -----------------------
    **{f"EasyRecModel.{field}": H() for field in (
        "wide_and_deep", "deepfm", "multi_tower", "fm", "dcn", "autoint", "dlrm", "dssm",
        "dssm_senet", "mmoe", "esmm", "dbmtl", "simple_multi_task", "ple")},
    "WideAndDeep.wide_output_dim": H("without final_dnn it is num_class, as in EasyRec"),
    "WideAndDeep.dnn": H(),
    "WideAndDeep.final_dnn": H(),
    "WideAndDeep.l2_regularization": H(),
    "DeepFM.dnn": H(),
    "DeepFM.final_dnn": H(),
    "DeepFM.wide_output_dim": H(),
    "DeepFM.wide_regularization": NA("deprecated in EasyRec, which ignores it"),
    "DeepFM.dense_regularization": H("replaces l2_regularization when set (EasyRec's backward "
                                     "compatibility)"),
    "DeepFM.l2_regularization": H(),
    "MultiTower.towers": H(),
    "MultiTower.final_dnn": H(),
    "MultiTower.l2_regularization": H(),
    "MultiTower.din_towers": R(f"din_towers (model_class MultiTowerDIN) {_SEQ_ATT}"),
    "MultiTower.bst_towers": R(f"bst_towers (model_class MultiTowerBST) {_SEQ_ATT}"),
    "Tower.input": H(),
    "Tower.dnn": H(),
    "FMModel.use_variant": NA("EasyRec's FM model class does not read it (its FM term is "
                              "always summed)"),
    "FMModel.l2_regularization": H(),
    "DCN.deep_tower": H(),
    "DCN.cross_tower": H(),
    "DCN.final_dnn": H(),
    "DCN.l2_regularization": H(),
    "CrossTower.input": H("the towers read their `input` group (default all); EasyRec reads "
                          "group all whatever it says"),
    "CrossTower.cross_num": H(),
    "AutoInt.multi_head_num": H(),
    "AutoInt.multi_head_size": H("the attention scores are divided by sqrt(multi_head_size); "
                                 "EasyRec multiplies them by it (a defect)"),
    "AutoInt.interacting_layer_num": H(),
    "AutoInt.l2_regularization": H(),
    "DLRM.top_dnn": H(),
    "DLRM.bot_dnn": H(),
    "DLRM.arch_interaction_op": H(),
    "DLRM.arch_interaction_itself": H(),
    "DLRM.arch_with_dense_feature": H(),
    "DLRM.l2_regularization": H(),
    **{f"{m}.{f}": H() for m in ("DSSM", "DSSM_SENet") for f in (
        "user_tower", "item_tower", "l2_regularization", "simi_func", "scale_simi")},
    **{f"{m}.item_id": H("with SOFTMAX_CROSS_ENTROPY: another row of the batch with the "
                         "positive's item (same bucket id) is not one of its negatives")
       for m in ("DSSM", "DSSM_SENet")},
    **{f"{m}.temperature": H("applies to INNER_PRODUCT too (EasyRec: only to COSINE)")
       for m in ("DSSM", "DSSM_SENet")},
    **{f"{m}.ignore_in_batch_neg_sam": R(
        "ignore_in_batch_neg_sam: without a negative sampler (not available here) no negatives "
        "would be left", (False,)) for m in ("DSSM", "DSSM_SENet")},
    **{f"{m}.id": NA("names the tower's id feature in EasyRec's vector output; `easyblocks "
                     "export --block user_tower --block item_tower` serves the vectors")
       for m in ("DSSMTower", "DSSM_SENet_Tower")},
    "DSSMTower.dnn": H("the last layer is linear (no batch norm, activation, dropout), as in "
                       "EasyRec"),
    "DSSM_SENet_Tower.dnn": H("the last layer is linear, as in EasyRec"),
    "DSSM_SENet_Tower.senet": H(),
    "DSSM_SENet_Tower.SENet.reduction_ratio": H(),
    "DSSM_SENet_Tower.SENet.num_squeeze_group": H(),
    "DSSM_SENet_Tower.SENet.use_skip_connection": H(
        "unset: false, what EasyRec's DSSM_SENet does (it ignores the field); set: honoured"),
    "DSSM_SENet_Tower.SENet.use_output_layer_norm": H(
        "unset: false, what EasyRec's DSSM_SENet does (it ignores the field); set: honoured"),
    "MMoE.experts": H(),
    "MMoE.expert_dnn": H(),
    "MMoE.num_expert": H(),
    "MMoE.task_towers": H(),
    "MMoE.l2_regularization": H(),
    "ExpertTower.expert_name": H(),
    "ExpertTower.dnn": H(),
    "ESMM.groups": H(),
    "ESMM.ctr_tower": H(),
    "ESMM.cvr_tower": H("its probability is pCTCVR = pCVR x pCTR, its losses on it (batch "
                        "means; EasyRec sums over the batch)"),
    "ESMM.l2_regularization": H(),
    "DBMTL.bottom_cmbf": R(f"bottom_cmbf (CMBF's multi-modal bottom) is {NOT_YET}"),
    "DBMTL.bottom_uniter": R(f"bottom_uniter (Uniter's multi-modal bottom) is {NOT_YET}"),
    "DBMTL.bottom_dnn": H(),
    "DBMTL.expert_dnn": H(),
    "DBMTL.num_expert": H(),
    "DBMTL.task_towers": H(),
    "DBMTL.l2_regularization": H(),
    "SimpleMultiTask.task_towers": H(),
    "SimpleMultiTask.l2_regularization": H(),
    "PLE.extraction_networks": H(),
    "PLE.task_towers": H(),
    "PLE.l2_regularization": H(),
    "ExtractionNetwork.network_name": H("named EasyRec's variable scopes; no effect"),
    "ExtractionNetwork.expert_num_per_task": H(),
    "ExtractionNetwork.share_num": H(),
    "ExtractionNetwork.task_expert_net": H(),
    "ExtractionNetwork.share_expert_net": H(),
    "TaskTower.tower_name": H(),
    "TaskTower.label_name": H(),
    "TaskTower.metrics_set": H(),
    "TaskTower.loss_type": H(),
    "TaskTower.num_class": H(),
    "TaskTower.dnn": H(),
    "TaskTower.weight": H(),
    "TaskTower.losses": H(),
    "TaskTower.use_sample_weight": H(),
    "TaskTower.task_space_indicator_label": R(_TASK_SPACE),
    "TaskTower.in_task_space_weight": R(_TASK_SPACE, (1.0,)),
    "TaskTower.out_task_space_weight": R(_TASK_SPACE, (1.0,)),
    "TaskTower.task_space_indicator_name": R(_TASK_SPACE),
    "TaskTower.task_space_indicator_value": R(_TASK_SPACE),
    # ---- backbone -------------------------------------------------------------------
    "BackboneTower.packages": H(),
    "BackboneTower.blocks": H(),
    "BackboneTower.concat_blocks": H(),
    "BackboneTower.output_blocks": H(),
    "BackboneTower.top_mlp": H(),
    "BlockPackage.name": H(),
    "BlockPackage.blocks": H(),
    "BlockPackage.concat_blocks": H(),
    "BlockPackage.output_blocks": H(),
    "Block.name": H(),
    "Block.inputs": H("several inputs of which one is a list are an error (set "
                      "merge_inputs_into_list); EasyRec merged them into one list"),
    "Block.input_concat_axis": H(),
    "Block.merge_inputs_into_list": H(),
    "Block.extra_input_fn": H("a safe expression, interpreted, never eval'ed"),
    "Block.layers": H(),
    "Block.input_layer": H(),
    "Block.lambda": H(),
    "Block.keras_layer": H(),
    "Block.recurrent": H(),
    "Block.repeat": H(),
    "Block.raw_input": H(),
    "Block.embedding_layer": R("embedding_layer blocks are not implemented yet"),
    "Input.feature_group_name": H(),
    "Input.block_name": H("in a package, a block of the package or, as EasyRec allows, of "
                          "the backbone's main DAG (run before the blocks that call the "
                          "package)"),
    "Input.package_name": H(),
    "Input.use_package_input": H(),
    "Input.input_fn": H("a safe expression, interpreted, never eval'ed"),
    "Input.input_slice": H("parsed by a slice grammar, never eval'ed"),
    "Input.ignore_input": H(),
    "Input.reset_input": R("reset_input is not implemented yet"),
    "Input.package_input": H("a block, a feature group or, as in EasyRec, another package "
                             "(called on nothing)"),
    "Input.package_input_fn": R("package_input_fn is not implemented yet"),
    "InputLayer.do_batch_norm": H(),
    "InputLayer.do_layer_norm": H(),
    "InputLayer.dropout_rate": H(),
    "InputLayer.feature_dropout_rate": H(),
    "InputLayer.only_output_feature_list": H(),
    "InputLayer.only_output_3d_tensor": H(),
    "InputLayer.output_2d_tensor_and_feature_list": H(),
    "InputLayer.output_seq_and_normal_feature": H(
        "[the sequences concatenated (batch, L, d), the first one's lengths, the other "
        "features concatenated] (without other features: the first two)"),
    "InputLayer.wide_output_dim": H("one value for the model, as in EasyRec; the wide weights "
                                    "start at 0 (EasyRec: its embedding initializer)"),
    "InputLayer.concat_seq_feature": R("input_layer concat_seq_feature: false is not "
                                       "implemented yet", (True,)),
    "Lambda.expression": H("a safe expression, interpreted, never eval'ed"),
    "Layer.lambda": H(),
    "Layer.keras_layer": H(),
    "Layer.recurrent": H(),
    "Layer.repeat": H(),
    "RecurrentLayer.num_steps": H(),
    "RecurrentLayer.fixed_input_index": H(),
    "RecurrentLayer.keras_layer": H(),
    "RepeatLayer.num_repeat": H(),
    "RepeatLayer.output_concat_axis": H(),
    "RepeatLayer.keras_layer": H(),
    "RepeatLayer.input_slice": H("parsed by a slice grammar, never eval'ed"),
    "RepeatLayer.input_fn": H("a safe expression, interpreted, never eval'ed"),
    "KerasLayer.class_name": H(),
    # KerasLayer's params (st_params and every typed message): added below
}

# The parameters of EasyRec's model classes and of losses easyblocks does not implement:
# one entry per field of the oneof, generated from the descriptors in `_complete()`.
ONEOF_STATES: dict[str, FieldState] = {
    "EasyRecModel.model": R(ZOO_PARAMS),
    "Loss.loss_param": R("parameters of a loss type that is not implemented yet"),
    "KerasLayer.params": H("the block's constructor arguments (a parameter it does not take "
                           "is an error)"),
}

# Fields whose messages hold block parameters: not walked (honoured by construction).
BLOCK_PARAM_FIELDS = ("BackboneTower.top_mlp",)

ENUM_VALUES: dict[str, FieldState] = {
    "DatasetConfig.FieldType.INT32": H(),
    "DatasetConfig.FieldType.INT64": H(),
    "DatasetConfig.FieldType.STRING": H(),
    "DatasetConfig.FieldType.FLOAT": H(),
    "DatasetConfig.FieldType.DOUBLE": H(),
    "DatasetConfig.FieldType.BOOL": H(),
    "DatasetConfig.InputType.CSVInput": H(),
    "DatasetConfig.InputType.CSVInputV2": R("CSVInputV2 is deprecated in EasyRec; use CSVInput"),
    "DatasetConfig.InputType.CSVInputEx": R("CSVInputEx (quoted CSV fields) is not implemented "
                                            "yet; use CSVInput"),
    "DatasetConfig.InputType.OdpsInput": R(f"{NOT_HERE} (ODPS)"),
    "DatasetConfig.InputType.OdpsInputV2": R(f"{NOT_HERE} (ODPS)"),
    "DatasetConfig.InputType.DataHubInput": R(f"{NOT_HERE} (Datahub)"),
    "DatasetConfig.InputType.OdpsInputV3": R(f"{NOT_HERE} (ODPS)"),
    "DatasetConfig.InputType.RTPInput": R(f"{NOT_HERE} (RTP)"),
    "DatasetConfig.InputType.RTPInputV2": R(f"{NOT_HERE} (RTP)"),
    "DatasetConfig.InputType.OdpsRTPInput": R(f"{NOT_HERE} (ODPS)"),
    "DatasetConfig.InputType.OdpsRTPInputV2": R(f"{NOT_HERE} (ODPS)"),
    "DatasetConfig.InputType.TFRecordInput": H(
        "one tf.train.Example per row, one value per input field (as EasyRec)"),
    "DatasetConfig.InputType.BatchTFRecordInput": H(
        "one tf.train.SequenceExample per record, one feature list per input field"),
    "DatasetConfig.InputType.DummyInput": R(f"{NOT_HERE} (EasyRec's DummyInput)"),
    "DatasetConfig.InputType.KafkaInput": R(f"{NOT_HERE} (Kafka)"),
    "DatasetConfig.InputType.HiveInput": R(f"{NOT_HERE} (Hive)"),
    "DatasetConfig.InputType.HiveRTPInput": R(f"{NOT_HERE} (Hive)"),
    "DatasetConfig.InputType.HiveParquetInput": R(f"{NOT_HERE} (Hive)"),
    "DatasetConfig.InputType.ParquetInput": H(_PARQUET),
    "DatasetConfig.InputType.ParquetInputV2": H(_PARQUET + "; V2 and V3 are read the same way "
                                                "(their differences are EasyRec's internal "
                                                "tensor layout)"),
    "DatasetConfig.InputType.ParquetInputV3": H(_PARQUET + "; V2 and V3 are read the same way "
                                                "(their differences are EasyRec's internal "
                                                "tensor layout)"),
    "DatasetConfig.InputType.CriteoInput": R(f"{NOT_HERE} (EasyRec's Criteo binary input)"),
    "FeatureConfig.FeatureType.IdFeature": H(),
    "FeatureConfig.FeatureType.RawFeature": H(),
    "FeatureConfig.FeatureType.TagFeature": H(),
    "FeatureConfig.FeatureType.ComboFeature": H(
        "without combo_join_sep the ids are EasyRec's (TensorFlow's feature cross); FLOAT "
        "inputs are refused (EasyRec needs `precision` for them)"),
    "FeatureConfig.FeatureType.LookupFeature": R("LookupFeature is not implemented yet"),
    "FeatureConfig.FeatureType.SequenceFeature": H(),
    "FeatureConfig.FeatureType.ExprFeature": H(),
    "FeatureConfig.FeatureType.PassThroughFeature": R("PassThroughFeature is not implemented "
                                                      "yet"),
    "WideOrDeep.DEEP": H(),
    "WideOrDeep.WIDE": H("a multi-valued feature's wide weights are summed (EasyRec's wide "
                         "columns use combiner 'sum', whatever the feature's combiner)"),
    "WideOrDeep.WIDE_AND_DEEP": R("WIDE_AND_DEEP groups are not implemented yet; declare a WIDE "
                                  "group and a DEEP group with the same features"),
    "DistributionStrategy.NoStrategy": H(),
    "DistributionStrategy.MirroredStrategy": H(),
    "DistributionStrategy.MultiWorkerMirroredStrategy": H(
        "the cluster comes from TF_CONFIG; batch_size is per replica, as in EasyRec"),
    "DistributionStrategy.PSStrategy": H(
        "TensorFlow's ParameterServerStrategy: only embedding tables are sharded on the ps "
        "tasks; the chief reads the input and schedules steps on the workers"),
    **{f"DistributionStrategy.{name}": R(
        f"train_distribute {name} is not supported: {why} (supported: "
        f"{', '.join(SUPPORTED_STRATEGIES)})") for name, why in REFUSED_STRATEGIES.items()},
    "LossType.CLASSIFICATION": H(),
    "LossType.L2_LOSS": H(),
    "LossType.SOFTMAX_CROSS_ENTROPY": H(
        "a softmax over in-batch negatives (the tower's output block must be a Similarity "
        "block of two towers: EasyRec's DSSM); rows whose label is 0 are not positives (EasyRec "
        "takes every row as one), and EasyRec's negative sampler is not available; plus "
        "EasyRec's reg_pos term, mean(relu(-s(u, v+)))"),
    "LossType.ORDER_CALIBRATE_LOSS": H(
        "a configured calibration loss is never dropped: without relation_tower_names the "
        "relation is inferred from the backbone DAG, or it is an error (EasyRec silently "
        "added nothing); its weight, unset, is AITM's alpha 0.6 (EasyRec: 1.0) and the "
        "tower's weight applies too (EasyRec: not); it is reported per tower (EasyRec: one "
        "key, a second calibrated tower overwrote the first)"),
    **{f"LossType.{name}": R(f"loss_type {name} is not implemented yet") for name in (
        "SIGMOID_L2_LOSS", "CROSS_ENTROPY_LOSS", "CIRCLE_LOSS",
        "MULTI_SIMILARITY_LOSS", "SOFTMAX_CROSS_ENTROPY_WITH_NEGATIVE_MINING",
        "BINARY_FOCAL_LOSS", "PAIRWISE_FOCAL_LOSS",
        "PAIRWISE_LOGISTIC_LOSS", "PAIRWISE_HINGE_LOSS", "JRC_LOSS",
        "BINARY_CROSS_ENTROPY_LOSS", "KL_DIVERGENCE_LOSS", "LISTWISE_RANK_LOSS",
        "LISTWISE_DISTILL_LOSS")},
    # ---- EasyRec's losses honoured by issue 13 (models/losses.py) ----
    "LossType.F1_REWEIGHTED_LOSS": H("num_class 1"),
    "LossType.PAIR_WISE_LOSS": H("num_class 1; pairs within the batch (and the session)"),
    "LossType.ZILN_LOSS": H("num_class 3; the tower also predicts y_<tower>, the expected "
                            "value; its metrics are auc (of y > 0) and the configured ones"),
    "EasyRecModel.LossWeightStrategy.Fixed": H(),
    "Similarity.COSINE": H(),
    "Similarity.INNER_PRODUCT": H(),
    "Similarity.EUCLID": R("EasyRec computes an inner product for EUCLID (a defect); use "
                           "COSINE or INNER_PRODUCT"),
    "EasyRecModel.LossWeightStrategy.Uncertainty": R("loss_weight_strategy Uncertainty is not "
                                                     "implemented yet"),
    "EasyRecModel.LossWeightStrategy.Random": R("loss_weight_strategy Random is not "
                                                "implemented yet"),
}


def model_class_state(name: str) -> FieldState | None:
    """The state of a model_class value; None for a name that is not EasyRec's either (a
    typo: the tower builder reports it with the closest names)."""
    from easyblocks.config import templates

    if templates.is_known(name):
        return H()
    if name in MODEL_CLASSES_LEFT:
        return R(f"model_class {name} is not available yet: {MODEL_CLASSES_LEFT[name]}")
    return None


def _complete() -> None:
    """Adds an entry for every field of the oneofs in ONEOF_STATES (from the descriptors)."""
    from easyblocks.protos import backbone_pb2, loss_pb2, model_pb2

    messages = {"EasyRecModel": model_pb2.EasyRecModel, "Loss": loss_pb2.Loss,
                "KerasLayer": backbone_pb2.KerasLayer}
    for key, state in ONEOF_STATES.items():
        message, oneof = key.split(".")
        for field in messages[message].DESCRIPTOR.oneofs_by_name[oneof].fields:
            if field.name == "model_params":
                continue  # RankModel / MultiTaskModel: listed above
            FIELDS.setdefault(f"{message}.{field.name}", state)


_complete()


def markdown_table() -> str:
    """docs/easyrec.md's field table: every field and enum value that is not plainly
    honoured (with its reason or note), then the plainly honoured ones, grouped by message."""
    rows = ["| field | state | reason / difference from EasyRec |", "|---|---|---|"]
    entries = sorted(FIELDS.items()) + sorted(ENUM_VALUES.items())
    honoured: dict[str, list[str]] = {}
    for key, st in entries:
        text = st.reason if st.state != HONOURED else st.note
        if st.state == HONOURED and st.max_items:
            text = (f"{st.note}; " if st.note else "") + \
                f"at most {st.max_items}; more: refused ({st.reason})"
        if st.ok:
            text += " (honoured when " + " / ".join(repr(v) for v in st.ok) + ")"
        if st.state == HONOURED and not text:
            message, field = key.rsplit(".", 1)
            honoured.setdefault(message, []).append(field)
            continue
        rows.append(f"| `{key}` | {st.state} | {text} |")
    rows.append(f"| `EasyRecModel.model_class` values | {HONOURED} | "
                + ", ".join(MODEL_CLASSES) + "; templates (expanded into a backbone): "
                + ", ".join(TEMPLATE_MODEL_CLASSES) + " |")
    for name, why in sorted(MODEL_CLASSES_LEFT.items()):
        rows.append(f"| `EasyRecModel.model_class` = {name} | {REFUSED} | {why} |")
    out = ["Honoured, same meaning as in EasyRec:", ""]
    out += [f"- `{m}`: " + ", ".join(f"`{f}`" for f in fields) for m, fields in
            sorted(honoured.items())]
    out += ["- block parameters (`KerasLayer` typed params, `st_params`, `backbone.top_mlp`): "
            "passed to the block's constructor; one it does not take is an error", ""]
    return "\n".join(rows + [""] + out)
