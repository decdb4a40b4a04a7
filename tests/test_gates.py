"""Gates: who drives, who labels, and that the expert is asked only where a gate needs it.

Every test counts expert queries through a wrapper around the task's expert, independently
of the loop's own counters, and checks both against what the gate should have asked.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fakes import CountingExpert, PushLeft
from protege.algos import engine
from protege.algos.bc import BCConfig
from protege.algos.ensemble_dagger import EnsembleTrainer
from protege.algos.thrifty import ThriftyConfig, ThriftyTrainer, robot_states
from protege.data.episode import EXPERT
from protege.data.store import Store
from protege.errors import ConfigError
from protege.policies import Policy, PolicyConfig
from protege.policies.ensemble import PolicyEnsemble
from protege.policies.thrifty import ThriftyLearner
from protege.rollout.gates import (
    BetaMixture,
    ExpertGate,
    ExponentialBeta,
    Gate,
    IndicatorBeta,
    LearnerGate,
    LinearBeta,
    NoisyExpertGate,
    beta_schedule,
)
from protege.rollout.gates_interactive import EnsembleGate, SimulatedSupervisorGate, ThriftyGate
from protege.rollout.loop import rollout
from protege.rollout.observers import KeepEpisodes, RolloutResult, StoreEpisodes
from protege.tasks import make
from protege.tasks.base import Task

CARTPOLE = make("cartpole")


def run_gate(gate: Any, learner: Any = None, episodes: int = 4, n_envs: int = 2, task=CARTPOLE):
    expert = CountingExpert(task.make_expert())
    env = task.make_vec_env(n_envs)
    try:
        r = rollout(
            env,
            episodes,
            gate=gate,
            seed=3,
            learner=learner,
            expert=expert,
            observers=[KeepEpisodes()],
        )
    finally:
        env.close()
    assert r.expert_queries == expert.asked
    return r, expert.asked


def steps(r: RolloutResult) -> int:
    return sum(r.lengths)


def actors(r: RolloutResult) -> np.ndarray:
    return np.concatenate([ep.actors for ep in r.episodes])


def labeled(r: RolloutResult) -> np.ndarray:
    return np.concatenate([ep.label_mask for ep in r.episodes])


# ------------------------------------------------------------------- β and schedules
def test_beta_schedules_have_the_right_values() -> None:
    assert [IndicatorBeta()(i) for i in range(3)] == [1.0, 0.0, 0.0]
    assert [ExponentialBeta(0.5)(i) for i in range(4)] == [1.0, 0.5, 0.25, 0.125]
    assert [LinearBeta(4)(i) for i in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    assert beta_schedule("linear:15")(5) == pytest.approx(10 / 15)  # imitation's default
    assert beta_schedule("exp:0.9")(2) == pytest.approx(0.81)
    assert beta_schedule("indicator")(0) == 1.0
    for bad in ("linear:0", "exp:1.5", "cosine", "linear:x"):
        with pytest.raises(ConfigError):
            beta_schedule(bad)


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_beta_mixture_mixes_per_step_and_labels_every_step(beta: float) -> None:
    r, asked = run_gate(BetaMixture(beta, seed=0), learner=PushLeft(), episodes=6)
    n = steps(r)
    assert asked == r.labels == n  # DAgger asks the expert at every visited state
    frac = (actors(r) == EXPERT).mean()
    assert frac == pytest.approx(beta, abs=0.12)
    assert labeled(r).all()


def test_beta_mixture_draws_are_seeded_per_episode() -> None:
    a, b = BetaMixture(0.5, seed=1), BetaMixture(0.5, seed=1)
    for g in (a, b):
        g.begin_episode(0)
        g.seed_episode(0, 42)
    draws_a = [a.rng(0).random() for _ in range(5)]
    draws_b = [b.rng(0).random() for _ in range(5)]
    assert draws_a == draws_b


def test_expert_and_learner_gates_query_as_documented() -> None:
    r, asked = run_gate(ExpertGate())
    assert asked == r.labels == steps(r)
    r, asked = run_gate(LearnerGate(label=False), learner=PushLeft())
    assert asked == 0 and r.labels == 0


def test_no_query_for_sub_envs_past_their_quota() -> None:
    # 3 episodes on 2 sub-envs: sub-env 0 runs 1, sub-env 1 runs 2; sub-env 0 keeps stepping.
    r, asked = run_gate(ExpertGate(), episodes=3, n_envs=2)
    assert asked == steps(r) == r.labels


# ---------------------------------------------------------------------------- DART
def test_dart_executes_noisy_actions_and_stores_clean_labels() -> None:
    gate = NoisyExpertGate(epsilon=0.5, n_actions=2, seed=0)
    r, asked = run_gate(gate, episodes=2)
    assert asked == r.labels == steps(r)
    acts = np.concatenate([ep.actions for ep in r.episodes])
    done = np.concatenate([ep.executed_actions for ep in r.episodes])
    obs = np.concatenate([ep.obs[:-1] for ep in r.episodes])
    np.testing.assert_array_equal(acts, CARTPOLE.make_expert().act(obs))  # clean labels
    assert (acts != done).mean() == pytest.approx(0.25, abs=0.08)  # ε·(1 − 1/n)


def test_dart_gaussian_noise_is_clipped_to_the_action_box() -> None:
    task = make("pendulum")
    _, space = task.spaces
    gate = NoisyExpertGate(covariance=4.0, low=space.low, high=space.high, seed=0)
    r, asked = run_gate(gate, episodes=1, n_envs=1, task=task)
    assert asked == r.labels == steps(r)
    done = np.concatenate([ep.executed_actions for ep in r.episodes])
    acts = np.concatenate([ep.actions for ep in r.episodes])
    assert np.all(np.abs(done) <= 2.0) and not np.allclose(done, acts)


# --------------------------------------------------------------------- HG-DAgger
def pole_risk(obs: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.abs(obs[:, 2]) / 0.1


def test_supervisor_without_disagreement_asks_only_while_driving() -> None:
    gate = SimulatedSupervisorGate(risk=pole_risk, hand_back=0.5, min_takeover=3)
    r, asked = run_gate(gate, learner=PushLeft(), episodes=2)
    who = actors(r)
    assert asked == r.labels == r.expert_steps == int((who == EXPERT).sum()) > 0
    np.testing.assert_array_equal(labeled(r), who == EXPERT)  # labels = takeover steps
    assert r.interventions >= 2 and r.learner_steps > 0  # it hands control back
    assert gate.totals["takeover_unsafe"] == r.interventions


def test_supervisor_watching_for_disagreement_queries_every_step_labels_takeovers() -> None:
    gate = SimulatedSupervisorGate(disagreement_threshold=0.5, window=4, min_takeover=2)
    r, asked = run_gate(gate, learner=PushLeft(), episodes=2)
    who = actors(r)
    assert asked == steps(r)  # a watching supervisor sees every step ...
    assert r.labels == int((who == EXPERT).sum()) < steps(r)  # ... but labels only takeovers
    assert gate.totals["takeover_disagree"] > 0


# ---------------------------------------------------------------- EnsembleDAgger
def tiny_ensemble(k: int = 3) -> PolicyEnsemble:
    obs_space, act_space = CARTPOLE.spaces
    members = []
    for s in range(k):
        torch.manual_seed(s)
        members.append(Policy(PolicyConfig.for_spaces(obs_space, act_space, hidden_sizes=(8,))))
    return PolicyEnsemble(members)


def test_ensemble_gate_on_variance_alone_asks_only_where_the_expert_drives() -> None:
    ens = tiny_ensemble()
    seen, _ = run_gate(LearnerGate(), learner=ens)  # the states this learner visits
    obs = np.concatenate([ep.obs for ep in seen.episodes])
    chi = float(np.median(ens.novelty(obs)))
    r, asked = run_gate(EnsembleGate(ens, variance_threshold=chi), learner=ens)
    assert asked == r.labels == r.expert_steps
    assert 0 < r.expert_steps < steps(r)


@pytest.mark.parametrize("label_all", [False, True])
def test_ensemble_gate_discrepancy_costs_a_query_per_step(label_all: bool) -> None:
    ens = tiny_ensemble()
    gate = EnsembleGate(ens, variance_threshold=1.0, discrepancy_threshold=0.5, label_all=label_all)
    r, asked = run_gate(gate, learner=ens)
    assert asked == steps(r)  # the discrepancy needs the expert's action everywhere
    assert r.labels == (steps(r) if label_all else r.expert_steps)
    assert 0 < r.expert_steps < steps(r)


# --------------------------------------------------------------- ThriftyDAgger
class ConstantCritic:
    def __init__(self, q: float):
        self.q = q

    def success(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return np.full(len(obs), self.q)


def test_thrifty_thresholds_follow_alpha_h() -> None:
    ens = tiny_ensemble(5)
    rng = np.random.default_rng(0)
    calib = rng.normal(size=(4000, 4)).astype(np.float32)
    fresh = rng.normal(size=(4000, 4)).astype(np.float32)
    for alpha in (0.01, 0.05, 0.2):
        gate = ThriftyGate(ens, ConstantCritic(0.7), alpha_h=alpha)
        assert gate.calibrate(calib)
        for obs in (calib, fresh):
            above = (ens.novelty(obs) > gate.novelty_threshold).mean()
            assert above == pytest.approx(alpha, abs=max(0.3 * alpha, 0.006))
        # β_h = α_h quantile of Q, β_r = its median (constant Q here)
        assert gate.risk_threshold == gate.switch_back_risk == pytest.approx(0.7)
    assert not ThriftyGate(ens, None).calibrate(calib[:25])  # too few states: unchanged


def robot_learner(task: Task, tmp_path: Path) -> ThriftyLearner:
    """A ThriftyDAgger robot (3 members, a success critic) trained on 4 expert demos."""
    demos = Store.create(tmp_path / "demos", *task.spaces, task=task.name)
    env = task.make_vec_env(4)
    rollout(
        env,
        4,
        gate=ExpertGate(),
        seed=0,
        expert=task.make_expert(),
        observers=[StoreEpisodes(demos)],
    )
    env.close()
    make = engine.policy_factory(task, hidden_sizes=(32, 32))
    bc = BCConfig(steps=500, batch_size=64, progress=False)
    config = ThriftyConfig(members=3, q_steps=200, q_hidden=(32, 32))
    trainer = ThriftyTrainer(task, EnsembleTrainer(make, bc, 3), config)
    return trainer.fit(demos.transitions(), 0, 0, None)


def test_thrifty_switch_rate_on_fresh_episodes_is_near_alpha_h(tmp_path: Path) -> None:
    # CartPole cut at 150 steps; 16 episodes at a time keep the rollouts cheap.
    task = dataclasses.replace(CARTPOLE, horizon=150)
    robot = robot_learner(task, tmp_path)
    alpha = 0.1
    gate = ThriftyGate(
        robot, robot.critic, alpha_h=alpha, switch_back_discrepancy=robot.switch_back_discrepancy
    )
    gate.calibrate(Store.open(tmp_path / "demos").transitions().obs)
    # Calibrate as thrifty.run does: from the robot-mode states of gated episodes, read back
    # from the store, re-calibrating between batches.
    pool: list[np.ndarray] = []
    for batch in range(2):
        if pool:
            gate.calibrate(np.concatenate(pool))
        store = Store.create(tmp_path / f"batch{batch}", *task.spaces, task=task.name)
        env = task.make_vec_env(16)
        seed = 1000 + 100 * batch  # initial states unlike the demos' and the fresh ones'
        rollout(
            env,
            16,
            gate=gate,
            seed=seed,
            learner=robot,
            expert=task.make_expert(),
            observers=[StoreEpisodes(store)],
        )
        env.close()
        switch_back = np.tile([gate.switch_back_discrepancy, gate.switch_back_risk], (16, 1))
        pool.append(robot_states(store.transitions(), robot, switch_back))
    assert gate.calibrate(np.concatenate(pool))

    before = dict(gate.totals)
    r, asked = run_gate(gate, learner=robot, episodes=64, n_envs=16, task=task)  # fresh seeds
    n = {k: gate.totals[k] - before[k] for k in gate.totals}
    assert asked == r.labels == r.expert_steps > 0  # the robot asks only when it hands over
    np.testing.assert_array_equal(labeled(r), actors(r) == EXPERT)
    assert n["robot_steps"] == r.learner_steps + n["switch_novel"] + n["switch_risk"] > 3000
    novel, risky = n["switch_novel"] / n["robot_steps"], n["switch_risk"] / n["robot_steps"]
    # Each criterion hands over at α_h of the robot-mode steps, within ±50% (episodes differ
    # in how far they stray; here 0.105 and 0.103, and 0.06–0.12 over six other seeds); both
    # together at most about 2·α_h (risk is tested only where the state is not novel).
    assert 0.5 * alpha <= novel <= 1.5 * alpha
    assert 0.5 * alpha <= risky <= 1.5 * alpha
    assert novel + risky <= 2.3 * alpha


def test_thrifty_switches_on_risk_and_hands_back_only_when_q_is_high() -> None:
    ens = tiny_ensemble(3)
    low = ThriftyGate(
        ens,
        ConstantCritic(0.1),
        risk_threshold=0.5,
        switch_back_risk=0.5,
        switch_back_discrepancy=10.0,
    )
    r, asked = run_gate(low, learner=ens, episodes=2)
    assert r.learner_steps == 0 and asked == r.labels == steps(r)  # never safe to hand back
    high = ThriftyGate(
        ens,
        ConstantCritic(0.9),
        risk_threshold=0.5,
        switch_back_risk=0.5,
        switch_back_discrepancy=10.0,
    )
    r, asked = run_gate(high, learner=ens, episodes=2)
    assert r.expert_steps == 0 and asked == 0


def test_every_gate_subclasses_gate_whose_optional_hooks_do_nothing() -> None:
    from protege.teleop.supervisor import HumanSupervisor

    for cls in (ExpertGate, LearnerGate, BetaMixture, NoisyExpertGate):
        assert issubclass(cls, Gate)
    for cls in (SimulatedSupervisorGate, EnsembleGate, ThriftyGate, HumanSupervisor):
        assert issubclass(cls, Gate)
    with pytest.raises(TypeError):
        Gate()  # type: ignore[abstract]  # decide is the one method a gate must have
    gate = LearnerGate()
    gate.begin_episode(0)
    gate.seed_episode(0, 7)
    assert gate.episode_extras(0) == {} and gate.thresholds() == {} and gate.beta is None
    assert BetaMixture(0.25).beta == 0.25
