"""ThriftyDAgger (Hoque, Balakrishna, Novoseller, Wilcox, Brown & Goldberg, CoRL 2021,
"ThriftyDAgger: Budget-Aware Novelty and Risk Gating for Interactive Imitation Learning").

The robot (a bootstrap ensemble, :class:`~protege.algos.ensemble_dagger.PolicyEnsemble`) asks
for help where its state is *novel* (ensemble action variance above δ_h) or *risky* (a learned
Q(s, a) of task success below β_h), and hands back once its proposal is close to the expert's
(‖a_r − a_h‖² below δ_r, the mean discrepancy on its BC training data) and Q exceeds β_r
(:class:`~protege.rollout.gates_interactive.ThriftyGate`). The user's one knob is α_h, the
target rate of robot-to-human switches: δ_h, β_h and β_r are quantiles of the novelty and Q
over autonomous states, re-calibrated after every batch of ``n_envs`` episodes from the
current round's autonomous states (after every episode with ``n_envs=1``, as in the paper's
code; ``before_batch`` in :func:`protege.algos.dagger.run`). Only expert-driven steps are BC
labels; *all* transitions train Q with a binary reward (1 on the last step of a successful
episode). Policy and Q are retrained from scratch every round.

Differences from the paper's code (each keeps the run resumable to the same numbers):

* A round's first thresholds come from the previous round's autonomous states under the new
  models (round 1: the demonstrations' states), not carried over from the old models.
* Autonomous states are read from the store: learner-driven steps plus each intervention's
  first step (the robot-mode state at which the robot asked), as in the code's estimates.
* Q is trained on stored episodes only (not on extra autonomous test rollouts).

Example:
    >>> result = thrifty.run(task, "runs/thrifty/store", DAggerConfig(rounds=6, n_envs=1),
    ...                      ThriftyConfig(alpha_h=0.01))
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from protege.algos import dagger
from protege.algos.dagger import DAggerConfig, DAggerResult, RoundContext
from protege.algos.ensemble_dagger import EnsembleTrainer, PolicyEnsemble
from protege.data.episode import EXPERT, LEARNER
from protege.data.store import Transitions
from protege.errors import CheckpointError, ConfigError
from protege.policies.encoders import mlp
from protege.policies.policy import Policy
from protege.rollout.gates import Gate
from protege.rollout.gates_interactive import ThriftyGate
from protege.tasks.base import EpisodeOutcome, Task


@dataclass
class ThriftyConfig:
    """ThriftyDAgger's settings (defaults from the paper's code unless noted)."""

    alpha_h: float = 0.01
    """Target rate of robot-to-human context switches (``--targetrate``)."""
    members: int = 5
    use_risk: bool = True
    """False: the novelty-only ablation (no Q network)."""
    gamma: float = 0.9999
    q_steps: int = 2000
    """Q gradient steps per round."""
    q_batch: int = 256
    """The paper uses 50; larger batches cost little on a CPU and steady the targets."""
    q_lr: float = 1e-3
    pos_fraction: float = 0.1
    """Each Q batch holds at least this fraction of success (reward 1) transitions."""
    polyak: float = 0.995
    q_hidden: tuple[int, ...] = (256, 256)
    min_calibration: int = 25
    """Re-calibrate only from more than this many autonomous states."""
    bootstrap: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha_h < 1.0:
            raise ConfigError(f"alpha_h must be in (0, 1), got {self.alpha_h}")
        if not 0.0 <= self.pos_fraction < 1.0 or not 0.0 < self.gamma <= 1.0:
            raise ConfigError("pos_fraction must be in [0, 1) and gamma in (0, 1]")


class SuccessQ(nn.Module):
    """Twin Q networks with sigmoid outputs: Q(s, a) ≈ the discounted probability that the
    episode ends in success after action a at s, the robot driving afterwards. Discrete
    actions get one output per action; continuous ones are an input. ``success`` is the min
    of the twins, as in the paper's code."""

    obs_mean: torch.Tensor
    obs_std: torch.Tensor

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        n_actions: int = 0,
        hidden: Sequence[int] = (256, 256),
    ):
        super().__init__()
        self.obs_dim, self.act_dim, self.n_actions = obs_dim, act_dim, n_actions
        self.hidden = tuple(hidden)
        in_dim = obs_dim + (0 if n_actions else act_dim)
        out = n_actions or 1
        self.q1 = nn.Sequential(mlp(in_dim, hidden), nn.Linear(hidden[-1], out))
        self.q2 = nn.Sequential(mlp(in_dim, hidden), nn.Linear(hidden[-1], out))
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))

    def set_normalization(self, obs: np.ndarray) -> None:
        obs64 = np.asarray(obs, np.float64).reshape(len(obs), -1)
        std = obs64.std(0)
        self.obs_mean.copy_(torch.as_tensor(obs64.mean(0), dtype=torch.float32))
        self.obs_std.copy_(torch.as_tensor(np.where(std < 1e-6, 1.0, std), dtype=torch.float32))

    def both(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,) Q values of both twins at (obs, actions)."""
        x = (obs.float().flatten(1) - self.obs_mean) / self.obs_std
        if self.n_actions:
            idx = actions.long().reshape(-1, 1)
            q1 = torch.sigmoid(self.q1(x)).gather(1, idx)[:, 0]
            q2 = torch.sigmoid(self.q2(x)).gather(1, idx)[:, 0]
            return q1, q2
        x = torch.cat([x, actions.float().reshape(len(x), -1)], dim=1)
        return torch.sigmoid(self.q1(x))[:, 0], torch.sigmoid(self.q2(x))[:, 0]

    @torch.inference_mode()
    def success(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        q1, q2 = self.both(torch.as_tensor(np.asarray(obs)), torch.as_tensor(np.asarray(actions)))
        return torch.minimum(q1, q2).numpy().astype(np.float64)

    def spec(self) -> dict[str, Any]:
        return {
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "n_actions": self.n_actions,
            "hidden": list(self.hidden),
        }


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
    target nets (updated every 2 steps), batches holding ≥ ``pos_fraction`` successes.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    critic.set_normalization(data.obs)
    next_obs, last = dagger.next_observations(data)
    reward = np.zeros(len(data), np.float32)
    ends = data.episode_starts + data.episode_lengths - 1
    reward[ends[np.asarray(success, bool)]] = 1.0
    with torch.inference_mode():
        a_next = np.concatenate(
            [next_action(next_obs[i : i + 4096]) for i in range(0, len(data), 4096)]
        )
    obs_t = torch.as_tensor(data.obs)
    act_t = torch.as_tensor(np.asarray(data.executed))
    next_t = torch.as_tensor(next_obs)
    a_next_t = torch.as_tensor(a_next)
    r_t = torch.as_tensor(reward)
    d_t = torch.as_tensor(last.astype(np.float32))
    pos = torch.as_tensor(np.flatnonzero(reward > 0))
    n_pos = round(config.pos_fraction * config.q_batch) if len(pos) else 0
    target = _copy_module(critic)
    opt = torch.optim.Adam(
        list(critic.q1.parameters()) + list(critic.q2.parameters()), lr=config.q_lr
    )
    losses = []
    for step in range(config.q_steps):
        rows = torch.randint(len(data), (config.q_batch - n_pos,), generator=gen)
        if n_pos:
            rows = torch.cat([rows, pos[torch.randint(len(pos), (n_pos,), generator=gen)]])
        with torch.no_grad():
            t1, t2 = target.both(next_t[rows], a_next_t[rows])
            y = r_t[rows] + config.gamma * (1.0 - d_t[rows]) * torch.minimum(t1, t2)
        q1, q2 = critic.both(obs_t[rows], act_t[rows])
        loss = ((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if step % 2 == 1:
            with torch.no_grad():
                for p, tp in zip(critic.parameters(), target.parameters(), strict=True):
                    tp.mul_(config.polyak).add_(p.detach(), alpha=1.0 - config.polyak)
    critic.eval()
    return {"q_loss": float(np.mean(losses[-100:])) if losses else float("nan")}


def _copy_module(m: SuccessQ) -> SuccessQ:
    out = SuccessQ(m.obs_dim, m.act_dim, m.n_actions, m.hidden)
    out.load_state_dict(m.state_dict())
    out.requires_grad_(False)
    return out


class ThriftyLearner:
    """The robot: an ensemble that acts, its success critic (or None) and δ_r."""

    def __init__(
        self, ensemble: PolicyEnsemble, critic: SuccessQ | None, switch_back_discrepancy: float
    ):
        self.ensemble = ensemble
        self.critic = critic
        self.switch_back_discrepancy = switch_back_discrepancy

    def act(
        self, obs: np.ndarray, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> np.ndarray:
        return self.ensemble.act(obs, deterministic, generator)

    def reset(self, mask: np.ndarray | None = None) -> None:
        self.ensemble.reset(mask)

    def novelty(self, obs: np.ndarray) -> np.ndarray:
        return self.ensemble.novelty(obs)

    def discrepancy(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return self.ensemble.discrepancy(obs, actions)

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        self.ensemble.save(path / "ensemble")
        meta: dict[str, Any] = {"switch_back_discrepancy": self.switch_back_discrepancy}
        if self.critic is not None:
            meta["critic"] = self.critic.spec()
            tensors = {k: v.detach().contiguous() for k, v in self.critic.state_dict().items()}
            save_file(tensors, str(path / "critic.safetensors"))
        (path / "thrifty.json").write_text(json.dumps(meta))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ThriftyLearner:
        path = Path(path)
        try:
            meta = json.loads((path / "thrifty.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path / 'thrifty.json'}: unreadable ({exc})") from None
        critic = None
        if "critic" in meta:
            spec = meta["critic"]
            critic = SuccessQ(spec["obs_dim"], spec["act_dim"], spec["n_actions"], spec["hidden"])
            critic.load_state_dict(load_file(str(path / "critic.safetensors")))
            critic.eval()
        ensemble = PolicyEnsemble.load(path / "ensemble")
        return cls(ensemble, critic, float(meta["switch_back_discrepancy"]))


def episode_success(task: Task, data: Transitions) -> np.ndarray:
    """(E,) the task's success test per episode, from its return and length (an episode
    shorter than the horizon is taken as terminated; tests reading ``final_info`` see {})."""
    returns = np.add.reduceat(data.rewards.astype(np.float64), data.episode_starts)
    out = []
    for ret, n in zip(returns, data.episode_lengths, strict=True):
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
        delta_r = float(np.mean(ens.discrepancy(data.obs[lab], data.actions[lab])))
        critic = None
        if self.config.use_risk:
            m = ens.members[0].config
            critic = SuccessQ(
                int(np.prod(m.obs_shape)),
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
                dagger.derive_seed(seed, 999),
            )
        return ThriftyLearner(ens, critic, delta_r)

    def save(self, learner: Any, path: Path) -> None:
        learner.save(path)

    def load(self, path: Path) -> ThriftyLearner:
        return ThriftyLearner.load(path)


def autonomous_mask(data: Transitions) -> np.ndarray:
    """(N,) the robot-mode steps: learner-driven steps plus each intervention's first step
    (where the robot, in robot mode, asked for help)."""
    actor = data.actor
    prev = np.empty_like(actor)
    prev[1:] = actor[:-1]
    prev[data.episode_starts] = LEARNER  # every episode starts in robot mode
    return (actor == LEARNER) | ((actor == EXPERT) & (prev == LEARNER))


def calibrate_gate(gate: ThriftyGate, data: Transitions | None, rounds: Sequence[int]) -> bool:
    """Calibrate ``gate`` from the autonomous states of ``rounds`` in ``data``."""
    if data is None:
        return False
    in_rounds = np.isin(np.repeat(data.rounds, data.episode_lengths), list(rounds))
    mask = in_rounds & autonomous_mask(data)
    return gate.calibrate(data.obs[mask]) if mask.sum() > gate.min_calibration else False


def run(
    task: Task,
    store_path: str | os.PathLike[str],
    config: DAggerConfig | None = None,
    method_config: ThriftyConfig | None = None,
    *,
    make_policy: Callable[[], Policy] | None = None,
    **kwargs: Any,
) -> DAggerResult:
    """ThriftyDAgger through :func:`protege.algos.dagger.run` (same keyword arguments).
    ``config.retrain`` is ignored: the paper retrains from scratch."""
    config = config or DAggerConfig()
    tc = method_config or ThriftyConfig()
    ens = EnsembleTrainer(
        make_policy or dagger.policy_factory(task), config.bc, tc.members, tc.bootstrap
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
        # The previous round's robot states under the new models; round 1: the demos.
        if not calibrate_gate(gate, ctx.data, [ctx.round - 1]) and ctx.data is not None:
            gate.calibrate(ctx.data.obs[ctx.data.labeled])
        return gate

    def before_batch(gate: Gate, ctx: RoundContext, round_data: Transitions | None) -> None:
        assert isinstance(gate, ThriftyGate)
        calibrate_gate(gate, round_data, [ctx.round])

    kwargs.setdefault("method", "thrifty-dagger")
    return dagger.run(
        task,
        None,
        store_path,
        config,
        gate_factory,
        trainer=trainer,
        before_batch=before_batch,
        **kwargs,
    )
