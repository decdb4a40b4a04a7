"""Feature statistics in LeRobot's layout: per episode, and aggregated over a dataset.

Each feature gets ``min``, ``max``, ``mean``, ``std`` (per dimension), ``count`` ([frames])
and the quantiles ``q01``, ``q10``, ``q50``, ``q90``, ``q99``. Images are per channel, scaled
to [0, 1], with shape (C, 1, 1). Integer features keep integer ``min``/``max``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
_MAX_IMAGE_VALUES = 1_000_000
"""Most pixel values per channel an image's quantiles are computed from (a regular subsample)."""


def feature_stats(values: np.ndarray, image: bool = False) -> dict[str, Any]:
    """The statistics of one feature over one episode: ``values`` is (T, *shape)."""
    n = len(values)
    if image:  # (T, H, W, C) uint8 -> (C, T*H*W) in [0, 1]
        flat = values.reshape(-1, values.shape[-1]).T.astype(np.float64) / 255.0
        step = max(1, flat.shape[1] // _MAX_IMAGE_VALUES)
        sample = flat[:, ::step]

        def per_channel(a: np.ndarray) -> list[Any]:
            return a.reshape(-1, 1, 1).tolist()

        stats: dict[str, Any] = {
            "min": per_channel(flat.min(axis=1)),
            "max": per_channel(flat.max(axis=1)),
            "mean": per_channel(flat.mean(axis=1)),
            "std": per_channel(flat.std(axis=1)),
            "count": [n],
        }
        stats.update({k: per_channel(np.quantile(sample, q, axis=1)) for k, q in QUANTILES.items()})
        return stats
    flat = values.reshape(n, -1)
    is_int = flat.dtype.kind in "iub"
    as_float = flat.astype(np.float64)
    stats = {
        "min": (flat.min(axis=0) if is_int else as_float.min(axis=0)).tolist(),
        "max": (flat.max(axis=0) if is_int else as_float.max(axis=0)).tolist(),
        "mean": as_float.mean(axis=0).tolist(),
        "std": as_float.std(axis=0).tolist(),
        "count": [n],
    }
    stats.update({k: np.quantile(as_float, q, axis=0).tolist() for k, q in QUANTILES.items()})
    return stats


def aggregate_stats(per_episode: list[dict[str, Any]]) -> dict[str, Any]:
    """One feature's statistics over a dataset, from its per-episode statistics.

    Exact for min, max, mean, std and count; the quantiles are the count-weighted mean of the
    episodes' quantiles (an approximation, as LeRobot's own aggregation).
    """
    counts = np.array([s["count"][0] for s in per_episode], np.float64)
    weights = counts / counts.sum()

    def stack(key: str) -> np.ndarray:
        return np.stack([np.asarray(s[key], np.float64) for s in per_episode])

    def weighted(a: np.ndarray) -> np.ndarray:
        return np.tensordot(weights, a, axes=1)

    mins, maxs = [np.asarray([s[k] for s in per_episode]) for k in ("min", "max")]
    means, stds = stack("mean"), stack("std")
    mean = weighted(means)
    var = weighted(stds**2 + (means - mean) ** 2)
    out: dict[str, Any] = {
        "min": mins.min(axis=0).tolist(),
        "max": maxs.max(axis=0).tolist(),
        "mean": mean.tolist(),
        "std": np.sqrt(np.maximum(var, 0.0)).tolist(),
        "count": [int(counts.sum())],
    }
    out.update({k: weighted(stack(k)).tolist() for k in QUANTILES})
    return out
