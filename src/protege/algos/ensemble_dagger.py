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
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from protege.algos import bc, engine, rounds, stacked_bc
from protege.algos.engine import MethodSpec, RoundContext
from protege.algos.results import DAggerResult
from protege.configs.bc import BCConfig
from protege.configs.interactive import DAggerConfig
from protege.configs.methods import EnsembleConfig
from protege.data.store import Transitions
from protege.device import resolve_device
from protege.policies.ensemble import PolicyEnsemble
from protege.policies.policy import Policy
from protege.rollout.gates import Gate
from protege.rollout.gates_interactive import EnsembleGate
from protege.tasks.base import Task


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
        return PolicyEnsemble.load(path).to(resolve_device(self.bc.device))


def run(
    task: Task,
    store_path: str | os.PathLike[str],
    config: DAggerConfig | None = None,
    method_config: EnsembleConfig | None = None,
    *,
    make_policy: Callable[[], Policy] | None = None,
    **kwargs: Any,
) -> DAggerResult:
    """EnsembleDAgger through :func:`protege.algos.engine.run` (same keyword arguments)."""
    config = config or DAggerConfig()
    mc = method_config or EnsembleConfig()
    trainer = EnsembleTrainer(
        make_policy or engine.policy_factory(task),
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
    return engine.run(task, None, store_path, config, gate, trainer=trainer, **kwargs)


SPEC = MethodSpec("ensemble", "EnsembleDAgger", EnsembleConfig, run, PolicyEnsemble.load)
