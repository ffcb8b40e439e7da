"""Each training atom's error distribution over epochs (and models), kept as quantiles.

LTAU's "full error PDF": p at any threshold, the expected error and error quantiles must be
available after the fact, not only p at the atol used when fitting. Storing every logged error is
E·M values per atom; Q quantile knots (default 21, every 5 %) plus the exact mean are enough: the
CDF between knots is interpolated linearly, so p at a new threshold is within 1/(Q-1) of the count.

A test atom's predicted error distribution is the equal-weight mixture of its k neighbours'
distributions, stretched by the calibration scale s (seed 002 §4.1: errors ≤ atol·s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_LEVELS = np.linspace(0.0, 1.0, 21)


def column_quantiles(samples: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles (numpy's default 'linear' rule) of each column of ``samples``, ignoring NaN.

    Returns ``(quantiles (n_cols, Q), n_valid (n_cols,))``; columns without data give NaN.
    Vectorised over columns (``np.nanquantile`` loops in Python when NaN are present).
    """
    s = np.sort(samples, axis=0)  # NaN sort last
    n = np.sum(~np.isnan(samples), axis=0)
    pos = np.asarray(levels, dtype=np.float64)[:, None] * np.maximum(n - 1, 0)[None, :]
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0)[None, :])
    frac = pos - lo
    q_lo = np.take_along_axis(s, lo, axis=0)
    q_hi = np.take_along_axis(s, hi, axis=0)
    q = q_lo + frac * (q_hi - q_lo)
    q[:, n == 0] = np.nan
    return q.T.astype(np.float32), n


def _interp_rows(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Row-wise ``np.interp``: for each row r, interpolate ``x[r]`` on knots ``xp[r]`` → ``fp``.

    Knots may repeat (flat stretches of the CDF); the result is the right-continuous CDF there.
    """
    q = xp.shape[1]
    j = np.sum(xp <= x[:, None], axis=1)  # knots at or below x
    below = j == 0
    above = j >= q
    j_lo = np.clip(j - 1, 0, q - 1)
    j_hi = np.clip(j, 0, q - 1)
    x_lo = np.take_along_axis(xp, j_lo[:, None], 1)[:, 0]
    x_hi = np.take_along_axis(xp, j_hi[:, None], 1)[:, 0]
    width = x_hi - x_lo
    t = np.divide(x - x_lo, width, out=np.zeros_like(x, dtype=np.float64), where=width > 0)
    out = fp[j_lo] + t * (fp[j_hi] - fp[j_lo])
    out[below] = 0.0
    out[above] = 1.0
    return out


@dataclass(frozen=True, eq=False)
class ErrorDistribution:
    """Per-atom error distributions: ``quantiles[i, j]`` = level ``levels[j]`` quantile of atom i."""

    levels: np.ndarray
    quantiles: np.ndarray
    mean: np.ndarray

    def __post_init__(self) -> None:
        if self.levels.ndim != 1 or self.levels[0] != 0.0 or self.levels[-1] != 1.0:
            raise ValueError("quantile levels must be a 1-D array running from 0 to 1")
        if np.any(np.diff(self.levels) <= 0):
            raise ValueError("quantile levels must increase strictly")
        if self.quantiles.shape != (len(self.mean), len(self.levels)):
            raise ValueError(
                f"quantiles have shape {self.quantiles.shape}, expected ({len(self.mean)}, {len(self.levels)})"
            )

    def __len__(self) -> int:
        return len(self.mean)

    def cdf(self, x: float | np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """P(error ≤ x) for each atom (all, or ``rows``); ``x`` scalar or one value per atom."""
        q = self.quantiles if rows is None else self.quantiles[rows]
        x = np.broadcast_to(np.asarray(x, dtype=np.float64), (q.shape[0],))
        return _interp_rows(x, q.astype(np.float64), self.levels.astype(np.float64))

    def quantile(self, level: float, rows: np.ndarray | None = None) -> np.ndarray:
        q = self.quantiles if rows is None else self.quantiles[rows]
        j = np.searchsorted(self.levels, level)
        if j < len(self.levels) and self.levels[j] == level:
            return q[:, j].astype(np.float64)
        j = int(np.clip(j, 1, len(self.levels) - 1))
        t = (level - self.levels[j - 1]) / (self.levels[j] - self.levels[j - 1])
        return (q[:, j - 1] + t * (q[:, j] - q[:, j - 1])).astype(np.float64)

    # -- mixtures over neighbours (test atoms) ---------------------------------------------------

    def mixture_cdf(self, neighbors: np.ndarray, x: float | np.ndarray, scale: float | np.ndarray = 1.0) -> np.ndarray:
        """P(error ≤ x) of test atoms whose distribution is ``scale`` × the mean of their
        neighbours' distributions; ``neighbors`` is (n, k) training-atom ids."""
        n, k = neighbors.shape
        xs = np.broadcast_to(np.asarray(x, dtype=np.float64) / np.asarray(scale, dtype=np.float64), (n,))
        vals = self.cdf(np.repeat(xs, k), rows=neighbors.reshape(-1))
        return vals.reshape(n, k).mean(axis=1)

    def mixture_mean(self, neighbors: np.ndarray, scale: float | np.ndarray = 1.0) -> np.ndarray:
        return np.asarray(scale, dtype=np.float64) * self.mean[neighbors].astype(np.float64).mean(axis=1)

    def mixture_quantile(
        self, neighbors: np.ndarray, level: float, scale: float | np.ndarray = 1.0, iterations: int = 50
    ) -> np.ndarray:
        """Error value below which a fraction ``level`` of the mixture lies (bisection per atom)."""
        q = self.quantiles[neighbors]  # (n, k, Q)
        lo = np.nanmin(q[:, :, 0], axis=1).astype(np.float64)
        hi = np.nanmax(q[:, :, -1], axis=1).astype(np.float64)
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            below = self.mixture_cdf(neighbors, mid) < level
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        return np.asarray(scale, dtype=np.float64) * 0.5 * (lo + hi)
