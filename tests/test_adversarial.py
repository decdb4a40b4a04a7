"""GAIL and AIRL (issue 16): learning on CartPole, state-only learning without action labels,
the learned reward as an artefact (round trip, reward wrapper, plot), resume after kill -9,
and the errors for bad demonstrations."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import protege
from fakes import kill_when_stalled
from protege.algos.adversarial import train
from protege.algos.adversarial_inputs import ExpertSteps
from protege.cli import main
from protege.configs.adversarial import PPO_DEFAULTS, AdversarialConfig, ppo_config
from protege.configs.rl import PPOConfig
from protege.data.store import Store
from protege.errors import CheckpointError, ConfigError, DataError
from protege.rewards.artefact import LearnedRewardWrapper, load_reward, save_reward
from protege.rewards.compare import correlations, plot_reward_vs_true, trace_rewards
from protege.rewards.discriminator import DiscriminatorNet, spec_for

CARTPOLE = protege.tasks.make("cartpole")
SMALL = AdversarialConfig(
    steps=4000,
    eval_every=4000,
    eval_episodes=5,
    policy_hidden_sizes=(32, 32),
    disc_hidden_sizes=(32, 32),
)
"""Small enough to learn CartPole in seconds."""
PPO_SMALL = PPOConfig(rollout_steps=500, n_envs=4, minibatch_size=128, lr=1e-3, seed=1)
TINY = dataclasses.replace(
    SMALL,
    steps=600,
    eval_every=400,
    eval_episodes=2,
    policy_hidden_sizes=(16,),
    disc_hidden_sizes=(16,),
)
"""A few updates: every path, no learning."""
PPO_TINY = PPOConfig(rollout_steps=200, n_envs=2, minibatch_size=64, epochs=2, seed=3)


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("adv") / "demos"
    protege.collect(CARTPOLE, path, episodes=4, n_envs=4, seed=0)
    return path


def data_of(demos: Path):
    return Store.open(demos).transitions()


# ------------------------------------------------------------------------------ learning
def test_gail_reaches_the_expert_s_level_on_cartpole(demos: Path, tmp_path: Path) -> None:
    """From 4 demonstrations and 4,000 env steps (no reward, no more labels), the policy's
    deterministic return on 5 evaluation episodes reaches 80% of the expert's 500; the
    untrained policy's is ~10."""
    res = train(
        "gail",
        CARTPOLE,
        data_of(demos),
        tmp_path / "gail",
        SMALL,
        PPO_SMALL,
        tensorboard=False,
        reward_episodes=0,
    )
    assert res.evals[0]["mean_return"] < 50
    assert res.evals[-1]["mean_return"] >= 0.8 * 500, res.evals


def test_gail_starts_from_bc_on_the_same_demonstrations(demos: Path, tmp_path: Path) -> None:
    """The BC start (by default where demonstrations terminate; CartPole's run to the time
    limit): BC on the demonstrations before the first evaluation (its seconds on the run's
    clock), a critic warm-up, then a decaying BC term in the policy's loss."""
    cfg = dataclasses.replace(TINY, bc_start="on", bc_steps=300, value_warmup=1, bc_decay=0.5)
    res = train(
        "gail", CARTPOLE, data_of(demos), tmp_path / "g", cfg, PPO_TINY,
        tensorboard=False, reward_episodes=0,
    )  # fmt: skip
    assert res.evals[0]["mean_return"] > 100 and res.evals[0]["wall_seconds"] > 0, res.evals
    assert "bc" not in res.history[0] and "bc" in res.history[1]
    last = res.history[-1]
    assert last["bc_weight"] == pytest.approx(0.5 ** (last["update"] - 1))


def test_airl_s_reward_ranks_the_expert_s_steps_above_a_random_policy_s(
    demos: Path, tmp_path: Path
) -> None:
    """After a few PPO updates, AIRL's exported reward g ranks the demonstrations' steps
    above a random policy's steps on the same task (untrained: about half the pairs)."""
    data = data_of(demos)
    train(
        "airl",
        CARTPOLE,
        data,
        tmp_path / "airl",
        dataclasses.replace(TINY, steps=3000),
        PPO_TINY,
        tensorboard=False,
        reward_episodes=0,
    )
    reward = load_reward(tmp_path / "airl" / "reward")
    expert = ExpertSteps.of(data, state_only=False, where="demos")
    rng = np.random.default_rng(0)
    traces = trace_rewards(reward, CARTPOLE, lambda o: int(rng.integers(2)), 20, 0)
    on_random = np.concatenate([t.learned for t in traces])
    on_expert = reward(
        torch.from_numpy(expert.obs),
        torch.as_tensor(expert.actions),
        torch.from_numpy(expert.next_obs),
        torch.as_tensor(expert.done),
    ).numpy()
    # P(g(an expert step) > g(a random policy's step)), over all pairs (the ROC's AUC)
    auc = (on_expert[:, None] > on_random[None, :]).mean()
    assert auc >= 0.7, auc


@pytest.mark.slow
def test_airl_reaches_the_expert_s_level_on_cartpole(demos: Path, tmp_path: Path) -> None:
    """AIRL, with its defaults, from 4 demonstrations and 30,000 env steps."""
    cfg = AdversarialConfig(steps=30_000, eval_every=30_000, eval_episodes=5)
    res = train(
        "airl",
        CARTPOLE,
        data_of(demos),
        tmp_path / "airl",
        cfg,
        ppo_config(seed=0),
        tensorboard=False,
        reward_episodes=0,
    )
    assert res.evals[-1]["mean_return"] >= 0.8 * 500, res.evals


@pytest.mark.slow
def test_state_only_gail_learns_from_observations_alone(demos: Path, tmp_path: Path) -> None:
    data = data_of(demos)
    unlabelled = dataclasses.replace(data, labeled=np.zeros(len(data), bool))
    cfg = dataclasses.replace(SMALL, state_only=True, steps=8000, eval_every=8000)
    res = train("gail", CARTPOLE, unlabelled, tmp_path / "so", cfg, PPO_SMALL, tensorboard=False)
    assert res.evals[-1]["mean_return"] >= 0.6 * 500, res.evals


def test_state_only_needs_no_labels_and_action_methods_refuse_a_store_without_them(
    demos: Path, tmp_path: Path
) -> None:
    data = data_of(demos)
    unlabelled = dataclasses.replace(data, labeled=np.zeros(len(data), bool))
    with pytest.raises(DataError, match=r"demos/x: no step carries an expert action label"):
        ExpertSteps.of(unlabelled, state_only=False, where="demos/x")
    steps = ExpertSteps.of(unlabelled, state_only=True, where="demos/x")
    assert len(steps) == len(data)
    np.testing.assert_array_equal(steps.next_obs[:-1][~steps.done[:-1]][:5], steps.obs[1:6])
    res = train(
        "airl",
        CARTPOLE,
        unlabelled,
        tmp_path / "so",
        dataclasses.replace(TINY, state_only=True, bc_start="on"),  # no labels: no BC start
        PPO_TINY,
        tensorboard=False,
        reward_episodes=0,
    )
    assert res.env_steps >= 600
    assert load_reward(tmp_path / "so" / "reward").state_only


# ---------------------------------------------------------------------- the reward artefact
def cartpole_net(kind: str, demos: Path, state_only: bool = False) -> DiscriminatorNet:
    torch.manual_seed(0)
    spec = spec_for(
        kind,
        *CARTPOLE.spaces,
        np.asarray(data_of(demos).obs),
        state_only=state_only,
        hidden_sizes=(8,),
        gamma=0.99,
        spectral_norm=kind == "airl",
    )
    return DiscriminatorNet(spec)


@pytest.mark.parametrize("kind", ["gail", "airl"])
def test_learned_reward_round_trip_and_wrapper(demos: Path, tmp_path: Path, kind: str) -> None:
    net = cartpole_net(kind, demos).eval()
    save_reward(tmp_path / "r", net, net.spec())
    back = load_reward(tmp_path / "r")
    obs = torch.randn(7, 4)
    act = torch.randint(0, 2, (7,))
    nxt, done = torch.randn(7, 4), torch.zeros(7, dtype=torch.bool)
    torch.testing.assert_close(back(obs, act, nxt, done), net(obs, act, nxt, done))
    env = LearnedRewardWrapper(gym.make("CartPole-v1"), back)
    o, _ = env.reset(seed=0)
    o2, r, *_, info = env.step(1)
    assert info["true_reward"] == 1.0
    with torch.no_grad():
        want = net(torch.as_tensor(o[None]), torch.tensor([1]), torch.as_tensor(o2[None]), done[:1])
    assert r == pytest.approx(float(want[0]), rel=1e-5)
    env.close()


def test_a_broken_reward_artefact_is_one_clear_error(demos: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no learned reward here"):
        load_reward(tmp_path / "nothing")
    net = cartpole_net("gail", demos)
    path = save_reward(tmp_path / "r", net, net.spec())
    record = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**record, "kind": "mystery"}))
    with pytest.raises(CheckpointError, match="unknown reward kind 'mystery'"):
        load_reward(path)
    (path / "config.json").write_text(
        json.dumps({**record, "config": {**record["config"], "hidden_sizes": [9]}})
    )
    with pytest.raises(CheckpointError, match=r"model\.safetensors: does not fit"):
        load_reward(path)
    with pytest.raises(ConfigError, match="not registered"):
        save_reward(tmp_path / "x", torch.nn.Linear(1, 1), {})


def test_reward_against_true_reward_is_traced_correlated_and_plotted(
    demos: Path, tmp_path: Path
) -> None:
    """A 'learned' reward that is the true one plus a constant correlates perfectly; one
    that ignores the state does not correlate at all."""

    class Shaped(torch.nn.Module):  # Pendulum's true reward, recomputed from obs and action
        def forward(self, obs, action, next_obs, done):
            th = torch.atan2(obs[:, 1], obs[:, 0])
            return -(th**2 + 0.1 * obs[:, 2] ** 2 + 0.001 * action[:, 0] ** 2) + 3.0

    pendulum = protege.tasks.make("pendulum")
    rng = np.random.default_rng(0)
    traces = trace_rewards(
        Shaped(), pendulum, lambda o: rng.uniform(-2, 2, 1).astype(np.float32), 3, 0
    )
    c = correlations(traces)
    assert c["step"] == pytest.approx(1.0, abs=1e-4) and c["steps"] == 600
    png = plot_reward_vs_true(traces, tmp_path / "r.png", "check")
    assert png.stat().st_size > 10_000


# ----------------------------------------------------------------------- resume, kill -9
CHILD = textwrap.dedent(
    """
    import json, sys, time
    import torch
    torch.set_num_threads(1)
    import protege
    from protege.algos import adversarial
    from protege.configs.adversarial import AdversarialConfig
    from protege.configs.rl import PPOConfig
    from protege.data.store import Store

    demos, out, marker, cfg, ppo = sys.argv[1:6]
    real = adversarial.AdversarialReward.update

    def update(self, batch, update):
        # Mid-update 2 (updates 0-1 checkpointed): wait for kill -9.
        if update == 2:
            open(marker, "w").close()
            time.sleep(600)
        return real(self, batch, update)

    adversarial.AdversarialReward.update = update
    adversarial.train("airl", protege.tasks.make("cartpole"), Store.open(demos).transitions(),
                      out, AdversarialConfig(**json.loads(cfg)), PPOConfig(**json.loads(ppo)),
                      tensorboard=False, reward_episodes=0)
    """
)


def plain(config: object) -> str:
    return json.dumps(
        {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
    )


def test_airl_killed_mid_run_resumes_to_the_same_numbers(demos: Path, tmp_path: Path) -> None:
    killed, marker = tmp_path / "killed", tmp_path / "stalled"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(demos),
            str(killed),
            str(marker),
            plain(TINY),
            plain(PPO_TINY),
        ],
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    try:  # the uninterrupted reference run, meanwhile, in this process
        ref = train(
            "airl",
            CARTPOLE,
            data_of(demos),
            tmp_path / "ref",
            TINY,
            PPO_TINY,
            tensorboard=False,
            reward_episodes=0,
        )
    finally:
        kill_when_stalled(proc, marker)
    state = json.loads((killed / "checkpoint" / "state.json").read_text())
    assert state["numbers"]["updates"] == 2
    with pytest.raises(ConfigError, match=r"other settings \(adversarial.disc_lr\)"):
        train(
            "airl",
            CARTPOLE,
            data_of(demos),
            killed,
            dataclasses.replace(TINY, disc_lr=1e-3),
            PPO_TINY,
            resume=True,
            tensorboard=False,
        )
    res = train(
        "airl",
        CARTPOLE,
        data_of(demos),
        killed,
        TINY,
        PPO_TINY,
        resume=True,
        tensorboard=False,
        reward_episodes=0,
    )
    assert res.resumed_from == 2
    assert res.history == ref.history
    assert [e["mean_return"] for e in res.evals] == [e["mean_return"] for e in ref.evals]
    a, b = (
        load_reward(killed / "reward").state_dict(),
        load_reward(tmp_path / "ref" / "reward").state_dict(),
    )
    assert all(torch.equal(a[k], b[k]) for k in a)


# -------------------------------------------------------------------------------- the CLI
def test_cli_trains_gail_and_refuses_demonstrations_of_another_task(
    demos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gail"
    code = main(
        [
            "gail",
            "--data",
            str(demos),
            "--out",
            str(out),
            "--steps",
            "400",
            "--rollout-steps",
            "200",
            "--n-envs",
            "2",
            "--eval-every",
            "400",
            "--eval-episodes",
            "2",
            "--policy-hidden-sizes",
            "16",
            "--no-tensorboard",
            "--seed",
            "4",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "GAIL on cartpole" in printed and "seed 4" in printed
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["results"]["seed"] == 4 and record["results"]["env_steps"] >= 400
    assert (out / "reward_vs_true.png").exists() and (out / "gail.json").exists()
    assert load_reward(out / "reward").kind == "gail"
    # GAIL's own PPO defaults where no flag is given (finetune's are PPOConfig's), flags first
    ppo = json.loads((out / "gail.json").read_text())["ppo"]
    assert (
        (ppo["epochs"], ppo["minibatch_size"])
        == (
            PPO_DEFAULTS["epochs"],
            PPO_DEFAULTS["minibatch_size"],
        )
        != (PPOConfig().epochs, PPOConfig().minibatch_size)
    )
    assert (ppo["rollout_steps"], ppo["n_envs"], ppo["lr"]) == (200, 2, PPOConfig().lr)
    assert main(["eval", "--policy", str(out), "--episodes", "2"]) == 0
    code = main(["airl", "--data", str(demos), "--task", "pendulum", "--out", str(tmp_path / "p")])
    assert code == 2
    err = capsys.readouterr().err
    assert "observation space" in err and "does not match the task" in err and str(demos) in err
