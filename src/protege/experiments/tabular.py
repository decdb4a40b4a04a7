"""The horizon experiment's learner: a 1-nearest-neighbour table over the lane's cells that
slips with probability ε, and the trainer that lets :func:`protege.algos.dagger.run` train it.

The ``lane`` state space is small enough for a table, which is what lets
:mod:`protege.experiments.horizon` compute expected mistakes exactly.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from protege.data.store import Transitions
from protege.tasks.lane_dynamics import WIDTH, slip


def cell_coords(width: int) -> tuple[np.ndarray, np.ndarray]:
    """(d, Δc) of every cell, cell = (d + W)·3 + (Δc + 1)."""
    d = np.repeat(np.arange(-width, width + 1), 3)
    dc = np.tile(np.arange(-1, 2), 2 * width + 1)
    return d, dc


def _cells(obs: np.ndarray, width: int) -> np.ndarray:
    """The table cell of each ``(N, 2)`` observation (offsets and road clipped to range)."""
    o = np.rint(np.atleast_2d(np.asarray(obs, dtype=np.float64))).astype(np.int64)
    return (np.clip(o[:, 0], -width, width) + width) * 3 + np.clip(o[:, 1], -1, 1) + 1


@functools.lru_cache(maxsize=8)
def _preference_order(width: int) -> np.ndarray:
    """(n_cells, n_cells): for each query cell, all cells from most to least preferred.

    Nearest by Euclidean distance in (d, Δc); ties go to the candidate nearer the centre
    (smaller |d|, then smaller |Δc|), then to smaller d, then smaller Δc.
    """
    d, dc = cell_coords(width)
    order = np.empty((d.size, d.size), dtype=np.int64)
    for q in range(d.size):
        dist = (d - d[q]) ** 2 + (dc - dc[q]) ** 2
        order[q] = np.lexsort((dc, d, np.abs(dc), np.abs(d), dist))
    order.flags.writeable = False  # cached and shared
    return order


class TabularNearestNeighbor:
    """The spec's tabular 1-NN learner on (d, Δc), batched over G independent datasets.

    ``counts[g, cell, a]`` holds how often action index ``a`` was labelled at ``cell`` in
    dataset g. Each labelled cell predicts its majority label; any other cell copies the
    nearest labelled cell (ties: see ``_preference_order``). With no data it steers 0.
    ``tables`` (G, n_cells) holds steer values −1..1.
    """

    def __init__(self, counts: np.ndarray, width: int = WIDTH) -> None:
        counts = np.asarray(counts)
        if counts.ndim == 2:
            counts = counts[None]
        self.width = width
        self.counts = counts
        labelled = counts.sum(axis=2) > 0  # (G, n)
        majority = counts.argmax(axis=2)  # (G, n) action index
        order = _preference_order(width)  # (n, n)
        hit = labelled[:, order]  # (G, n, n)
        first = hit.argmax(axis=2)  # (G, n) position of first labelled candidate
        source = np.take_along_axis(np.broadcast_to(order, hit.shape), first[..., None], 2)[..., 0]
        steer = np.take_along_axis(majority, source, axis=1) - 1
        steer[~labelled.any(axis=1)] = 0
        self.tables = steer.astype(np.int64)

    @classmethod
    def fit(
        cls, obs: np.ndarray, actions: np.ndarray, width: int = WIDTH
    ) -> TabularNearestNeighbor:
        """Fit one table on ``(N, 2)`` observations and ``(N,)`` action indices."""
        n = 3 * (2 * width + 1)
        cell = _cells(np.asarray(obs).reshape(-1, 2), width)
        counts = np.bincount(cell * 3 + np.asarray(actions, dtype=np.int64), minlength=3 * n)
        return cls(counts.reshape(1, n, 3), width)

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        """Action indices of the first table for ``(N, 2)`` observations (Expert protocol)."""
        return self.tables[0, _cells(obs, self.width)] + 1


class SlippingTable:
    """A tabular lane policy with a trembling hand: the learner every arm trains and evaluates.

    ``table`` (3(2W+1),) holds a steer −1..1 per cell (d, Δc) (a row of
    :attr:`TabularNearestNeighbor.tables`). :meth:`act` returns the table's action index,
    except that with probability ``epsilon`` it returns one of the two others
    (:func:`protege.tasks.lane_dynamics.slip`). The slip lives in the learner, so it happens exactly
    on the steps the learner drives, whichever gate decides that, and expert steps never
    slip. An ``Actor`` of :func:`protege.rollout.loop.rollout`; its draws come from its own
    generator (``seed``), one pair per sub-env and step.
    """

    def __init__(self, table: np.ndarray, epsilon: float, seed: int = 0, width: int = WIDTH):
        self.table = np.asarray(table, dtype=np.int64).reshape(-1)
        if self.table.shape != (3 * (2 * width + 1),):
            raise ValueError(
                f"SlippingTable: a width-{width} table has {3 * (2 * width + 1)} cells"
            )
        self.epsilon = float(epsilon)
        self.seed = int(seed)
        self.width = int(width)
        self._rng = np.random.default_rng(self.seed)

    def act(
        self, obs: np.ndarray, deterministic: bool = True, generator: Any | None = None
    ) -> np.ndarray:
        """``(N,)`` action indices for ``(N, 2)`` observations, each slipping with prob. ε."""
        intended = self.table[_cells(obs, self.width)] + 1
        u = self._rng.random((2, len(intended)))
        return slip(intended, self.epsilon, u[0], u[1])[0]

    def episodes_started(self, mask: np.ndarray | None = None) -> None:
        """Stateless between episodes: nothing to reset."""

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``table.json`` (the table, ε, seed and width) into the directory ``path``."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        state = {"table": self.table.tolist(), "epsilon": self.epsilon, "seed": self.seed}
        (out / "table.json").write_text(json.dumps({**state, "width": self.width}))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SlippingTable:
        """The table :meth:`save` wrote (its generator starts afresh from ``seed``)."""
        state = json.loads((Path(path) / "table.json").read_text())
        return cls(state["table"], state["epsilon"], state["seed"], state["width"])


@dataclass
class TabularTrainer:
    """:func:`protege.algos.dagger.run`'s ``Trainer`` for the lane: after every round, a 1-NN
    table fitted on every expert label so far, driving the next round as a
    :class:`SlippingTable` with slip rate ``epsilon`` (seeded by the round's training seed)."""

    epsilon: float
    width: int = WIDTH

    def fit(self, data: Transitions, round: int, seed: int, previous: Any | None) -> SlippingTable:
        labelled = np.asarray(data.labeled, dtype=bool)
        obs = np.asarray(data.obs)[labelled]
        table = TabularNearestNeighbor.fit(obs, data.actions[labelled], self.width).tables[0]
        return SlippingTable(table, self.epsilon, seed, self.width)

    def save(self, learner: Any, path: Path) -> None:
        learner.save(path)

    def load(self, path: Path) -> SlippingTable:
        return SlippingTable.load(path)
