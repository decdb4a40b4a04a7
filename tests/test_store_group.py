"""Group commit (protege.data.store_commit): a group of episodes is on disk after one fsync
per file, counted only then; a crash before the commit leaves the store as it was."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from fakes import ACT, OBS, make_episode
from protege.data import store as store_module
from protege.data.episode import Episode
from protege.data.store import Store
from protege.errors import DataError

CAM = gym.spaces.Box(0, 255, (6, 5, 3), np.uint8)
PARTS = gym.spaces.Dict({"cam": CAM, "state": gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)})


def camera_episode(t: int, seed: int) -> Episode:
    """Camera frames (stored compressed, at offsets that follow the group's earlier
    episodes) and a state vector."""
    rng = np.random.default_rng(seed)
    obs = {
        "cam": rng.integers(0, 256, (t + 1, 6, 5, 3), dtype=np.uint8),
        "state": rng.normal(size=(t + 1, 4)).astype(np.float32),
    }
    return Episode(obs=obs, actions=rng.integers(0, 4, t), rewards=np.ones(t, np.float32))


class Crash(Exception):
    """Stands for the driver killed while it commits."""


def _snapshot(path: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(path.iterdir()) if f.is_file()}


@pytest.mark.parametrize("space", ["box", "parts"])
def test_a_group_is_durable_after_one_fsync_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, space: str
) -> None:
    make = make_episode if space == "box" else camera_episode
    episodes = [make(t, seed) for seed, t in enumerate((4, 6, 3))]
    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd))[1])
    with Store.create(tmp_path / "s", OBS if space == "box" else PARTS, ACT) as store:
        files = len([f for f in (tmp_path / "s").iterdir() if f.name not in ("meta.json", ".lock")])
        fsyncs.clear()
        store.append_group(episodes)
        assert len(fsyncs) == files and len(store) == 3  # each file once, the index last
        fsyncs.clear()
        store.extend(episodes)  # one commit per episode
        assert len(fsyncs) == 3 * files
    again = Store.open(tmp_path / "s", writable=True)  # verifies every episode
    assert [e.length for e in again.index] == [4, 6, 3] * 2
    for got, want in zip(again.episodes(), episodes * 2, strict=True):
        for name in ["cam", "state"] if space == "parts" else [None]:
            a, b = (got.obs, want.obs) if name is None else (got.obs[name], want.obs[name])
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(got.actions, want.actions)


def _crash_on_index(monkeypatch: pytest.MonkeyPatch, keep: float) -> None:
    """The next commit writes its rows, then ``keep`` of its index lines' bytes, and dies."""
    real = store_module._append_durably

    def dies(path: Path, data: bytes) -> None:
        if path.name == "episodes.jsonl":
            real(path, data[: int(len(data) * keep)])
            raise Crash
        real(path, data)

    monkeypatch.setattr(store_module, "_append_durably", dies)


def test_a_crash_before_the_commit_leaves_the_store_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s"
    with Store.create(path, PARTS, ACT) as store:
        store.append_group([camera_episode(3, 0), camera_episode(2, 1)])
    before = _snapshot(path)
    store = Store.open(path, writable=True)
    _crash_on_index(monkeypatch, keep=0.0)
    with pytest.raises(Crash):
        store.append_group([camera_episode(5, 2), camera_episode(4, 3)])
    assert len(store) == 2  # nothing of the group was counted
    store.close()
    monkeypatch.undo()
    assert _snapshot(path)["obs.cam.bin"] != before["obs.cam.bin"]  # its rows were written
    with Store.open(path, writable=True) as again:  # ... and are cut off here
        assert len(again) == 2
    assert _snapshot(path) == before
    with Store.open(path, writable=True) as again:
        again.append_group([camera_episode(5, 2)])
    assert len(Store.open(path)) == 3 and Store.open(path).transitions().labeled.size == 10


def test_a_crash_mid_commit_keeps_whole_episodes_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half of the group's index lines reached the disk: the first whole lines' episodes
    are there (their rows were durable before), the torn line's is not."""
    path = tmp_path / "s"
    store = Store.create(path, OBS, ACT)
    store.append(make_episode(2, 9))
    _crash_on_index(monkeypatch, keep=0.5)
    with pytest.raises(Crash):
        store.append_group([make_episode(3, seed) for seed in range(4)])
    store.close()
    monkeypatch.undo()
    with Store.open(path, writable=True) as again:
        kept = len(again)
        data = again.transitions()  # every counted episode verifies
    assert 1 < kept < 5 and len(data.episode_lengths) == kept
    assert (path / "episodes.jsonl").read_bytes().endswith(b"\n")  # the torn line is gone


def test_a_bad_episode_fails_the_group_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with Store.create(path, OBS, ACT) as store:
        store.append(make_episode(2, 0))
        before = _snapshot(path)
        bad = make_episode(3, 1)
        bad.rewards[1] = np.nan
        with pytest.raises(DataError, match="episode 2: rewards contain NaN"):
            store.append_group([make_episode(3, 0), bad])
        assert len(store) == 1
    assert _snapshot(path) == before


def test_the_driver_counts_a_group_once_it_is_on_disk(tmp_path: Path) -> None:
    from protege.rollout.remote import GroupCommit

    seen: list[Any] = []
    with Store.create(tmp_path / "s", OBS, ACT) as store:
        group = GroupCommit(store)
        for seed in range(3):
            group.add(make_episode(2, seed), lambda i: seen.append((i, len(store))))
        assert seen == [] and len(store) == 0
        group.flush()
        group.flush()  # nothing held: no commit
    assert seen == [(0, 3), (1, 3), (2, 3)] and group.groups == 1
