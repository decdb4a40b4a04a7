"""A fleet's robots on Ray workers (protege.rollout.fleet_shards on RayWorkers), on one local
Ray bound to 127.0.0.1: the local fleet's numbers with 1 and 2 workers, and after a worker is
SIGKILLed mid-episode. Slow (starting Ray takes 15-20 s here); test_fleet_shards.py tests the
same logic with workers in this process, fast. Ray is stopped with ``ray.shutdown()``, never
``ray stop``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes import killer_plugin, round_numbers
from protege import tasks
from protege.rollout.ray_workers import RayWorkers, start_local
from test_fleet import _small_run
from test_fleet_shards import _local, _same_steps, _simulate

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def killer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plugin task, ``killer-pole`` (CartPole, 200 steps), whose env SIGKILLs the Ray
    worker running it once, at that worker's 150th env step."""
    folder = tmp_path_factory.mktemp("killer")
    return killer_plugin(folder, "killer-pole", "cartpole", "CartPole-v1", at=150, horizon=200)


@pytest.fixture(scope="module")
def workers(killer: Path) -> Iterator[RayWorkers]:
    """Two workers on one local Ray (2 CPUs) for the module, on 127.0.0.1."""
    temp = start_local(2)
    try:
        with RayWorkers(2) as w:
            yield w
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


class _Two:
    """The first ``n`` of ``workers`` (a fleet holds a shard on each)."""

    def __init__(self, workers: RayWorkers, n: int):
        self.inner, self.n = workers, n

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_robots_on_one_and_two_ray_workers_run_the_local_fleet(workers: RayWorkers) -> None:
    local, seen = _local()
    for n in (1, 2):
        remote, seen_remote = _simulate(_Two(workers, n))
        assert remote == local, n
        _same_steps(seen, seen_remote)


def test_a_killed_ray_worker_costs_its_robots_episodes_in_flight_only(
    workers: RayWorkers, killer: Path
) -> None:
    task = tasks.make("killer-pole")
    local, seen = _simulate(task=task)
    pids, lost = list(workers.pids), workers.lost
    remote, seen_remote = _simulate(workers, task=task)
    assert int(killer.read_text()) in pids  # a worker, not this process, was killed
    assert workers.lost == lost + 1
    assert remote == local
    _same_steps(seen, seen_remote)


def test_fleet_dagger_rounds_on_ray_workers_give_the_local_run(
    workers: RayWorkers, tmp_path: Path
) -> None:
    local = _small_run(tmp_path / "local", rounds=1)
    remote = _small_run(tmp_path / "remote", rounds=1, workers=workers)
    assert round_numbers(remote) == round_numbers(local)
    assert remote.rows[-1].extras == local.rows[-1].extras
