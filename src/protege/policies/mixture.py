"""A stochastic mixture of policies that acts as one (:class:`MixturePolicy`): at every step
and in every sub-env one component is drawn with probability proportional to its weight, and
its action is executed. SMILe's learner (:mod:`protege.algos.smile`); its checkpoint is a
``mixture.json`` (kind, weights, seed) beside one folder per component, each saved by the
component itself (safetensors or JSON, never pickle)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from protege.errors import CheckpointError, ConfigError

KIND = "mixture"
META_FILE = "mixture.json"
MAX_COMPONENTS = 4096
"""Components a saved mixture may have (SMILe adds one per round)."""


def _check_weights(weights: Sequence[float] | np.ndarray, where: str) -> np.ndarray:
    w = np.asarray(weights, np.float64).reshape(-1)
    if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError(f"{where}: weights must be finite, ≥ 0 and not all 0, got {list(w)}")
    return w


class MixturePolicy:
    """K policies mixed per step: component k acts with probability ``weights[k] / Σ weights``.

    The draws come from one generator per sub-env. A rollout's start
    (``episodes_started()`` with no mask) seeds sub-env i's generator from ``(seed, i)``, and
    it then runs on across that sub-env's episodes, so an evaluation is reproducible. A round
    engine pins an episode's draws with :meth:`pin` (SMILe's gate does, from the episode's
    seed), so a resumed run draws what the uninterrupted one drew. Every component acts on
    every row at every step (each keeps its per-sub-env state), and row i executes the
    action of its drawn component.

    ``expert_weight`` is only recorded: the weight the expert had in the mixture the
    components were learned under (SMILe's ``(1 − α)^n``), which the mixture itself excludes.

    Example:
        >>> mix = MixturePolicy([p1, p2], weights=[0.1, 0.09], seed=0)
        >>> mix.act(obs_N)
    """

    def __init__(
        self,
        components: Sequence[Any],
        weights: Sequence[float] | np.ndarray,
        seed: int = 0,
        expert_weight: float = 0.0,
    ):
        if not components:
            raise ConfigError("a mixture needs at least one component")
        w = _check_weights(weights, "MixturePolicy")
        if len(w) != len(components):
            raise ConfigError(f"MixturePolicy: {len(components)} components but {len(w)} weights")
        if not 0.0 <= expert_weight < 1.0:
            raise ConfigError(
                f"MixturePolicy: expert_weight must be in [0, 1), got {expert_weight}"
            )
        self.components = list(components)
        self.weights = w
        self.seed = int(seed)
        self.expert_weight = float(expert_weight)
        self._cum = np.cumsum(w / w.sum())
        self._rngs: dict[int, np.random.Generator] = {}
        self.last_choice = np.zeros(0, np.int64)
        """(N,) the component each row executed at the last :meth:`act`."""

    @property
    def probabilities(self) -> np.ndarray:
        """(K,) the probability each component acts at a step (the normalized weights)."""
        return self.weights / self.weights.sum()

    def __len__(self) -> int:
        return len(self.components)

    def pin(self, env_index: int, seed: int) -> None:
        """Draw sub-env ``env_index``'s components from ``seed`` on (its current episode)."""
        self._rngs[env_index] = np.random.default_rng(seed)

    def _rng(self, i: int) -> np.random.Generator:
        if i not in self._rngs:
            self._rngs[i] = np.random.default_rng([self.seed, i])
        return self._rngs[i]

    def choose(self, n: int) -> np.ndarray:
        """(n,) the component of each of n sub-envs at this step (one draw per sub-env)."""
        u = np.array([self._rng(i).random() for i in range(n)])
        return np.minimum(np.searchsorted(self._cum, u, side="right"), len(self) - 1)

    def act(
        self, obs: np.ndarray, deterministic: bool = True, generator: Any | None = None
    ) -> np.ndarray:
        choice = self.choose(len(obs))
        outs = [np.asarray(c.act(obs, deterministic, generator)) for c in self.components]
        stacked = np.stack(outs)  # (K, N, ...)
        self.last_choice = choice
        return stacked[choice, np.arange(len(obs))]

    def episodes_started(self, mask: np.ndarray | None = None) -> None:
        """A rollout starts (no mask: every sub-env's draws restart from ``(seed, i)``) or
        some episodes do (their draws run on, unless pinned)."""
        if mask is None:
            self._rngs = {}
        for c in self.components:
            c.episodes_started(mask)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """``mixture.json`` plus ``component_k/`` saved by each component's own ``save``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for k, c in enumerate(self.components):
            c.save(path / f"component_{k}")
        meta = {
            "kind": KIND,
            "weights": [float(x) for x in self.weights],
            "seed": self.seed,
            "expert_weight": self.expert_weight,
        }
        (path / META_FILE).write_text(json.dumps(meta))
        return path

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        load_component: Callable[[Path], Any] | None = None,
    ) -> MixturePolicy:
        """Load a saved mixture; each component through ``load_component`` (default: the
        learner registry's :func:`~protege.algos.registry.load_learner`, passed in by its
        entry). A missing or malformed file raises a CheckpointError naming it."""
        path = Path(path)
        meta_file = path / META_FILE
        try:
            meta = json.loads(meta_file.read_text())
            weights, seed = meta["weights"], meta["seed"]
            expert_weight = meta.get("expert_weight", 0.0)
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(
                f"{meta_file}: not a mixture's metadata ({type(exc).__name__}: {exc})"
            ) from None
        unknown = sorted(set(meta) - {"kind", "weights", "seed", "expert_weight"})
        if unknown or meta.get("kind", KIND) != KIND:
            raise CheckpointError(
                f"{meta_file}: not a mixture's metadata (unknown fields {unknown} or kind "
                f"{meta.get('kind')!r})"
            )
        ok_weights = (
            isinstance(weights, list)
            and 1 <= len(weights) <= MAX_COMPONENTS
            and all(
                isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                for x in weights
            )
        )
        if not ok_weights:
            raise CheckpointError(
                f"{meta_file}: field 'weights' must be a list of 1 to {MAX_COMPONENTS} finite "
                "numbers"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise CheckpointError(f"{meta_file}: field 'seed' must be an integer ≥ 0, got {seed!r}")
        if load_component is None:
            raise CheckpointError(f"{meta_file}: no loader given for the mixture's components")
        components = [load_component(path / f"component_{k}") for k in range(len(weights))]
        try:
            return cls(components, weights, seed, float(expert_weight))
        except ConfigError as exc:
            raise CheckpointError(f"{meta_file}: {exc}") from None
