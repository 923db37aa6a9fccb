"""Training on several devices, machines and parameter servers, on tf.distribute.

`train_config.train_distribute` (EasyRec's names) picks the strategy; the cluster comes from
the `TF_CONFIG` environment variable, as Kubeflow's TFJob, Ray Train or a shell sets it:

- `NoStrategy`: one process, one device (a multi-task TF_CONFIG is refused).
- `MirroredStrategy`: synchronous replicas on the devices of one machine (its GPUs, else
  its logical CPU devices).
- `MultiWorkerMirroredStrategy`: synchronous replicas on every `chief` and `worker` task
  (the chief, or worker 0 when there is no chief, writes what is written).
- `PSStrategy`: tf.distribute's ParameterServerStrategy. The chief is the coordinator: it
  reads the input and schedules steps on the `worker` tasks (ClusterCoordinator), which
  update variables held by the `ps` tasks asynchronously. Embedding tables (and only
  they) are sharded across the ps tasks; the `worker` and `ps` tasks run a TensorFlow
  server and nothing else.

Batch size: `data_config.batch_size` is per replica, as in EasyRec (tf.estimator's
convention): a synchronous step trains batch_size x replicas examples; a parameter-server
step trains batch_size examples on one worker.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass

import tensorflow as tf

from easyblocks.data import csv_input
from easyblocks.errors import ConfigError
from easyblocks.features.embedding import creating_table, table_initializer, table_shards

log = logging.getLogger("easyblocks")

TASK_TYPES = ("chief", "worker", "ps")
# a table is split into shards of at least MIN_SHARD_BYTES, one per ps task, and more (a
# multiple of the ps tasks) when a shard would exceed MAX_SHARD_BYTES: a shard is one
# tensor to TensorFlow, and a tensor sent between processes must stay under protobuf's 2 GB
# (10^7 x 64 floats sent whole failed); smaller shards also spread a table's rows and their
# updates more evenly over the ps tasks
MIN_SHARD_BYTES = 256 << 10
MAX_SHARD_BYTES = 256 << 20


@dataclass(frozen=True)
class Cluster:
    """The cluster of TF_CONFIG and this process's task in it."""

    jobs: dict[str, list[str]]  # task type -> addresses ("host:port"), by index
    task_type: str
    task_index: int

    @property
    def address(self) -> str:
        return self.jobs[self.task_type][self.task_index]

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.task_index}"

    def count(self, task_type: str) -> int:
        return len(self.jobs.get(task_type, []))

    @property
    def is_chief(self) -> bool:
        """The chief task, or worker 0 of a cluster without one (TensorFlow's rule)."""
        if "chief" in self.jobs:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0


def read_tf_config(text: str | None) -> Cluster | None:
    """Parses TF_CONFIG; None when it is unset or names no cluster. ConfigError (one line)
    for a malformed one."""
    if not text or not text.strip():
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"TF_CONFIG is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise ConfigError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    jobs = config.get("cluster")
    if not jobs:
        return None
    if not isinstance(jobs, dict):
        raise ConfigError("TF_CONFIG: 'cluster' must map task types to lists of host:port")
    for job, addresses in jobs.items():
        if job not in TASK_TYPES:
            raise ConfigError(f"TF_CONFIG: unknown task type {job!r} in 'cluster' (known: "
                              f"{', '.join(TASK_TYPES)}; an 'evaluator' is not supported: the "
                              "chief evaluates after training)")
        if isinstance(addresses, str) or not isinstance(addresses, list) or not addresses:
            raise ConfigError(f"TF_CONFIG: cluster {job!r} must be a non-empty list of "
                              "host:port")
        for address in addresses:
            _check_address(job, address)
    seen: dict[str, str] = {}
    for job, addresses in jobs.items():
        for i, address in enumerate(addresses):
            if address in seen:
                raise ConfigError(f"TF_CONFIG: {job} {i} and {seen[address]} have the same "
                                  f"address {address}")
            seen[address] = f"{job} {i}"
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task:
        raise ConfigError("TF_CONFIG: 'task' must give this process's 'type' and 'index', "
                          'e.g. {"type": "worker", "index": 0}')
    task_type, index = task["type"], task.get("index", 0)
    if task_type not in TASK_TYPES:
        raise ConfigError(f"TF_CONFIG: unknown task type {task_type!r} (known: "
                          f"{', '.join(TASK_TYPES)})")
    if task_type not in jobs:
        raise ConfigError(f"TF_CONFIG: task type {task_type!r} is not in the cluster "
                          f"({', '.join(jobs)})")
    if not isinstance(index, int) or not 0 <= index < len(jobs[task_type]):
        raise ConfigError(f"TF_CONFIG: task index {index!r} is out of range for "
                          f"{len(jobs[task_type])} {task_type} task(s)")
    if task_type == "chief" and len(jobs["chief"]) != 1:
        raise ConfigError(f"TF_CONFIG: the cluster has {len(jobs['chief'])} chief tasks; "
                          "it must have one")
    return Cluster({k: list(v) for k, v in jobs.items()}, task_type, index)


def _check_address(job: str, address) -> None:
    host, _, port = str(address).rpartition(":")
    if not isinstance(address, str) or not host or not port.isdigit() or \
            not 0 < int(port) < 65536:
        raise ConfigError(f"TF_CONFIG: {job} address {address!r} is not host:port")


def check_cluster(cluster: Cluster | None, strategy: str) -> None:
    """Checks that the cluster fits the strategy (ConfigError, one line)."""
    what = f"train_config.train_distribute is {strategy}"
    if strategy == "PSStrategy":
        if cluster is None:
            raise ConfigError(f"{what}: set TF_CONFIG with chief, worker and ps tasks (or try "
                              "it with easyblocks cluster-local --workers 2 --ps 2)")
        for job in TASK_TYPES:
            if cluster.count(job) == 0:
                raise ConfigError(f"TF_CONFIG: {what} but the cluster has no {job} task "
                                  f"(it has {', '.join(cluster.jobs)})")
        return
    if cluster is None:
        return
    if strategy == "MultiWorkerMirroredStrategy":
        if cluster.count("ps"):
            raise ConfigError(f"TF_CONFIG has ps tasks but {what}; parameter servers need "
                              "PSStrategy")
        return
    size = sum(len(a) for a in cluster.jobs.values())
    if size > 1:
        raise ConfigError(f"TF_CONFIG describes a cluster of {size} tasks but {what}, which "
                          "trains in one process; use MultiWorkerMirroredStrategy or "
                          "PSStrategy (or unset TF_CONFIG)")


def check_port_free(cluster: Cluster) -> None:
    """ConfigError when this task's port is already taken on this machine."""
    port = int(cluster.address.rpartition(":")[2])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("", port))
        except OSError as e:
            why = "is in use" if e.errno == errno.EADDRINUSE else f"cannot be bound ({e})"
            raise ConfigError(f"TF_CONFIG: {cluster.name} address {cluster.address}: port "
                              f"{port} {why}") from None


class TablePartitioner:
    """Shards embedding tables across the ps tasks (see MIN_SHARD_BYTES); every other
    variable stays whole, on one ps (a Keras layer cannot differentiate a sharded kernel)."""

    def __init__(self, num_ps: int, min_shard_bytes: int = MIN_SHARD_BYTES,
                 max_shard_bytes: int = MAX_SHARD_BYTES):
        self.num_ps = num_ps
        self.min_shard_bytes, self.max_shard_bytes = min_shard_bytes, max_shard_bytes

    def __call__(self, shape, dtype, axis: int = 0):
        shape, dtype = tf.TensorShape(shape), tf.as_dtype(dtype)
        if not creating_table():
            return [1] * len(shape)
        size = shape.num_elements() * dtype.size
        shards = max(1, min(self.num_ps, size // self.min_shard_bytes))
        if size > self.max_shard_bytes * shards:  # many shards: a multiple of the ps tasks
            shards = math.ceil(size / self.max_shard_bytes / self.num_ps) * self.num_ps
        return [min(shards, shape[0])] + [1] * (len(shape) - 1)


def _create_table_by_shard(next_creator, **kwargs):
    """A variable creator: an embedding table gets an initial value computed shard by shard.
    Keras passes a function of nothing that computes the whole table, which
    ParameterServerStrategy then slices on the chief and sends: memory of the whole table on
    the chief, and a failure above 2 GB (protobuf's limit; measured with 10^7 x 64 floats)."""
    table = table_initializer()
    if table is None or kwargs.get("name") != table[0]:
        return next_creator(**kwargs)
    _, shape, rows = table
    shape = tf.TensorShape(shape)
    dtype = tf.as_dtype(kwargs.get("dtype") or tf.float32)

    def initial_value(partition_shape=None, partition_offset=None):
        offset = partition_offset[0] if partition_offset else 0
        return rows(partition_shape or shape, dtype, offset)

    return next_creator(**{**kwargs, "initial_value": initial_value, "shape": shape,
                           "dtype": dtype})


def serve_if_server_task(strategy: str, environ=os.environ) -> bool:
    """Under PSStrategy, a `worker` or `ps` task runs TensorFlow's server for the chief
    until it is stopped (never returns). Returns False for every other process."""
    if strategy != "PSStrategy":
        return False
    cluster = read_tf_config(environ.get("TF_CONFIG"))
    check_cluster(cluster, strategy)
    if cluster.task_type == "chief":
        return False
    check_port_free(cluster)
    config = tf.compat.v1.ConfigProto()
    # a server's inter-op pool sized by the core count can deadlock a worker that waits on
    # the ps while serving steps on a small machine (2 cores here)
    config.inter_op_parallelism_threads = max(os.cpu_count() or 1, 4)
    server = tf.distribute.Server(tf.train.ClusterSpec(cluster.jobs), job_name=cluster.task_type,
                                  task_index=cluster.task_index, protocol="grpc", config=config,
                                  start=True)
    log.info("%s: serving at %s for the chief %s until stopped", cluster.name, cluster.address,
             cluster.jobs["chief"][0])
    server.join()
    return True  # not reached: join() returns only when the process is killed


def _mirrored_devices() -> list[str]:
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in gpus or tf.config.list_logical_devices("CPU")]


class Distribution:
    """The strategy of train_config.train_distribute on the cluster TF_CONFIG describes,
    and what differs per process: who writes, which part of the input it reads.

    Create it before any other TensorFlow op: MultiWorkerMirroredStrategy configures the
    runtime's collective ops at creation.
    """

    def __init__(self, strategy: str, environ=os.environ):
        self.name = strategy
        self.cluster = read_tf_config(environ.get("TF_CONFIG"))
        check_cluster(self.cluster, strategy)
        self.coordinator = None
        self._temp_dirs: list[str] = []
        if strategy == "NoStrategy":
            self.strategy = tf.distribute.get_strategy()
        elif strategy == "MirroredStrategy":
            self.strategy = tf.distribute.MirroredStrategy(_mirrored_devices())
        elif strategy == "MultiWorkerMirroredStrategy":
            if self.cluster is not None:
                check_port_free(self.cluster)
            self.strategy = tf.distribute.MultiWorkerMirroredStrategy(
                cluster_resolver=tf.distribute.cluster_resolver.TFConfigClusterResolver())
        elif strategy == "PSStrategy":
            if self.cluster.task_type != "chief":
                raise ConfigError(f"{self.cluster.name}: under PSStrategy only the chief "
                                  "trains; worker and ps tasks serve (serve_if_server_task)")
            check_port_free(self.cluster)
            self.strategy = tf.distribute.experimental.ParameterServerStrategy(
                tf.distribute.cluster_resolver.TFConfigClusterResolver(),
                variable_partitioner=TablePartitioner(self.cluster.count("ps")))
            self.coordinator = tf.distribute.experimental.coordinator.ClusterCoordinator(
                self.strategy)
        else:
            raise ConfigError(f"train_config.train_distribute: {strategy} is not supported")
        if self.cluster is not None:
            log.info("%s (cluster: %s): %s%s", self.cluster.name,
                     ", ".join(f"{len(a)} {j}" for j, a in self.cluster.jobs.items()),
                     strategy, ", writes checkpoints and results" if self.is_chief else "")

    @contextlib.contextmanager
    def scope(self):
        """The strategy's scope for building the model and its optimizers; with parameter
        servers, tables are also initialised shard by shard."""
        with self.strategy.scope():
            if self.parameter_servers:
                with tf.variable_creator_scope(_create_table_by_shard):
                    yield
            else:
                yield

    # ---- roles -------------------------------------------------------------------------------
    @property
    def is_chief(self) -> bool:
        """Whether this process writes checkpoints, summaries, evaluation results."""
        return self.cluster is None or self.cluster.is_chief

    @property
    def parameter_servers(self) -> bool:
        return self.coordinator is not None

    @property
    def num_replicas(self) -> int:
        """Replicas that train one synchronous step together (1 for a parameter-server
        step, which runs on one worker)."""
        return 1 if self.parameter_servers else self.strategy.num_replicas_in_sync

    @property
    def num_input_pipelines(self) -> int:
        """Processes that read the training input (each its own part)."""
        if self.parameter_servers or self.cluster is None:
            return 1
        return self.cluster.count("chief") + self.cluster.count("worker")

    @property
    def input_pipeline_id(self) -> int:
        if self.num_input_pipelines == 1:
            return 0
        c = self.cluster
        return c.task_index if c.task_type == "chief" else c.count("chief") + c.task_index

    # ---- what only the chief writes ------------------------------------------------------
    def checkpoint_dir(self, model_dir: str) -> str:
        """model_dir for the chief; a local temporary directory for the other workers,
        which save too (a save may need every worker under MultiWorkerMirroredStrategy)
        but whose files are removed by `cleanup`."""
        if self.is_chief:
            return model_dir
        path = tempfile.mkdtemp(prefix=f"easyblocks_{self.cluster.task_type}_"
                                       f"{self.cluster.task_index}_")
        self._temp_dirs.append(path)
        return path

    def summary_writer(self, path: str):
        """A TensorBoard writer on the chief, a writer that writes nothing elsewhere."""
        if self.is_chief:
            return tf.summary.create_file_writer(path)
        return tf.summary.create_noop_writer()

    def cleanup(self) -> None:
        for path in self._temp_dirs:
            shutil.rmtree(path, ignore_errors=True)
        self._temp_dirs = []

    # ---- input -------------------------------------------------------------------------------
    def shard(self, files: list[str]) -> tuple[list[str], tuple[int, int] | None]:
        """This process's part of the training input: (files, row shard). By file when there
        are at least as many files as input pipelines, else by row: (count, index) keeps
        every count-th line from the index-th."""
        return shard_input(files, self.num_input_pipelines, self.input_pipeline_id)

    def log_placement(self, tables: list) -> None:
        """Logs where each embedding table lives (its shards under PSStrategy)."""
        if not self.parameter_servers:
            return
        for table in tables:
            shards = table_shards(table)
            where = [v.device for v in shards] if shards else [table.value.device]
            log.info("table %s %s: %s", table.path, tuple(table.shape),
                     f"{len(where)} shards on {', '.join(where)}" if shards
                     else f"one variable on {where[0]}")

    def log_checksum(self, variables: list) -> None:
        """Logs a checksum of the variables' values on a worker of a multi-worker synchronous
        cluster: every worker's must be the same."""
        if self.parameter_servers or self.num_input_pipelines == 1:
            return
        digest = hashlib.sha256()
        for v in variables:
            digest.update(v.numpy().tobytes())
        log.info("%s: variables checksum %s", self.cluster.name, digest.hexdigest()[:16])

    def replica_batches(self, elements, local: int):
        """Steps of this process's `elements` ((features, labels, columns, position), full
        batches) for its `local` replicas: the element itself with one local replica (each
        worker of MultiWorkerMirroredStrategy feeds its own), else `local` consecutive
        batches as distributed values, with the position of the first (the epoch, and the
        step's index in it).

        TensorFlow's distributed datasets are not used: their iterator, released at the end
        of training, waited 10 to 100 s for tf.data's autotuning thread on a worker here,
        while this process's own pipeline runs without that thread (`input_options`).
        """
        it = iter(elements)
        while True:
            try:
                group = [next(it) for _ in range(local)]
            except StopIteration:
                return
            if local == 1:
                yield group[0]
                continue
            features, labels = (self.strategy.experimental_distribute_values_from_function(
                lambda ctx, i=i, g=group: g[ctx.replica_id_in_sync_group][i]) for i in (0, 1))
            epoch, index = group[0][3]
            yield features, labels, group[0][2], (epoch, index // local)

    def barrier(self) -> None:
        """Returns once every worker of a multi-worker synchronous cluster has called it (the
        chief after its evaluation, the others after training): a worker that exits earlier
        is reported by TensorFlow on the chief as a crashed task."""
        if self.synchronous_cluster:
            self.agree_on_min(0)

    @property
    def synchronous_cluster(self) -> bool:
        """Several processes that train each step together (MultiWorkerMirroredStrategy):
        they must make the same collective calls in the same order."""
        return not self.parameter_servers and self.num_input_pipelines > 1

    def agree_on_min(self, value: int) -> int:
        """The smallest of every replica's `value` (a collective: every worker calls it)."""
        return int(tf.reduce_min(self._gathered(value)))

    def chief_decides(self, flag: bool) -> bool:
        """The chief's `flag`, on every worker of a synchronous cluster (a collective: every
        worker calls it at the same point, and waits there for the chief); `flag` itself
        elsewhere. For what only the chief knows: its evaluation's early stopping, its
        model_dir/best."""
        if not self.synchronous_cluster:
            return flag
        return int(tf.reduce_max(self._gathered(int(flag) if self.is_chief else 0))) > 0

    def _gathered(self, value: int) -> tf.Tensor:
        if self.strategy.num_replicas_in_sync == 1 or self.parameter_servers:
            return tf.constant([value], tf.int64)
        per_replica = self.strategy.experimental_distribute_values_from_function(
            lambda _: tf.constant([value], tf.int64))
        return self.strategy.gather(per_replica, axis=0)


def input_options() -> tf.data.Options:
    """tf.data options of an endless per-worker input: those of every input pipeline
    (`csv_input.pipeline_options`: tf.data's autotuning thread off)."""
    return csv_input.pipeline_options()


def shard_input(files: list[str], num_pipelines: int,
                pipeline_id: int) -> tuple[list[str], tuple[int, int] | None]:
    """(files, row shard) of input pipeline `pipeline_id` of `num_pipelines`."""
    if num_pipelines <= 1:
        return list(files), None
    if len(files) >= num_pipelines:
        return list(files[pipeline_id::num_pipelines]), None
    return list(files), (num_pipelines, pipeline_id)


def steps_per_epoch(rows: int, batch_size: int, local_replicas: int) -> int:
    """Synchronous steps one pass over `rows` gives when each of `local_replicas` takes
    full batches of `batch_size` (the rows left over are not trained in that epoch; each
    epoch is shuffled anew, so not always the same ones)."""
    return rows // (batch_size * local_replicas)


def synchronize_batch_norm(model) -> int:
    """Makes every batch normalization of `model` (easyblocks' BatchNorm, STAR's partitioned
    one, and Keras' BatchNormalization in a user's block) use the statistics of the whole
    synchronous step's batch (all-reduced moments), as one process training the global
    batch would; returns how many there are. Without this each replica normalises by its
    own batch and updates only its own copy of the moving statistics."""
    import keras

    from easyblocks.blocks.normalization import BatchNorm

    layers = [la for la in model._flatten_layers()  # Keras' recursive walk of sub-layers
              if isinstance(la, (keras.layers.BatchNormalization, BatchNorm))]
    for layer in layers:
        layer.synchronized = True  # read at call time (Keras' TF backend, BatchNorm.standardize)
    return len(layers)


def average_over_replicas(variables: list) -> None:
    """Sets each replica's copy of `variables` to their mean over replicas (in replica
    context). Non-trainable state that a layer updates in its call (moving statistics of
    a block's own normalisation) is updated on the local copy only; this keeps the copies
    identical, as one step's result."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1 or not variables:
        return
    means = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, [tf.identity(v) for v in variables])
    for v, mean in zip(variables, means):
        v.assign(mean)


def sum_over_replicas(values: list) -> list:
    """Sums tensors / IndexedSlices over the replicas of a synchronous step (in replica
    context); None entries stay None."""
    ctx = tf.distribute.get_replica_context()
    present = [v for v in values if v is not None]
    if ctx is None or ctx.num_replicas_in_sync == 1 or not present:
        return list(values)
    reduced = iter(ctx.all_reduce(tf.distribute.ReduceOp.SUM, present))
    return [None if v is None else next(reduced) for v in values]
