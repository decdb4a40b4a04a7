"""EnsembleDAgger (Menda, Driggs-Campbell & Kochenderfer, IROS 2019, "EnsembleDAgger: A
Bayesian Approach to Safe Imitation Learning").

An ensemble of K policies approximates a posterior over the novice: its action variance says
where the novice has not seen data. The novice drives only where the variance is below χ and
(optionally) its mean action is within τ of the expert's; elsewhere the expert drives and
labels (:class:`~protege.rollout.gates_interactive.EnsembleGate`). The discrepancy test needs
the expert's action at every step, so it costs as many expert *queries* as DAgger even though
it stores far fewer *labels*; set ``discrepancy_threshold=None`` to gate on variance alone.

:class:`PolicyEnsemble` is shared with ThriftyDAgger. Members are trained on bootstrap
resamples of the episodes (and from different seeds). Members that stack (MLPs with an
``mse``, ``categorical`` or ``gaussian`` head: the default policies) train and answer as one
batched network (:mod:`protege.policies.stacked`, :mod:`protege.algos.stacked_bc`), each
member computing what it would alone; any other members, one after another.

Example:
    >>> result = ensemble_dagger.run(task, store_path, DAggerConfig(rounds=6),
    ...                              EnsembleConfig(variance_threshold=0.05))
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from protege.algos import bc, dagger, rounds, stacked_bc
from protege.algos.bc import BCConfig
from protege.algos.dagger import DAggerConfig, DAggerResult, RoundContext
from protege.data.store import Transitions
from protege.errors import CheckpointError, ConfigError, DataError
from protege.policies.policy import Policy
from protege.policies.stacked import PolicyPlan, stackable
from protege.rollout.gates import Gate
from protege.rollout.gates_interactive import EnsembleGate
from protege.tasks.base import Task


class PolicyEnsemble:
    """K policies acting as one.

    The action is the members' mean (continuous) or the action with the highest mean
    probability (discrete). ``novelty`` is ThriftyDAgger's ``variance(o)``: the ensemble's
    action variance averaged over action dimensions (for discrete actions, the variance of the
    members' probability vectors). ``discrepancy`` is the squared L2 distance of the mean
    action from given actions (discrete: 1 − the mean probability of the given action).

    Example:
        >>> ens = PolicyEnsemble([p1, p2, p3])
        >>> ens.act(obs_N), ens.novelty(obs_N)
    """

    def __init__(self, members: Sequence[Policy]):
        if not members:
            raise ConfigError("an ensemble needs at least one member")
        if any(m.config.chunk_size != 1 for m in members):
            raise ConfigError("PolicyEnsemble members must predict single actions (chunk_size 1)")
        self.members = list(members)
        self.discrete = members[0].config.discrete
        self._cache_obs: np.ndarray | None = None
        self._cache: np.ndarray | None = None
        self._stacked: PolicyPlan | None = None
        self._stacked_members: list[Policy] = []
        self._stackable = False

    def __len__(self) -> int:
        return len(self.members)

    @torch.inference_mode()
    def member_outputs(self, obs: np.ndarray) -> np.ndarray:
        """(K, N, A) actions in env units, or (K, N, n_actions) probabilities if discrete.
        The last call is cached (the loop and the gate look at the same observations).
        Members that :func:`~protege.policies.stacked.stackable` says stack (MLPs with a
        ``mse``, ``categorical`` or ``gaussian`` head, one config) answer in one batched
        pass; others one after another."""
        if self._cache_obs is obs and self._cache is not None:
            return self._cache
        plan = self._plan()
        out = self._stacked_outputs(obs, plan) if plan is not None else self._member_loop(obs)
        self._cache_obs, self._cache = obs, out
        return out

    def _plan(self) -> PolicyPlan | None:
        """The members' stacked plan (None if they do not stack), rebuilt when any member's
        weights or statistics changed. Each member's arithmetic is that of the loop below:
        probabilities from ``head.linear(features)``, actions from ``predict_chunk``."""
        if self._stacked_members != self.members:  # first call, or members replaced
            self._stacked_members = list(self.members)
            self._stackable, self._stacked = stackable(self.members), None
        if not self._stackable:
            return None
        if self._stacked is None or not self._stacked.current():
            self._stacked = PolicyPlan(self.members, folded=not self.discrete)
        return self._stacked

    def _stacked_outputs(self, obs: np.ndarray, plan: PolicyPlan) -> np.ndarray:
        first = self.members[0]
        obs_t = torch.from_numpy(np.ascontiguousarray(obs))
        if tuple(obs_t.shape[1:]) != first.config.obs_shape:
            raise DataError(
                f"policy expects observations of shape {first.config.obs_shape}, "
                f"got {tuple(obs_t.shape[1:])}"
            )
        out_KND = plan(obs_t)
        k, n = out_KND.shape[:2]
        if self.discrete:
            return F.softmax(out_KND, dim=-1).numpy().astype(np.float64)
        acts = first.head.output_mode(out_KND.reshape(k * n, -1)).reshape(k, n, -1)
        out = (acts * plan.act_scale + plan.act_offset).numpy()
        if first._low.size:
            out = np.clip(out, first._low, first._high)
        return out.astype(np.float64)

    def _member_loop(self, obs: np.ndarray) -> np.ndarray:
        obs_t = torch.as_tensor(np.asarray(obs))
        outs = []
        for m in self.members:
            feats = m.features(m.normalize_obs(obs_t))
            if self.discrete:
                logits = getattr(m.head, "logits")(feats)[:, 0]  # noqa: B009 (categorical)
                outs.append(F.softmax(logits, dim=-1).numpy())
            else:
                outs.append(m.predict_chunk(obs)[:, 0])
        return np.stack(outs).astype(np.float64)

    def act(
        self,
        obs: np.ndarray,
        deterministic: bool = True,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        out = self.member_outputs(obs)
        if self.discrete:
            return out.mean(0).argmax(-1).astype(np.int64)
        return out.mean(0).astype(np.float32)

    def reset(self, mask: np.ndarray | None = None) -> None:
        for m in self.members:
            m.reset(mask)

    def novelty(self, obs: np.ndarray) -> np.ndarray:
        return self.member_outputs(obs).var(axis=0).mean(-1)

    def discrepancy(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        out = self.member_outputs(obs)
        if self.discrete:
            p = out.mean(0)
            return 1.0 - p[np.arange(len(p)), np.asarray(actions, np.int64).reshape(-1)]
        diff = out.mean(0) - np.asarray(actions, np.float64).reshape(out.shape[1:])
        return (diff**2).sum(-1)

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for k, m in enumerate(self.members):
            m.save(path / f"member_{k}")
        (path / "ensemble.json").write_text(json.dumps({"members": len(self.members)}))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PolicyEnsemble:
        """Load a saved ensemble; a missing or corrupt file raises
        :class:`~protege.errors.CheckpointError` naming it."""
        path = Path(path)
        meta_file = path / "ensemble.json"
        try:
            k = int(json.loads(meta_file.read_text())["members"])
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(
                f"{meta_file}: not a policy ensemble's metadata ({type(exc).__name__}: {exc})"
            ) from None
        if k < 1:
            raise CheckpointError(f"{meta_file}: an ensemble needs at least one member, not {k}")
        return cls([Policy.load(path / f"member_{i}") for i in range(k)])


def bootstrap_episodes(data: Transitions, rng: np.random.Generator) -> Transitions:
    """A bootstrap resample of ``data``'s episodes (with replacement), episodes without a
    label dropped first so every draw carries labels."""
    labeled_eps = np.flatnonzero(np.add.reduceat(data.labeled, data.episode_starts) > 0)
    order = rng.choice(labeled_eps, size=len(labeled_eps), replace=True)
    return rounds.reorder_episodes(data, np.sort(order))


@dataclass
class EnsembleTrainer:
    """K members, each trained by BC from its own seed on its own bootstrap resample."""

    make_policy: Callable[[], Policy]
    bc: BCConfig
    members: int = 5
    bootstrap: bool = True
    retrain: str = "scratch"

    def fit(self, data: Transitions, round: int, seed: int, previous: Any | None) -> PolicyEnsemble:
        """Member k: seed ``derive_seed(seed, k)``, its own bootstrap resample, its own BC
        run; members that stack train as one network (:mod:`protege.algos.stacked_bc`),
        others one after another."""
        policies, subsets, configs = [], [], []
        for k in range(self.members):
            s = rounds.derive_seed(seed, k)
            sub = bootstrap_episodes(data, np.random.default_rng(s)) if self.bootstrap else data
            if self.retrain == "warm" and isinstance(previous, PolicyEnsemble):
                policy = copy.deepcopy(previous.members[k])
                cfg = dataclasses.replace(self.bc, seed=s, fit_normalization=False)
            else:
                torch.manual_seed(s)
                policy = self.make_policy()
                cfg = dataclasses.replace(self.bc, seed=s)
            policies.append(policy)
            subsets.append(sub)
            configs.append(cfg)
        if stacked_bc.applies(policies, subsets, configs):
            stacked_bc.fit(policies, subsets, configs)
        else:
            for policy, sub, cfg in zip(policies, subsets, configs, strict=True):
                bc.fit(policy, sub, cfg)
        return PolicyEnsemble(policies)

    def save(self, learner: Any, path: Path) -> None:
        learner.save(path)

    def load(self, path: Path) -> PolicyEnsemble:
        return PolicyEnsemble.load(path)


@dataclass
class EnsembleConfig:
    """EnsembleDAgger's gate: χ (variance) and τ (discrepancy), hand-set as in the paper."""

    members: int = 5
    variance_threshold: float = 0.02
    """χ: the expert drives where the ensemble's action variance exceeds it."""
    discrepancy_threshold: float | None = None
    """τ: the expert drives where the novice's discrepancy exceeds it; needs an expert query
    at every step. None: variance only (queries only where the expert drives)."""
    label_all: bool = False
    """Store every queried state as a label (the paper); False: only expert-driven steps."""
    bootstrap: bool = True


def run(
    task: Task,
    store_path: str | os.PathLike[str],
    config: DAggerConfig | None = None,
    method_config: EnsembleConfig | None = None,
    *,
    make_policy: Callable[[], Policy] | None = None,
    **kwargs: Any,
) -> DAggerResult:
    """EnsembleDAgger through :func:`protege.algos.dagger.run` (same keyword arguments)."""
    config = config or DAggerConfig()
    mc = method_config or EnsembleConfig()
    trainer = EnsembleTrainer(
        make_policy or dagger.policy_factory(task),
        config.bc,
        mc.members,
        mc.bootstrap,
        config.retrain,
    )

    def gate(ctx: RoundContext) -> Gate:
        assert isinstance(ctx.learner, PolicyEnsemble)
        return EnsembleGate(
            ctx.learner, mc.variance_threshold, mc.discrepancy_threshold, mc.label_all
        )

    kwargs.setdefault("method", "ensemble-dagger")
    kwargs.setdefault("settings", mc)
    return dagger.run(task, None, store_path, config, gate, trainer=trainer, **kwargs)
