"""The demonstration store: round trips, durability under kill -9, one clear error per bad input."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import zlib

import gymnasium as gym
import numpy as np
import pytest

import protege
from fakes import ACT, BOX_ACT, OBS, kill_after_appends, make_episode
from protege.data.episode import LEARNER, Episode
from protege.data.store import FIELDS, Store
from protege.errors import DataError
from protege.rollout.collect import collect


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
        extras={"success": 1.0, "queries": 4.0},
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
    assert back[1].extras == {"success": 1.0, "queries": 4.0} and back[0].extras == {}


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
    committed = kill_after_appends(KILL_SCRIPT, path, at_least=20)
    store = Store.open(path)
    # Every episode reported as appended is there, plus at most the one that was being written.
    assert committed <= len(store) <= committed + 1
    data = store.transitions()  # CRC-checked: nothing torn is read
    assert len(data) == 200 * len(store)
    np.testing.assert_array_equal(data.obs[::200, 0], np.arange(len(store)))
    with Store.open(path, writable=True) as w:
        w.append(make_episode(200, 9))
    assert len(Store.open(path)) == len(store) + 1


# ------------------------------------------------------ kill -9 of a real `protege collect`
COLLECT = ["--task", "lunarlander", "--episodes", "60", "--n-envs", "4", "--seed", "0"]
"""LunarLander: episodes of different lengths end at different times on the 4 sub-envs."""

TEAR = textwrap.dedent(
    """
    # `protege collect` that SIGKILLs itself halfway through writing one file of one append.
    import os, signal, sys
    from protege.data import store

    target, after, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    write = store._append_durably

    def torn(path, data):
        if path.name == target and len(store._read_index(path.parent / "episodes.jsonl")) == after:
            write(path, data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        write(path, data)

    store._append_durably = torn
    from protege.cli import main
    sys.exit(main(argv))
    """
)


@pytest.fixture(scope="module")
def lunar_reference(tmp_path_factory):
    """The uninterrupted collection the killed ones are compared with: its files' bytes and
    where each episode's rows end in them."""
    path = tmp_path_factory.mktemp("reference") / "s"
    args = dict(zip(COLLECT[::2], COLLECT[1::2], strict=True))
    collect(
        protege.tasks.make(args["--task"]),
        path,
        episodes=int(args["--episodes"]),
        n_envs=int(args["--n-envs"]),
        seed=int(args["--seed"]),
    )
    lengths = np.array([e.length for e in Store.open(path).index])
    files, ends, row_bytes = {}, {}, {}
    for name in FIELDS:
        files[name] = (path / f"{name}.bin").read_bytes()
        rows = lengths + 1 if name == "obs" else lengths
        row_bytes[name] = len(files[name]) // int(rows.sum())
        ends[name] = np.concatenate([[0], np.cumsum(rows)]) * row_bytes[name]
    return {"files": files, "ends": ends, "row_bytes": row_bytes, "n": len(lengths)}


def _committed_lines(path) -> int:
    index = path / "episodes.jsonl"
    return index.read_bytes().count(b"\n") if index.exists() else 0


def _check_killed_collection(path, ref, seen: int) -> dict[str, int]:
    """What a kill -9 may leave, checked against the uninterrupted run; returns the stray
    bytes per file.

    The store opens; it holds, byte for byte, the first K episodes of the uninterrupted run,
    K ≥ ``seen`` (every episode committed before the kill survives, CRC-checked and with the
    length and return of its index line); past them lie at most part of the rows of episode K,
    the one being written. So only the episodes in flight (at most one per sub-env) are lost.
    """
    store = Store.open(path)
    k = len(store)
    assert seen <= k < ref["n"], (seen, k)
    store.transitions()  # every committed episode's CRC32 checked
    for entry, ep in zip(store.index, store.episodes(), strict=True):
        assert len(ep) == entry.length
        assert ep.episode_return == pytest.approx(entry.episode_return, rel=1e-6, abs=1e-6)
    strays = {}
    for name in FIELDS:
        have, want = (path / f"{name}.bin").read_bytes(), ref["files"][name]
        end, next_end = ref["ends"][name][k], ref["ends"][name][k + 1]
        assert have[:end] == want[:end], f"{name}.bin: a committed episode differs"
        assert len(have) <= next_end, f"{name}.bin: more than the episode in flight"
        assert have[end:] == want[end : len(have)], f"{name}.bin: stray bytes are not episode {k}'s"
        strays[name] = len(have) - end
    return strays


def _check_append_after_kill(path, ref) -> None:
    """Appending opens the store for writing, which cuts the stray bytes off; the new episodes
    follow the old ones and everything loads."""
    k = len(Store.open(path))
    collect(protege.tasks.make("lunarlander"), path, episodes=2, n_envs=2, seed=99)
    store = Store.open(path)
    assert len(store) == k + 2
    new_rows = sum(e.length for e in store.index[k:])
    for name in FIELDS:
        have, end = (path / f"{name}.bin").read_bytes(), ref["ends"][name][k]
        assert have[:end] == ref["files"][name][:end]
        rows = new_rows + 2 * (name == "obs")  # obs: one more row per episode
        assert len(have) == end + rows * ref["row_bytes"][name], f"{name}.bin: stray bytes kept"
    data = store.transitions()
    assert len(data) == store.n_transitions
    assert (path / "episodes.jsonl").read_bytes().endswith(b"\n")


def test_kill_9_of_protege_collect_at_a_random_moment(tmp_path, lunar_reference):
    """A real `protege collect` with 4 sub-envs, SIGKILLed at an arbitrary moment."""
    path, log = tmp_path / "s", tmp_path / "stderr.txt"
    rng = np.random.default_rng()
    at_least, delay = int(rng.integers(4, 30)), float(rng.uniform(0.0, 0.03))
    moment = f"killed after {at_least} stored episodes + {delay:.3f} s"
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "protege.cli", "collect", "--out", str(path), *COLLECT],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.time() + 60
        while _committed_lines(path) < at_least:
            assert proc.poll() is None, (moment, log.read_text())
            assert time.time() < deadline, moment
            time.sleep(0.001)
        time.sleep(delay)
        seen = _committed_lines(path)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, f"collection ended before the kill ({moment})"
    _check_killed_collection(path, lunar_reference, seen)
    _check_append_after_kill(path, lunar_reference)


@pytest.mark.parametrize("target", ["obs.bin", "rewards.bin", "episodes.jsonl"])
def test_kill_9_of_protege_collect_mid_append(tmp_path, lunar_reference, target):
    """`protege collect` killed halfway through writing ``target`` for its 7th episode: the
    first file of an append, one in the middle, and the index line that commits it."""
    path = tmp_path / "s"
    proc = subprocess.run(
        [sys.executable, "-c", TEAR, target, "6", "collect", "--out", str(path), *COLLECT],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    strays = _check_killed_collection(path, lunar_reference, seen=6)
    assert len(Store.open(path)) == 6
    written = FIELDS if target == "episodes.jsonl" else FIELDS[: FIELDS.index(target[:-4]) + 1]
    assert [name for name in FIELDS if strays[name]] == list(written)
    if target == "episodes.jsonl":
        assert not (path / "episodes.jsonl").read_bytes().endswith(b"\n")  # a torn line
    _check_append_after_kill(path, lunar_reference)


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


def _poison(path, field, episode, row, value):
    """Write ``value`` into row ``row`` of ``episode`` in ``field.bin`` and recompute that
    episode's CRC32, as a store written by another tool might hold it: only the finiteness
    check at load can catch it."""
    from protege.data.store import FIELDS

    store = Store.open(path)
    shape, dtype = store._layout[field]
    index = store.index
    rows = [e.length + (field == "obs") for e in index]
    values = np.fromfile(path / f"{field}.bin", dtype).reshape(-1, *shape)
    start = sum(rows[:episode])
    values[start + row] = value
    values.tofile(path / f"{field}.bin")
    part = values[start : start + rows[episode]]
    crc = list(index[episode].crc)
    crc[FIELDS.index(field)] = zlib.crc32(part.tobytes())
    index[episode] = dataclasses.replace(index[episode], crc=tuple(crc))
    (path / "episodes.jsonl").write_bytes(b"".join(e.to_line() for e in index))


@pytest.mark.parametrize(
    ("field", "value", "row"),
    [
        ("obs", np.nan, 2),
        ("obs", np.inf, 5),  # the final observation of the episode is checked too
        ("actions", np.nan, 0),
        ("executed", -np.inf, 3),
        ("rewards", np.nan, 1),
        ("rewards", np.inf, 4),
    ],
)
def test_nan_or_inf_in_a_stored_field_is_refused_at_load(tmp_path, field, value, row):
    path = tmp_path / "s"
    with Store.create(path, OBS, BOX_ACT) as store:
        store.extend([make_episode(5, seed, act_space=BOX_ACT) for seed in range(3)])
    _poison(path, field, 1, row, value)
    message = rf"{re.escape(str(path / field))}\.bin: episode 1 contains NaN or inf "
    message += rf"\(first at row {row}\)"
    with pytest.raises(DataError, match=message):
        Store.open(path).transitions()
    with pytest.raises(DataError, match=message):
        list(Store.open(path).episodes())


# ------------------------------------------------------------------------ reproducibility
def _collected(path):
    """Everything a seeded collection decides, episode by episode."""
    store = Store.open(path)
    eps = list(store.episodes())
    return {
        "lengths": [len(e) for e in eps],
        "obs": np.concatenate([e.obs for e in eps]),
        "actions": np.concatenate([e.actions for e in eps]),
        "rewards": np.concatenate([e.rewards for e in eps]),
        "returns": [e.episode_return for e in store.index],
    }


def test_collection_with_the_same_seed_gives_the_same_store(tmp_path):
    task = protege.tasks.make("lunarlander")
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        collect(task, tmp_path / name, episodes=5, n_envs=3, seed=seed)
    a, b, c = (_collected(tmp_path / n) for n in "abc")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert a["lengths"] != c["lengths"]
    assert a["returns"] != c["returns"]
    assert not np.array_equal(a["obs"][0], c["obs"][0])  # other initial states


def test_an_episode_head_is_its_first_steps_cut_off(tmp_path):
    ep = Episode(
        obs=np.arange(6 * 3, dtype=np.float32).reshape(6, 3),
        actions=np.array([0, 1, 2, 3, 0]),
        rewards=np.ones(5, np.float32),
        terminated=True,
        actor=np.array([0, 1, 1, 0, 0], np.uint8),
        labeled=np.array([1, 0, 1, 1, 1], bool),
    )
    head = ep.head(3)
    assert len(head) == 3 and head.truncated and not head.terminated
    np.testing.assert_array_equal(head.obs, ep.obs[:4])  # the observation after the cut too
    np.testing.assert_array_equal(head.labeled, [1, 0, 1])
    np.testing.assert_array_equal(head.actor, [0, 1, 1])
    assert head.executed is None and ep.head(5) is ep and ep.head(9) is ep
    with Store.create(tmp_path / "s", OBS, ACT) as store:
        store.append(head)
    assert Store.open(tmp_path / "s").index[0].length == 3
    parts = Episode(obs={"a": ep.obs, "b": ep.obs[:, :1]}, actions=ep.actions, rewards=ep.rewards)
    assert {k: len(v) for k, v in parts.head(2).obs.items()} == {"a": 3, "b": 3}
    with pytest.raises(DataError, match="at least one step"):
        ep.head(0)
