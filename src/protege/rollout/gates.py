"""Gates decide, at every step and for every sub-env, who acts and whether to keep a label.

A gate sees the learner's proposed action and a lazy handle on the expert: calling
``step.expert(mask)`` asks the expert about the sub-envs in ``mask`` only, and every such
query is counted. So a gate that labels only takeover states pays only for those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from protege.experts.base import Expert


class LazyExpert:
    """Asks the wrapped expert only for the sub-envs a gate needs, at most once per step."""

    def __init__(self, expert: Expert | None):
        self.expert = expert
        self.queries = 0
        self._obs: np.ndarray | None = None
        self._infos: dict[str, Any] | None = None
        self._actions: np.ndarray | None = None
        self._asked = np.zeros(0, bool)

    def begin_step(self, obs: np.ndarray, infos: dict[str, Any], template: np.ndarray) -> None:
        self._obs, self._infos = obs, infos
        self._actions = np.zeros_like(template)
        self._asked = np.zeros(len(obs), bool)

    @property
    def asked(self) -> np.ndarray:
        """(N,) bool: the sub-envs the expert has been asked about this step."""
        return self._asked

    def __call__(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Expert actions for all N sub-envs; only those in ``mask`` are computed (and counted)."""
        assert self._obs is not None and self._actions is not None
        if self.expert is None:
            raise ValueError("this rollout has no expert to ask")
        mask = np.ones(len(self._obs), bool) if mask is None else np.asarray(mask, bool)
        new = mask & ~self._asked
        if new.any():
            idx = np.flatnonzero(new)
            sub_infos = _select_infos(self._infos, idx, len(self._obs))
            self._actions[idx] = self.expert.act(self._obs[idx], sub_infos)
            self._asked |= new
            self.queries += len(idx)
        return self._actions


def _select_infos(infos: dict[str, Any] | None, idx: np.ndarray, n: int) -> dict[str, Any]:
    """The vector env's batched info dict restricted to the sub-envs ``idx``."""
    if not infos:
        return {}
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if isinstance(value, np.ndarray) and value.ndim >= 1 and len(value) == n:
            out[key] = value[idx]
        elif isinstance(value, dict):
            out[key] = _select_infos(value, idx, n)
        else:
            out[key] = value
    return out


@dataclass
class StepView:
    """What a gate may look at."""

    obs: np.ndarray
    infos: dict[str, Any]
    learner_action: np.ndarray | None
    """(N, ...) the learner's proposal, or None when there is no learner."""
    expert: LazyExpert
    t: np.ndarray
    """(N,) int: step index within each sub-env's current episode."""


@dataclass
class Decision:
    expert_acts: np.ndarray
    """(N,) bool: execute the expert's action in these sub-envs (else the learner's)."""
    label: np.ndarray
    """(N,) bool: store the expert's action as a training label in these sub-envs."""
    executed: np.ndarray | None = None
    """Optional (N, ...) action to execute where ``expert_acts`` instead of the clean expert
    action (DART executes a noisy one and stores the clean one)."""


class Gate(Protocol):
    def reset(self, env_index: int) -> None:
        """A new episode starts in sub-env ``env_index``."""
        ...

    def decide(self, step: StepView) -> Decision: ...


class ExpertGate:
    """The expert acts and labels every step: collecting demonstrations."""

    def reset(self, env_index: int) -> None:
        pass

    def decide(self, step: StepView) -> Decision:
        n = len(step.obs)
        return Decision(expert_acts=np.ones(n, bool), label=np.ones(n, bool))


class LearnerGate:
    """The learner acts every step. With ``label=True`` the expert labels every visited state
    (DAgger with β = 0, or evaluation measuring disagreement along the learner's own states)."""

    def __init__(self, label: bool = False):
        self.label = label

    def reset(self, env_index: int) -> None:
        pass

    def decide(self, step: StepView) -> Decision:
        n = len(step.obs)
        return Decision(expert_acts=np.zeros(n, bool), label=np.full(n, self.label))
