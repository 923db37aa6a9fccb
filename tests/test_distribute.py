"""Distribution without a cluster: TF_CONFIG checks, strategy names, input sharding, the
table partitioner, and the cluster-local launcher's layout (tests/test_distributed_e2e.py
runs real clusters)."""

import json
import socket

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config

from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.data.csv_input import CSVInput, count_rows
from easyblocks.errors import ConfigError
from easyblocks.features.embedding import (
    _ConstantFill,
    _table_creation,
    creating_table,
    embedding_initializer,
)
from easyblocks.features.preprocess import Preprocessor
from easyblocks.tools import cluster_local
from easyblocks.train import distribute
from easyblocks.train.distribute import (
    TablePartitioner,
    check_cluster,
    check_port_free,
    read_tf_config,
    shard_input,
    steps_per_epoch,
)

CLUSTER = {"chief": ["127.0.0.1:2000"], "worker": ["127.0.0.1:2001", "127.0.0.1:2002"],
           "ps": ["127.0.0.1:2003", "127.0.0.1:2004"]}


def tf_config(cluster=None, task_type="worker", index=0) -> str:
    return json.dumps({"cluster": CLUSTER if cluster is None else cluster,
                       "task": {"type": task_type, "index": index}})


def test_tf_config_is_read():
    cluster = read_tf_config(tf_config(index=1))
    assert cluster.task_type == "worker" and cluster.task_index == 1
    assert cluster.address == "127.0.0.1:2002" and cluster.name == "worker 1"
    assert cluster.count("ps") == 2 and not cluster.is_chief
    assert read_tf_config(tf_config(task_type="chief")).is_chief
    assert read_tf_config(None) is None and read_tf_config("") is None
    assert read_tf_config('{"task": {"type": "worker", "index": 0}}') is None  # no cluster


def test_without_a_chief_worker_0_is_chief():
    workers = {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}  # Ray Train's TF_CONFIG
    assert read_tf_config(tf_config(workers, "worker", 0)).is_chief
    assert not read_tf_config(tf_config(workers, "worker", 1)).is_chief


@pytest.mark.parametrize("text, message", [
    ("{not json", "TF_CONFIG is not valid JSON"),
    (tf_config({**CLUSTER, "evaluator": ["127.0.0.1:2005"]}),
     "TF_CONFIG: unknown task type 'evaluator' in 'cluster' (known: chief, worker, ps; an "
     "'evaluator' is not supported"),
    (tf_config(task_type="master"), "TF_CONFIG: unknown task type 'master' (known: chief, "
     "worker, ps)"),
    (tf_config(index=2), "TF_CONFIG: task index 2 is out of range for 2 worker task(s)"),
    (tf_config({"worker": ["127.0.0.1"]}), "TF_CONFIG: worker address '127.0.0.1' is not "
     "host:port"),
    (tf_config({"worker": ["127.0.0.1:1", "127.0.0.1:1"]}), "TF_CONFIG: worker 1 and worker 0 "
     "have the same address 127.0.0.1:1"),
    (tf_config({"chief": ["127.0.0.1:1", "127.0.0.1:2"]}, "chief"), "it must have one"),
    (json.dumps({"cluster": CLUSTER}), "TF_CONFIG: 'task' must give this process's 'type'"),
])
def test_malformed_tf_config_is_one_line(text, message):
    with pytest.raises(ConfigError) as e:
        read_tf_config(text)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("strategy, cluster, message", [
    ("PSStrategy", None, "train_config.train_distribute is PSStrategy: set TF_CONFIG"),
    ("PSStrategy", {"worker": CLUSTER["worker"], "ps": CLUSTER["ps"]},
     "TF_CONFIG: train_config.train_distribute is PSStrategy but the cluster has no chief task"),
    ("PSStrategy", {"chief": CLUSTER["chief"], "worker": CLUSTER["worker"]},
     "has no ps task"),
    ("MultiWorkerMirroredStrategy", CLUSTER, "TF_CONFIG has ps tasks but "
     "train_config.train_distribute is MultiWorkerMirroredStrategy"),
    ("NoStrategy", {"worker": CLUSTER["worker"]}, "TF_CONFIG describes a cluster of 2 tasks but "
     "train_config.train_distribute is NoStrategy"),
    ("MirroredStrategy", {"worker": CLUSTER["worker"]}, "use MultiWorkerMirroredStrategy or "
     "PSStrategy"),
])
def test_cluster_must_fit_the_strategy(strategy, cluster, message):
    parsed = None if cluster is None else read_tf_config(tf_config(cluster, "worker", 0))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        check_cluster(parsed, strategy)


def test_clusters_that_fit():
    check_cluster(read_tf_config(tf_config()), "PSStrategy")
    check_cluster(read_tf_config(tf_config({"worker": CLUSTER["worker"]})),
                  "MultiWorkerMirroredStrategy")
    check_cluster(None, "MultiWorkerMirroredStrategy")  # one worker, no TF_CONFIG
    check_cluster(read_tf_config(tf_config({"worker": ["127.0.0.1:1"]})), "NoStrategy")


def test_port_in_use_is_one_line():
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cluster = read_tf_config(tf_config({"worker": [f"127.0.0.1:{port}"]}))
        with pytest.raises(ConfigError, match=f"TF_CONFIG: worker 0 address 127.0.0.1:{port}: "
                                              f"port {port} is in use"):
            check_port_free(cluster)
    check_port_free(cluster)  # released


def strategy_config(name: str) -> str:
    return tiny_config('backbone { blocks { name: "b" inputs { feature_group_name: "all" } } }',
                       extra=f"train_config {{ train_distribute: {name} }}\n")


@pytest.mark.parametrize("name", ["NoStrategy", "MirroredStrategy", "MultiWorkerMirroredStrategy",
                                  "PSStrategy"])
def test_honoured_strategies_resolve(name):
    assert resolve(parse_config_text(strategy_config(name), "t.config")).train.strategy == name


@pytest.mark.parametrize("name, why", [
    ("HorovodStrategy", "needs Horovod"), ("SokStrategy", "needs NVIDIA SOK"),
    ("EmbeddingParallelStrategy", "needs Horovod"), ("ExascaleStrategy", "PAI-TF"),
    ("CollectiveAllReduceStrategy", "deprecated"),
])
def test_other_easyrec_strategies_are_refused_with_the_reason(name, why):
    with pytest.raises(ConfigError) as e:
        resolve(parse_config_text(strategy_config(name), "t.config"))
    message = str(e.value)
    assert message.startswith("t.config:") and f"{name} is not supported: " in message
    assert why in message and "(supported: NoStrategy, MirroredStrategy, " \
        "MultiWorkerMirroredStrategy, PSStrategy)" in message


def test_memory_limit_is_per_parameter_server_when_training(monkeypatch):
    from easyblocks.config.checks import check_memory

    text = strategy_config("PSStrategy").replace("embedding_dim: 4 hash_bucket_size: 100",
                                                 "embedding_dim: 1000000 hash_bucket_size: 1000")
    assert "embedding_dim: 1000000" in text  # 3.7 GiB of table, 11.2 with Adam's slots
    spec = resolve(parse_config_text(text, "t.config"))
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match=r"need 11.2 GiB with the optimizer's slots .*above "
                                          "the limit of 8 GiB"):
        check_memory(spec, None, training=True)
    check_memory(spec, None, training=True, num_ps=2)  # 5.6 GiB on each
    with pytest.raises(ConfigError, match=r"5.59 GiB on each of 2 ps\), above the limit of "
                                          "4 GiB.*add ps tasks"):
        check_memory(spec, 4, training=True, num_ps=2)
    monkeypatch.setenv("TF_CONFIG", tf_config())  # 2 ps
    check_memory(spec, None, training=True)
    with pytest.raises(ConfigError, match=r"need 3.73 GiB \("):  # evaluated in one process
        check_memory(spec, 2, training=False)


def test_shard_by_file_when_enough_files_else_by_row():
    files = ["a", "b", "c", "d", "e"]
    assert shard_input(files, 1, 0) == (files, None)
    assert shard_input(files, 2, 0) == (["a", "c", "e"], None)
    assert shard_input(files, 2, 1) == (["b", "d"], None)
    assert shard_input(files, 5, 4) == (["e"], None)
    assert shard_input(files, 6, 4) == (files, (6, 4))


def write_rows(path, rows: int, header: bool = False, last_newline: bool = True) -> str:
    lines = (["clk,buy,user,tags,price"] if header else []) + \
        [f"{i % 2},0,u{i},t{i}|s{i},{i}" for i in range(rows)]
    path.write_text("\n".join(lines) + ("\n" if last_newline else ""))
    return str(path)


def test_count_rows(tmp_path):
    a = write_rows(tmp_path / "a.csv", 7)
    b = write_rows(tmp_path / "b.csv", 4, header=True, last_newline=False)
    assert count_rows([a], [0], None) == 7
    assert count_rows([b], [1], None) == 4  # its header line is not a row
    assert count_rows([a, b], [0, 1], None) == 7 + 4
    assert [count_rows([a], [0], (3, i)) for i in range(3)] == [3, 2, 2]


def test_steps_per_epoch_leave_only_the_last_partial_batches():
    assert steps_per_epoch(rows=1000, batch_size=64, local_replicas=1) == 15
    assert steps_per_epoch(rows=1000, batch_size=64, local_replicas=2) == 7
    assert steps_per_epoch(rows=10, batch_size=64, local_replicas=1) == 0


def test_row_shards_read_every_row_once(tmp_path):
    path = write_rows(tmp_path / "rows.csv", 23)
    spec = resolve(parse_config_text(strategy_config("MultiWorkerMirroredStrategy"), "t.config"))
    spec.data.shuffle = False
    reader = CSVInput(spec.data, Preprocessor(spec.features), spec.labels, ["user"])
    seen = []
    for index in range(3):
        ds = reader.dataset([path], 4, training=True, row_shard=(3, index))
        part = [u.decode() for _, _, cols, _ in ds for u in cols["user"].numpy()]
        assert len(part) == count_rows([path], [0], (3, index)) == \
            reader.count_rows([path], row_shard=(3, index))
        seen += part
    assert sorted(seen) == sorted(f"u{i}" for i in range(23))
    # held-out rows are neither trained nor counted; each process counts its own part
    kept = reader.count_rows([path], holdout_fraction=0.3)
    assert 0 < kept < 23
    assert sum(reader.count_rows([path], 0.3, (3, i)) for i in range(3)) == kept


def test_synchronous_epochs_are_full_batches_of_the_same_count(tmp_path):
    """batches_per_epoch: every epoch is that many full batches, with its position, on
    every process (what synchronous replicas need to stay in step)."""
    path = write_rows(tmp_path / "rows.csv", 23)
    spec = resolve(parse_config_text(strategy_config("MultiWorkerMirroredStrategy"), "t.config"))
    reader = CSVInput(spec.data, Preprocessor(spec.features), spec.labels, ["user"])
    ds = reader.dataset([path], 4, training=True, num_epochs=2, row_shard=(2, 1),
                        batches_per_epoch=2)
    elements = list(ds)
    assert [tuple(int(p) for p in e[3]) for e in elements] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(len(e[2]["user"]) == 4 for e in elements)
    users = [u.decode() for e in elements for u in e[2]["user"].numpy()]
    assert len(set(users[:8])) == 8 and all(int(u[1:]) % 2 == 1 for u in users)


def test_only_tables_are_partitioned():
    partitioner = TablePartitioner(num_ps=2, min_shard_bytes=100)
    shape = tf.TensorShape([1000, 8])  # 32 kB
    assert partitioner(shape, tf.float32) == [1, 1]
    assert not creating_table()
    with _table_creation():
        assert creating_table()
        assert partitioner(shape, tf.float32) == [2, 1]  # at most one shard per ps
        assert partitioner(tf.TensorShape([10, 2]), tf.float32) == [1, 1]  # below min size
        # shards above the max size: more of them, a multiple of the ps tasks
        small_shards = TablePartitioner(num_ps=2, min_shard_bytes=100, max_shard_bytes=1000)
        assert small_shards(shape, tf.float32) == [32, 1]  # 32000 bytes, 1000 a shard
        assert small_shards(tf.TensorShape([5, 100]), tf.float32) == [2, 1]
        assert small_shards(tf.TensorShape([3, 1000]), tf.float32) == [3, 1]  # one row a shard
    assert partitioner(shape, tf.float32) == [1, 1]


def _shards_as_parameter_servers_create_them(initializer, shape=(10, 2)):
    """The values of each shard of a table of `shape` in 4 shards (3, 3, 2, 2 rows, as
    ParameterServerStrategy splits 10 rows), through the variable creator that initialises
    a table shard by shard (TensorFlow calls initial_value once per shard)."""
    def next_creator(**kwargs):
        return [kwargs["initial_value"](partition_shape=[rows, shape[1]],
                                        partition_offset=[offset, 0]).numpy()
                for offset, rows in ((0, 3), (3, 3), (6, 2), (8, 2))]

    with _table_creation("embedding_t", shape, initializer):
        return distribute._create_table_by_shard(next_creator, name="embedding_t",
                                                 dtype=tf.float32)


def test_a_constant_fill_goes_on_across_the_shards_of_a_sharded_table():
    """EasyRec's constant_initializer fills row-major with the last value repeated: on
    parameter servers each shard starts the fill at its own first row, not at value 1."""
    values = [1, 2, 3, 4, 5, 6, 7, 8, 9]  # 9 of the 20 entries, shard 1 starts at entry 6
    shards = _shards_as_parameter_servers_create_them(_ConstantFill(values))
    expected = np.array(values + [9] * 11, "float32").reshape(10, 2)
    np.testing.assert_array_equal(np.concatenate(shards), expected)
    np.testing.assert_array_equal(shards[1], [[7, 8], [9, 9], [9, 9]])
    # the same through a feature's initializer message
    spec = resolve(parse_config_text(tiny_config(
        'backbone { blocks { name: "b" inputs { feature_group_name: "all" } } }').replace(
        'input_names: "user"', 'input_names: "user" initializer { constant_initializer { '
        'consts: [1, 2, 3, 4, 5, 6, 7, 8, 9] } }', 1), "t.config"))
    init = embedding_initializer(spec.features["user"])
    shards = _shards_as_parameter_servers_create_them(init)
    np.testing.assert_array_equal(np.concatenate(shards), expected)


def test_random_shards_are_not_copies_of_each_other():
    init = embedding_initializer(resolve(parse_config_text(tiny_config(
        'backbone { blocks { name: "b" inputs { feature_group_name: "all" } } }'),
        "t.config")).features["user"])  # the default: truncated normal, stddev 0.01
    shards = _shards_as_parameter_servers_create_them(init, shape=(10, 4))
    assert [s.shape for s in shards] == [(3, 4), (3, 4), (2, 4), (2, 4)]
    whole = np.concatenate(shards)
    assert 0.0 < whole.std() < 0.03 and np.abs(whole).max() <= 0.02 + 1e-6
    assert not np.array_equal(shards[2], shards[3])


def test_sharded_table_rows_are_read_shard_by_shard_eagerly(monkeypatch):
    """A sharded table's rows, looked up eagerly (the model's first call, the chief's
    evaluation), come from the shards the ids fall in ("div" partitioning, uneven shards as
    ParameterServerStrategy makes them); the table is never read whole (TensorFlow's own
    dispatch for a ShardedVariable works in graphs only)."""
    from tensorflow.python.distribute import sharded_variable

    from easyblocks.features.embedding import gather_rows

    table = np.arange(10 * 2, dtype=np.float32).reshape(10, 2)
    # 10 rows in 4 shards: 3, 3, 2, 2 rows, as ParameterServerStrategy splits them
    parts = [tf.Variable(table[a:b]) for a, b in ((0, 3), (3, 6), (6, 8), (8, 10))]
    sharded = tf.__internal__.distribute.ShardedVariable(parts)

    concat = sharded_variable.array_ops.concat

    def concat_unless_the_shards(values, *args, **kwargs):  # how TensorFlow reads it whole
        if any(v is p for v in values for p in parts):
            raise AssertionError("the sharded table was read whole")
        return concat(values, *args, **kwargs)

    monkeypatch.setattr(sharded_variable.array_ops, "concat", concat_unless_the_shards)
    with pytest.raises(AssertionError, match="read whole"):
        tf.convert_to_tensor(sharded)  # the check itself can fail
    ids = tf.constant([9, 0, 5, 3, 6, 2, 8], tf.int64)
    np.testing.assert_array_equal(gather_rows(sharded, ids).numpy(), table[ids.numpy()])


def test_sum_and_average_are_identity_without_replicas():
    g = [tf.constant([1.0, 2.0]), None, tf.IndexedSlices(tf.ones([1, 2]), tf.constant([3]))]
    assert distribute.sum_over_replicas(g) == g
    v = tf.Variable([1.0, 2.0])
    distribute.average_over_replicas([v])
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])


def test_cluster_local_layout_and_strategy_checks():
    jobs = cluster_local.cluster_jobs(workers=2, ps=2)
    assert [len(jobs[j]) for j in ("chief", "worker", "ps")] == [1, 2, 2]
    mw = cluster_local.cluster_jobs(workers=3, ps=0)
    assert set(mw) == {"chief", "worker"} and len(mw["worker"]) == 2  # the chief is one of 3
    assert set(cluster_local.cluster_jobs(workers=1, ps=0)) == {"chief"}
    addresses = [address for group in jobs.values() for address in group]
    assert len(set(addresses)) == 5 and all(a.startswith("127.0.0.1:") for a in addresses)
    with pytest.raises(ConfigError, match="--workers must be at least 1"):
        cluster_local.cluster_jobs(workers=0, ps=1)
    with pytest.raises(ConfigError, match="--ps needs train_distribute PSStrategy, the config "
                                          "has NoStrategy; pass --set"):
        cluster_local.check_strategy("NoStrategy", 2, 2)
    with pytest.raises(ConfigError, match="2 workers need train_distribute "
                                          "MultiWorkerMirroredStrategy"):
        cluster_local.check_strategy("NoStrategy", 2, 0)
    with pytest.raises(ConfigError, match="PSStrategy needs --ps"):
        cluster_local.check_strategy("PSStrategy", 2, 0)
    cluster_local.check_strategy("MultiWorkerMirroredStrategy", 2, 0)
    cluster_local.check_strategy("PSStrategy", 2, 1)
