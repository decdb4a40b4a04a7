"""ThriftyDAgger: the learned Q of task success, α_h-calibrated switching in real rollouts,
per-episode re-calibration inside ``thrifty.run``, resume after a ``kill -9`` to the same
numbers, and clear errors for corrupt checkpoints."""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fakes import PushLeft, kill_when_stalled
from protege.algos import engine, rounds, thrifty
from protege.algos.bc import BCConfig
from protege.algos.results import DAggerResult
from protege.configs.interactive import DAggerConfig
from protege.data.episode import EXPERT, LEARNER
from protege.data.store import Store, Transitions
from protege.errors import CheckpointError, ConfigError
from protege.policies import Policy, PolicyConfig
from protege.policies.ensemble import PolicyEnsemble
from protege.policies.success_q import SuccessQ
from protege.policies.thrifty import ThriftyLearner
from protege.rollout.gates import ExpertGate, LearnerGate
from protege.rollout.gates_interactive import ThriftyGate
from protege.rollout.loop import rollout
from protege.rollout.observers import StoreEpisodes
from protege.tasks import make

CARTPOLE = make("cartpole")
SHORT = dataclasses.replace(CARTPOLE, horizon=100)  # CartPole cut at 100 steps: fast rounds
HIDDEN = (16,)
FAST = dict(members=2, q_steps=50, q_hidden=(32, 32), alpha_h=0.05)


def small_config(**kw: Any) -> DAggerConfig:
    base: dict[str, Any] = dict(
        rounds=2,
        episodes_per_round=4,
        initial_demos=1,
        bc=BCConfig(steps=100, batch_size=64, progress=False),
        eval_episodes=4,
        eval_envs=4,
    )
    base.update(kw)
    return DAggerConfig(**base)


def run_small(
    path: Path, cfg: DAggerConfig, resume: bool = False, **thrifty_kw: Any
) -> DAggerResult:
    """A toy ThriftyDAgger run on short CartPole (2 members, a small critic)."""
    tc = thrifty.ThriftyConfig(**{**FAST, **thrifty_kw})
    make_policy = engine.policy_factory(SHORT, hidden_sizes=HIDDEN)
    return thrifty.run(SHORT, path, cfg, tc, make_policy=make_policy, resume=resume)


def episode_entries(store: Path) -> list[dict[str, Any]]:
    """The store's index entries in (round, episode index) order: the order of the run, not
    of completion. Their CRCs pin every stored array."""
    return sorted(Store.open(store).index, key=lambda e: (e.round, e.extras.get("episode", -1)))


def row_numbers(result: DAggerResult) -> list[dict[str, Any]]:
    """Every figure of every row but the timings."""
    timing = {"collect_seconds", "train_seconds", "eval_seconds", "wall_seconds"}
    return [
        {k: v for k, v in dataclasses.asdict(r).items() if k not in timing} for r in result.rows
    ]


# ------------------------------------------------------------------ Q of task success
CHAIN_LENGTH, CHAIN_STEP = 6, 0.25


def chain_episodes(n_episodes: int, rng: np.random.Generator) -> tuple[Transitions, np.ndarray]:
    """A walk on a line: obs (x, t/T), action 1 steps right and 0 left by 0.25, random
    actions; an episode succeeds if it ends right of 0.5. Returns the steps and successes."""
    n, steps = n_episodes, CHAIN_LENGTH
    acts = rng.integers(0, 2, (n, steps))
    walk = np.concatenate([np.zeros((n, 1)), np.cumsum(2 * acts - 1, axis=1)], axis=1)
    xs = rng.uniform(-1.5, 1.5, (n, 1)) + CHAIN_STEP * walk
    time_left = np.broadcast_to(np.arange(steps) / steps, (n, steps))
    obs = np.stack([xs[:, :steps], time_left], -1).astype(np.float32).reshape(n * steps, 2)
    data = Transitions(
        obs=obs,
        actions=acts.reshape(-1),
        executed=acts.reshape(-1),
        rewards=np.zeros(n * steps, np.float32),
        actor=np.full(n * steps, LEARNER, np.uint8),
        labeled=np.zeros(n * steps, bool),
        episode_starts=np.arange(n) * steps,
        episode_lengths=np.full(n, steps),
        rounds=np.ones(n, np.int64),
    )
    return data, xs[:, steps] > 0.5


def test_learned_q_ranks_states_that_lead_to_success_above_those_that_fail() -> None:
    data, success = chain_episodes(300, np.random.default_rng(0))
    assert 0.2 < success.mean() < 0.6
    critic = SuccessQ(2, 1, n_actions=2, hidden=(32, 32))
    config = thrifty.ThriftyConfig(q_steps=600, q_batch=128, polyak=0.95)

    def push_right(obs: np.ndarray) -> np.ndarray:  # the robot, after the first action
        return np.ones(len(obs), np.int64)

    thrifty.fit_success_q(critic, data, success, push_right, config, seed=0)
    # Fresh states and actions; the truth is what the robot reaches from there: the action,
    # then pushing right to the end (not the random data's fate: Q is the robot's).
    test, _ = chain_episodes(300, np.random.default_rng(1))
    x, t = test.obs[:, 0], np.rint(test.obs[:, 1] * CHAIN_LENGTH)
    to_go = x + CHAIN_STEP * (2 * test.actions - 1) + CHAIN_STEP * (CHAIN_LENGTH - 1 - t)
    leads_to_success = to_go > 0.5
    q = critic.success(test.obs, test.actions)
    good, bad = q[leads_to_success], q[~leads_to_success]
    assert (good[:, None] > bad[None, :]).mean() > 0.98  # ranking (AUC)
    assert good.mean() > 0.8 and bad.mean() < 0.2  # ≈ success probability (γ ≈ 1)
    # Where the action decides the outcome, Q prefers the action that succeeds.
    decisive = np.abs(to_go - CHAIN_STEP * (2 * test.actions - 1) - 0.5) < CHAIN_STEP
    right = critic.success(test.obs[decisive], np.ones(decisive.sum(), np.int64))
    left = critic.success(test.obs[decisive], np.zeros(decisive.sum(), np.int64))
    assert decisive.sum() > 100 and (right > left).mean() > 0.95


def test_episode_success_from_return_and_length(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "s", *SHORT.spaces, task="cartpole")
    for gate, learner in ((ExpertGate(), None), (LearnerGate(), PushLeft())):
        env = SHORT.make_vec_env(2)
        expert = SHORT.make_expert()
        rollout(
            env,
            2,
            gate=gate,
            seed=0,
            learner=learner,
            expert=expert,
            observers=[StoreEpisodes(store)],
        )
        env.close()
    data = store.transitions()
    assert list(data.episode_lengths[:2]) == [100, 100] and max(data.episode_lengths[2:]) < 100
    np.testing.assert_array_equal(
        thrifty.episode_success(SHORT, data), [True, True, False, False]
    )  # the expert balances to the horizon; pushing left drops the pole


def test_episode_success_reads_the_recorded_verdict(tmp_path: Path) -> None:
    """A success test that reads the final info (Meta-World's, the lane task's) cannot be
    re-judged from stored steps: the verdict the Recorder stored (extra ``success``) wins,
    and only episodes without one fall back to return and length."""
    in_info = dataclasses.replace(
        SHORT, success=lambda o: bool(o.final_info.get("is_success", False))
    )
    store = Store.create(tmp_path / "s", *SHORT.spaces, task="cartpole")
    for extras in ({"success": 1.0}, None):
        env = SHORT.make_vec_env(2)
        rollout(
            env,
            2,
            gate=ExpertGate(),
            seed=0,
            expert=SHORT.make_expert(),
            observers=[StoreEpisodes(store, extras=extras)],
        )
        env.close()
    data = store.transitions()
    np.testing.assert_array_equal(data.success, [1.0, 1.0, np.nan, np.nan])
    assert list(data.take_episodes(np.array([2, 0])).success[1:]) == [1.0]
    # Recorded: success although the empty final info says no; not recorded: {} → failure.
    np.testing.assert_array_equal(
        thrifty.episode_success(in_info, data), [True, True, False, False]
    )


# ---------------------------------------------------------------- robot-mode states
def steps(actor: str) -> Transitions:
    """Episodes written as actor strings, "RRHHHRR|HHR" (R: the robot drove, H: the expert)."""
    eps = actor.split("|")
    who = np.array([LEARNER if c == "R" else EXPERT for c in "".join(eps)], np.uint8)
    n = len(who)
    lengths = np.array([len(e) for e in eps])
    return Transitions(
        obs=np.arange(n, dtype=np.float32)[:, None],
        actions=np.zeros(n, np.int64),
        executed=np.zeros(n, np.int64),
        rewards=np.zeros(n, np.float32),
        actor=who,
        labeled=who == EXPERT,
        episode_starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]),
        episode_lengths=lengths,
        rounds=np.ones(len(eps), np.int64),
    )


def test_autonomous_mask_follows_robot_mode() -> None:
    data = steps("RRHHHRR|HHR")
    handed_back = np.zeros(len(data), bool)
    handed_back[3] = True  # the expert handed back at step 3, and the robot asked again at 4
    robot = thrifty.autonomous_mask(data, handed_back)
    # robot mode at: each start, the learner's steps, the switch steps (2, after a robot
    # step), the step after a hand-back (4), and the expert's step 7 that starts episode 2.
    np.testing.assert_array_equal(robot, [1, 1, 1, 0, 1, 1, 1, 1, 0, 1])
    # From the actor alone, the robot-mode step 4 (the robot asking again) is missed.
    np.testing.assert_array_equal(thrifty.autonomous_mask(data), [1, 1, 1, 0, 0, 1, 1, 1, 0, 1])


# ---------------------------------------------------- calibration inside thrifty.run
def expected_thresholds(
    run_dir: Path, store: Path, cfg: DAggerConfig, r: int, min_calibration: int
) -> list[dict]:
    """What thrifty.run should have used in each episode of round ``r``: the round's first
    calibration, then before episode e one from the robot-mode states of episodes < e."""
    ordered = rounds.ordered(Store.open(store), max_round=r)
    assert ordered is not None
    robot = ThriftyLearner.load(run_dir / "learners" / f"round_{r - 1:03d}")
    before = ordered.select_episodes(ordered.rounds < r)
    previous = None
    if r > 1:
        previous = ThriftyLearner.load(run_dir / "learners" / f"round_{r - 2:03d}")
    ctx = engine.RoundContext(SHORT, r, robot, before, cfg, 0.0, previous)
    gate = ThriftyGate(
        robot,
        robot.critic,
        alpha_h=FAST["alpha_h"],
        switch_back_discrepancy=robot.switch_back_discrepancy,
        min_calibration=min_calibration,
    )
    thrifty.initial_calibration(gate, ctx, store)
    this = ordered.select_episodes(ordered.rounds == r)
    out = []
    for e in range(len(this.episode_lengths) + 1):  # and once more on the whole round
        if e:
            earlier = this.select_episodes(np.arange(len(this.episode_lengths)) < e)
            sb = thrifty.recorded_switch_back(store, r, earlier)
            gate.calibrate(thrifty.robot_states(earlier, robot, sb))
        out.append(gate.thresholds())
    return out


def test_thresholds_are_recalibrated_before_every_episode(tmp_path: Path) -> None:
    cfg = small_config(episodes_per_round=3)  # n_envs stays 4: ThriftyDAgger does not use it
    least = 5  # re-calibrate from more than 5 robot-mode states (default 25): toy rounds
    result = run_small(tmp_path / "s", cfg, min_calibration=least)
    assert result.config["n_envs"] == 1  # one episode at a time
    entries = episode_entries(tmp_path / "s")
    keys = ("novelty_threshold", "risk_threshold", "switch_back_risk", "switch_back_discrepancy")
    changes = missed = 0
    for r in (1, 2):
        recorded = [{k: e.extras[k] for k in keys} for e in entries if e.round == r]
        expected = expected_thresholds(tmp_path / "s.run", tmp_path / "s", cfg, r, least)
        assert recorded == expected[:-1]
        # The row reports the calibration on the whole round (not a sum over its episodes).
        assert {k: result.rows[r].extras[k] for k in keys} == expected[-1]
        # A new calibration before every episode (the thresholds move as episodes arrive),
        # once the round's earlier episodes hold more than min_calibration robot-mode states.
        robot = np.cumsum([e.extras["robot_steps"] for e in entries if e.round == r])
        changed = [a != b for a, b in itertools.pairwise(recorded)]
        assert all(enough or not c for c, enough in zip(changed, robot[:-1] > least, strict=True))
        changes += sum(changed)
        # The robot-mode steps read back from the store are those the gate counted live,
        # including those the actor sequence alone misses (asking again after a hand-back).
        replayed, actor_only = robot_mode_counts(tmp_path / "s.run", tmp_path / "s", r)
        assert replayed == [e.extras["robot_steps"] for e in entries if e.round == r]
        missed += sum(replayed) - actor_only
    assert changes >= 2 and missed > 0


def robot_mode_counts(run_dir: Path, store: Path, r: int) -> tuple[list[int], int]:
    """Per episode of round ``r``, its robot-mode steps replayed from the store (hand-backs
    recomputed with the recorded thresholds), and the total seen from the actor alone."""
    data = rounds.ordered(Store.open(store), r, r)
    assert data is not None
    robot = ThriftyLearner.load(run_dir / "learners" / f"round_{r - 1:03d}")
    sb = thrifty.recorded_switch_back(store, r, data)
    replayed = thrifty.autonomous_mask(data, thrifty.hand_backs(data, robot, sb))
    actor_only = thrifty.autonomous_mask(data)
    assert (replayed >= actor_only).all()
    ends = np.cumsum(data.episode_lengths)
    return [int(x.sum()) for x in np.split(replayed, ends[:-1])], int(actor_only.sum())


# --------------------------------------------------------------------- kill and resume
CHILD = textwrap.dedent(
    """
    import dataclasses, json, sys, time
    import torch
    torch.set_num_threads(1)
    from protege.algos import engine, thrifty
    from protege.configs.interactive import DAggerConfig
    from protege.algos.bc import BCConfig
    from protege.data.store import Store
    from protege.rollout.gates_interactive import ThriftyGate
    from protege.tasks import make

    store, marker = sys.argv[1], sys.argv[2]
    cfg, tc = json.loads(sys.argv[3]), json.loads(sys.argv[4])
    cfg["bc"] = BCConfig(**cfg["bc"])
    tc["q_hidden"] = tuple(tc["q_hidden"])
    task = dataclasses.replace(make("cartpole"), horizon=100)

    def stall():
        open(marker, "w").close()
        time.sleep(600)

    stored = {}
    append = Store.append
    def counting_append(self, episode):
        append(self, episode)
        stored[episode.round] = stored.get(episode.round, 0) + 1
        if episode.round == 2 and stored[2] == 3 and tc["calibrate_every"] > 1:
            stall()  # in batches: the batch's other episode is running, or not yet stored
    Store.append = counting_append

    decide = ThriftyGate.decide
    def stalling_decide(self, step):
        # Episode by episode: five steps into the 4th episode of round 2.
        if stored.get(2, 0) == 3 and (step.t[step.expert.active] >= 5).any():
            stall()
        return decide(self, step)
    ThriftyGate.decide = stalling_decide

    thrifty.run(task, store, DAggerConfig(**cfg), thrifty.ThriftyConfig(**tc),
                make_policy=engine.policy_factory(task, hidden_sizes=(16,)))
    """
)


def start_child(tmp_path: Path, store: Path, cfg: DAggerConfig, tc: dict[str, Any]) -> Any:
    script, marker = tmp_path / "child.py", tmp_path / "stalled"
    script.write_text(CHILD)
    child_cfg = dict(dataclasses.asdict(cfg), bc=dataclasses.asdict(cfg.bc))
    return subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(store),
            str(marker),
            json.dumps(child_cfg),
            json.dumps(tc),
        ]
    ), marker


@pytest.mark.parametrize("calibrate_every", [1, 2])
def test_kill_9_mid_round_then_resume_gives_the_same_rows(
    tmp_path: Path, calibrate_every: int
) -> None:
    cfg = small_config()
    tc = {**FAST, "calibrate_every": calibrate_every}
    killed = tmp_path / "killed"
    proc, marker = start_child(tmp_path, killed, cfg, tc)
    try:
        ref = run_small(tmp_path / "ref", cfg, calibrate_every=calibrate_every)
    finally:
        kill_when_stalled(proc, marker)

    index = Store.open(killed).index  # the store opens after the kill
    assert sum(e.round == 2 for e in index) == 3  # the episode in flight is lost

    resumed = run_small(killed, cfg, resume=True, calibrate_every=calibrate_every)
    assert row_numbers(resumed) == row_numbers(ref)  # labels, interventions, returns, thresholds
    a, b = episode_entries(killed), episode_entries(tmp_path / "ref")
    assert [e.extras["episode"] for e in a if e.round == 2] == [0, 1, 2, 3]
    assert a == b  # every stored episode, its per-episode thresholds and CRCs
    # The resumed round re-calibrated between its batches as the reference did: a new
    # threshold for every batch, shared by the batch's episodes.
    novelty = [e.extras["novelty_threshold"] for e in a if e.round == 2]
    batches = [novelty[i : i + calibrate_every] for i in range(0, 4, calibrate_every)]
    assert all(len(set(b)) == 1 for b in batches)
    assert len({b[0] for b in batches}) == len(batches)


# ------------------------------------------------------------------- checkpoints
def untrained_learner() -> ThriftyLearner:
    obs_space, act_space = CARTPOLE.spaces
    members = []
    for seed in range(2):
        torch.manual_seed(seed)
        members.append(Policy(PolicyConfig.for_spaces(obs_space, act_space, hidden_sizes=(8,))))
    critic = SuccessQ(4, 1, n_actions=2, hidden=(8,))
    return ThriftyLearner(PolicyEnsemble(members), critic, 0.25)


def saved_learner(path: Path) -> Path:
    return untrained_learner().save(path)


def test_learner_saves_and_loads(tmp_path: Path) -> None:
    learner = untrained_learner()
    loaded = ThriftyLearner.load(learner.save(tmp_path / "l"))
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    acts = learner.act(obs)
    assert loaded.switch_back_discrepancy == 0.25
    assert loaded.critic is not None and learner.critic is not None
    np.testing.assert_array_equal(loaded.act(obs), acts)
    np.testing.assert_array_equal(loaded.novelty(obs), learner.novelty(obs))
    np.testing.assert_array_equal(
        loaded.critic.success(obs, acts), learner.critic.success(obs, acts)
    )


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("critic.safetensors", b"not safetensors", "critic.safetensors: not a valid safetensors"),
        ("thrifty.json", b'{"switch_back_discre', "thrifty.json: not a ThriftyDAgger learner"),
        ("thrifty.json", b"[1, 2]", "thrifty.json: not a ThriftyDAgger learner"),
        ("ensemble/ensemble.json", b'{"members": ', "ensemble.json: not a policy ensemble"),
        ("ensemble/ensemble.json", b'{"members": 0}', "ensemble.json: an ensemble needs"),
    ],
)
def test_corrupt_checkpoint_files_raise_checkpoint_errors_naming_them(
    tmp_path: Path, file: str, content: bytes, message: str
) -> None:
    path = saved_learner(tmp_path / "l")
    (path / file).write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as err:
        ThriftyLearner.load(path)
    assert str(path / file) in str(err.value)
    if file.startswith("ensemble/"):
        with pytest.raises(CheckpointError, match=message):
            PolicyEnsemble.load(path / "ensemble")


def test_missing_files_and_bad_settings_are_reported(tmp_path: Path) -> None:
    path = saved_learner(tmp_path / "l")
    (path / "critic.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"critic\.safetensors"):
        ThriftyLearner.load(path)
    with pytest.raises(CheckpointError, match=r"ensemble\.json"):
        PolicyEnsemble.load(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="calibrate_every"):
        thrifty.ThriftyConfig(calibrate_every=0)
