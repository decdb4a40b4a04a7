"""The demonstration store: round trips, durability under kill -9, one clear error per bad input."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import gymnasium as gym
import numpy as np
import pytest

from protege.data.episode import LEARNER, Episode
from protege.data.store import Store
from protege.errors import DataError

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = gym.spaces.Discrete(4)
BOX_ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def make_episode(t=5, seed=0, act_space=ACT, **kw):
    rng = np.random.default_rng(seed)
    if isinstance(act_space, gym.spaces.Discrete):
        actions = rng.integers(0, act_space.n, t)
    else:
        actions = rng.uniform(-1, 1, (t, *act_space.shape)).astype(np.float32)
    return Episode(
        obs=rng.normal(size=(t + 1, 3)).astype(np.float32),
        actions=actions,
        rewards=rng.normal(size=t).astype(np.float32),
        terminated=True,
        **kw,
    )


def test_round_trip_keeps_every_field(tmp_path):
    eps = [make_episode(5, 0), make_episode(7, 1, round=2), make_episode(3, 2)]
    eps[1] = Episode(
        obs=eps[1].obs,
        actions=eps[1].actions,
        rewards=eps[1].rewards,
        executed=(eps[1].actions + 1) % 4,
        actor=np.full(7, LEARNER, np.uint8),
        labeled=np.array([1, 0, 1, 0, 1, 1, 0], bool),
        round=2,
    )
    with Store.create(tmp_path / "s", OBS, ACT, task="toy") as store:
        store.extend(eps)
    store = Store.open(tmp_path / "s")
    assert len(store) == 3 and store.n_transitions == 15 and store.task == "toy"
    assert store.n_labels == 5 + 4 + 3
    data = store.transitions()
    np.testing.assert_array_equal(data.obs[5:12], eps[1].obs[:-1])  # final obs dropped
    np.testing.assert_array_equal(data.actions[:5], eps[0].actions)
    np.testing.assert_array_equal(data.executed[5:12], eps[1].executed)
    np.testing.assert_array_equal(data.labeled[5:12], eps[1].labeled)
    np.testing.assert_array_equal(data.actor[5:12], LEARNER)
    np.testing.assert_array_equal(data.rounds, [0, 2, 0])
    np.testing.assert_array_equal(data.episode_starts, [0, 5, 12])
    back = list(store.episodes())
    np.testing.assert_array_equal(back[2].obs, eps[2].obs)  # final obs kept here
    assert back[1].round == 2


def test_reopen_appends_and_checks_spaces(tmp_path):
    Store.create(tmp_path / "s", OBS, ACT).append(make_episode())
    with Store.create(tmp_path / "s", OBS, ACT, exist_ok=True) as store:
        store.append(make_episode(seed=3))
    assert len(Store.open(tmp_path / "s")) == 2
    with pytest.raises(DataError, match="action space"):
        Store.create(tmp_path / "s", OBS, gym.spaces.Discrete(3), exist_ok=True)
    with pytest.raises(
        DataError,
        match=r"observation space \(Box float32 \(3,\) in \[-inf, inf\]\) does not match "
        r"the task's \(Box float32 \(2,\)",
    ):
        Store.create(
            tmp_path / "s", gym.spaces.Box(-np.inf, np.inf, (2,), np.float32), ACT, exist_ok=True
        )
    with pytest.raises(DataError, match="already exists"):
        Store.create(tmp_path / "s", OBS, ACT)


def test_one_writer_at_a_time(tmp_path):
    store = Store.create(tmp_path / "s", OBS, ACT)
    with pytest.raises(DataError, match="another process is writing"):
        Store.open(tmp_path / "s", writable=True)
    store.close()
    Store.open(tmp_path / "s", writable=True).close()


def test_torn_append_is_dropped_and_cut_off(tmp_path):
    """What a crash mid-append leaves (partial rows, an index line without newline) is ignored."""
    with Store.create(tmp_path / "s", OBS, ACT) as store:
        store.extend([make_episode(5, 0), make_episode(6, 1)])
    with open(tmp_path / "s" / "obs.bin", "ab") as f:
        f.write(b"\x01" * 30)
    with open(tmp_path / "s" / "episodes.jsonl", "a") as f:
        f.write('{"length": 4, "rou')
    assert len(Store.open(tmp_path / "s")) == 2
    assert len(Store.open(tmp_path / "s").transitions()) == 11
    with Store.open(tmp_path / "s", writable=True) as store:  # cuts the stray bytes off
        store.append(make_episode(4, 2))
    data = Store.open(tmp_path / "s").transitions()
    assert len(data) == 15
    np.testing.assert_array_equal(data.obs[11:], make_episode(4, 2).obs[:-1])


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np, gymnasium as gym
    from protege.data.store import Store
    from protege.data.episode import Episode
    store = Store.create(sys.argv[1], gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
                         gym.spaces.Discrete(4))
    rng = np.random.default_rng(0)
    i = 0
    while True:
        t = 200
        store.append(Episode(obs=np.full((t + 1, 3), i, np.float32),
                             actions=rng.integers(0, 4, t), rewards=np.ones(t, np.float32)))
        i += 1
        print(i, flush=True)
    """
)


def test_kill_9_during_collection_loses_at_most_the_episode_in_flight(tmp_path):
    path = tmp_path / "s"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    committed = 0
    deadline = time.time() + 60
    while committed < 20 and time.time() < deadline:
        committed = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert committed >= 20
    store = Store.open(path)
    # Every episode reported as appended is there, plus at most the one that was being written.
    assert committed <= len(store) <= committed + 1
    data = store.transitions()  # CRC-checked: nothing torn is read
    assert len(data) == 200 * len(store)
    np.testing.assert_array_equal(data.obs[::200, 0], np.arange(len(store)))
    with Store.open(path, writable=True) as w:
        w.append(make_episode(200, 9))
    assert len(Store.open(path)) == len(store) + 1


# ----------------------------------------------------------------------------- bad input
def test_missing_store(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        Store.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"meta\.json: missing"):
        Store.open(tmp_path / "empty")


def test_corrupt_meta(tmp_path):
    Store.create(tmp_path / "s", OBS, ACT).close()
    (tmp_path / "s" / "meta.json").write_text("{not json")
    with pytest.raises(DataError, match=r"meta\.json: corrupt JSON"):
        Store.open(tmp_path / "s")
    (tmp_path / "s" / "meta.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(DataError, match="not a protege store"):
        Store.open(tmp_path / "s")


def test_corrupt_index_line(tmp_path):
    with Store.create(tmp_path / "s", OBS, ACT) as store:
        store.extend([make_episode(), make_episode(seed=1)])
    lines = (tmp_path / "s" / "episodes.jsonl").read_text().splitlines()
    (tmp_path / "s" / "episodes.jsonl").write_text("garbage\n" + lines[1] + "\n")
    with pytest.raises(DataError, match=r"episodes\.jsonl: line 1 is corrupt"):
        Store.open(tmp_path / "s")


def test_truncated_data_file(tmp_path):
    with Store.create(tmp_path / "s", OBS, ACT) as store:
        store.append(make_episode(10))
    os.truncate(tmp_path / "s" / "actions.bin", 8)
    with pytest.raises(DataError, match=r"actions\.bin: truncated"):
        Store.open(tmp_path / "s").transitions()


def test_flipped_byte_is_caught_by_crc(tmp_path):
    with Store.create(tmp_path / "s", OBS, ACT) as store:
        store.extend([make_episode(10), make_episode(10, 1)])
    raw = bytearray((tmp_path / "s" / "obs.bin").read_bytes())
    raw[-5] ^= 0xFF
    (tmp_path / "s" / "obs.bin").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"obs\.bin: episode 1 is corrupt"):
        Store.open(tmp_path / "s").transitions()


def test_missing_data_file(tmp_path):
    with Store.create(tmp_path / "s", OBS, ACT) as store:
        store.append(make_episode())
    (tmp_path / "s" / "rewards.bin").unlink()
    with pytest.raises(DataError, match=r"rewards\.bin: missing"):
        Store.open(tmp_path / "s").transitions()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("obs", np.zeros((6, 4), np.float32), r"observations have shape \(4,\)"),
        ("obs", np.full((6, 3), np.nan, np.float32), "observations contain NaN or inf"),
        ("obs", np.full((6, 3), np.inf, np.float32), "observations contain NaN or inf"),
        ("obs", np.array([["a"] * 3] * 6), "observations have dtype <U1"),
        ("actions", np.array([0, 1, 2, 3, 4]), r"actions outside the space's range \[0, 4\)"),
        ("actions", np.array([0.5, 1, 2, 3, 0]), "actions have dtype float64; expected integers"),
        ("rewards", np.array([0, 1, np.nan, 0, 0], np.float32), "rewards contain NaN or inf"),
    ],
)
def test_bad_episode_is_refused_with_a_clear_error(tmp_path, field, value, message):
    ep = make_episode(5)
    kw = {"obs": ep.obs, "actions": ep.actions, "rewards": ep.rewards, field: value}
    with Store.create(tmp_path / "s", OBS, ACT) as store:
        with pytest.raises(
            DataError, match=rf"episode 0: {message}" if field != "rewards" else message
        ):
            store.append(Episode(**kw))
        assert len(store) == 0
    assert len(Store.open(tmp_path / "s")) == 0


def test_box_actions_checked_for_shape_and_nan(tmp_path):
    with Store.create(tmp_path / "s", OBS, BOX_ACT) as store:
        store.append(make_episode(4, act_space=BOX_ACT))
        with pytest.raises(DataError, match=r"actions have shape \(3,\)"):
            store.append(make_episode(4, act_space=gym.spaces.Box(-1, 1, (3,))))
        bad = make_episode(4, act_space=BOX_ACT)
        actions = bad.actions.copy()
        actions[2, 1] = np.nan
        with pytest.raises(DataError, match=r"actions contain NaN or inf \(first at step 2\)"):
            store.append(Episode(obs=bad.obs, actions=actions, rewards=bad.rewards))


def test_inconsistent_episode_lengths():
    with pytest.raises(DataError, match="obs has 5 rows; expected T\\+1 = 6"):
        Episode(obs=np.zeros((5, 3)), actions=np.zeros(5), rewards=np.zeros(5))
    with pytest.raises(DataError, match="at least one step"):
        Episode(obs=np.zeros((1, 3)), actions=np.zeros(0), rewards=np.zeros(0))


def test_empty_store_cannot_be_trained_on(tmp_path):
    Store.create(tmp_path / "s", OBS, ACT).close()
    with pytest.raises(DataError, match="the store is empty"):
        Store.open(tmp_path / "s").transitions()


def test_read_only_store_refuses_appends(tmp_path):
    Store.create(tmp_path / "s", OBS, ACT).close()
    with pytest.raises(DataError, match="read-only"):
        Store.open(tmp_path / "s").append(make_episode())
