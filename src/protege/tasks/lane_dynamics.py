"""The DriftCorridor's transition model: offsets, the expert's steer, slips and the road.

Pure numpy, shared by the single and the vector env (:mod:`protege.tasks.lane_env`) and by
the horizon experiment's exact evaluator (:mod:`protege.experiments.horizon_exact`). The
corridor itself is described in :mod:`protege.tasks.lane`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

WIDTH = 5
"""Default half-width W of the corridor: offsets run over −W..W."""

STEER = np.array([-1, 0, 1], dtype=np.int64)
"""Steer value of each action index: 0 → −1, 1 → 0, 2 → +1."""

SLIP_SHIFTS = (1, 2)
"""A slip executes action ``(a + shift) % 3`` for one of these shifts, each with probability
ε/2: the two actions other than ``a``."""

HORIZON = 200
"""Default episode length of the registered ``lane`` task."""


def expert_steer(d: np.ndarray | int, dc: np.ndarray | int) -> np.ndarray:
    """The expert's steer ``clip(Δc − d, −1, 1)`` (values in −1..1, not action indices)."""
    return np.clip(np.asarray(dc, dtype=np.int64) - np.asarray(d, dtype=np.int64), -1, 1)


def lane_transition(
    d: np.ndarray | int,
    executed: np.ndarray | int,
    dc: np.ndarray | int,
    width: int = WIDTH,
    cliff_offset: int | None = None,
) -> np.ndarray:
    """Next offset ``clip(d + ã − Δc, −W, W)``; with a cliff, ``|d| ≥ cliff_offset`` stays put.

    Vectorised over any broadcastable integer arrays (``executed`` is the steer ã, not an
    action index): the dynamics of :class:`~protege.tasks.lane_env.DriftCorridorVector` and of
    the experiment's exact evaluator. :func:`next_offset` is its one-env twin (a test checks
    they agree everywhere).
    """
    d = np.asarray(d, dtype=np.int64)
    nxt = np.clip(
        d + np.asarray(executed, dtype=np.int64) - np.asarray(dc, dtype=np.int64), -width, width
    )
    if cliff_offset is not None:
        nxt = np.where(np.abs(d) >= cliff_offset, d, nxt)
    return nxt


def next_offset(d: int, executed: int, dc: int, width: int, cliff_offset: int | None) -> int:
    """:func:`lane_transition` for one env in plain Python (numpy scalars cost ~1 µs each,
    and the rollout loop steps single envs millions of times)."""
    if cliff_offset is not None and abs(d) >= cliff_offset:
        return d
    return max(-width, min(width, d + executed - dc))


def slipped_action(action: Any, u_side: Any) -> Any:
    """The action a slip executes instead of ``action``: ``(a + 1) % 3`` if ``u_side < 0.5``
    else ``(a + 2) % 3`` (works on ints and on numpy arrays alike)."""
    return (action + SLIP_SHIFTS[0] + (u_side >= 0.5)) % 3


def slip(
    actions: np.ndarray,
    rate: np.ndarray | float,
    u_slip: np.ndarray,
    u_side: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The trembling hand on action indices: where ``u_slip < rate`` execute the slipped action.

    ``u_slip`` and ``u_side`` are uniform [0, 1) draws of ``actions``' shape (passed in so a
    batched caller can draw them in one block). Returns ``(executed actions, slipped)``.
    """
    actions = np.asarray(actions, dtype=np.int64)
    slipped = np.asarray(u_slip) < rate
    return np.where(slipped, slipped_action(actions, np.asarray(u_side)), actions), slipped


def road_probs(p_turn: float) -> np.ndarray:
    """``P(Δc = −1, 0, +1)`` for a road with turn probability ``p_turn``."""
    return np.array([p_turn / 2.0, 1.0 - p_turn, p_turn / 2.0])


def road_from_uniform(u: Any, p_turn: float) -> Any:
    """Δc from a uniform [0, 1) draw: −1 below p/2, +1 at or above 1 − p/2, else 0 (ints or
    arrays)."""
    half = p_turn / 2.0
    return (u >= 1.0 - half) * 1 - (u < half) * 1
