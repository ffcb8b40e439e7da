"""Calibration of LTAU p-values against observed errors (seed 002 §4.1, Tran et al. metrics).

A test atom's p_j predicts the chance that its force error is ≤ atol. Bin atoms by p_j (equal-count
bins by default, so no point of the curve rests on a handful of atoms; ``binning="width"`` for
equal-width bins); in each bin the observed fraction with error ≤ atol·s should equal the mean p_j
(the x = y line). The
calibration scale s stretches the training error distribution to the test data's (seed 002 App. D)
and is fitted per group (species) by minimising the miscalibration area.

Miscalibration area: ∫₀¹ |c(x) − x| dx for the piecewise-linear curve c through (0, 0), the
non-empty bins' (mean p, observed fraction) and (1, 1); computed exactly, crossings included.
Sharpness = √mean(u²) and dispersion = std(u)/mean(u) (coefficient of variation) of the predicted
errors u, as in Tran et al. (2020).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ltau_md.errors import LtauError

DEFAULT_BINS = 10
SCALE_BOUNDS = (0.05, 50.0)


@dataclass(frozen=True)
class CalibrationCurve:
    """One binned curve: per non-empty bin, mean predicted p, observed fraction and count."""

    predicted: np.ndarray
    observed: np.ndarray
    counts: np.ndarray
    atol: float
    scale: float

    @property
    def area(self) -> float:
        return miscalibration_area(self.predicted, self.observed)

    @property
    def ece(self) -> float:
        """Count-weighted mean |observed − predicted| (expected calibration error)."""
        if self.counts.sum() == 0:
            return float("nan")
        return float(np.sum(self.counts * np.abs(self.observed - self.predicted)) / self.counts.sum())

    def to_dict(self) -> dict[str, Any]:
        return {
            "predicted": self.predicted.tolist(),
            "observed": self.observed.tolist(),
            "counts": self.counts.tolist(),
            "atol": self.atol,
            "scale": self.scale,
            "area": self.area,
        }


def _check(p: np.ndarray, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=np.float64).ravel()
    e = np.asarray(errors, dtype=np.float64).ravel()
    if p.shape != e.shape:
        raise LtauError(f"p ({p.size}) and errors ({e.size}) must have one value per atom each")
    if p.size == 0:
        raise LtauError("no atoms to calibrate on")
    if np.any((p < 0) | (p > 1)) or not np.all(np.isfinite(p)):
        raise LtauError("p values must lie in [0, 1]")
    if not np.all(np.isfinite(e)):
        raise LtauError("errors contain NaN or inf")
    return p, e


BINNINGS = ("count", "width")


def _bin_of(p: np.ndarray, n_bins: int, binning: str = "count") -> np.ndarray:
    """Bin index per atom: equal-count bins (atoms sorted by p, ties kept together) or
    equal-width bins on [0, 1]."""
    if binning == "width":
        return np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    if binning != "count":
        raise LtauError(f"binning must be one of {BINNINGS}, got {binning!r}")
    ranks = np.searchsorted(np.sort(p), p, side="left")  # equal p → equal rank → same bin
    return np.minimum(ranks * n_bins // len(p), n_bins - 1)


def calibration_curve(
    p: np.ndarray,
    errors: np.ndarray,
    atol: float,
    scale: float = 1.0,
    n_bins: int = DEFAULT_BINS,
    binning: str = "count",
) -> CalibrationCurve:
    p, e = _check(p, errors)
    b = _bin_of(p, n_bins, binning)
    counts = np.bincount(b, minlength=n_bins)
    sum_p = np.bincount(b, weights=p, minlength=n_bins)
    hits = np.bincount(b, weights=(e <= atol * scale).astype(np.float64), minlength=n_bins)
    keep = counts > 0
    return CalibrationCurve(
        predicted=sum_p[keep] / counts[keep],
        observed=hits[keep] / counts[keep],
        counts=counts[keep],
        atol=float(atol),
        scale=float(scale),
    )


def miscalibration_area(predicted: np.ndarray, observed: np.ndarray) -> float:
    """Exact ∫₀¹ |c(x) − x| dx for the curve through (0,0), the points, (1,1)."""
    order = np.argsort(predicted, kind="stable")
    x = np.concatenate([[0.0], np.asarray(predicted, dtype=np.float64)[order], [1.0]])
    y = np.concatenate([[0.0], np.asarray(observed, dtype=np.float64)[order], [1.0]])
    f = y - x
    dx = np.diff(x)
    f0, f1 = f[:-1], f[1:]
    same = f0 * f1 >= 0
    area_same = 0.5 * (np.abs(f0) + np.abs(f1)) * dx
    denom = np.abs(f0) + np.abs(f1)
    area_cross = np.divide(dx * (f0**2 + f1**2), 2 * denom, out=np.zeros_like(dx), where=denom > 0)
    return float(np.sum(np.where(same, area_same, area_cross)))


def _areas_over_scales(
    p: np.ndarray, e: np.ndarray, atol: float, scales: np.ndarray, n_bins: int, binning: str
) -> np.ndarray:
    """Miscalibration area for every candidate s at once (errors sorted per bin once)."""
    b = _bin_of(p, n_bins, binning)
    bins = [k for k in range(n_bins) if np.any(b == k)]
    xs = np.array([p[b == k].mean() for k in bins])
    ys = np.empty((len(scales), len(bins)))
    for j, k in enumerate(bins):
        sorted_e = np.sort(e[b == k])
        ys[:, j] = np.searchsorted(sorted_e, atol * scales, side="right") / len(sorted_e)
    return np.array([miscalibration_area(xs, row) for row in ys])


def fit_scale(
    p: np.ndarray,
    errors: np.ndarray,
    atol: float,
    n_bins: int = DEFAULT_BINS,
    bounds: tuple[float, float] = SCALE_BOUNDS,
    binning: str = "count",
) -> float:
    """The s minimising the miscalibration area of errors ≤ atol·s against p (log-grid search,
    then a finer grid around the best point; the area is a step function of s)."""
    p, e = _check(p, errors)
    grid = np.geomspace(bounds[0], bounds[1], 241)
    areas = _areas_over_scales(p, e, atol, grid, n_bins, binning)
    i = int(np.argmin(areas))
    fine = np.geomspace(grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)], 201)
    fine_areas = _areas_over_scales(p, e, atol, fine, n_bins, binning)
    best = np.flatnonzero(fine_areas == fine_areas.min())
    # Ties span a flat stretch; take its geometric middle rather than an edge.
    return float(np.sqrt(fine[best[0]] * fine[best[-1]]))


def sharpness(u: np.ndarray) -> float:
    u = np.asarray(u, dtype=np.float64).ravel()
    return float(np.sqrt(np.mean(u**2)))


def dispersion(u: np.ndarray) -> float:
    """Coefficient of variation of the predicted errors (higher = more informative spread)."""
    u = np.asarray(u, dtype=np.float64).ravel()
    if u.size < 2 or u.mean() == 0:
        return float("nan")
    return float(np.std(u, ddof=1) / np.mean(u))


@dataclass(frozen=True)
class GroupCalibration:
    group: str
    n_atoms: int
    scale: float
    area_unscaled: float
    area: float
    ece: float
    sharpness: float
    dispersion: float
    curve_unscaled: CalibrationCurve
    curve: CalibrationCurve

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "n_atoms": self.n_atoms,
            "scale": self.scale,
            "area_unscaled": self.area_unscaled,
            "area": self.area,
            "ece": self.ece,
            "sharpness": self.sharpness,
            "dispersion": self.dispersion,
            "curve": self.curve.to_dict(),
        }


def calibrate_groups(
    p: np.ndarray,
    errors: np.ndarray,
    predicted_errors: np.ndarray,
    atol: float,
    groups: Sequence[str] | np.ndarray | None = None,
    n_bins: int = DEFAULT_BINS,
    fit: bool = True,
) -> dict[str, GroupCalibration]:
    """Per group (e.g. species): s (fitted, or 1 with ``fit=False``), areas before/after,
    sharpness and dispersion. ``predicted_errors`` are the unscaled predicted errors (eV/Å)."""
    p, e = _check(p, errors)
    u = np.asarray(predicted_errors, dtype=np.float64).ravel()
    labels = np.asarray(["all"] * p.size if groups is None else groups).ravel()
    if labels.size != p.size or u.size != p.size:
        raise LtauError("groups and predicted errors need one entry per atom")
    out: dict[str, GroupCalibration] = {}
    for g in dict.fromkeys(labels.tolist()):
        sel = labels == g
        s = fit_scale(p[sel], e[sel], atol, n_bins) if fit else 1.0
        before = calibration_curve(p[sel], e[sel], atol, 1.0, n_bins)
        after = calibration_curve(p[sel], e[sel], atol, s, n_bins)
        out[str(g)] = GroupCalibration(
            group=str(g),
            n_atoms=int(sel.sum()),
            scale=s,
            area_unscaled=before.area,
            area=after.area,
            ece=after.ece,
            sharpness=sharpness(s * u[sel]),
            dispersion=dispersion(u[sel]),
            curve_unscaled=before,
            curve=after,
        )
    return out
