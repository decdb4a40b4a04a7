"""Fine-tune a trained policy with reward: IL then RL (KL anchor) and IL + RL (DAPG-style).

:func:`finetune` runs the PPO learner (:mod:`protege.algos.ppo`) from a protege policy (BC,
DAgger, any head with a log-probability) on the task's reward:

- **Temperature.** ``temperature`` > 1 softens the starting policy (:func:`soften`) without
  changing its most likely action. BC on few demonstrations is sure of itself everywhere,
  also where it is wrong; PPO learns only from actions it samples, so an action with
  probability 10⁻³ is practically never corrected (``benchmarks/finetune.py`` measures it).
- **Value warm-up.** For the first ``value_warmup`` updates only the critic learns, on the
  starting policy's own rollouts; without it the first policy updates follow the advantages of
  a critic that knows nothing and undo what imitation learned (``benchmarks/finetune.py``
  measures that dip).
- **Critic pre-fit.** With ``critic_prefit`` > 0, the critic is first fit to the
  demonstrations' discounted returns-to-go (at the first update, in its observation units,
  before any advantage): no env steps spent, unlike the warm-up. The demonstrator's returns
  over-estimate the starting policy's where it does worse; PPO's own targets correct that.
- **KL anchor (pattern 1).** ``kl · kl_decay^u · KL(π ‖ π_start)`` to the frozen starting
  policy: exact for a categorical head, otherwise the non-negative estimator
  ``E[(r − 1) − log r]``, ``r = π_start(a)/π(a)``, importance-weighted from the rollout's actions.
- **BC term (pattern 2).** ``bc_weight · bc_decay^u · (−log π(a|s))`` on demonstrations.
- **Self-imitation.** ``self_imitation · (−log π(a|s))`` on the run's own best episodes so far
  (:mod:`protege.algos.self_imitation`).

The run lives in ``out``: the fine-tuned policy itself (``config.json`` +
``model.safetensors``, what ``protege eval`` reads), ``start/`` (the frozen starting policy),
``store/`` (every RL episode, marked as RL's: :class:`~protege.algos.rl_rollout.RLEpisodes`),
``checkpoint/`` (the learner's full state after the latest update, written durably: a run
killed with ``kill -9`` resumes from it with ``resume=True`` and reaches the same numbers),
``tb/`` (a TensorBoard log, when tensorboard is installed) and ``finetune.json``.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from protege.algos.critic_prefit import demo_returns
from protege.algos.finetune_checkpoint import check_same, read_checkpoint, write_checkpoint
from protege.algos.ppo import PPO, PolicyTerm, RewardSource, check_trainable
from protege.algos.rl_rollout import RLEpisodes, derived_seed
from protege.algos.sac import SAC
from protege.algos.self_imitation import SelfImitation
from protege.configs.demos import EVAL_SEED_OFFSET
from protege.configs.rl import FinetuneConfig, PPOConfig, SACConfig
from protege.data.files import write_atomic
from protege.data.store import Store
from protege.data.transitions import Transitions
from protege.errors import ConfigError, DataError
from protege.policies.heads.categorical import CategoricalHead
from protege.policies.heads.gaussian import GaussianHead
from protege.policies.policy import Policy
from protege.rollout.evaluate import evaluate
from protege.tasks.base import Task

MAX_LOG_RATIO = 20.0
"""Cap on log(π_anchor / π) in the sampled KL estimate (heads without a closed form)."""


class KLAnchor(PolicyTerm):
    """KL(π ‖ π_anchor) on the minibatch's states, weight ``coef · decay^(u − start)``."""

    name = "kl"

    def __init__(self, anchor: Policy, coef: float, decay: float = 1.0, start: int = 0):
        self.anchor = anchor.eval().requires_grad_(False)
        self.coef, self.decay, self.start = coef, decay, start

    def weight(self, update: int) -> float:
        return self.coef * self.decay ** max(update - self.start, 0)

    def loss(self, policy: Policy, mb: dict[str, torch.Tensor], update: int) -> torch.Tensor:
        with torch.no_grad():
            # the anchor's own normalization: the learner re-expresses the policy's at its
            # first update, so mb["obs_n"] is in units the anchor's first layer never saw
            anchor_feats = self.anchor.features(self.anchor.normalize_obs(mb["obs"]))
        if isinstance(policy.head, CategoricalHead):
            assert isinstance(self.anchor.head, CategoricalHead)
            logp = F.log_softmax(policy.head.logits(mb["feats"]), -1)
            logq = F.log_softmax(self.anchor.head.logits(anchor_feats), -1)
            return (logp.exp() * (logp - logq)).sum(-1).mean()
        if isinstance(policy.head, GaussianHead):
            assert isinstance(self.anchor.head, GaussianHead)
            return policy.head.kl(mb["feats"], self.anchor.head, anchor_feats)[:, 0].mean()
        # no closed form (a mixture): the sampled estimate r − 1 − log r, r = π_anchor / π,
        # importance-weighted to the actions' sampling policy; log r capped at 20 so that an
        # action the anchor finds far likelier than π cannot overflow it (e^20 ≈ 5·10⁸)
        with torch.no_grad():
            logq = self.anchor.head.log_prob(anchor_feats, mb["raw"])[:, 0]
        log_r = (logq - mb["logp"]).clamp(max=MAX_LOG_RATIO)
        w = (mb["logp"] - mb["logp_old"]).exp()
        return (w * (log_r.exp() - 1 - log_r)).mean()


@torch.no_grad()
def soften(policy: Policy, temperature: float, where: str = "the policy") -> None:
    """Raise ``policy``'s sampling temperature in place, its most likely action unchanged:
    a categorical head's logits divided by ``temperature``, a Gaussian head's standard
    deviation multiplied by it (its log-std output shifted by ``log temperature``)."""
    if temperature == 1.0:
        return
    head = policy.head
    if isinstance(head, CategoricalHead):
        head.linear.weight.div_(temperature)
        head.linear.bias.div_(temperature)
    elif isinstance(head, GaussianHead):
        h, a = head.chunk_size, head.act_dim
        rows = torch.arange(h * 2 * a).view(h, 2, a)[:, 1].reshape(-1)
        head.linear.bias[rows] += math.log(temperature)
    else:
        raise ConfigError(
            f"{where}: --temperature softens categorical and gaussian heads, not "
            f"{policy.config.head!r}; fine-tune it with --temperature 1"
        )


class BCTerm(PolicyTerm):
    """−log π(a|s) on a minibatch of demonstrations' labeled steps, weight
    ``w · decay^(u − start)``; minibatches drawn from ``(seed, update)``."""

    name = "bc"

    def __init__(
        self,
        data: Transitions,
        weight: float,
        decay: float,
        batch_size: int,
        seed: int,
        start: int = 0,
        where: str = "the demonstrations",
    ):
        keep = np.flatnonzero(data.labeled)
        if len(keep) == 0:
            raise DataError(f"{where}: no labeled steps for the BC term")
        self.obs = torch.as_tensor(np.asarray(data.obs[keep]), dtype=torch.float32)
        self.actions = torch.as_tensor(np.asarray(data.actions[keep]))
        self.w, self.decay, self.start = weight, decay, start
        self.batch_size, self.seed = batch_size, seed
        self._update = -1
        self._g = torch.Generator()

    def weight(self, update: int) -> float:
        return self.w * self.decay ** max(update - self.start, 0)

    def loss(self, policy: Policy, mb: dict[str, torch.Tensor], update: int) -> torch.Tensor:
        if update != self._update:
            self._update = update
            self._g.manual_seed(derived_seed(self.seed, update, 4))
        idx = torch.randint(len(self.obs), (self.batch_size,), generator=self._g)
        a = self.actions[idx].float()
        a = a.view(len(idx), 1, -1)
        feats = policy.features(policy.normalize_obs(self.obs[idx]))
        return -policy.head.log_prob(feats, policy.normalize_actions(a)).mean()


@dataclass
class FinetuneResult:
    """What a fine-tuning run measured: evaluations on rollouts and per-update metrics."""

    seed: int
    evals: list[dict[str, float]] = field(default_factory=list)
    """Per evaluation: ``update``, ``env_steps``, ``mean_return``, ``std_return``,
    ``success_rate``, ``wall_seconds`` (training time so far, evaluations excluded); with
    ``FinetuneConfig.eval_sampled`` also ``sampled_return``, ``sampled_std``."""
    history: list[dict[str, float]] = field(default_factory=list)
    """Per update: ``update``, ``env_steps`` and the learner's metrics."""
    env_steps: int = 0
    updates: int = 0
    wall_seconds: float = 0.0
    resumed_from: int | None = None
    """The update a resumed run continued after (None: not resumed)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def finetune(
    policy: Policy,
    task: Task,
    out: str | os.PathLike[str],
    config: FinetuneConfig | None = None,
    ppo: PPOConfig | None = None,
    *,
    sac: SACConfig | None = None,
    demos: Transitions | None = None,
    reward: RewardSource | None = None,
    resume: bool = False,
    progress: bool | str = False,
    tensorboard: bool = True,
    extra: dict[str, str] | None = None,
    settings: dict[str, Any] | None = None,
    name: str = "finetune",
    store_episodes: bool = True,
    start_seconds: float = 0.0,
) -> FinetuneResult:
    """Fine-tune ``policy`` (in place) on ``task`` with PPO (or, given ``sac``, the
    off-policy :class:`~protege.algos.sac.SAC`); write the run to ``out``.

    Args:
        sac: run SAC with these settings instead of PPO (``ppo`` is then unused).
        demos: demonstrations for the BC term (needed when ``config.bc_weight > 0``); SAC
            draws them into its minibatches.
        reward: the reward source (the env's by default).
        resume: continue the run in ``out`` from its checkpoint (same settings; ``steps`` may
            differ). Without it, ``out`` must not hold a run.
        extra: what the saved policy records beside its config (``task``, ``data``).
        settings: more settings a resumed run must match (a reward source's: GAIL's), recorded
            with the run's own in ``{name}.json``.
        name: the run's name (its JSON record ``{name}.json`` and progress bar).
        store_episodes: append every RL episode to ``out/store`` (durably: one fsync each).
        start_seconds: training seconds spent before the run on what it starts from (a warm
            start's BC): its clock, which evaluations record, starts there.
    """
    cfg, ppo_cfg = config or FinetuneConfig(), ppo or PPOConfig()
    out = Path(out)
    check_trainable(policy, "the policy to fine-tune")
    if cfg.bc_weight > 0 and demos is None:
        raise ConfigError("FinetuneConfig.bc_weight > 0 needs demonstrations (--bc-data STORE)")
    if cfg.critic_prefit > 0 and sac is None:
        _check_prefit_data(demos)
    if sac is not None:
        _check_sac(cfg, reward)
    learner_settings = {"sac": asdict(sac)} if sac is not None else {"ppo": asdict(ppo_cfg)}
    settings = {**(settings or {}), "finetune": asdict(cfg), **learner_settings, "task": task.name}
    ckpt = out / "checkpoint"
    state = read_checkpoint(ckpt) if resume else None
    started = (out / "start" / "config.json").exists()
    if resume and not started:
        raise ConfigError(f"{out}: no fine-tuning run to resume (start it without --resume)")
    if not resume and started:
        raise ConfigError(f"{out}: holds a fine-tuning run; resume it (--resume) or pick --out")
    if state is not None:
        check_same(out, state["settings"], settings)
    if resume:  # from the checkpoint, or from the start if killed before the first one
        anchor = Policy.load(out / "start")
        policy.load_state_dict(anchor.state_dict())
    else:
        soften(policy, cfg.temperature, "the policy to fine-tune")
        anchor = Policy.load(policy.save(out / "start", extra=extra))
    terms: list[PolicyTerm] = []
    if cfg.kl > 0 and sac is None:
        terms.append(KLAnchor(anchor, cfg.kl, cfg.kl_decay, cfg.value_warmup))
    if cfg.bc_weight > 0:
        assert demos is not None
        terms.append(
            BCTerm(
                demos,
                cfg.bc_weight,
                cfg.bc_decay,
                cfg.bc_batch_size,
                ppo_cfg.seed,
                cfg.value_warmup,
            )
        )
    if cfg.self_imitation > 0:
        terms.append(
            SelfImitation(
                cfg.self_imitation, cfg.self_imitation_episodes, cfg.bc_batch_size, ppo_cfg.seed
            )
        )
    obs_space, act_space = task.spaces
    store = (
        Store.create(out / "store", obs_space, act_space, task=task.name, exist_ok=resume)
        if store_episodes
        else None
    )
    observers = [RLEpisodes(store)] if store is not None else []
    prefit = None
    if cfg.critic_prefit > 0 and state is None:  # a resumed run's critic is in its checkpoint
        assert demos is not None
        prefit = demo_returns(demos, ppo_cfg.gamma, cfg.critic_prefit)
    learner: PPO | SAC
    if sac is not None:
        learner = SAC(
            policy,
            task,
            sac,
            anchor=anchor if cfg.kl > 0 else None,
            kl=cfg.kl,
            kl_decay=cfg.kl_decay,
            start=cfg.value_warmup,
            demos=demos,
            observers=observers,
        )
    else:
        learner = PPO(
            policy,
            task,
            ppo_cfg,
            reward=reward,
            terms=terms,
            observers=observers,
            prefit=prefit,
            prefit_own=cfg.critic_prefit_own if state is None else 0,
        )
    seed, n_envs = learner.config.seed, learner.config.n_envs
    result = FinetuneResult(seed=seed, wall_seconds=start_seconds)
    if state is not None:
        tensors = load_file(str(ckpt / state["weights"]))
        learner.load_state(tensors, state["numbers"])
        result.evals, result.history = state["evals"], state["history"]
        result.wall_seconds = float(state["wall_seconds"])
        result.resumed_from = learner.updates
    writer = _tensorboard(out / "tb", learner.env_steps) if tensorboard else None
    eval_seed = seed + EVAL_SEED_OFFSET
    eval_envs = cfg.eval_envs or n_envs
    bar = _bar(progress if progress is not True else name, cfg.steps, learner.env_steps)

    def run_eval() -> None:
        ev = evaluate(
            policy, task, cfg.eval_episodes, eval_envs, eval_seed, measure_disagreement=False
        )
        row = {
            "update": learner.updates,
            "env_steps": learner.env_steps,
            "mean_return": ev.mean_return,
            "std_return": ev.std_return,
            "success_rate": ev.success_rate,
            "wall_seconds": result.wall_seconds,
        }
        if cfg.eval_sampled:
            sampled = evaluate(
                policy,
                task,
                cfg.eval_episodes,
                eval_envs,
                eval_seed,
                deterministic=False,
                measure_disagreement=False,
            )
            row["sampled_return"] = sampled.mean_return
            row["sampled_std"] = sampled.std_return
        result.evals.append(row)
        if writer is not None:
            writer.add_scalar("eval/mean_return", ev.mean_return, learner.env_steps)
            writer.add_scalar("eval/success_rate", ev.success_rate, learner.env_steps)
            if cfg.eval_sampled:
                writer.add_scalar("eval/sampled_return", row["sampled_return"], learner.env_steps)
        if bar is not None:
            bar.set_postfix(eval_return=f"{ev.mean_return:.1f}")

    def reached() -> bool:
        """The latest evaluation's returns all reach ``stop_return``."""
        if cfg.stop_return is None:
            return False
        last = result.evals[-1]
        keys = ("mean_return", "sampled_return") if cfg.eval_sampled else ("mean_return",)
        return all(last[k] >= cfg.stop_return for k in keys)

    try:
        if not result.evals:
            run_eval()
        while learner.env_steps < cfg.steps and not reached():
            t0 = time.perf_counter()
            before = learner.env_steps
            metrics = learner.step(train_policy=learner.updates >= cfg.value_warmup)
            result.wall_seconds += time.perf_counter() - t0
            row = {"update": learner.updates - 1, "env_steps": learner.env_steps, **metrics}
            result.history.append(row)
            if writer is not None:
                for k, v in metrics.items():
                    writer.add_scalar(f"train/{k}", v, learner.env_steps)
            if bar is not None:
                bar.update(learner.env_steps - before)
            if learner.env_steps // cfg.eval_every > before // cfg.eval_every:
                run_eval()
            if learner.updates % cfg.checkpoint_every == 0:
                write_checkpoint(ckpt, learner, settings, result)
        if result.evals[-1]["env_steps"] != learner.env_steps:
            run_eval()
    finally:
        learner.close()
        if store is not None:
            store.close()
        if writer is not None:
            writer.close()
        if bar is not None:
            bar.close()
    result.env_steps, result.updates = learner.env_steps, learner.updates
    policy.save(out, extra=extra)
    record = {**settings, "result": result.to_dict()}
    write_atomic(out / f"{name}.json", json.dumps(record, indent=2))
    return result


def _check_sac(cfg: FinetuneConfig, reward: RewardSource | None) -> None:
    """SAC takes the KL anchor, warm-up and temperature; the other terms are PPO's."""
    ppo_only = [
        f"--{name.replace('_', '-')}"
        for name in ("bc_weight", "critic_prefit", "critic_prefit_own", "self_imitation")
        if getattr(cfg, name) > 0
    ]
    if ppo_only:
        raise ConfigError(
            f"{', '.join(ppo_only)}: PPO's terms; --algo sac draws the demonstrations (--bc-data) "
            "into its minibatches instead. Drop them, or use --algo ppo"
        )
    if reward is not None:
        raise ConfigError("a learned reward source (GAIL, AIRL, preferences) runs with PPO")


def _check_prefit_data(demos: Transitions | None) -> None:
    if demos is None:
        raise ConfigError(
            "FinetuneConfig.critic_prefit > 0 needs demonstrations with rewards (--bc-data STORE)"
        )
    if isinstance(demos.obs, dict):
        raise ConfigError("--critic-prefit fits observations of one array, not of named parts")
    if len(demos) == 0 or not np.asarray(demos.rewards).any():
        raise DataError(
            "--critic-prefit: every reward of the demonstrations is 0 (a store without "
            "rewards); collect them from a task with rewards, or fine-tune without it"
        )


# ---------------------------------------------------------------------------- checkpoints
def _tensorboard(path: Path, step: int) -> Any:
    """A TensorBoard writer (None if tensorboard is not installed); a resumed run's log
    drops the points after its checkpoint (``purge_step``)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(path), purge_step=step or None)


def _bar(progress: bool | str, total: int, done: int) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    desc = progress if isinstance(progress, str) else "fine-tune"
    return tqdm(total=total, initial=min(done, total), desc=desc, unit="step", leave=False)
