"""GAIL and AIRL: adversarial imitation on the PPO learner, the discriminator as its reward.

:class:`AdversarialReward` is a :class:`~protege.algos.ppo.RewardSource`: on every PPO update
it adds the policy's newest batch to a replay of generator samples, takes ``disc_updates``
discriminator steps (expert steps labelled ``1 − ε``, replayed generator steps ``ε``, a
gradient penalty on interpolated inputs), then labels the batch with the discriminator's
reward, divided by its running standard deviation. Its weights, optimizer moments, replay and
reward statistics travel in the learner's checkpoint, so a run killed with ``kill -9``
resumes to the same numbers. Where the demonstrations' episodes terminate (rather than run
to the time limit), terminations lead to an absorbing state (``AdversarialConfig.absorbing``,
:mod:`protege.algos.adversarial_inputs`): the discriminator learns its reward from the share
of each side's occupancy it takes, and the learner's returns bootstrap a termination with it
(:meth:`AdversarialReward.terminal_value`).

:func:`train` runs the whole method through :func:`protege.algos.finetune.finetune` (the RL
run: evaluation on rollouts with the true reward, checkpoints and ``resume``, TensorBoard,
the store of RL episodes) from a fresh policy, or (``bc_start``; by default where the
demonstrations terminate) from BC on the same demonstrations with a critic warm-up and a
decaying BC term, then saves the learned reward as an artefact
(``OUT/reward``: :mod:`protege.rewards.artefact`) and compares it with the task's reward
along the trained policy's trajectories (``OUT/reward_vs_true.png``, correlations in
``OUT/{method}.json``).

Example:
    >>> data = Store.open("demos/cartpole").transitions()
    >>> result = train("gail", tasks.make("cartpole"), data, "runs/gail",
    ...                AdversarialConfig(steps=100_000), ppo_config(seed=0))
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from protege.algos import bc
from protege.algos.adversarial_inputs import (
    ExpertSteps,
    absorbing_mass,
    uses_absorbing,
    uses_bc_start,
)
from protege.algos.finetune import finetune
from protege.algos.ppo import RewardSource
from protege.algos.rl_rollout import RolloutBatch, derived_seed
from protege.configs.adversarial import AdversarialConfig, ppo_config
from protege.configs.bc import BCConfig
from protege.configs.demos import EVAL_SEED_OFFSET
from protege.configs.policy import PolicyConfig
from protege.configs.rl import FinetuneConfig, PPOConfig
from protege.data.files import write_atomic
from protege.data.transitions import Transitions
from protege.errors import DataError
from protege.policies.policy import Policy
from protege.rewards.artefact import save_reward
from protege.rewards.compare import correlations, plot_reward_vs_true, trace_rewards
from protege.rewards.discriminator import DiscriminatorNet, spec_for
from protege.tasks.base import Task

METHODS = ("gail", "airl")


class AdversarialReward(RewardSource):
    """The discriminator as PPO's reward source (see the module docstring).

    ``horizon``: the task's time limit; with an absorbing state (``net.absorbing``) a
    terminated episode spends what it left there (1: one step per termination). ``entropy``:
    AIRL's weight of ``−log π`` in the policy's reward
    (:meth:`~protege.configs.adversarial.AdversarialConfig.entropy_weight`)."""

    def __init__(
        self,
        net: DiscriminatorNet,
        policy: Policy,
        expert: ExpertSteps,
        config: AdversarialConfig,
        seed: int,
        horizon: int = 1,
        entropy: float = 1.0,
    ):
        self.name = net.kind
        self.entropy = entropy
        self.net, self.policy, self.expert, self.config, self.seed = (
            net,
            policy,
            expert,
            config,
            seed,
        )
        self.opt = torch.optim.Adam(net.parameters(), lr=config.disc_lr)
        self.capacity = max(config.replay_size, 1)
        self.replay: dict[str, torch.Tensor] = {}
        self.pos = 0
        self.size = 0
        self.stats = torch.zeros(3, dtype=torch.float64)  # count, mean, M2 of raw rewards
        self.horizon = horizon
        self._terminal_reward = 0.0
        self._expert = {
            "obs": torch.from_numpy(expert.obs),
            "act": torch.as_tensor(expert.actions),
            "next": torch.from_numpy(expert.next_obs),
            "done": torch.as_tensor(expert.done),
        }
        if net.kind == "airl":
            self._expert["raw"] = self._raw_of(self._expert["act"])
        length = expert.length if expert.length is not None else np.full(len(expert), horizon - 1)
        self._expert_mass = float(absorbing_mass(expert.done, length, horizon).sum())

    def _raw_of(self, actions: torch.Tensor) -> torch.Tensor:
        """Head-space (B, 1, A) actions of env-unit ones (AIRL's log π of the expert's)."""
        b = len(actions)
        if self.policy.config.discrete:
            return actions.reshape(b, 1, 1).float()
        return self.policy.normalize_actions(actions.reshape(b, 1, -1).float())

    # -------------------------------------------------------------------- replay
    def _add(self, batch: RolloutBatch) -> None:
        rows = {
            "obs": torch.from_numpy(batch.obs),
            "act": torch.as_tensor(batch.actions),
            "next": torch.from_numpy(batch.next_obs),
            "done": torch.as_tensor(batch.terminal),
            "raw": batch.raw_actions.detach(),
        }
        if self.net.absorbing:
            length = np.zeros(len(batch), np.int64)
            length[np.flatnonzero(batch.last)] = batch.episode_lengths
            mass = absorbing_mass(batch.terminal, length, self.horizon)
            rows["mass"] = torch.from_numpy(mass)
        n = len(batch)
        if self.config.replay_size == 0 or not self.replay:
            cap = n if self.config.replay_size == 0 else self.capacity
            self.replay = {k: v.new_zeros((cap, *v.shape[1:])) for k, v in rows.items()}
            self.pos = self.size = 0
        cap = len(self.replay["obs"])
        if n >= cap:  # the newest rows fill the replay
            for k, v in rows.items():
                self.replay[k].copy_(v[n - cap :])
            self.pos, self.size = 0, cap
            return
        idx = (self.pos + torch.arange(n)) % cap
        for k, v in rows.items():
            self.replay[k][idx] = v.to(self.replay[k].dtype)
        self.pos = int((self.pos + n) % cap)
        self.size = min(self.size + n, cap)

    # ----------------------------------------------------------------- learning
    def _logp(self, obs: torch.Tensor, raw: torch.Tensor) -> torch.Tensor | None:
        if self.net.kind != "airl":
            return None
        with torch.no_grad():
            p = self.policy
            return p.head.log_prob(p.features(p.normalize_obs(obs)), raw)[:, 0]

    def _absorbing_logit(self) -> torch.Tensor:
        """(1,) the discriminator's logit of the absorbing state's step (AIRL: log π = 0
        there, its one action being certain)."""
        net, act = self.net, self._expert["act"][:1]
        obs = self._expert["obs"][:1]
        x = net.inputs(
            torch.zeros_like(obs), torch.zeros_like(act), torch.zeros_like(obs), None,
            torch.ones(1, dtype=torch.bool),
        )  # fmt: skip
        no = torch.zeros(1, dtype=torch.bool)
        return net.logit(x, no, torch.zeros(1) if net.kind == "airl" else None)

    def absorbing_shares(self) -> tuple[float, float]:
        """The absorbing state's share of the expert's and of the replayed policy's
        occupancy: its mass (what the time limit had left of every terminated episode)
        over that plus the steps."""
        mass_p = float(self.replay["mass"][: self.size].sum()) if "mass" in self.replay else 0.0
        e = self._expert_mass / (self._expert_mass + len(self.expert))
        return e, mass_p / (mass_p + self.size)

    def update(self, batch: RolloutBatch, update: int) -> dict[str, float]:
        """Add ``batch`` to the replay, then ``disc_updates`` discriminator steps."""
        cfg, net = self.config, self.net
        n_up = max(cfg.disc_updates, 1)
        self._add(batch)
        g = torch.Generator().manual_seed(derived_seed(self.seed, update, 11))
        eps = cfg.label_smoothing
        sums = {"disc_loss": 0.0, "disc_expert_acc": 0.0, "disc_policy_acc": 0.0, "disc_gp": 0.0}
        if net.absorbing:
            share_e, share_p = self.absorbing_shares()
            sums.update(
                absorbing_share_expert=share_e * n_up, absorbing_share_policy=share_p * n_up
            )
            sums["disc_absorbing_d"] = 0.0
        net.train()
        for _ in range(cfg.disc_updates):
            ie = torch.randint(len(self.expert), (cfg.disc_batch_size,), generator=g)
            ig = torch.randint(self.size, (cfg.disc_batch_size,), generator=g)
            e = {k: v[ie] for k, v in self._expert.items()}
            p = {k: v[ig] for k, v in self.replay.items()}
            xe = net.inputs(e["obs"], e["act"], e["next"], e["done"])
            xp = net.inputs(p["obs"], p["act"], p["next"], p["done"])
            lpe = self._logp(e["obs"], e["raw"]) if net.kind == "airl" else None
            lpp = self._logp(p["obs"], p["raw"]) if net.kind == "airl" else None
            le, lp = net.logit(xe, e["done"], lpe), net.logit(xp, p["done"], lpp)
            bce_e = F.binary_cross_entropy_with_logits(le, torch.full_like(le, 1.0 - eps))
            bce_p = F.binary_cross_entropy_with_logits(lp, torch.full_like(lp, eps))
            if net.absorbing:  # the absorbing state's share of each side's occupancy
                la = self._absorbing_logit()
                bce_e = (1 - share_e) * bce_e + share_e * F.binary_cross_entropy_with_logits(
                    la, torch.full_like(la, 1.0 - eps)
                )
                bce_p = (1 - share_p) * bce_p + share_p * F.binary_cross_entropy_with_logits(
                    la, torch.full_like(la, eps)
                )
                sums["disc_absorbing_d"] += float(torch.sigmoid(la.detach())[0])
            loss = bce_e + bce_p
            gp = torch.zeros(())
            if cfg.grad_penalty > 0:
                alpha = torch.rand(cfg.disc_batch_size, 1, generator=g)
                xi = {k: (alpha * xe[k] + (1 - alpha) * xp[k]).requires_grad_() for k in xe}
                done_i = torch.where(alpha[:, 0] > 0.5, e["done"], p["done"])
                lpi = (
                    None
                    if lpe is None or lpp is None
                    else alpha[:, 0] * lpe + (1 - alpha[:, 0]) * lpp
                )
                li = net.logit(xi, done_i, lpi)
                grads = torch.autograd.grad(
                    li.sum(), list(xi.values()), create_graph=True, allow_unused=True
                )
                gp = sum(
                    (gr.pow(2).sum(-1) for gr in grads if gr is not None), torch.zeros(1)
                ).mean()
                loss = loss + cfg.grad_penalty * gp
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            sums["disc_loss"] += loss.item()
            sums["disc_expert_acc"] += float((le > 0).float().mean())
            sums["disc_policy_acc"] += float((lp < 0).float().mean())
            sums["disc_gp"] += float(gp.detach())
        net.eval()
        return {k: v / n_up for k, v in sums.items()}

    @torch.no_grad()
    def raw_rewards(self, batch: RolloutBatch) -> torch.Tensor:
        """The discriminator's reward of every step of ``batch``, before normalization."""
        net = self.net
        done = torch.as_tensor(batch.terminal)
        x = net.inputs(
            torch.from_numpy(batch.obs),
            torch.as_tensor(batch.actions),
            torch.from_numpy(batch.next_obs),
            done,
        )
        logp = batch.logp
        if net.kind == "airl" and self.entropy != 1.0:
            logp = logp * self.entropy
        return net.policy_reward(x, done, logp)

    @torch.no_grad()
    def absorbing_reward(self) -> float:
        """The discriminator's reward of the absorbing state's step (before normalization;
        0 without absorbing states)."""
        if not self.net.absorbing:
            return 0.0
        logit = self._absorbing_logit()
        return float(F.softplus(logit)[0] if self.net.kind == "gail" else logit[0])

    def terminal_value(self, gamma: float) -> float:
        """The absorbing state's reward (normalized like the latest batch's) summed forever:
        ``r / (1 − γ)``; 0 without absorbing states."""
        return self._terminal_reward / (1.0 - gamma) if gamma < 1.0 else 0.0

    def rewards(self, batch: RolloutBatch) -> np.ndarray:
        r = self.raw_rewards(batch).double()
        self._terminal_reward = self.absorbing_reward()
        if not self.config.normalize_reward:
            return r.numpy()
        # Welford merge of the batch into the running count, mean and M2.
        n0, mean0, m20 = self.stats.tolist()
        n1, mean1 = float(len(r)), float(r.mean())
        m21 = float(((r - mean1) ** 2).sum())
        n = n0 + n1
        delta = mean1 - mean0
        mean = mean0 + delta * n1 / n
        m2 = m20 + m21 + delta**2 * n0 * n1 / n
        self.stats = torch.tensor([n, mean, m2], dtype=torch.float64)
        std = max((m2 / max(n - 1, 1)) ** 0.5, 1e-8)
        self._terminal_reward /= std
        return (r / std).numpy()

    # -------------------------------------------------------------------- state
    def tensors(self) -> dict[str, torch.Tensor]:
        out = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        for i, s in self.opt.state_dict()["state"].items():
            for k, v in s.items():
                out[f"opt.{i}.{k}"] = torch.as_tensor(v)
        out.update({f"replay.{k}": v[: self.size] for k, v in self.replay.items()})
        out["replay_pos"] = torch.tensor([self.pos, self.size])
        out["stats"] = self.stats.clone()
        return out

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        sd = self.opt.state_dict()
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, v in tensors.items():
            if key.startswith("opt."):
                i, k = key[4:].split(".", 1)
                state.setdefault(int(i), {})[k] = v
        sd["state"] = state
        self.opt.load_state_dict(sd)
        self.pos, self.size = (int(x) for x in tensors["replay_pos"].tolist())
        rows = {k[7:]: v for k, v in tensors.items() if k.startswith("replay.")}
        if rows:
            cap = self.capacity if self.config.replay_size else self.size
            self.replay = {k: v.new_zeros((cap, *v.shape[1:])) for k, v in rows.items()}
            for k, v in rows.items():
                self.replay[k][: len(v)] = v
        self.stats = tensors["stats"].double().clone()


@dataclass
class AdversarialResult:
    """What a GAIL or AIRL run measured (the RL run's figures and the learned reward's)."""

    method: str
    seed: int
    evals: list[dict[str, float]] = field(default_factory=list)
    """Per evaluation on rollouts (true reward): ``env_steps``, ``mean_return``, ... as
    :class:`protege.algos.finetune.FinetuneResult` records them."""
    history: list[dict[str, float]] = field(default_factory=list)
    env_steps: int = 0
    wall_seconds: float = 0.0
    resumed_from: int | None = None
    reward_correlation: dict[str, float] = field(default_factory=dict)
    """Learned against true reward along the trained policy's trajectories
    (:func:`protege.rewards.compare.correlations`)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_policy(task: Task, expert: ExpertSteps, config: AdversarialConfig, seed: int) -> Policy:
    """A fresh policy for ``task``: a categorical or Gaussian head, observations normalized
    with the demonstrations' statistics and actions with the space's bounds."""
    obs_space, act_space = task.spaces
    head = "categorical" if isinstance(act_space, gym.spaces.Discrete) else "gaussian"
    cfg = PolicyConfig.for_spaces(
        obs_space, act_space, hidden_sizes=tuple(config.policy_hidden_sizes), head=head
    )
    policy = Policy(cfg, seed=derived_seed(seed, 5) % 2**63)
    with torch.no_grad():
        x = torch.as_tensor(expert.obs, dtype=torch.float32).reshape(len(expert), -1)
        std = x.std(0) if len(x) > 1 else torch.ones(x.shape[1])
        policy.obs_mean.copy_(x.mean(0).reshape(policy.obs_mean.shape))
        policy.obs_std.copy_(torch.where(std < 1e-6, 1.0, std).reshape(policy.obs_std.shape))
        if isinstance(act_space, gym.spaces.Box):
            lo = torch.as_tensor(act_space.low, dtype=torch.float32).reshape(-1)
            hi = torch.as_tensor(act_space.high, dtype=torch.float32).reshape(-1)
            policy.act_offset.copy_((hi + lo) / 2)
            policy.act_scale.copy_((hi - lo) / 2)
    return policy


def warm_start(
    policy: Policy, demos: Transitions, config: AdversarialConfig, seed: int, where: str
) -> float:
    """BC on ``demos`` for ``config.bc_steps`` steps; returns its seconds."""
    if config.bc_steps == 0:
        return 0.0
    if demos.n_labels == 0:
        raise DataError(f"{where}: no step carries an expert action label for --bc-steps")
    t0 = time.perf_counter()
    bc_config = BCConfig(
        steps=config.bc_steps,
        batch_size=64,
        val_fraction=0.0,
        seed=derived_seed(seed, 8) % 2**31,
        device="cpu",
    )
    with torch.random.fork_rng(devices=[]):
        bc.fit(policy, demos, bc_config)
    policy.eval()
    return time.perf_counter() - t0


def train(
    method: str,
    task: Task,
    demos: Transitions,
    out: str | os.PathLike[str],
    config: AdversarialConfig | None = None,
    ppo: PPOConfig | None = None,
    *,
    resume: bool = False,
    progress: bool = False,
    tensorboard: bool = True,
    data_name: str = "",
    reward_episodes: int = 4,
) -> AdversarialResult:
    """Train a policy on ``task`` by ``method`` (``"gail"`` or ``"airl"``) from ``demos``;
    write the run to ``out`` (see the module docstring). ``ppo`` defaults to
    :func:`~protege.configs.adversarial.ppo_config` (GAIL's and AIRL's PPO settings);
    ``resume`` continues a run killed mid-way (same settings; ``steps`` may grow)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    cfg, ppo_cfg = config or AdversarialConfig(), ppo or ppo_config()
    out = Path(out)
    where = data_name or "the demonstrations"
    expert = ExpertSteps.of(demos, cfg.state_only, where)
    policy = make_policy(task, expert, cfg, ppo_cfg.seed)
    bc_start = uses_bc_start(cfg, expert)
    bc_seconds = 0.0
    if bc_start and not resume:
        bc_seconds = warm_start(policy, demos, cfg, ppo_cfg.seed, where)
    obs_space, act_space = task.spaces
    absorbing = uses_absorbing(cfg, expert)
    spec = spec_for(
        method,
        obs_space,
        act_space,
        expert.obs,
        state_only=cfg.state_only,
        hidden_sizes=cfg.disc_hidden_sizes,
        gamma=ppo_cfg.gamma,
        spectral_norm=cfg.spectral_norm,
        absorbing=absorbing,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(ppo_cfg.seed, 6) % 2**63)
        net = DiscriminatorNet(spec)
    entropy = cfg.entropy_weight(bc_start)
    reward = AdversarialReward(net, policy, expert, cfg, ppo_cfg.seed, task.horizon, entropy)
    ft = FinetuneConfig(
        steps=cfg.steps,
        kl=0.0,
        value_warmup=cfg.value_warmup if bc_start else 0,
        bc_weight=cfg.bc_weight if bc_start else 0.0,
        bc_decay=cfg.bc_decay,
        eval_every=cfg.eval_every,
        eval_episodes=cfg.eval_episodes,
        checkpoint_every=cfg.checkpoint_every,
    )
    settings = {k: v for k, v in asdict(cfg).items() if k != "steps"}
    run = finetune(
        policy,
        task,
        out,
        ft,
        ppo_cfg,
        reward=reward,
        resume=resume,
        progress=method if progress else False,
        tensorboard=tensorboard,
        extra={"task": task.name, "data": data_name},
        settings={
            "method": method,
            "adversarial": settings,
            "absorbing_states": absorbing,
            "bc_start": bc_start,
            **({"airl_entropy": entropy} if method == "airl" else {}),
            "demo_steps": len(expert),
        },
        name=method,
        store_episodes=cfg.store_episodes,
        demos=demos if bc_start and cfg.bc_weight > 0 else None,
        start_seconds=bc_seconds,
    )
    save_reward(out / "reward", net, net.spec())
    result = AdversarialResult(
        method=method,
        seed=ppo_cfg.seed,
        evals=run.evals,
        history=run.history,
        env_steps=run.env_steps,
        wall_seconds=run.wall_seconds,
        resumed_from=run.resumed_from,
    )
    if reward_episodes > 0:
        traces = trace_rewards(
            net,
            task,
            lambda o: policy.act(np.asarray(o)[None])[0],
            reward_episodes,
            ppo_cfg.seed + EVAL_SEED_OFFSET,
            method,
        )
        result.reward_correlation = correlations(traces)
        plot_reward_vs_true(traces, out / "reward_vs_true.png", f"{method.upper()} on {task.name}:")
    record = json.loads((out / f"{method}.json").read_text())
    record["reward_correlation"] = result.reward_correlation
    write_atomic(out / f"{method}.json", json.dumps(record, indent=2))
    return result
