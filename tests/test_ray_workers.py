"""Rollouts on Ray workers (protege.rollout.ray_workers), on one local Ray cluster per module,
bound to 127.0.0.1: the same episodes, store and numbers as one process; a worker killed
mid-episode costs only a re-run of its unit, and nothing is committed twice; clear errors.

The cluster is started with ``ray.init(address="local")`` and stopped with ``ray.shutdown()``
(never ``ray stop``, which kills every Ray process on the machine by name).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fakes import TINY_ROUND, killer_plugin, round_numbers
from protege import tasks
from protege.algos import dagger, engine
from protege.configs.policy import PolicyConfig
from protege.data.store import Store
from protege.errors import ConfigError
from protege.policies import Policy
from protege.rollout.collect import collect
from protege.rollout.evaluate import evaluate
from protege.rollout.ray_workers import RayWorkers, _Worker, start_local

ray = pytest.importorskip("ray")
LUNAR = tasks.make("lunarlander")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """One local Ray (2 CPUs) for the module, on 127.0.0.1, in a short temp dir."""
    temp = start_local(2)
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def killer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plugin task, ``killer-lunar``, whose env SIGKILLs the Ray worker running it once,
    at its 120th step (in its first episode) (a marker file records which process died)."""
    folder = tmp_path_factory.mktemp("killer")
    return killer_plugin(folder, "killer-lunar", "lunarlander", "LunarLander-v3", at=120)


@pytest.fixture(scope="module")
def workers(cluster: Any, killer: Path) -> Iterator[RayWorkers]:
    with RayWorkers(2) as w:
        yield w


def _store(path: Path) -> tuple[Any, ...]:
    store = Store.open(path)
    t = store.transitions()
    index = [(e.seed, e.round, e.length, sorted(e.extras.items())) for e in store.index]
    return t.obs, t.actions, t.labeled, index


def _same_store(a: Path, b: Path) -> None:
    for x, y in zip(_store(a), _store(b), strict=True):
        assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y


@pytest.mark.slow  # before the module's `workers` hold both CPUs
def test_a_worker_that_cannot_import_the_plugin_is_a_clear_error(
    cluster: Any, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=PLUGIN_ERROR):
        RayWorkers(1, plugins=[str(tmp_path / "not_on_this_node.py")])


def test_a_killed_worker_reruns_its_unit_and_nothing_is_committed_twice(
    workers: RayWorkers, killer: Path, tmp_path: Path
) -> None:
    task = tasks.make("killer-lunar")
    local = collect(task, tmp_path / "local", 3, n_envs=2, seed=4)
    pids = list(workers.pids)
    remote = collect(task, tmp_path / "ray", 3, n_envs=2, seed=4, workers=workers)
    assert workers.lost == 1
    assert int(killer.read_text()) in pids  # a worker, not this process, was killed
    assert remote.returns == local.returns and remote.labels == local.labels
    _same_store(tmp_path / "local", tmp_path / "ray")


def test_workers_act_with_the_weights_put_once(workers: RayWorkers) -> None:
    """The learner goes to the workers as one object put once per call (not inside each
    unit), and they act with its weights: the same returns as this process."""
    torch.manual_seed(1)
    policy = Policy(PolicyConfig.for_spaces(*LUNAR.spaces, hidden_sizes=(16,)))
    local = evaluate(policy, LUNAR, episodes=3, n_envs=2, seed=5)
    puts = workers.shared_puts
    remote = evaluate(policy, LUNAR, episodes=3, n_envs=2, seed=5, workers=workers)
    assert workers.shared_puts == puts + 1
    assert np.array_equal(remote.returns, local.returns)
    with torch.no_grad():  # other weights, other actions: the workers use the new ones
        for p in policy.parameters():
            p.add_(torch.randn_like(p))
    changed = evaluate(policy, LUNAR, episodes=3, n_envs=2, seed=5, workers=workers)
    assert np.array_equal(changed.returns, evaluate(policy, LUNAR, 3, n_envs=2, seed=5).returns)
    assert not np.array_equal(changed.returns, remote.returns)


@pytest.mark.slow
def test_interactive_rounds_and_evaluation_on_workers_match_one_process(
    workers: RayWorkers, tmp_path: Path
) -> None:
    config = TINY_ROUND
    make_policy = engine.policy_factory(LUNAR, hidden_sizes=(16,))
    local = dagger.run(LUNAR, tmp_path / "a", config, make_policy=make_policy)
    remote = dagger.run(LUNAR, tmp_path / "b", config, make_policy=make_policy, workers=workers)
    assert round_numbers(remote) == round_numbers(local)
    _same_store(tmp_path / "a", tmp_path / "b")


PLUGIN_ERROR = r"a Ray worker on .* cannot load the plugins: plugin .*not_on_this_node.py"


def test_a_worker_that_cannot_import_the_plugin_says_so(tmp_path: Path) -> None:
    """What a worker raises (in this process: fast; through Ray: the next test)."""
    with pytest.raises(ConfigError, match=PLUGIN_ERROR):
        _Worker().setup([str(tmp_path / "not_on_this_node.py")], 1)


class _ThreadUnit:
    """A unit that emits the thread it runs on (and fails with ``error`` if given)."""

    def __init__(self, error: BaseException | None = None):
        self.error = error

    def run(self, emit: Any) -> None:
        import threading

        emit(threading.get_ident())
        if self.error is not None:
            raise self.error


def test_a_worker_runs_every_unit_on_one_thread() -> None:
    """A GL context (MuJoCo's renderer) is current in one thread: a worker that started a
    thread per unit failed with EGL_BAD_ACCESS on camera tasks (in this process: fast)."""
    worker = _Worker()
    threads = [next(iter(worker.run(_ThreadUnit()))) for _ in range(3)]
    assert len(set(threads)) == 1


def test_a_workers_error_that_ray_cannot_send_arrives_as_its_text() -> None:
    """An OpenGL error holds ctypes pointers, which no pickler sends: its text does."""
    import ctypes

    unpicklable = OSError("EGL_BAD_ACCESS", ctypes.pointer(ctypes.c_int(1)))
    with pytest.raises(RuntimeError, match=r"(?s)on a Ray worker: .*OSError.*EGL_BAD_ACCESS"):
        list(_Worker().run(_ThreadUnit(unpicklable)))
    with pytest.raises(ConfigError, match="sent as itself"):
        list(_Worker().run(_ThreadUnit(ConfigError("sent as itself"))))


@pytest.mark.slow
def test_a_worker_without_a_free_cpu_is_a_clear_error(
    workers: RayWorkers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RayWorkers, "start_timeout", 3.0)
    with pytest.raises(ConfigError, match=r"did not start within 3 s: .* 2 CPUs, 0 free"):
        RayWorkers(1)


def test_workers_need_a_cluster_with_the_cpus(workers: RayWorkers) -> None:
    with pytest.raises(ConfigError, match=r"--workers 3: .* has 2 CPUs"):
        RayWorkers(3)
    with pytest.raises(ConfigError, match="at least 1 worker"):
        RayWorkers(0)


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in found:
                found.add(c)
                todo.append(c)
    return found


def test_the_local_clusters_workers_run_at_the_drivers_priority(workers: RayWorkers) -> None:
    """Ray nices its workers by 15 by default; protege's local Ray keeps them at the
    driver's priority, as the rollouts would run in one process."""
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert [os.getpriority(os.PRIO_PROCESS, pid) for pid in workers.pids] == [mine] * workers.n


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_the_local_cluster_listens_on_loopback_only(workers: RayWorkers) -> None:
    ours = _descendants(os.getpid())
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    listening = []
    for line in out.splitlines():
        pids = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if pids & ours:
            listening.append(line.split()[3] + " " + ",".join(re.findall(r"\(\"([^\"]+)\"", line)))
    assert listening, out  # the GCS, the raylet and the workers do listen
    bad = [a for a in listening if not re.match(r"(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]):", a)]
    assert not bad, listening


def test_an_unreachable_ray_address_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    from protege.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    argv = f"collect --task cartpole --out x --ray-address 127.0.0.1:{port} --workers 1"
    assert main(argv.split()) == 2
    err = capsys.readouterr().err
    assert f"--ray-address 127.0.0.1:{port}: no Ray cluster reachable there" in err


CLI_ZERO = "collect --task cartpole --out x --workers 0"


def test_zero_workers_is_a_flag_error(capsys: pytest.CaptureFixture[str]) -> None:
    from protege.cli import main

    assert main(CLI_ZERO.split()) == 2
    assert "--workers: must be an integer in [1, 4096], got '0'" in capsys.readouterr().err


MULTI = textwrap.dedent(
    """
    set -e
    ip link set lo up
    RAY="$(dirname "$PY")/ray"
    export RAY_AUTH_MODE=token   # Ray 2.60's default; every node and the driver share a token
    export RAY_AUTH_TOKEN="$("$PY" -c 'import secrets; print(secrets.token_hex(32))')"
    "$RAY" start --head --port "$PORT" --num-cpus 1 --temp-dir "$TEMP" \\
        --include-dashboard false --disable-usage-stats >/dev/null
    "$RAY" start --address "127.0.0.1:$PORT" --num-cpus 1 --disable-usage-stats >/dev/null
    "$PY" -m protege.cli collect --task lunarlander --out "$OUT" --episodes 4 --n-envs 2 \\
        --seed 6 --ray-address "127.0.0.1:$PORT" --workers 2 --no-progress
    """
)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare")
def test_a_two_node_cluster_in_a_private_network_collects_the_local_episodes(
    tmp_path: Path,
) -> None:
    """A head and a second node on this machine, inside a user, network and PID namespace
    with only ``lo`` (there Ray's address detection finds 127.0.0.1; the loopback switch
    would refuse the second node): every process they start dies with the namespace."""
    temp = tempfile.mkdtemp(prefix="pr-", dir="/tmp")
    env = {
        **os.environ,
        "PY": sys.executable,
        "PORT": "6391",
        "TEMP": temp,
        "OUT": str(tmp_path / "ray"),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    try:
        proc = subprocess.run(
            ["unshare", "-rnpf", "--mount-proc", "sh", "-c", MULTI],
            capture_output=True, text=True, timeout=600, env=env,
        )  # fmt: skip
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    collect(LUNAR, tmp_path / "local", 4, n_envs=2, seed=6)
    _same_store(tmp_path / "local", tmp_path / "ray")
