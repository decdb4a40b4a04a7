"""Log-log slopes with their intervals, and the χ² test that Monte Carlo agrees with exact values.

The horizon experiment (:mod:`protege.experiments.horizon`) fits expected mistakes per episode
against T on log-log axes. Exact expectations carry no sampling noise, so their interval is
the OLS one over T (:func:`ols_slope`: it measures curvature, and a pure power law gives a
point); Monte Carlo slopes carry a percentile bootstrap over episodes
(:func:`bootstrap_episodes_slope`); :class:`Agreement` is Σz² over the cells against χ².
No SciPy: Student's t by quadrature, χ²'s tail from torch's incomplete gamma.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

AGREEMENT_ALPHA = 1e-3
"""Monte Carlo and exact values agree unless the χ² test rejects at this level."""


@dataclass(frozen=True)
class SlopeFit:
    """A log-log slope with its standard error and a ``level`` interval.

    ``method`` says where the interval comes from: ``"ols"`` (the residuals of the fit over
    T, Student t) or ``"bootstrap"`` (percentile bootstrap over Monte Carlo episodes).
    """

    slope: float
    se: float
    low: float
    high: float
    level: float
    method: str

    def __str__(self) -> str:
        return f"{self.slope:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def loglog_slope(horizons: Sequence[float], values: np.ndarray) -> np.ndarray:
    """OLS slope of log(values) on log(horizons) along the last axis (any leading shape)."""
    x = np.log(np.asarray(horizons, dtype=float))
    x = x - x.mean()
    y = np.log(np.asarray(values, dtype=float))
    y = y - y.mean(axis=-1, keepdims=True)
    return (y @ x) / float(x @ x)


def _t_cdf(x: float, df: int) -> float:
    """Student t CDF by Simpson's rule on the density (no SciPy; ~1e-10 accurate here)."""
    if x < 0:
        return 1.0 - _t_cdf(-x, df)
    ts = np.linspace(0.0, x, 4001)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    pdf = np.exp(log_c - (df + 1) / 2 * np.log1p(ts**2 / df))
    h = x / 4000
    return 0.5 + h / 3 * (pdf[0] + pdf[-1] + 4 * pdf[1:-1:2].sum() + 2 * pdf[2:-1:2].sum())


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t with ``df`` degrees of freedom."""
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        lo, hi = hi, 2 * hi
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def chi2_sf(x: float, df: int) -> float:
    """P(χ²(df) ≥ x): the regularized upper incomplete gamma Q(df/2, x/2)."""
    import torch

    a = torch.tensor(df / 2, dtype=torch.float64)
    return float(torch.special.gammaincc(a, torch.tensor(x / 2, dtype=torch.float64)))


def ols_slope(horizons: Sequence[float], values: np.ndarray, level: float) -> SlopeFit:
    """Log-log OLS slope with the interval slope ± t·SE, SE from the fit's residuals.

    Exact values carry no sampling noise, so the interval measures only how far the curve is
    from a power law over ``horizons`` (a pure power law gives a point). With two horizons
    there are no residual degrees of freedom and the interval is NaN.
    """
    x = np.log(np.asarray(horizons, dtype=float))
    y = np.log(np.asarray(values, dtype=float))
    slope = float(loglog_slope(horizons, values))
    df = len(x) - 2
    if df < 1:
        nan = float("nan")
        return SlopeFit(slope, nan, nan, nan, level, "ols")
    resid = (y - y.mean()) - slope * (x - x.mean())
    se = math.sqrt(float(resid @ resid) / df / float(((x - x.mean()) ** 2).sum()))
    half = t_quantile((1 + level) / 2, df) * se
    return SlopeFit(slope, se, slope - half, slope + half, level, "ols")


def bootstrap_episodes_slope(
    horizons: Sequence[float],
    samples: Sequence[np.ndarray],
    n_boot: int,
    level: float,
    rng: np.random.Generator,
) -> SlopeFit:
    """Slope of the Monte Carlo means with a percentile bootstrap over episodes.

    ``samples[j]`` holds the per-episode integer values at ``horizons[j]``; each resample
    redraws every horizon's episodes with replacement (multinomially over their distinct
    values, which is the same and much cheaper). Resamples with a zero mean are dropped.
    """
    point = float(loglog_slope(horizons, np.array([s.mean() for s in samples])))
    means = np.empty((n_boot, len(samples)))
    for j, s in enumerate(samples):
        values, counts = np.unique(s, return_counts=True)
        draws = rng.multinomial(len(s), counts / len(s), size=n_boot)
        means[:, j] = draws @ values / len(s)
    means = means[(means > 0).all(axis=1)]
    if len(means) < 2:
        nan = float("nan")
        return SlopeFit(point, nan, nan, nan, level, "bootstrap")
    boot = loglog_slope(horizons, means)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
    return SlopeFit(point, float(boot.std(ddof=1)), float(lo), float(hi), level, "bootstrap")


@dataclass(frozen=True)
class Agreement:
    """The χ² test that Monte Carlo and exact values agree: χ² = Σ z² over ``df`` cells."""

    quantity: str
    chi2: float
    df: int
    p_value: float
    max_abs_z: float

    @property
    def passed(self) -> bool:
        """p ≥ 0.001: no evidence at that level that the two disagree."""
        return self.p_value >= AGREEMENT_ALPHA

    def __str__(self) -> str:
        verdict = "agree" if self.passed else "DISAGREE"
        return (
            f"{self.quantity}: χ² = {self.chi2:.1f} on {self.df} cells, p = {self.p_value:.3f}, "
            f"max |z| = {self.max_abs_z:.2f} ({verdict} at p ≥ {AGREEMENT_ALPHA:g})"
        )


def z_scores(mc: np.ndarray, se: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """(MC − exact) / SE; a cell with SE 0 is 0 if it equals the exact value, else ±inf."""
    diff = mc - exact
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(se > 0, diff / np.where(se > 0, se, 1.0), np.where(diff == 0, 0.0, np.inf))
