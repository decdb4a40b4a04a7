"""Checks of a store's arrays against their space and their index lines, as they are loaded.

Appends refuse bad values, so these only fire on a store written by other means (a
hand-edited file whose CRC32 was recomputed, another tool): a learner must never train on it.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np

from protege.data.records import EpisodeRecord
from protege.errors import DataError


def check_finite(values: np.ndarray, rows: np.ndarray, file: Path) -> None:
    """Raise a DataError naming ``file``, the episode and its row if ``values`` (every row of
    a float field, ``rows[i]`` of them for episode i) holds NaN or inf.

    Appends refuse such values, so they can only come from a store written by other means
    (a hand-edited file whose CRC32 was recomputed, another tool); a learner must never
    train on them."""
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if not bad.any():
        return
    first = int(np.argmax(bad))
    ends = np.cumsum(rows)
    episode = int(np.searchsorted(ends, first, side="right"))
    row = first - (int(ends[episode - 1]) if episode else 0)
    raise DataError(f"{file}: episode {episode} contains NaN or inf (first at row {row})")


def check_range(
    values: np.ndarray, rows: np.ndarray, file: Path, space: gym.spaces.Discrete
) -> None:
    """Raise a DataError if a stored discrete action lies outside ``space``."""
    lo, hi = int(space.start), int(space.start + space.n)
    bad = (values < lo) | (values >= hi)
    if bad.any():
        episode = int(np.searchsorted(np.cumsum(rows), int(np.argmax(bad)), side="right"))
        raise DataError(f"{file}: episode {episode} holds actions outside [{lo}, {hi})")


def check_counts(values: np.ndarray, rows: np.ndarray, file: Path, counts: list[int]) -> None:
    """Raise a DataError unless ``values`` (actor or labeled flags) are 0 or 1 and each
    episode's count of ones is the one its index line gives."""
    if values.size and int(values.max()) > 1:
        raise DataError(f"{file}: holds values other than 0 and 1")
    starts = np.concatenate([[0], np.cumsum(rows)[:-1]])
    ones = np.add.reduceat(values.astype(np.int64), starts) if values.size else np.zeros(0)
    bad = np.flatnonzero(ones != np.asarray(counts, np.int64))
    if bad.size:
        raise DataError(
            f"{file}: episode {int(bad[0])} has {int(ones[bad[0]])} ones; its index line "
            f"says {counts[bad[0]]}"
        )


def check_returns(rewards: np.ndarray, index: list[EpisodeRecord], file: Path) -> None:
    """Raise a DataError if an episode's rewards do not sum to the return its line gives."""
    rows = np.array([e.length for e in index], np.int64)
    starts = np.concatenate([[0], np.cumsum(rows)[:-1]])
    sums = np.add.reduceat(rewards.astype(np.float64), starts)
    given = np.array([e.episode_return for e in index])
    scale = np.add.reduceat(np.abs(rewards.astype(np.float64)), starts)
    bad = np.flatnonzero(np.abs(sums - given) > 1e-9 * scale + 1e-12)
    if bad.size:
        raise DataError(
            f"{file}: episode {int(bad[0])}'s rewards sum to {sums[bad[0]]!r}; its index "
            f"line says {given[bad[0]]!r}"
        )
