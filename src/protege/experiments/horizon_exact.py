"""The horizon experiment's headline numbers: exact expected mistakes and cost of slipping
tabular policies, by forward dynamic programming over the corridor's offsets (no sampling)."""

from __future__ import annotations

import numpy as np

from protege.configs.horizon import HorizonConfig
from protege.experiments.tabular import cell_coords
from protege.tasks.lane_dynamics import (
    SLIP_SHIFTS,
    WIDTH,
    expert_steer,
    lane_transition,
    road_probs,
)


def exact_expectations(
    tables: np.ndarray,
    horizon: int,
    epsilon: float,
    *,
    width: int = WIDTH,
    p_turn: float = 0.0,
    cliff_offset: int | None = None,
    init_offset_spread: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact E[mistakes] and E[cost] per episode of slipping tabular policies.

    ``tables`` (G, 3(2W+1)) holds steer values per cell; each step executes the table's
    action with probability 1 − ε and each of the two others with ε/2 (the slip of
    :func:`protege.tasks.lane_dynamics.slip`). Δc is i.i.d., so the distribution over d alone is
    propagated: ``p_{t+1} = p_t P``, ``E[M] = Σ_{t<T} p_t·m``, ``E[C] = Σ_{1≤t≤T} p_t·𝟙[d ≠ 0]``.
    Returns two (G,) arrays.
    """
    tables = np.atleast_2d(np.asarray(tables, dtype=np.int64))
    G = tables.shape[0]
    S = 2 * width + 1
    road = road_probs(p_turn)
    d_cells, dc_cells = cell_coords(width)
    expert = expert_steer(d_cells, dc_cells)  # (n,)
    q = road[dc_cells + 1]  # (n,)
    P = np.zeros((G, S, S))
    m = np.zeros((G, S))
    g_idx = np.arange(G)[:, None]
    src = d_cells + width
    kernel = ((0, 1.0 - epsilon), *((s, epsilon / 2) for s in SLIP_SHIFTS))
    for shift, px in kernel:
        if px == 0.0:
            continue
        executed = (tables + 1 + shift) % 3 - 1  # (G, n) steer
        nxt = lane_transition(d_cells, executed, dc_cells, width, cliff_offset) + width
        w = np.broadcast_to(q * px, executed.shape)
        np.add.at(P, (g_idx, src[None, :], nxt), w)
        np.add.at(m, (g_idx, src[None, :]), w * (executed != expert))
    return _propagate(P, m, horizon, width, init_offset_spread)


def exact_expectations_mixed(
    probs: np.ndarray,
    horizon: int,
    epsilon: float,
    *,
    width: int = WIDTH,
    p_turn: float = 0.0,
    cliff_offset: int | None = None,
    init_offset_spread: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`exact_expectations` of stochastic tabular policies: ``probs`` (G, n_cells, 3)
    holds the probability that the policy *intends* each action index in each cell (a
    per-step mixture of tables, SMILe's learner); the intended action then slips with
    probability ε to each of the two others with ε/2."""
    probs = np.asarray(probs, np.float64)
    if probs.ndim == 2:
        probs = probs[None]
    G = probs.shape[0]
    S = 2 * width + 1
    road = road_probs(p_turn)
    d_cells, dc_cells = cell_coords(width)
    expert = expert_steer(d_cells, dc_cells)
    q = road[dc_cells + 1]
    slip = np.full((3, 3), epsilon / 2)
    np.fill_diagonal(slip, 1.0 - epsilon)
    executed = probs @ slip  # (G, n, 3): P(executed action index | cell)
    P = np.zeros((G, S, S))
    m = np.zeros((G, S))
    src = d_cells + width
    for a in range(3):
        steer = np.full_like(d_cells, a - 1)
        nxt = lane_transition(d_cells, steer, dc_cells, width, cliff_offset) + width
        w = q[None, :] * executed[:, :, a]
        for g in range(G):
            np.add.at(P[g], (src, nxt), w[g])
            np.add.at(m[g], src, w[g] * (steer != expert))
    return _propagate(P, m, horizon, width, init_offset_spread)


def _propagate(
    P: np.ndarray, m: np.ndarray, horizon: int, width: int, init_offset_spread: int
) -> tuple[np.ndarray, np.ndarray]:
    """E[mistakes] and E[cost] over ``horizon`` steps of the kernels ``P`` (G, S, S) with
    per-state expected mistakes ``m`` (G, S), from the initial offsets."""
    G, S = m.shape
    off = np.ones(S)
    off[width] = 0.0
    c = P @ off  # (G, S): P(off-centre after the step | d)
    p = np.zeros((G, S))
    s = init_offset_spread
    p[:, width - s : width + s + 1] = 1.0 / (2 * s + 1)
    mistakes = np.zeros(G)
    cost = np.zeros(G)
    for _ in range(horizon):
        mistakes += np.einsum("gs,gs->g", p, m)
        cost += np.einsum("gs,gs->g", p, c)
        p = np.einsum("gs,gst->gt", p, P)
    return mistakes, cost


def exact_for(
    cfg: HorizonConfig, tables: np.ndarray, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`exact_expectations` of ``tables`` on the road and at the ε of ``cfg``;
    (G, n_cells, 3) action probabilities go to :func:`exact_expectations_mixed`."""
    cliff = (cfg.cliff_offset or cfg.width) if cfg.cliff else None
    exact = exact_expectations_mixed if np.asarray(tables).ndim == 3 else exact_expectations
    return exact(
        tables,
        horizon,
        cfg.epsilon,
        width=cfg.width,
        p_turn=cfg.p_turn,
        cliff_offset=cliff,
        init_offset_spread=cfg.init_offset_spread,
    )
