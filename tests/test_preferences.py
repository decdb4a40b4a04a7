"""Reward learning from preferences: the reward model ranks segments like the true reward, the
oracle's noise, the query schedule, every answer durable across a crash, and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from protege import tasks
from protege.algos.preferences import learn_from_preferences
from protege.algos.rl_rollout import RolloutBatch
from protege.configs.preferences import PreferenceConfig, PreferenceRunConfig
from protege.configs.rl import PPOConfig
from protege.errors import CheckpointError, ConfigError, DataError
from protege.rewards.artefact import LearnedRewardWrapper, load_reward, save_reward
from protege.rewards.oracle import SyntheticOracle
from protege.rewards.preference_data import (
    Preference,
    PreferenceFile,
    Segment,
    sample_pairs,
)
from protege.rewards.preference_model import RewardSpec, model_config, new_model, train


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def pendulum_batches(n: int, episodes: int = 6):
    """``n`` batches of ``episodes`` Pendulum episodes (200 steps) of uniformly random
    actions, as the PPO learner's batches."""
    task = tasks.make("pendulum")
    env = task.make_env()
    rng = np.random.default_rng(0)
    batches = []
    for b in range(n):
        obs_l, next_l, act_l, rew_l, last_l = [], [], [], [], []
        for e in range(episodes):
            obs, _ = env.reset(seed=100 * b + e)
            done = False
            while not done:
                action = rng.uniform(-2, 2, size=1).astype(np.float32)
                nxt, r, term, trunc, _ = env.step(action)
                obs_l.append(obs)
                next_l.append(nxt)
                act_l.append(action)
                rew_l.append(r)
                done = term or trunc
                last_l.append(done)
                obs = nxt
        n_steps = len(obs_l)
        batches.append(
            RolloutBatch(
                obs=np.array(obs_l, np.float32),
                next_obs=np.array(next_l, np.float32),
                actions=np.array(act_l, np.float32),
                raw_actions=torch.zeros(n_steps, 1, 1),
                logp=torch.zeros(n_steps),
                values=torch.zeros(n_steps),
                env_rewards=np.array(rew_l, np.float64),
                terminal=np.zeros(n_steps, bool),
                last=np.array(last_l, bool),
            )
        )
    env.close()
    return task, batches


def answered(pairs, oracle, update=0) -> list[Preference]:
    out = []
    for k, (a, b) in enumerate(pairs):
        choice, secs = oracle.ask(a, b, update, k)
        out.append(Preference(update, k, choice, oracle.source, a, b, secs))
    return out


def test_the_reward_model_ranks_held_out_segments_like_the_true_reward() -> None:
    task, (train_batch, test_batch) = pendulum_batches(2)
    spec = RewardSpec.for_spaces(*task.spaces)
    rng = np.random.default_rng(0)
    prefs = answered(sample_pairs(train_batch, 150, 25, rng), SyntheticOracle(0))
    held_out = [s for pair in sample_pairs(test_batch, 60, 25, rng) for s in pair]
    truth = np.array([s.true_return for s in held_out])
    model = new_model(spec, (64, 64), 1, seed=0)
    before = spearman(model.segment_returns(held_out)[0].numpy(), truth)
    metrics = train(model, prefs, seed=0, epochs=30)
    after = spearman(model.segment_returns(held_out)[0].numpy(), truth)
    assert after > 0.85, (before, after, metrics)
    assert abs(before) < 0.7, "the untrained model already ranks like the truth: no test"
    assert metrics["reward_accuracy"] > 0.85


def test_an_ensemble_asks_about_the_pairs_its_members_dispute() -> None:
    from protege.rewards.preference_source import PreferenceReward

    task, (batch,) = pendulum_batches(1, 3)
    spec = RewardSpec.for_spaces(*task.spaces)
    cfg = PreferenceConfig(ensemble=3, candidates=5, reward_epochs=5)

    class Nobody:
        source = "true"

    source = PreferenceReward(spec, cfg, PreferenceFile([], [], 0), Nobody(), seed=0)  # type: ignore[arg-type]
    prefs = answered(sample_pairs(batch, 20, 25, np.random.default_rng(1)), SyntheticOracle(0))
    train(source.model, prefs, seed=0, epochs=5)
    chosen = source.pairs(batch, 1, 4)
    pool = sample_pairs(batch, 20, 25, np.random.default_rng(_seed(0, 1)))
    spread = torch.sigmoid(
        source.model.segment_returns([s for p in pool for s in p])[:, 0::2]
        - source.model.segment_returns([s for p in pool for s in p])[:, 1::2]
    ).std(0)
    top = sorted(torch.argsort(spread, descending=True)[:4].tolist())
    assert [(c[0].episode, c[0].start) for c in chosen] == [
        (pool[i][0].episode, pool[i][0].start) for i in top
    ]


def _seed(seed: int, update: int) -> int:
    from protege.algos.rl_rollout import derived_seed

    return derived_seed(seed, update, 5)


def _segment(ret: float, n: int = 3) -> Segment:
    return Segment(
        obs=np.zeros((n, 4), np.float32),
        actions=np.zeros(n, np.int64),
        next_obs=np.zeros((n, 4), np.float32),
        done=np.zeros(n, bool),
        true_return=ret,
    )


def test_the_noisy_oracle_is_boltzmann_rational_seeded_and_errs_at_its_rate() -> None:
    a, b = _segment(1.0), _segment(0.0)
    exact = SyntheticOracle(0)
    assert exact.ask(a, b, 0, 0)[0] == "left" and exact.ask(b, a, 0, 0)[0] == "right"
    assert exact.ask(a, _segment(1.0), 0, 0)[0] == "equal"
    noisy = SyntheticOracle(7, noisy=True, temperature=1.0)
    answers = [noisy.ask(a, b, 3, k)[0] for k in range(2000)]
    p = 1 / (1 + np.exp(-1.0))  # sigmoid(1 / temperature)
    assert abs(answers.count("left") / 2000 - p) < 0.04
    assert answers == [SyntheticOracle(7, True, 1.0).ask(a, b, 3, k)[0] for k in range(2000)]
    wrong = SyntheticOracle(7, noisy=True, temperature=0.0, error_rate=0.2)
    flips = [wrong.ask(a, b, 0, k)[0] for k in range(2000)].count("right") / 2000
    assert abs(flips - 0.2) < 0.04


def test_the_query_schedule_decays_and_stops_at_the_budget() -> None:
    cfg = PreferenceConfig(initial_pairs=8, pairs_per_update=4, pairs_decay=0.5, query_every=2)
    assert [cfg.pairs_at(u) for u in range(9)] == [8, 0, 4, 0, 2, 0, 1, 0, 1]


def small_run(out: Path, labeler=None, resume: bool = False, steps: int = 1500, budget=12):
    cfg = PreferenceConfig(preferences=budget, initial_pairs=6, pairs_per_update=4, reward_epochs=5)
    run = PreferenceRunConfig(steps=steps, hidden_sizes=(16,), eval_every=10**6, eval_episodes=2)
    ppo = PPOConfig(rollout_steps=500, n_envs=2, epochs=2, minibatch_size=128, seed=1)
    return learn_from_preferences(
        tasks.make("cartpole"), out, cfg, run, ppo, labeler=labeler, resume=resume
    )


class Crash(Exception):
    pass


class CrashingOracle(SyntheticOracle):
    """The exact oracle, until it has answered ``after`` queries: then the process "dies"."""

    def __init__(self, after: int):
        super().__init__(seed=1)
        self.after, self.asked = after, 0

    def ask(self, left, right, update, index):
        if self.asked == self.after:
            raise Crash
        self.asked += 1
        return super().ask(left, right, update, index)


def test_answers_survive_a_crash_and_the_resumed_run_asks_nobody_twice(tmp_path: Path) -> None:
    whole = small_run(tmp_path / "whole")
    assert whole.preferences["total"] == 12
    assert [h["preferences"] for h in whole.run.history] == [6.0, 10.0, 12.0]
    with pytest.raises(Crash):
        small_run(tmp_path / "crashed", CrashingOracle(after=8))  # dies during update 1
    file = tmp_path / "crashed" / "preferences.jsonl"
    kept = file.read_bytes()
    assert len(kept.splitlines()) == 8
    resumed = small_run(tmp_path / "crashed", resume=True)
    assert resumed.preferences["asked_this_run"] == 4  # the 8 kept were not asked again
    assert resumed.run.resumed_from == 1
    assert file.read_bytes().startswith(kept)
    assert file.read_bytes() == (tmp_path / "whole" / "preferences.jsonl").read_bytes()
    assert [h["episode_return"] for h in resumed.run.history] == [
        h["episode_return"] for h in whole.run.history
    ]  # the same numbers as the run that was never interrupted
    assert resumed.run.evals[-1]["mean_return"] == whole.run.evals[-1]["mean_return"]
    a = load_reward(tmp_path / "whole" / "reward").state_dict()
    b = load_reward(tmp_path / "crashed" / "reward").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_torn_last_line_is_cut_off_and_a_corrupt_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    f = PreferenceFile.open(path, discrete=True)
    for k in range(3):
        f.append(Preference(0, k, "left", "true", _segment(1.0), _segment(0.0)))
    whole = path.read_bytes()
    line = whole.splitlines(keepends=True)[0]
    path.write_bytes(whole + line[:40])  # an append interrupted by a crash
    g = PreferenceFile.open(path, discrete=True)
    assert len(g) == 3 and g.repaired == 40 and path.read_bytes() == whole
    assert g.counts() == {"left": 3, "right": 0, "equal": 0, "skip": 0, "total": 3}
    g.append(Preference(1, 0, "equal", "true", _segment(1.0), _segment(1.0)))
    assert len(PreferenceFile.open(path, discrete=True)) == 4
    path.write_bytes(whole + b"garbage without a newline")
    with pytest.raises(DataError, match=r"p\.jsonl: line 4 is corrupt"):
        PreferenceFile.open(path, discrete=True)
    lines = whole.splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[1].replace(b'"choice":"left"', b'"choice":"lfet"') + lines[2])
    with pytest.raises(DataError, match=r"p\.jsonl: line 2: choice 'lfet'"):
        PreferenceFile.open(path, discrete=True)
    path.write_bytes(lines[0] + lines[0])
    with pytest.raises(DataError, match=r"line 2: query 0 of update 0 appears twice"):
        PreferenceFile.open(path, discrete=True)
    with pytest.raises(DataError, match="answered"):
        g.append(Preference(1, 0, "left", "true", _segment(1.0), _segment(0.0)))


def test_the_reward_model_file_round_trips_and_bad_files_are_named(tmp_path: Path) -> None:
    spec = RewardSpec(obs_shape=(3,), act_dim=1)
    model = new_model(spec, (8,), 2, seed=3)
    save_reward(tmp_path / "r", model, model_config(model, task="pendulum"))
    back = load_reward(tmp_path / "r")
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    a = np.ones((5, 1), np.float32)
    done = np.zeros(5, bool)
    assert torch.equal(model(x, a, x, done), back(x, a, x, done))
    assert json.loads((tmp_path / "r" / "config.json").read_text())["kind"] == "preference"
    env = LearnedRewardWrapper(gym.make("Pendulum-v1"), back)  # pays the learned reward
    obs, _ = env.reset(seed=0)
    nxt, reward, *_, info = env.step(np.ones(1, np.float32))
    expected = back(obs[None], np.ones((1, 1), np.float32), nxt[None], np.zeros(1, bool))
    assert reward == pytest.approx(float(expected[0]), rel=1e-5) and "true_reward" in info
    with pytest.raises(CheckpointError, match="missing"):
        load_reward(tmp_path / "nothing")
    (tmp_path / "r" / "config.json").write_text(
        '{"format": "protege-reward", "kind": "preference", "config": {"members": 2}}'
    )
    with pytest.raises(CheckpointError, match="spec, hidden_sizes or members missing"):
        load_reward(tmp_path / "r")


def test_bad_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"oracle \(--oracle\) must be one of"):
        PreferenceConfig(oracle="crowd")
    with pytest.raises(ConfigError, match=r"error_rate \(--error-rate\)"):
        PreferenceConfig(error_rate=0.7)
    with pytest.raises(ConfigError, match=r"preferences \(--preferences\)"):
        PreferenceConfig(preferences=0)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    with pytest.raises(ConfigError, match="holds a run"):
        small_run(tmp_path / "busy")


def test_resuming_with_other_preference_settings_is_refused(tmp_path: Path) -> None:
    small_run(tmp_path / "r", steps=500)
    with pytest.raises(ConfigError, match=r"other preference settings \(preferences\)"):
        small_run(tmp_path / "r", resume=True, steps=500, budget=99)


def test_the_cli_refuses_human_with_another_oracle(tmp_path: Path) -> None:
    from protege.cli import main

    code = main(
        [
            "preferences",
            "--task",
            "cartpole",
            "--out",
            str(tmp_path / "o"),
            "--human",
            "--oracle",
            "noisy",
        ]
    )
    assert code == 2


@pytest.mark.slow
def test_kill_9_loses_no_preference(tmp_path: Path) -> None:
    """The command killed with SIGKILL mid-run, resumed: every answer given before the kill is
    still there, byte for byte, and the budget is reached without asking twice."""
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "protege.cli", "preferences", "--task", "cartpole",
        "--out", str(out), "--preferences", "60", "--initial-pairs", "20",
        "--pairs-per-update", "10", "--pairs-decay", "1", "--steps", "8000",
        "--rollout-steps", "1000", "--n-envs", "2", "--seed", "4", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    file = out / "preferences.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if file.exists() and len(file.read_bytes().splitlines()) >= 30:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = file.read_bytes()
    kept = kept[: kept.rfind(b"\n") + 1]
    assert len(kept.splitlines()) >= 30
    done = subprocess.run([*cmd, "--resume", "--json", str(tmp_path / "r.json")], env=env,
                          capture_output=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    final = file.read_bytes()
    assert final.startswith(kept)
    keys = [(json.loads(x)["update"], json.loads(x)["index"]) for x in final.splitlines()]
    assert len(keys) == 60 == len(set(keys))
    result = json.loads((tmp_path / "r.json").read_text())["results"]
    assert result["preferences"]["total"] == 60
    assert result["preferences"]["asked_this_run"] == 60 - len(kept.splitlines())
