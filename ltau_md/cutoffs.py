"""Statistical cutoffs for errors and uncertainties (seed 003 §2–3).

* Force-error magnitudes of a model that describes its data follow a Maxwell distribution (three
  Gaussian components); σ is fitted by maximum likelihood with loc = 0: σ² = Σx² / 3n.
* Uncertainties are fitted with Maxwell, Gamma and generalised Gamma (loc = 0, maximum likelihood)
  and each fit is KS-tested on the whole sample. The family is chosen by KS p-value with parsimony:
  the first of maxwell → gamma → gengamma whose p-value reaches ``alpha`` (0.05, seed 003's 95 %
  level), else the one with the smallest KS statistic. Plain "highest p-value" would hand nested
  families a win on noise alone (Maxwell *is* gengamma with a = 3/2, c = 2).
* Cutoff = ppf(1 − 1/N) with N the number of atomic environments that will be examined, so an
  in-distribution run expects about one false alarm in total.

Also: precision, recall and F1 of "uncertain" against "high error", and their map over both cutoffs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from ltau_md.errors import LtauError
from ltau_md.species import symbol, to_numbers

FAMILIES = ("maxwell", "gamma", "gengamma")
PARAM_NAMES = {"maxwell": ("scale",), "gamma": ("a", "scale"), "gengamma": ("a", "c", "scale")}
DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class FittedDistribution:
    """A fitted family (loc fixed at 0) with its KS test on the sample it was fitted to."""

    family: str
    params: dict[str, float]
    ks_statistic: float
    ks_pvalue: float
    n_samples: int

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise LtauError(f"unknown distribution family {self.family!r}; known: {', '.join(FAMILIES)}")
        if set(self.params) != set(PARAM_NAMES[self.family]):
            raise LtauError(
                f"{self.family} needs parameters {list(PARAM_NAMES[self.family])}, got {sorted(self.params)}"
            )
        if not all(math.isfinite(v) for v in self.params.values()) or self.params["scale"] <= 0:
            raise LtauError(f"{self.family} parameters must be finite with scale > 0, got {self.params}")

    def frozen(self) -> Any:
        p = self.params
        if self.family == "maxwell":
            return stats.maxwell(loc=0.0, scale=p["scale"])
        if self.family == "gamma":
            return stats.gamma(p["a"], loc=0.0, scale=p["scale"])
        return stats.gengamma(p["a"], p["c"], loc=0.0, scale=p["scale"])

    def cdf(self, x: np.ndarray | float) -> np.ndarray:
        return self.frozen().cdf(x)

    def pdf(self, x: np.ndarray | float) -> np.ndarray:
        return self.frozen().pdf(x)

    def cutoff(self, n: int) -> float:
        """The value whose CDF is 1 − 1/n."""
        if n < 2:
            raise LtauError(f"N for a statistical cutoff must be at least 2 (atoms × checks), got {n}")
        return float(self.frozen().isf(1.0 / n))  # isf keeps precision where 1 − 1/n rounds to 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "params": {k: float(v) for k, v in self.params.items()},
            "ks_statistic": float(self.ks_statistic),
            "ks_pvalue": float(self.ks_pvalue),
            "n_samples": int(self.n_samples),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FittedDistribution:
        try:
            return cls(
                family=str(d["family"]),
                params={k: float(v) for k, v in dict(d["params"]).items()},
                ks_statistic=float(d.get("ks_statistic", float("nan"))),
                ks_pvalue=float(d.get("ks_pvalue", float("nan"))),
                n_samples=int(d.get("n_samples", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LtauError(f"fitted distribution {d!r} is malformed ({exc})") from None


def _check_sample(x: np.ndarray, positive: bool) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size < 2:
        raise LtauError(f"need at least 2 values to fit a distribution, got {x.size}")
    if not np.all(np.isfinite(x)):
        raise LtauError(f"{int(np.sum(~np.isfinite(x)))} values are NaN or inf; remove them before fitting")
    if np.any(x < 0) or (positive and np.any(x == 0)):
        raise LtauError(
            f"values must be {'> 0' if positive else '>= 0'} (magnitudes), found minimum {x.min():.4g}"
        )
    if np.std(x) <= 1e-6 * np.mean(x):  # the likelihood fits divide by the spread
        raise LtauError(f"all {x.size} values are (nearly) the same, {np.mean(x):.6g}: a distribution needs their spread; "
                        "give the values of many atoms or checks")
    return x


def _ks(x: np.ndarray, family: str, params: dict[str, float]) -> FittedDistribution:
    probe = FittedDistribution(family, params, float("nan"), float("nan"), len(x))
    res = stats.kstest(x, probe.frozen().cdf)
    return FittedDistribution(family, params, float(res.statistic), float(res.pvalue), len(x))


def fit_maxwell(x: np.ndarray) -> FittedDistribution:
    """Maximum-likelihood Maxwell fit with loc = 0 (closed form) and its KS test."""
    x = _check_sample(x, positive=False)
    sigma = math.sqrt(float(np.mean(x * x)) / 3.0)
    if sigma <= 0:
        raise LtauError("all values are zero; nothing to fit")
    return _ks(x, "maxwell", {"scale": sigma})


def _fit_gamma(x: np.ndarray) -> FittedDistribution:
    try:
        a, _, scale = stats.gamma.fit(x, floc=0.0)
    except (RuntimeError, ValueError, FloatingPointError):
        raise LtauError("the Gamma fit did not converge on these values; look for a few extreme ones and drop them") from None
    return _ks(x, "gamma", {"a": float(a), "scale": float(scale)})


def _fit_gengamma(x: np.ndarray, gamma_fit: FittedDistribution) -> FittedDistribution:
    """MLE from two starting points (the Gamma fit, c = 1, and the Maxwell point a = 3/2, c = 2);
    the likelihood surface has long ridges and one start alone gets stuck on some samples."""
    sigma = math.sqrt(float(np.mean(x * x)) / 3.0)
    starts = [
        (gamma_fit.params["a"], 1.0, gamma_fit.params["scale"]),
        (1.5, 2.0, sigma * math.sqrt(2.0)),
    ]
    best, best_ll = None, -np.inf
    for a0, c0, s0 in starts:
        try:
            a, c, _, scale = stats.gengamma.fit(x, a0, c0, floc=0.0, scale=s0)
        except (RuntimeError, ValueError, FloatingPointError):
            continue
        if not (np.isfinite(a) and np.isfinite(c) and np.isfinite(scale) and a > 0 and scale > 0 and c != 0):
            continue
        ll = float(np.sum(stats.gengamma.logpdf(x, a, c, loc=0.0, scale=scale)))
        if ll > best_ll:
            best, best_ll = (float(a), float(c), float(scale)), ll
    if best is None:
        raise LtauError("the generalized-Gamma fit did not converge on these values")
    return _ks(x, "gengamma", {"a": best[0], "c": best[1], "scale": best[2]})


def fit_family(x: np.ndarray, family: str) -> FittedDistribution:
    if family == "maxwell":
        return fit_maxwell(x)
    x = _check_sample(x, positive=True)
    if family == "gamma":
        return _fit_gamma(x)
    if family == "gengamma":
        return _fit_gengamma(x, _fit_gamma(x))
    raise LtauError(f"unknown distribution family {family!r}; known: {', '.join(FAMILIES)}")


def fit_uncertainty(
    x: np.ndarray, families: Sequence[str] = FAMILIES, alpha: float = DEFAULT_ALPHA
) -> tuple[FittedDistribution, list[FittedDistribution]]:
    """Fit every family, return ``(chosen, all_fits)`` (see the module docstring for the rule)."""
    x = _check_sample(x, positive=True)
    order = sorted(families, key=lambda f: len(PARAM_NAMES.get(f, ())) if f in FAMILIES else 99)
    fits: list[FittedDistribution] = []
    gamma_fit = None
    for family in order:
        if family == "maxwell":
            fits.append(fit_maxwell(x))
        elif family == "gamma":
            gamma_fit = _fit_gamma(x)
            fits.append(gamma_fit)
        elif family == "gengamma":
            fits.append(_fit_gengamma(x, gamma_fit or _fit_gamma(x)))
        else:
            raise LtauError(f"unknown distribution family {family!r}; known: {', '.join(FAMILIES)}")
    accepted = [f for f in fits if f.ks_pvalue >= alpha]
    chosen = accepted[0] if accepted else min(fits, key=lambda f: f.ks_statistic)
    return chosen, fits


@dataclass(frozen=True)
class CutoffResult:
    """One fitted sample: the chosen fit, the alternatives tried, the cutoff at N."""

    kind: str  # "error" or "uncertainty"
    fit: FittedDistribution
    candidates: list[FittedDistribution]
    n: int
    cutoff: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.fit.family,
            "params": self.fit.to_dict()["params"],
            "ks_statistic": self.fit.ks_statistic,
            "ks_pvalue": self.fit.ks_pvalue,
            "cutoff": self.cutoff,
            "n": self.n,
            "n_samples": self.fit.n_samples,
            "candidates": [c.to_dict() for c in self.candidates],
        }


def statistical_cutoff(values: np.ndarray, n: int, kind: str = "uncertainty", alpha: float = DEFAULT_ALPHA) -> CutoffResult:
    """Fit ``values`` (Maxwell for ``kind='error'``, the KS-chosen family for ``'uncertainty'``)
    and return the cutoff where the CDF reaches 1 − 1/n."""
    if kind == "error":
        fit = fit_maxwell(values)
        candidates = [fit]
    elif kind == "uncertainty":
        fit, candidates = fit_uncertainty(values, alpha=alpha)
    else:
        raise LtauError(f"kind must be 'error' or 'uncertainty', got {kind!r}")
    return CutoffResult(kind=kind, fit=fit, candidates=candidates, n=int(n), cutoff=fit.cutoff(int(n)))


def statistical_cutoffs_by_species(
    values: np.ndarray, species: np.ndarray, n: int, kind: str = "uncertainty", alpha: float = DEFAULT_ALPHA
) -> dict[str, CutoffResult]:
    """One fit and cutoff per species (keyed by element symbol, in atomic-number order)."""
    values = np.asarray(values).ravel()
    numbers = to_numbers(np.asarray(species).ravel())
    if len(numbers) != len(values):
        raise LtauError(f"species has {len(numbers)} entries but values has {len(values)}; they must match")
    out: dict[str, CutoffResult] = {}
    for z in np.unique(numbers):
        sel = values[numbers == z]
        try:
            out[symbol(z)] = statistical_cutoff(sel, n, kind, alpha)
        except LtauError as exc:
            raise LtauError(f"species {symbol(z)}: {exc}") from None
    return out


# -- classification of "uncertain" against "high error" ----------------------------------------


def classification_scores(
    errors: np.ndarray, uncertainties: np.ndarray, error_cutoff: float, uncertainty_cutoff: float
) -> dict[str, float]:
    """Precision, recall and F1 of ``uncertainty > uncertainty_cutoff`` as a detector of
    ``error > error_cutoff`` (seed 003 eqs. 1–3); 0 where a ratio has no denominator."""
    e = np.asarray(errors).ravel()
    u = np.asarray(uncertainties).ravel()
    if e.shape != u.shape:
        raise LtauError(f"errors ({e.size}) and uncertainties ({u.size}) must have one value per atom each")
    high, flagged = e > error_cutoff, u > uncertainty_cutoff
    tp = int(np.sum(high & flagged))
    fp = int(np.sum(~high & flagged))
    fn = int(np.sum(high & ~flagged))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn, "tn": int(e.size - tp - fp - fn)}


@dataclass(frozen=True)
class F1Map:
    """Precision/recall/F1 on a grid: rows = error cutoffs, columns = uncertainty cutoffs."""

    error_cutoffs: np.ndarray
    uncertainty_cutoffs: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    extra: dict[str, float] = field(default_factory=dict)


def f1_map(
    errors: np.ndarray,
    uncertainties: np.ndarray,
    error_cutoffs: np.ndarray | int = 50,
    uncertainty_cutoffs: np.ndarray | int = 50,
) -> F1Map:
    """The seed 003 Fig. 3 sweep. Integer arguments mean that many cutoffs spanning the data."""
    e = np.asarray(errors, dtype=np.float64).ravel()
    u = np.asarray(uncertainties, dtype=np.float64).ravel()
    if e.shape != u.shape or e.size == 0:
        raise LtauError("errors and uncertainties must be non-empty with one value per atom each")
    if np.isscalar(error_cutoffs):
        error_cutoffs = np.linspace(0.0, e.max(), int(error_cutoffs))
    if np.isscalar(uncertainty_cutoffs):
        uncertainty_cutoffs = np.linspace(u.min(), u.max(), int(uncertainty_cutoffs))
    ec = np.asarray(error_cutoffs, dtype=np.float64)
    uc = np.asarray(uncertainty_cutoffs, dtype=np.float64)
    order = np.argsort(u)
    u_sorted = u[order]
    # Number flagged at cutoff c: atoms with u > c = n − (atoms with u ≤ c).
    first_flagged = np.searchsorted(u_sorted, uc, side="right")
    n_flagged = e.size - first_flagged
    shape = (len(ec), len(uc))
    precision, recall = np.zeros(shape), np.zeros(shape)
    for r, c in enumerate(ec):
        high_sorted = (e[order] > c).astype(np.int64)
        # high atoms among the flagged = high atoms from first_flagged to the end
        tail = np.concatenate([np.cumsum(high_sorted[::-1])[::-1], [0]])
        tp = tail[first_flagged]
        n_high = int(high_sorted.sum())
        precision[r] = np.divide(tp, n_flagged, out=np.zeros(len(uc)), where=n_flagged > 0)
        recall[r] = tp / n_high if n_high else 0.0
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(shape), where=denom > 0)
    return F1Map(ec, uc, precision, recall, f1)


LO_RATIO_SWEEP = np.linspace(0.05, 3.0, 119)  # lo / statistical lo, for the best recall at a precision


def best_recall_at_precision(error_ratio: np.ndarray, uncertainty_ratio: np.ndarray, min_precision: float = 0.5) -> tuple[float, float]:
    """At the statistical error cutoff (``error_ratio`` = error / cutoff > 1 is high error), the best
    recall any lo reaches with precision ≥ ``min_precision``, over lo = ``LO_RATIO_SWEEP`` × the
    statistical lo (``uncertainty_ratio`` = predicted / lo); returns (recall, that lo ratio), with
    (0, NaN) where no lo reaches the precision."""
    at_err = f1_map(error_ratio, uncertainty_ratio, np.array([1.0]), LO_RATIO_SWEEP)
    ok = at_err.precision[0] >= min_precision
    if not ok.any():
        return 0.0, float("nan")
    best = int(np.argmax(np.where(ok, at_err.recall[0], -1.0)))
    return float(at_err.recall[0][best]), float(LO_RATIO_SWEEP[best])
