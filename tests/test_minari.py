"""Minari interop: what protege writes opens with minari.load_dataset, and back."""

import gymnasium as gym
import numpy as np
import pytest

import protege
from protege.cli.exit_codes import BAD_INPUT
from protege.data.minari_io import export_to_minari, import_from_minari
from protege.data.store import Store
from protege.errors import DataError

minari = pytest.importorskip("minari")


def test_export_opens_with_minari_and_imports_back(tmp_path, monkeypatch):
    task = protege.tasks.make("cartpole")
    protege.collect(task, tmp_path / "s", episodes=3, n_envs=2, seed=0)
    store = Store.open(tmp_path / "s")
    export_to_minari(store, "protege/cartpole-expert-v0", root=tmp_path / "minari")

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    dataset = minari.load_dataset("protege/cartpole-expert-v0")
    assert dataset.total_episodes == 3 and dataset.total_steps == store.n_transitions
    first = next(iter(store.episodes()))
    ep = dataset[0]
    np.testing.assert_array_equal(ep.observations, first.obs)
    np.testing.assert_array_equal(ep.actions, first.actions)
    assert dataset.recover_environment().spec.id == "CartPole-v1"

    back = import_from_minari("protege/cartpole-expert-v0", tmp_path / "back", task="cartpole")
    a, b = store.transitions(), back.transitions()
    np.testing.assert_array_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.rewards, b.rewards)


def test_a_dataset_written_by_minari_itself_loads(tmp_path, monkeypatch):
    from minari.data_collector import EpisodeBuffer

    rng = np.random.default_rng(0)
    obs_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    act_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    buffers = [
        EpisodeBuffer(
            id=i,
            observations=list(rng.uniform(-1, 1, (11, 3)).astype(np.float32)),
            actions=list(rng.uniform(-1, 1, (10, 2)).astype(np.float32)),
            rewards=list(rng.normal(size=10)),
            terminations=[False] * 9 + [True],
            truncations=[False] * 10,
        )
        for i in range(4)
    ]
    with monkeypatch.context() as m:
        m.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
        m.setattr("warnings.warn", lambda *a, **k: None)  # minari's metadata reminders
        minari.create_dataset_from_buffers(
            "someone/toy-v0", buffers, observation_space=obs_space, action_space=act_space
        )
    store = import_from_minari("someone/toy-v0", tmp_path / "s", root=tmp_path / "minari")
    data = store.transitions()
    assert len(store) == 4 and len(data) == 40 and data.labeled.all()
    assert data.actions.shape == (40, 2)


def test_missing_minari_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="cannot open Minari dataset 'nobody/nothing-v0'"):
        import_from_minari("nobody/nothing-v0", tmp_path / "s", root=tmp_path / "minari")


def test_cli_export_then_import(tmp_path, capsys):
    from protege.cli import main

    protege.collect(protege.tasks.make("cartpole"), tmp_path / "s", episodes=2, seed=0)
    root = str(tmp_path / "minari")
    assert main(["export", str(tmp_path / "s"), "me/cp-v0", "--root", root]) == 0
    assert main(["import", "me/cp-v0", "--out", str(tmp_path / "back"), "--root", root]) == 0
    assert Store.open(tmp_path / "back").n_transitions == Store.open(tmp_path / "s").n_transitions
    assert main(["import", "me/none-v0", "--out", str(tmp_path / "x"), "--root", root]) == BAD_INPUT
    assert "cannot open Minari dataset 'me/none-v0'" in capsys.readouterr().err
