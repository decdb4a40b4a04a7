"""``protege finetune --algo sac``: soft actor-critic from a categorical or Gaussian policy with
the demonstrations in its replay (issue 15) — it learns, the KL anchor holds, n-step
transitions, resume, and the errors."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import protege
from protege.algos.finetune import finetune
from protege.algos.sac import demo_transitions, nstep_transitions
from protege.cli import main
from protege.configs.bc import BCConfig
from protege.configs.policy import PolicyConfig
from protege.configs.rl import FinetuneConfig, SACConfig
from protege.data.store import Store
from protege.errors import ConfigError, DataError
from protege.policies.policy import Policy

CARTPOLE = protege.tasks.make("cartpole")
SMALL = SACConfig(n_envs=2, critic_hidden_sizes=(64, 64), seed=0)


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sac") / "demos"
    protege.collect(CARTPOLE, path, episodes=4, n_envs=4, seed=0)
    return path


@pytest.fixture(scope="module")
def weak(demos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BC for 20 steps: balances the pole for ~225 steps of 500."""
    policy = Policy(PolicyConfig.for_spaces(*CARTPOLE.spaces, hidden_sizes=(32, 32)), seed=0)
    data = Store.open(demos).transitions()
    protege.bc.fit(policy, data, BCConfig(steps=20, batch_size=64, seed=0, progress=False))
    return policy.save(tmp_path_factory.mktemp("sac") / "weak")


def run(weak: Path, demos: Path, out: Path, **kw) -> protege.algos.finetune.FinetuneResult:
    cfg = FinetuneConfig(**{"value_warmup": 0, "eval_every": 500, "eval_episodes": 4, **kw})
    data = Store.open(demos).transitions()
    return finetune(Policy.load(weak), CARTPOLE, out, cfg, sac=SMALL, demos=data, tensorboard=False)


def test_sac_learns_cartpole_from_a_weak_start_and_a_strong_anchor_holds_it(
    weak: Path, demos: Path, tmp_path: Path
) -> None:
    free = run(weak, demos, tmp_path / "free", steps=3000, kl=0.02, stop_return=475)
    start = free.evals[0]["mean_return"]
    assert start < 300  # a weak start: the test is about improving it
    assert free.evals[-1]["mean_return"] >= 475
    again = protege.evaluate(Policy.load(tmp_path / "free"), CARTPOLE, 4, 2, seed=10_000)
    assert again.mean_return == free.evals[-1]["mean_return"]  # what `protege eval` reads
    held = run(weak, demos, tmp_path / "held", steps=2000, kl=0.5)
    assert all(abs(e["mean_return"] - start) <= 0.25 * start for e in held.evals)
    assert held.history[-1]["kl"] < free.history[-1]["kl"]


def test_nstep_transitions_sum_rewards_within_episodes_only() -> None:
    obs = np.arange(5, dtype=np.float32)[:, None]
    nxt = obs + 1  # episode one: steps 0-2 (terminated), episode two: 3-4 (cut off)
    rewards = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    last = np.array([False, False, True, False, True])
    terminal = np.array([False, False, True, False, False])
    t = nstep_transitions(obs, np.zeros(5), rewards, nxt, terminal, last, n=2, gamma=0.5)
    np.testing.assert_allclose(t["returns"], [1 + 0.5 * 2, 2 + 0.5 * 4, 4, 8 + 0.5 * 16, 16])
    np.testing.assert_allclose(t["discount"], [0.25, 0.25, 0.5, 0.25, 0.5])
    np.testing.assert_array_equal(t["next_obs"][:, 0], [2, 3, 3, 5, 5])
    np.testing.assert_array_equal(t["done"], [0, 1, 1, 0, 0])  # a time limit is no terminal


def test_sac_resumes_as_if_never_stopped(weak: Path, demos: Path, tmp_path: Path) -> None:
    whole = run(weak, demos, tmp_path / "whole", steps=900, eval_every=10**6)
    run(weak, demos, tmp_path / "part", steps=300, eval_every=10**6)
    rest = finetune(
        Policy.load(weak),
        CARTPOLE,
        tmp_path / "part",
        FinetuneConfig(steps=900, value_warmup=0, eval_every=10**6, eval_episodes=4),
        sac=SMALL,
        demos=Store.open(demos).transitions(),
        resume=True,
        tensorboard=False,
    )
    assert rest.resumed_from is not None and 0 < rest.resumed_from < whole.updates
    assert [sorted(h.items()) for h in rest.history] == [sorted(h.items()) for h in whole.history]
    a = Policy.load(tmp_path / "whole").state_dict()
    b = Policy.load(tmp_path / "part").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    record = json.loads((tmp_path / "whole" / "finetune.json").read_text())
    assert record["sac"]["nstep"] == SMALL.nstep and "ppo" not in record


def test_sac_refuses_what_it_cannot_run(weak: Path, demos: Path, tmp_path: Path) -> None:
    pendulum = protege.tasks.make("pendulum")
    mixture = Policy(PolicyConfig.for_spaces(*pendulum.spaces, head="mog"), seed=0)
    with pytest.raises(ConfigError, match="categorical and gaussian heads, not 'mog'"):
        finetune(mixture, pendulum, tmp_path / "g", sac=SMALL)
    with pytest.raises(ConfigError, match="--bc-weight: PPO's terms"):
        run(weak, demos, tmp_path / "b", steps=100, bc_weight=0.1)
    data = Store.open(demos).transitions()
    silent = dataclasses.replace(data, rewards=np.zeros_like(data.rewards))
    with pytest.raises(DataError, match="no rewards"):
        demo_transitions(silent, 3, 0.99)
    with pytest.raises(ConfigError, match=r"SACConfig\.nstep"):
        SACConfig(nstep=0)


def test_cli_runs_sac_and_keeps_each_learner_s_flags_apart(
    weak: Path, demos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["finetune", "--policy", str(weak), "--task", "cartpole", "--no-tensorboard"]
    base += ["--no-progress"]
    out = tmp_path / "ft"
    flags = f"--algo sac --bc-data {demos} --steps 300 --n-envs 2 --eval-episodes 2 --utd 0.5"
    assert main([*base, *flags.split(), "--out", str(out)]) == 0
    assert re.search(r"algo\s*│\s*sac", capsys.readouterr().out)
    assert json.loads((out / "finetune.json").read_text())["sac"]["utd"] == 0.5
    assert len(protege.evaluate(Policy.load(out), CARTPOLE, 2, 2, seed=0).returns) == 2
    assert main([*base, "--algo", "sac", "--epochs", "3", "--out", str(tmp_path / "x")]) == 2
    assert "--epochs: PPO's settings" in capsys.readouterr().err
    assert main([*base, "--utd", "2", "--out", str(tmp_path / "y")]) == 2
    assert "--utd: SAC's settings" in capsys.readouterr().err


def test_sac_fine_tunes_a_gaussian_pendulum_policy(tmp_path: Path) -> None:
    pendulum = protege.tasks.make("pendulum")
    protege.collect(pendulum, tmp_path / "demos", episodes=4, n_envs=4, seed=0)
    data = Store.open(tmp_path / "demos").transitions()
    config = PolicyConfig.for_spaces(*pendulum.spaces, hidden_sizes=(64, 64), head="gaussian")
    bc = Policy(config, seed=0)
    protege.bc.fit(bc, data, BCConfig(steps=500, batch_size=64, seed=0, progress=False))
    start = bc.save(tmp_path / "bc")
    cfg = FinetuneConfig(steps=5000, kl=0.1, value_warmup=0, eval_every=1000, eval_episodes=4)
    sac = SACConfig(n_envs=2, seed=0)
    # Its first evaluations dip below BC's while the critic learns (to -1,579 at 2,000 steps);
    # at 5,000 steps it had gained 500-1,050 over BC with each of SACConfig's seeds 0-7 on an
    # Intel Xeon, so a gain of 150 is far from chance. At 3,000 steps it had not yet gained on
    # 4 of the 8, seed 0 among them (the test's earlier budget, passing on an AMD EPYC only).
    free = finetune(
        Policy.load(start), pendulum, tmp_path / "ft", cfg, sac=sac, demos=data, tensorboard=False
    )
    first = free.evals[0]["mean_return"]
    assert first < -400  # BC on 4 demonstrations swings the pendulum up only sometimes
    assert free.evals[-1]["mean_return"] >= first + 150
    # No claim here that a strong anchor holds a Gaussian policy near BC's return on Pendulum:
    # it does not reliably (kl 30 fell 37-39% below BC at 2,000 steps with SACConfig seed 5;
    # kl 3.0 fell 73% with seed 0 under other float kernels), and with 4 evaluation episodes
    # that each swing up or not, a 10% band is a coin toss. The anchor is tested on CartPole.
