"""Who helps whom in a fleet: free supervisors assigned to robots.

Fleet-DAgger (Hoque, Chen, Sharma, Dharmarajan, Thananjeyan, Abbeel & Goldberg, CoRL 2022) ranks the
robots that ask for help by a priority built from the robots' own signals and gives the
free supervisors to the highest. Here the signals are ThriftyDAgger's (its gate's thresholds,
:class:`~protege.rollout.gates_interactive.ThriftyGate`):

* **C**, a constraint violation: the robot failed (its episode ended without success) and
  waits for a supervisor to reset it;
* **U**, uncertainty: the ensemble's action variance (novelty), where above δ_h;
* **R**, risk: 1 − Q(s, π(s)) (Q the learned probability of success), where Q is below β_h.

:class:`PriorityAllocator` sorts the requesting robots lexicographically by those in the
order given (``"CUR"``: failures first, then novelty, then risk), ties broken at random, as
the IFL benchmark's ``CUR`` allocation does. The naive baselines ignore the signals:
:class:`RandomAllocator` and :class:`RoundRobinAllocator` pick among every robot not already
being helped. Allocators only choose; the fleet (:class:`protege.rollout.fleet.Fleet`) keeps
who is busy, paces the baselines to a budget and charges the time.

Example:
    >>> alloc = make_allocator("priority", "CUR")
    >>> alloc.choose(signals, eligible, n_free=2, rng=np.random.default_rng(0))
    array([5, 1])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from protege.errors import ConfigError


@dataclass
class Signals:
    """Each robot's request for help this step, (N,) arrays."""

    failed: np.ndarray
    """bool: the robot failed and waits for a reset (C)."""
    uncertainty: np.ndarray
    """float: novelty above δ_h, 0 where not above (U)."""
    risk: np.ndarray
    """float: 1 − Q where Q is below β_h, 0 elsewhere (R)."""

    @property
    def requesting(self) -> np.ndarray:
        """(N,) bool: robots that ask for a supervisor (any signal set)."""
        return self.failed | (self.uncertainty > 0) | (self.risk > 0)


class Allocator(ABC):
    """Chooses which robots the free supervisors go to, this step."""

    uses_requests: bool = False
    """Whether robots ask (and wait when no supervisor is free): only the priority
    allocation listens to them."""

    @abstractmethod
    def choose(
        self, signals: Signals, eligible: np.ndarray, n_free: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Up to ``n_free`` robot indices, most urgent first, among ``eligible`` (N,) bool:
        robots running and not already helped."""


class PriorityAllocator(Allocator):
    """Fleet-DAgger: the requesting robots in lexicographic order of ``order`` (letters of
    C, U, R), highest first; a robot that asks for nothing is never chosen."""

    uses_requests = True

    def __init__(self, order: str = "CUR"):
        if not order or set(order) - set("CUR") or len(set(order)) != len(order):
            raise ConfigError(f"priority order must be distinct letters of C, U, R: {order!r}")
        self.order = order

    def choose(
        self, signals: Signals, eligible: np.ndarray, n_free: int, rng: np.random.Generator
    ) -> np.ndarray:
        candidates = np.flatnonzero(eligible & signals.requesting)
        if n_free <= 0 or not len(candidates):
            return np.zeros(0, np.int64)
        columns = {
            "C": signals.failed.astype(np.float64),
            "U": np.asarray(signals.uncertainty, np.float64),
            "R": np.asarray(signals.risk, np.float64),
        }
        tie = rng.random(len(candidates))
        # np.lexsort sorts by its last key first: most significant letter last, descending.
        keys = [-tie] + [-columns[c][candidates] for c in reversed(self.order)]
        return candidates[np.lexsort(keys)][:n_free]


class RandomAllocator(Allocator):
    """A naive baseline: free supervisors go to robots drawn uniformly at random among
    those not already helped, whether or not they need it."""

    def choose(
        self, signals: Signals, eligible: np.ndarray, n_free: int, rng: np.random.Generator
    ) -> np.ndarray:
        candidates = np.flatnonzero(eligible)
        if n_free <= 0 or not len(candidates):
            return np.zeros(0, np.int64)
        return rng.permutation(candidates)[:n_free]


class RoundRobinAllocator(Allocator):
    """A naive baseline: free supervisors visit the robots in turn (0, 1, …, N−1, 0, …),
    skipping those already helped."""

    def __init__(self) -> None:
        self.next = 0

    def choose(
        self, signals: Signals, eligible: np.ndarray, n_free: int, rng: np.random.Generator
    ) -> np.ndarray:
        n = len(eligible)
        order = (self.next + np.arange(n)) % n
        chosen = order[eligible[order]][: max(n_free, 0)]
        if len(chosen):
            self.next = int(chosen[-1] + 1) % n
        return chosen


def make_allocator(name: str, order: str = "CUR") -> Allocator:
    """``"priority"`` (with ``order``), ``"random"`` or ``"round-robin"``."""
    if name == "priority":
        return PriorityAllocator(order)
    if name == "random":
        return RandomAllocator()
    if name == "round-robin":
        return RoundRobinAllocator()
    raise ConfigError(f"unknown allocation {name!r}; use priority, random or round-robin")
