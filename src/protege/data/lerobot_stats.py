"""Feature statistics in LeRobot's layout: per episode, and aggregated over a dataset.

Each feature gets ``min``, ``max``, ``mean``, ``std`` (per dimension), ``count`` ([frames])
and the quantiles ``q01``, ``q10``, ``q50``, ``q90``, ``q99``. Images are per channel, scaled
to [0, 1], with shape (C, 1, 1). Integer features keep integer ``min``/``max``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}


def feature_stats(values: np.ndarray, image: bool = False) -> dict[str, Any]:
    """The statistics of one feature over one episode: ``values`` is (T, *shape).

    Images (uint8 (T, H, W, C)) are summarized per channel from a 256-bin histogram: exact,
    the quantiles as numpy's default (linear) method gives them, without sorting pixels.
    """
    n = len(values)
    if image:
        per_channel = [_uint8_stats(values[..., c]) for c in range(values.shape[-1])]
        stats: dict[str, Any] = {
            k: [[[ch[k] / 255.0]] for ch in per_channel] for k in ("min", "max", "mean", "std")
        }
        stats["count"] = [n]
        stats.update({k: [[[ch[k] / 255.0]] for ch in per_channel] for k in QUANTILES})
        return stats
    flat = values.reshape(n, -1)
    is_int = flat.dtype.kind in "iub"
    as_float = flat.astype(np.float64)
    quantiles = np.quantile(as_float, list(QUANTILES.values()), axis=0)
    stats = {
        "min": (flat.min(axis=0) if is_int else as_float.min(axis=0)).tolist(),
        "max": (flat.max(axis=0) if is_int else as_float.max(axis=0)).tolist(),
        "mean": as_float.mean(axis=0).tolist(),
        "std": as_float.std(axis=0).tolist(),
        "count": [n],
    }
    stats.update({k: q.tolist() for k, q in zip(QUANTILES, quantiles, strict=True)})
    return stats


def _uint8_stats(pixels: np.ndarray) -> dict[str, float]:
    counts = np.bincount(pixels.reshape(-1), minlength=256).astype(np.float64)
    total = counts.sum()
    levels = np.arange(256, dtype=np.float64)
    mean = float(counts @ levels / total)
    out = {
        "min": float(np.flatnonzero(counts)[0]),
        "max": float(np.flatnonzero(counts)[-1]),
        "mean": mean,
        "std": float(np.sqrt(counts @ (levels - mean) ** 2 / total)),
    }
    below = np.cumsum(counts)  # below[v]: how many pixels are <= v
    for key, q in QUANTILES.items():
        h = (total - 1) * q  # the position in the sorted pixels, as numpy's linear method
        lo = int(np.floor(h))
        v_lo = float(np.searchsorted(below, lo, side="right"))
        v_hi = float(np.searchsorted(below, min(lo + 1, total - 1), side="right"))
        out[key] = v_lo + (h - lo) * (v_hi - v_lo)
    return out


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
