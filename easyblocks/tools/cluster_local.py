"""`easyblocks cluster-local`: a whole cluster as processes on this machine, for trying a
distributed config and for tests (not for production: see README, "Training on a cluster").

Each process is `easyblocks train` with its own TF_CONFIG on 127.0.0.1 ports that were
free when the cluster was laid out. Their output is streamed with a role prefix
("[worker 1] ..."). The first process that fails stops all the others; so does the end of
the chief under PSStrategy (the worker and ps tasks serve until stopped) and Ctrl-C.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack

from easyblocks.errors import ConfigError

STOP_GRACE_SECONDS = 10.0


def free_ports(count: int) -> list[int]:
    """`count` distinct ports on 127.0.0.1 that are free now (held open together so that
    they differ, then released for the processes to bind)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
        return ports


def cluster_jobs(workers: int, ps: int) -> dict[str, list[str]]:
    """TF_CONFIG's cluster: with ps tasks, a chief (the coordinator) plus `workers` workers;
    without, `workers` processes of which the first is the chief."""
    if workers < 1 or ps < 0:
        raise ConfigError("cluster-local: --workers must be at least 1 and --ps at least 0")
    counts = {"chief": 1, "worker": workers if ps else workers - 1, "ps": ps}
    ports = iter(free_ports(sum(counts.values())))
    return {job: [f"127.0.0.1:{next(ports)}" for _ in range(n)]
            for job, n in counts.items() if n}


def check_strategy(strategy: str, workers: int, ps: int) -> None:
    """The config's train_distribute must fit the cluster asked for (one line otherwise)."""
    hint = "pass --set 'train_config {{ train_distribute: {} }}' or change the config"
    if ps and strategy != "PSStrategy":
        raise ConfigError(f"cluster-local: --ps needs train_distribute PSStrategy, the config "
                          f"has {strategy}; {hint.format('PSStrategy')}")
    if not ps and strategy == "PSStrategy":
        raise ConfigError("cluster-local: PSStrategy needs --ps (parameter server tasks)")
    if not ps and workers > 1 and strategy != "MultiWorkerMirroredStrategy":
        raise ConfigError(f"cluster-local: {workers} workers need train_distribute "
                          f"MultiWorkerMirroredStrategy (or PSStrategy with --ps), the config "
                          f"has {strategy}; {hint.format('MultiWorkerMirroredStrategy')}")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child is killed when cluster-local dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LocalCluster:
    """Starts, watches and stops the processes of one local cluster."""

    def __init__(self, train_args: list[str], jobs: dict[str, list[str]], out=None,
                 environ=None):
        self.train_args = list(train_args)
        self.jobs = jobs
        self.out = out or sys.stdout
        self.environ = dict(os.environ if environ is None else environ)
        self.procs: dict[str, subprocess.Popen] = {}
        self.lines: queue.Queue = queue.Queue()
        self.readers: list[threading.Thread] = []

    def start(self) -> None:
        for job, addresses in self.jobs.items():
            for index in range(len(addresses)):
                name = f"{job} {index}" if job != "chief" else "chief"
                tf_config = {"cluster": self.jobs, "task": {"type": job, "index": index}}
                env = dict(self.environ, TF_CONFIG=json.dumps(tf_config), PYTHONUNBUFFERED="1")
                env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
                proc = subprocess.Popen(
                    [sys.executable, "-m", "easyblocks.cli", "train", *self.train_args],
                    env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                    bufsize=1, preexec_fn=_die_with_parent if sys.platform == "linux" else None)
                self.procs[name] = proc
                print(f"cluster-local: {name} at {addresses[index]}, pid {proc.pid}",
                      file=self.out, flush=True)
                reader = threading.Thread(target=self._read, args=(name, proc), daemon=True)
                reader.start()
                self.readers.append(reader)

    def _read(self, name: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.put(f"[{name}] {line.rstrip()}")

    def _print_pending(self) -> None:
        while True:
            try:
                print(self.lines.get_nowait(), file=self.out, flush=True)
            except queue.Empty:
                return

    def wait(self) -> int:
        """Streams output until the job ends; returns its exit status: the first failure's,
        else 0 once the chief (and, without ps, every worker) has finished."""
        servers = {n for n in self.procs if n.startswith(("ps ", "worker "))} \
            if "ps" in self.jobs else set()
        while True:
            try:
                print(self.lines.get(timeout=0.2), file=self.out, flush=True)
            except queue.Empty:
                pass
            for name, proc in self.procs.items():
                rc = proc.poll()
                if rc is None:
                    continue
                if rc != 0 or name in servers:
                    self._drain(name)
                    why = f"exit status {rc}" if rc >= 0 else f"signal {-rc}"
                    print(f"cluster-local: {name} stopped ({why}); stopping the cluster",
                          file=self.out, flush=True)
                    return rc if rc != 0 else 1
            if all(p.poll() is not None for n, p in self.procs.items() if n not in servers):
                self._drain(None)
                return 0

    def _drain(self, name: str | None) -> None:
        """Prints what the finished process(es) wrote last."""
        for reader, proc_name in zip(self.readers, self.procs):
            if name is None or proc_name == name:
                reader.join(timeout=5)
        self._print_pending()

    def stop(self) -> None:
        """Stops every process still running: SIGTERM, then SIGKILL after a grace period."""
        running = [p for p in self.procs.values() if p.poll() is None]
        for p in running:
            p.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for p in running:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self._drain(None)


def run(train_args: list[str], strategy: str, workers: int, ps: int, out=None) -> int:
    """Runs `easyblocks train train_args` as a local cluster; returns the exit status."""
    check_strategy(strategy, workers, ps)
    jobs = cluster_jobs(workers, ps)
    out = out or sys.stdout
    cluster = LocalCluster(train_args, jobs, out)
    try:
        cluster.start()
        return cluster.wait()
    finally:
        cluster.stop()
