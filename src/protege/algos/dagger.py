"""DAgger (Ross, Gordon & Bagnell 2011, "A Reduction of Imitation Learning and Structured
Prediction to No-Regret Online Learning").

Round 0 is expert demonstrations; in round i the mixture β_i π* + (1 − β_i) π̂_i drives, the
expert labels every visited state, the labels are aggregated with everything before and
π̂_{i+1} is trained on the aggregate (from scratch or warm-started, ``DAggerConfig.retrain``).
β follows ``DAggerConfig.beta``. The rounds, the store and resume are the shared engine's
(:mod:`protege.algos.engine`); this module is DAgger's gate, the β-mixture.

Example:
    >>> task = protege.tasks.make("lunarlander")
    >>> result = dagger.run(task, "runs/dagger/store", DAggerConfig(rounds=8, seed=0))
    >>> print(result.to_markdown())
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from protege.algos import engine
from protege.algos.engine import MethodSpec, RoundContext
from protege.algos.results import DAggerResult
from protege.algos.rounds import round_gate_seed
from protege.configs.interactive import DAggerConfig
from protege.errors import ConfigError
from protege.policies.policy import Policy
from protege.rollout.gates import BetaMixture, Gate
from protege.tasks.base import Task


def dagger_gate(ctx: RoundContext) -> Gate:
    """Plain DAgger's gate: the β-mixture (the expert labels every step)."""
    return BetaMixture(ctx.beta, seed=round_gate_seed(ctx.config.seed, ctx.round))


def run(
    task: Task,
    store_path: str | os.PathLike[str],
    config: DAggerConfig | None = None,
    method_config: Any | None = None,
    *,
    make_policy: Callable[[], Policy] | None = None,
    **kwargs: Any,
) -> DAggerResult:
    """DAgger through :func:`protege.algos.engine.run` (same keyword arguments, e.g.
    ``trainer``, ``resume``, ``run_dir``, ``log``); it has no settings of its own beyond
    ``config`` (``method_config`` must be None)."""
    if method_config is not None:
        raise ConfigError(f"DAgger takes no method settings, not {type(method_config).__name__}")
    kwargs.setdefault("method", "dagger")
    return engine.run(
        task, make_policy or engine.policy_factory(task), store_path, config, dagger_gate, **kwargs
    )


SPEC = MethodSpec("dagger", "DAgger", None, run, Policy.load)
