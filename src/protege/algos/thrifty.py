"""ThriftyDAgger (Hoque, Balakrishna, Novoseller, Wilcox, Brown & Goldberg, CoRL 2021,
"ThriftyDAgger: Budget-Aware Novelty and Risk Gating for Interactive Imitation Learning").

The robot (a bootstrap ensemble, :class:`~protege.policies.ensemble.PolicyEnsemble`) asks
for help where its state is *novel* (ensemble action variance above δ_h) or *risky* (a learned
Q(s, a) of task success below β_h), and hands back once its proposal is close to the expert's
(‖a_r − a_h‖² below δ_r, the mean discrepancy on its BC training data) and Q exceeds β_r
(:class:`~protege.rollout.gates_interactive.ThriftyGate`). The user's one knob is α_h, the
target rate of robot-to-human switches: δ_h, β_h and β_r are quantiles of the novelty and Q
over the current round's autonomous states. Only expert-driven steps are BC labels; *all*
transitions train Q with a binary reward (1 on the last step of a successful episode).
Policy and Q are retrained from scratch every round.

**Re-calibration after every episode** (the default, as in the paper's code): the interactive
rounds are collected one episode at a time, and before each episode the thresholds are
re-calibrated from the autonomous states of the round's earlier episodes (once there are
more than ``min_calibration`` of them). To collect ``k`` episodes in parallel instead, set
``ThriftyConfig(calibrate_every=k)``: episodes then run ``k`` at a time and the thresholds
are re-calibrated between batches, from the episodes of the earlier batches. ``run``
collects every round in batches of ``calibrate_every`` episodes (it takes the place of
``DAggerConfig.n_envs``, which ThriftyDAgger does not use). Each stored episode records the
thresholds it ran with; a round's row reports those calibrated on the whole round.

**Resume.** Batches sit at fixed episode positions and each calibration sees only the
episodes before its batch (:func:`protege.algos.engine.run`), so a run killed mid-round
and resumed calibrates, collects and trains exactly as the uninterrupted one.

Differences from the paper's code (each keeps the run resumable to the same numbers):

* A round's first thresholds come from the previous round's autonomous states under the new
  models (round 1: the demonstrations' states), not carried over from the old models.
* Robot-mode states (where the code takes its estimates) are recovered from the store, not
  kept in memory: learner-driven steps, the steps right after them, and the steps after a
  hand-back, found by replaying the hand-back rule with the thresholds each episode
  recorded (:func:`autonomous_mask`).
* Q is trained on stored episodes only (not on the code's 10 extra autonomous test
  rollouts per iteration, which show Q the robot's own failures without costing labels).
* Each round's policy trains ``config.bc``'s steps (the code: ``grad_steps · (bc_epochs +
  t)``, growing with iteration t).
* Discrete actions: the discrepancy is 1 − p̄(a_expert) under the ensemble's mean
  probabilities (the code has continuous actions: a squared distance).

Q's success labels are the verdicts recorded with each episode as it was collected
(:func:`episode_success`), so tasks whose success is in the final info train Q correctly.

Example:
    >>> result = thrifty.run(task, "runs/thrifty/store", DAggerConfig(rounds=6),
    ...                      ThriftyConfig(alpha_h=0.01))                 # per episode
    >>> result = thrifty.run(task, "runs/thrifty4/store", DAggerConfig(rounds=6),
    ...                      ThriftyConfig(alpha_h=0.01, calibrate_every=4))  # 4 in parallel
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from protege.algos import engine, rounds, success_td
from protege.algos.engine import MethodSpec, RoundContext
from protege.algos.ensemble_dagger import EnsembleTrainer
from protege.algos.results import DAggerResult
from protege.configs.interactive import DAggerConfig
from protege.configs.methods import ThriftyConfig
from protege.data.episode import EXPERT, LEARNER
from protege.data.obs import take
from protege.data.store import Store, Transitions
from protege.device import resolve_device
from protege.errors import DataError
from protege.policies.parts import to_tensors
from protege.policies.policy import Policy
from protege.policies.success_q import SuccessQ
from protege.policies.thrifty import ThriftyLearner
from protege.rollout.gates import Gate
from protege.rollout.gates_interactive import ThriftyGate
from protege.tasks.base import EpisodeOutcome, Task


def fit_success_q(
    critic: SuccessQ,
    data: Transitions,
    success: np.ndarray,
    next_action: Callable[[np.ndarray], np.ndarray],
    config: ThriftyConfig,
    seed: int,
) -> dict[str, float]:
    """Train ``critic`` by TD on every transition of ``data`` (robot's and expert's).

    Reward 1 at the last step of an episode whose ``success[e]`` is true, 0 elsewhere; every
    episode end is terminal. Target r + γ(1−d)·min(Q1', Q2')(s', π_r(s')) with Polyak-averaged
    target nets (updated every 2 steps), batches holding ≥ ``pos_fraction`` successes. The
    twins train as one stacked network (:mod:`protege.algos.success_td`).
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    critic.set_normalization(data.obs)
    batch = _td_tensors(data, success, next_action)
    pos = torch.as_tensor(np.flatnonzero(batch["reward"].numpy() > 0))
    n_pos = round(config.pos_fraction * config.q_batch) if len(pos) else 0
    loss = success_td.td_fit(critic, batch, pos, n_pos, config, gen)
    critic.eval()
    return {"q_loss": loss}


def _td_tensors(
    data: Transitions, success: np.ndarray, next_action: Callable[[np.ndarray], np.ndarray]
) -> dict[str, torch.Tensor]:
    """Every transition of ``data`` as tensors: obs, executed action, reward (1 at the last
    step of a successful episode), next obs, the robot's action there and done."""
    next_obs, last = rounds.next_observations(data)
    reward = np.zeros(len(data), np.float32)
    ends = data.episode_starts + data.episode_lengths - 1
    reward[ends[np.asarray(success, bool)]] = 1.0
    with torch.inference_mode():
        a_next = np.concatenate(
            [next_action(take(next_obs, slice(i, i + 4096))) for i in range(0, len(data), 4096)]
        )
    return {
        "obs": to_tensors(data.obs),
        "act": torch.as_tensor(np.asarray(data.executed)),
        "reward": torch.as_tensor(reward),
        "next_obs": to_tensors(next_obs),
        "next_act": torch.as_tensor(a_next),
        "done": torch.as_tensor(last.astype(np.float32)),
    }


def episode_success(task: Task, data: Transitions) -> np.ndarray:
    """(E,) whether each episode succeeded: the verdict recorded when it was collected
    (``data.success``, judged on the episode's real final info), else the task's success
    test from its return and length (an episode shorter than the horizon is taken as
    terminated; a test reading ``final_info`` sees {} there, so external demonstrations of
    a task whose success lives in the info count as failures unless they recorded it)."""
    returns = np.add.reduceat(data.rewards.astype(np.float64), data.episode_starts)
    recorded = data.success if data.success is not None else np.full(len(returns), np.nan)
    out = []
    for ret, n, rec in zip(returns, data.episode_lengths, recorded, strict=True):
        if not np.isnan(rec):
            out.append(bool(rec))
            continue
        term = int(n) < task.horizon
        out.append(bool(task.success(EpisodeOutcome(float(ret), int(n), term, not term, {}))))
    return np.array(out, bool)


@dataclass
class ThriftyTrainer:
    """Bootstrap ensemble by BC on the labels, δ_r from its training discrepancy, then Q."""

    task: Task
    ensemble: EnsembleTrainer
    config: ThriftyConfig

    def fit(self, data: Transitions, round: int, seed: int, previous: Any | None) -> ThriftyLearner:
        ens = self.ensemble.fit(data, round, seed, None)
        lab = data.labeled
        delta_r = float(np.mean(ens.discrepancy(take(data.obs, lab), data.actions[lab])))
        critic = None
        if self.config.use_risk:
            m = ens.members[0].config
            torch.manual_seed(rounds.derive_seed(seed, 998))  # Q's initial weights
            critic = SuccessQ(
                m.obs_size,
                m.act_dim,
                m.n_actions if m.discrete else 0,
                self.config.q_hidden,
            )
            fit_success_q(
                critic,
                data,
                episode_success(self.task, data),
                ens.act,
                self.config,
                rounds.derive_seed(seed, 999),
            )
        return ThriftyLearner(ens, critic, delta_r)

    def save(self, learner: Any, path: Path) -> None:
        learner.save(path)

    def load(self, path: Path) -> ThriftyLearner:
        return ThriftyLearner.load(path).to(resolve_device(self.ensemble.bc.device))


def hand_backs(data: Transitions, learner: ThriftyLearner, switch_back: np.ndarray) -> np.ndarray:
    """(N,) the expert-driven steps after which the gate handed control back to the robot,
    replayed from the stored steps: where the robot's proposal was within δ_r of the
    expert's action (the step's label) and Q(s, π_r(s)) > β_r.

    ``learner`` is the robot that drove ``data``; ``switch_back`` (E, 2) holds δ_r and β_r
    per episode, as recorded with it (:func:`recorded_switch_back`). The actor sequence alone
    cannot tell a hand-back followed at once by a new switch from the expert driving on."""
    out = np.zeros(len(data), bool)
    idx = np.flatnonzero(data.actor == EXPERT)
    per_step = np.repeat(np.asarray(switch_back, np.float64), data.episode_lengths, axis=0)
    for chunk in np.array_split(idx, max(1, -(-len(idx) // 4096))):
        if not len(chunk):
            continue
        obs = take(data.obs, chunk)
        close = learner.discrepancy(obs, data.actions[chunk]) < per_step[chunk, 0]
        q = np.ones(len(chunk))
        if learner.critic is not None:
            q = learner.critic.success(obs, learner.act(obs))
        out[chunk] = close & (q > per_step[chunk, 1])
    return out


def autonomous_mask(data: Transitions, handed_back: np.ndarray | None = None) -> np.ndarray:
    """(N,) the robot-mode steps, at which the paper's code takes its calibration estimates.

    Every episode starts in robot mode; a learner-driven step is in robot mode, and so is
    the step after it; after an expert-driven step the robot is back in robot mode where
    ``handed_back`` (:func:`hand_backs`). Without it, only hand-backs followed by a learner
    step are seen, and a robot-mode step at which the robot asked again at once is missed
    (a bias toward familiar states: such steps are novel or risky by construction)."""
    learner = data.actor == LEARNER
    back = learner.copy()
    back[:-1] |= learner[1:]  # the robot acted next, so control was handed back
    if handed_back is not None:
        back |= np.asarray(handed_back, bool)
    robot = np.empty(len(data), bool)
    robot[1:] = back[:-1]
    robot[data.episode_starts] = True
    return robot


def recorded_switch_back(store_path: Path, round: int, data: Transitions) -> np.ndarray:
    """(E, 2) the δ_r and β_r each episode of ``data`` ran with, read from the store's
    per-episode record; ``data`` holds episodes 0…E−1 of ``round`` in that order (what
    :func:`protege.algos.engine.run` hands a round's hooks)."""
    entries = {
        e.episode: e
        for e in Store.open(store_path).index
        if e.round == round and e.episode is not None
    }
    out = np.zeros((len(data.episode_lengths), 2))
    for k, length in enumerate(data.episode_lengths):
        entry = entries.get(k)
        extras = entry.extras if entry is not None else {}
        if entry is None or entry.length != int(length) or "switch_back_risk" not in extras:
            raise DataError(
                f"{store_path}: episode {k} of round {round} has no ThriftyDAgger thresholds "
                "recorded (or a different length); was it collected by another method?"
            )
        out[k] = extras["switch_back_discrepancy"], extras["switch_back_risk"]
    return out


def robot_states(data: Transitions, learner: ThriftyLearner, switch_back: np.ndarray) -> np.ndarray:
    """The observations of ``data``'s robot-mode steps (``learner`` drove them)."""
    return take(data.obs, autonomous_mask(data, hand_backs(data, learner, switch_back)))


def initial_calibration(gate: ThriftyGate, ctx: RoundContext, store_path: Path) -> bool:
    """A round's first thresholds: the previous interactive round's robot-mode states under
    the new models; in round 1 (or with too few of them), every labelled state so far
    (round 0 is expert demonstrations, which hold no robot-mode states)."""
    data = ctx.data
    if data is None:
        return False
    if ctx.round > 1 and isinstance(ctx.previous, ThriftyLearner):
        prev = data.select_episodes(data.rounds == ctx.round - 1)
        sb = recorded_switch_back(store_path, ctx.round - 1, prev)
        if gate.calibrate(robot_states(prev, ctx.previous, sb)):
            return True
    return gate.calibrate(take(data.obs, data.labeled))


def run(
    task: Task,
    store_path: str | os.PathLike[str],
    config: DAggerConfig | None = None,
    method_config: ThriftyConfig | None = None,
    *,
    make_policy: Callable[[], Policy] | None = None,
    **kwargs: Any,
) -> DAggerResult:
    """ThriftyDAgger through :func:`protege.algos.engine.run` (same keyword arguments).

    Episodes are collected ``method_config.calibrate_every`` at a time (default 1: the
    thresholds are re-calibrated after every episode), in place of ``config.n_envs``.
    ``config.retrain`` is ignored: the paper retrains from scratch."""
    config = config or DAggerConfig()
    tc = method_config or ThriftyConfig()
    store = Path(store_path)
    trainer, gate_factory, before_batch = parts(task, store, config, tc, make_policy)
    kwargs.setdefault("method", "thrifty-dagger")
    kwargs.setdefault("settings", tc)
    return engine.run(
        task,
        None,
        store,
        dataclasses.replace(config, n_envs=tc.calibrate_every),
        gate_factory,
        trainer=trainer,
        before_batch=before_batch,
        **kwargs,
    )


def parts(
    task: Task,
    store: Path,
    config: DAggerConfig,
    tc: ThriftyConfig,
    make_policy: Callable[[], Policy] | None = None,
) -> tuple[ThriftyTrainer, engine.GateFactory, engine.BatchHook]:
    """ThriftyDAgger's trainer, gate factory (the gate calibrated for the round's start) and
    re-calibration hook, for :func:`protege.algos.engine.run` (fleet mode uses them too)."""
    ens = EnsembleTrainer(
        make_policy or engine.policy_factory(task), config.bc, tc.members, tc.bootstrap
    )
    trainer = ThriftyTrainer(task, ens, tc)

    def gate_factory(ctx: RoundContext) -> Gate:
        learner = ctx.learner
        assert isinstance(learner, ThriftyLearner)
        gate = ThriftyGate(
            learner,
            learner.critic,
            alpha_h=tc.alpha_h,
            switch_back_discrepancy=learner.switch_back_discrepancy,
            min_calibration=tc.min_calibration,
        )
        initial_calibration(gate, ctx, store)
        return gate

    def before_batch(gate: Gate, ctx: RoundContext, round_data: Transitions | None) -> None:
        # engine.run passes only the round's episodes before this batch (all of them once
        # more after the last batch, for the row): never a crash-dependent part of it.
        assert isinstance(gate, ThriftyGate) and isinstance(ctx.learner, ThriftyLearner)
        if round_data is not None:
            sb = recorded_switch_back(store, ctx.round, round_data)
            gate.calibrate(robot_states(round_data, ctx.learner, sb))

    return trainer, gate_factory, before_batch


SPEC = MethodSpec("thrifty", "ThriftyDAgger", ThriftyConfig, run, ThriftyLearner.load)
