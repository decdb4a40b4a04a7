"""``kill -9`` of a DAgger run at many moments, then ``resume``: the same numbers as a run
that was never interrupted.

A child process runs :func:`protege.algos.dagger.run` on CartPole at toy scale and is
SIGKILLed: from outside once a random number of episodes is stored, or by itself from a hook
at a chosen moment: halfway through writing one file of an episode's append (data or the
index line that commits it), in the middle of training, halfway through writing a
checkpoint, while a freshly checkpointed learner is evaluated, and halfway through writing a
round's row. Each time the store must open with every committed episode equal to the
uninterrupted run's, the episodes lost must all be in flight (one batch of ``n_envs``), and
``run(..., resume=True)`` must reach the uninterrupted run's per-round numbers and store.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fakes import round_numbers
from protege.algos import dagger, engine
from protege.algos.bc import BCConfig
from protege.configs.interactive import DAggerConfig
from protege.data.store import Store
from protege.policies import Policy
from protege.tasks import make

HORIZON = 100
"""Episodes end by 100 steps (CartPole's are 500): a fifth of the env steps, and still both
ways to end, the pole falling (round 0's learner) and the time limit."""
CARTPOLE = dataclasses.replace(make("cartpole"), horizon=HORIZON)
SMALL = {"hidden_sizes": (32, 32)}
CONFIG = DAggerConfig(
    rounds=3,
    episodes_per_round=4,
    initial_demos=1,
    n_envs=2,
    beta="exp:0.5",
    bc=BCConfig(steps=300, batch_size=64, progress=False),
    eval_episodes=8,
    eval_envs=8,
)
"""13 episodes: 1 demonstration (round 0), then 4 per round in batches of 2."""

CHILD = textwrap.dedent(
    """
    # engine.run, SIGKILLed by itself at the moment the case names (or from outside).
    import dataclasses, json, os, signal, sys, threading
    import torch
    torch.set_num_threads(1)
    from protege.algos import dagger, engine
    from protege.configs.interactive import DAggerConfig
    from protege.algos.bc import BCConfig
    from protege.data import store as store_io
    from protege.tasks import make

    path, cfg, case = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    cfg["bc"] = BCConfig(**cfg["bc"])
    config = DAggerConfig(**cfg)
    task = dataclasses.replace(make("cartpole"), horizon=int(sys.argv[4]))
    where, at = case["where"], case.get("round")

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    write = store_io._append_durably

    def torn_append(file, data):
        # Half of one file of the append that follows `after` committed episodes.
        committed = len(store_io._read_index(file.parent / "episodes.jsonl"))
        if file.name == case["file"] and committed == case["after"]:
            write(file, data[: len(data) // 2])
            die()
        write(file, data)

    fsync = os.fsync

    def torn_row(fd):
        # Cut the row just written to rounds.jsonl in half before it is fsynced.
        name = os.readlink(f"/proc/self/fd/{fd}")
        if name.endswith("rounds.jsonl"):
            text = open(name, "rb").read()
            if text.count(b"\\n") == at + 1:
                last = text[text.rstrip(b"\\n").rfind(b"\\n") + 1 :]
                os.truncate(name, len(text) - len(last) // 2)
                die()
        fsync(fd)

    class DiesOnFirstAct:
        # A learner that is killed the first time it acts: in its evaluation.
        def __init__(self, inner):
            self.inner = inner
        def act(self, *args, **kwargs):
            die()
        def episodes_started(self, *args, **kwargs):
            self.inner.episodes_started(*args, **kwargs)

    class Hooked:
        # The default trainer, killed mid-training, mid-checkpoint or in the evaluation.
        def __init__(self, inner):
            self.inner = inner
        def fit(self, data, round, seed, previous):
            if where == "train" and round == at:
                threading.Timer(case["delay"], die).start()
                self.inner.fit(data, round, seed, previous)
                die()  # training ended before the timer: still before the checkpoint
            learner = self.inner.fit(data, round, seed, previous)
            return DiesOnFirstAct(learner) if where == "evaluate" and round == at else learner
        def save(self, learner, path):
            self.inner.save(getattr(learner, "inner", learner), path)
            if where == "checkpoint" and path.name.startswith(f"round_{at:03d}"):
                weights = path / "model.safetensors"
                os.truncate(weights, weights.stat().st_size // 2)
                die()
        def load(self, path):
            return self.inner.load(path)

    if where == "append":
        store_io._append_durably = torn_append
    if where == "row":
        os.fsync = torn_row
    make_policy = engine.policy_factory(task, hidden_sizes=(32, 32))
    trainer = Hooked(engine.PolicyTrainer(make_policy, config.bc, config.retrain))
    engine.run(task, None, path, config, dagger.dagger_gate, trainer=trainer)
    """
)


def run_dagger(path: Path, config: DAggerConfig, resume: bool = False) -> Any:
    return dagger.run(
        CARTPOLE, path, config, make_policy=engine.policy_factory(CARTPOLE, **SMALL), resume=resume
    )


def episodes_by_key(path: Path) -> dict[tuple[int, int], dict[str, np.ndarray]]:
    """Every stored episode by (round, index within the round), with all its arrays."""
    store = Store.open(path)
    out = {}
    for entry, ep in zip(store.index, store.episodes(), strict=True):
        key = (int(entry.round), int(entry.extras["episode"]))
        assert key not in out, f"episode {key} stored twice"
        out[key] = {
            "obs": ep.obs,
            "actions": ep.actions,
            "executed": ep.executed_actions,
            "rewards": ep.rewards,
            "actor": ep.actors,
            "labeled": ep.label_mask,
            "seed": np.array(entry.seed),
        }
    return out


def uninterrupted(tmp_path_factory: pytest.TempPathFactory, config: Any) -> dict[str, Any]:
    """The run the killed ones are compared with: its config, per-round numbers, episodes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        path = tmp_path_factory.mktemp("reference") / "store"
        result = run_dagger(path, config)
    finally:
        torch.set_num_threads(before)
    return {"config": config, "numbers": round_numbers(result), "episodes": episodes_by_key(path)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return uninterrupted(tmp_path_factory, CONFIG)


def child_command(path: Path, case: dict[str, Any], config: Any) -> list[str]:
    cfg = dict(dataclasses.asdict(config), bc=dataclasses.asdict(config.bc))
    return [sys.executable, "-c", CHILD, str(path), json.dumps(cfg), json.dumps(case), str(HORIZON)]


def check_killed_store(path: Path, ref: dict[str, Any]) -> int:
    """After the kill: the store opens, each committed episode is the uninterrupted run's,
    and the missing ones are all in the batch that was being collected. Returns how many
    episodes are stored."""
    got = episodes_by_key(path)
    Store.open(path).transitions()  # CRC32 of everything committed
    for key, arrays in got.items():
        for name, value in arrays.items():
            np.testing.assert_array_equal(value, ref["episodes"][key][name], err_msg=f"{key}")
    n = ref["config"].n_envs
    batches = {(r, e // n) for r, e in got}
    last = max(batches)
    for r, e in ref["episodes"]:
        batch = (r, e // n)
        if batch < last:
            assert (r, e) in got, f"episode {(r, e)} of a finished batch was lost"
        elif batch > last:
            assert (r, e) not in got
    lost = [k for k in ref["episodes"] if (k[0], k[1] // n) == last and k not in got]
    assert len(lost) <= n  # at most the episodes in flight
    return len(got)


def check_resume(path: Path, ref: dict[str, Any]) -> None:
    """Resuming reaches the uninterrupted run's numbers and stores the same episodes."""
    config = ref["config"]
    result = run_dagger(path, config, resume=True)
    assert round_numbers(result) == ref["numbers"]
    got = episodes_by_key(path)
    assert sorted(got) == sorted(ref["episodes"])
    for key, arrays in got.items():
        for name, value in arrays.items():
            np.testing.assert_array_equal(value, ref["episodes"][key][name], err_msg=f"{key}")
    run_dir = Path(f"{path}.run")
    assert not list((run_dir / "learners").glob("*.tmp"))  # a torn checkpoint is gone
    for r in range(config.rounds + 1):
        Policy.load(run_dir / "learners" / f"round_{r:03d}")  # every checkpoint whole
    rows_file = run_dir / "rounds.jsonl"
    assert sorted(stored_rounds(rows_file)) == list(range(config.rounds + 1))
    # A finished run resumes to itself without new work: no round is evaluated again.
    before = rows_file.read_bytes()
    assert round_numbers(run_dagger(path, config, resume=True)) == ref["numbers"]
    assert rows_file.read_bytes() == before


def stored_rounds(rows_file: Path) -> list[int]:
    """The round of every row in ``rows_file``; fails on a line that is not a whole row."""
    rounds = []
    for n, line in enumerate(rows_file.read_text().splitlines(), start=1):
        try:
            rounds.append(int(json.loads(line)["round"]))
        except (ValueError, KeyError) as exc:
            pytest.fail(f"{rows_file}: line {n} is not a whole row ({exc}): {line[:60]}...")
    return rounds


def kill_and_resume(tmp_path: Path, ref: dict[str, Any], case: dict[str, Any]) -> int:
    """Run the child until it kills itself, check what it left, resume; returns the
    number of episodes the child stored."""
    path = tmp_path / "store"
    proc = subprocess.run(
        child_command(path, case, ref["config"]),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    assert proc.returncode == -signal.SIGKILL, f"the child was not killed: {proc.stderr}"
    stored = check_killed_store(path, ref)
    check_resume(path, ref)
    return stored


@pytest.mark.parametrize(
    ("file", "after"),
    [
        # The last of round 2, halfway through its rows; the one beside it is stored, so
        # resuming collects a batch of one.
        ("rewards.bin", 8),
        # The first of round 3: its rows written, its index line torn; the one beside it is
        # lost too (slow: the store's tests tear index lines of a real `protege collect`).
        pytest.param("episodes.jsonl", 9, marks=pytest.mark.slow),
    ],
)
def test_killed_mid_append(tmp_path: Path, reference: dict[str, Any], file: str, after: int):
    case = {"where": "append", "file": file, "after": after}
    assert kill_and_resume(tmp_path, reference, case) == after


def test_killed_mid_training(tmp_path: Path, reference: dict[str, Any]):
    """Killed while round 2's learner trains (its rows all stored, no checkpoint yet)."""
    case = {"where": "train", "round": 2, "delay": 0.02}
    assert kill_and_resume(tmp_path, reference, case) == 1 + 2 * 4


def test_killed_mid_checkpoint(tmp_path: Path, reference: dict[str, Any]):
    """Killed halfway through writing round 2's weights: the torn checkpoint is retrained."""
    case = {"where": "checkpoint", "round": 2}
    assert kill_and_resume(tmp_path, reference, case) == 1 + 2 * 4
    # (check_resume has checked that round 2's checkpoint loads and no .tmp is left.)


@pytest.mark.slow
def test_killed_between_checkpoint_and_row(tmp_path: Path, reference: dict[str, Any]):
    """Killed while round 2's checkpointed learner is evaluated, before its row is written
    (slow: the torn row below takes the same path through resume)."""
    case = {"where": "evaluate", "round": 2}
    assert kill_and_resume(tmp_path, reference, case) == 1 + 2 * 4


def test_killed_mid_row(tmp_path: Path, reference: dict[str, Any]):
    """Killed halfway through writing round 2's row: that round is evaluated again, from
    its checkpoint, and the torn row does not outlive the resume."""
    case = {"where": "row", "round": 2}
    assert kill_and_resume(tmp_path, reference, case) == 1 + 2 * 4


def test_killed_at_a_random_moment(tmp_path: Path, reference: dict[str, Any]):
    """SIGKILL from outside once a random number of episodes is stored, after a random
    delay: during collection, training or evaluation, wherever it lands."""
    rng = np.random.default_rng()
    at_least, delay = int(rng.integers(1, 12)), float(rng.uniform(0.0, 0.1))
    moment = f"after {at_least} stored episodes + {delay:.3f} s"
    path, log = tmp_path / "store", tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            child_command(path, {"where": "outside"}, CONFIG),
            stderr=stderr,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    index = path / "episodes.jsonl"
    try:
        deadline = time.time() + 120
        while not index.exists() or index.read_bytes().count(b"\n") < at_least:
            assert proc.poll() is None, (moment, log.read_text())
            assert time.time() < deadline, moment
            time.sleep(0.002)
        time.sleep(delay)
        seen = index.read_bytes().count(b"\n")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill ({moment})"
    assert check_killed_store(path, reference) >= seen, moment
    check_resume(path, reference)


@pytest.mark.slow
def test_warm_started_run_killed_mid_training(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
):
    """With ``retrain="warm"`` the resumed round continues from the previous round's
    checkpoint, as the uninterrupted run continued from the learner in memory."""
    ref = uninterrupted(tmp_path_factory, dataclasses.replace(CONFIG, retrain="warm"))
    case = {"where": "train", "round": 2, "delay": 0.02}
    assert kill_and_resume(tmp_path, ref, case) == 1 + 2 * 4
