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

:func:`calibrate_artifact` is the whole ``ltau-md calibrate`` science on validation atoms' arrays
(the NequIP adapter only evaluates the model and hands them over): per species s, the Maxwell fit
of the true errors and the KS-chosen family of the calibrated predicted errors (seed 003), stored
in the artifact so a run computes its own cutoffs at its own N; the out-of-domain term's distance
model σ(u, d) (:mod:`ltau_md.error_model`); Spearman ρ; precision/recall/F1 at the statistical
cutoffs for plain LTAU and for the calibrated predictor; plots.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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


@dataclass(frozen=True)
class ValidationErrors:
    """Per validation atom, what calibration needs (one row each, frames concatenated)."""

    species: np.ndarray  # element symbols
    p: np.ndarray  # LTAU p at s = 1
    ltau_error: np.ndarray  # LTAU's neighbour mixture mean at s = 1 (u), eV/Å
    nearest: np.ndarray  # latent distance to the nearest training atom of the same species (d)
    true_error: np.ndarray  # |F_model − F_ref| (eV/Å)
    component_error: np.ndarray  # (n, 3) |F_model − F_ref| per component
    n_frames: int
    frame: np.ndarray | None = None  # frame index per atom (whole frames go to one fold)
    neighbourhood: np.ndarray | None = None  # d̄: mean of d over the atom and its neighbours within ``cutoff``
    cutoff: float = 0.0  # Å (the model's r_max)


def _predictor_scores(e: np.ndarray, u: np.ndarray, p: np.ndarray, atol: float, scale: float, n: int) -> dict[str, Any]:
    """One predictor on one species' validation atoms: fitted family, cutoffs, scores."""
    from scipy import stats as sps

    from ltau_md.cutoffs import classification_scores, fit_maxwell, fit_uncertainty

    err_fit = fit_maxwell(e)
    unc_fit, unc_cands = fit_uncertainty(u)
    ec, uc = err_fit.cutoff(n), unc_fit.cutoff(n)
    scores = classification_scores(e, u, ec, uc)
    curve = calibration_curve(p, e, atol, scale)
    return {
        "u": u,
        "fits": (err_fit, unc_fit, unc_cands),
        "curve": curve,
        "report": {
            "predicted_error_mean": float(u.mean()),
            "spearman_rho": float(sps.spearmanr(u, e).statistic) if len(e) > 2 else float("nan"),
            "miscalibration_area": curve.area,
            "sharpness": sharpness(u),
            "dispersion": dispersion(u),
            "uncertainty_fit": unc_fit.to_dict(),
            "uncertainty_cutoff": uc,
            "precision": scores["precision"],
            "recall": scores["recall"],
            "f1": scores["f1"],
            "flagged": scores["tp"] + scores["fp"],
        },
    }


def require_atoms_per_species(species: np.ndarray) -> None:
    """Enough validation atoms of every species to fit an error model (said before any work)."""
    from ltau_md.error_model import MIN_ATOMS

    names, counts = np.unique(np.asarray(species), return_counts=True)
    for sp, c in zip(names, counts):
        if c < MIN_ATOMS:
            raise LtauError(f"the validation frames hold {c} {sp} atoms; calibrating needs ≥ {MIN_ATOMS} of each species: "
                            "give more validation frames")


def calibrate_artifact(
    artifact: Any,
    val: ValidationErrors,
    n: int | None = None,
    plots: str | os.PathLike | None = None,
    fit_scale: bool = True,
    forms: tuple[str, ...] | None = None,
    distance: str | None = None,
    error_model_extra: ValidationErrors | None = None,
) -> dict[str, Any]:
    """Calibrate ``artifact`` (an :class:`~ltau_md.artifact.Artifact`) in place — meta.json is
    rewritten when it was loaded from disk — and return the report.

    Per species: plain LTAU's s (miscalibration area) and the calibrated predictor's σ(u, d)
    (:func:`ltau_md.error_model.fit_species_error_model`, chosen by held-out likelihood); for
    both, the KS-chosen family of the predicted errors (seed 003), so a run computes its own
    cutoffs at its own N; the Maxwell fit of the true errors; the nearest-distance family.
    ``forms``: the error model's candidate forms (default: ``error_model.DEFAULT_FORMS``);
    ``distance``: the latent distance they read (``error_model.DISTANCES``; default ``environment``
    where ``val`` has each atom's neighbourhood distance). ``error_model_extra``: more atoms (labelled
    out-of-domain frames, e.g. a campaign's held-out harvest) for the error model's fit only; the
    distributions behind the statistical cutoffs, s and the dedup distance stay fitted on ``val``,
    whose atoms are in the training domain as the cutoffs' CDF 1 − 1/N assumes."""
    from ltau_md.cutoffs import fit_uncertainty
    from ltau_md.error_model import DEFAULT_FORMS, ErrorModel, fit_species_error_model

    species, nearest, true_err, raw = val.species, val.nearest, val.true_error, val.ltau_error
    # the error model is fitted on the validation atoms and any extra ones
    require_atoms_per_species(species if error_model_extra is None else np.concatenate([species, error_model_extra.species]))
    n = int(n or len(true_err))
    groups = calibrate_groups(val.p, true_err, raw, artifact.atol, species, fit=fit_scale)
    report: dict[str, Any] = {
        "n_frames": val.n_frames, "n_atoms": int(len(true_err)), "N": n, "atol": artifact.atol, "species": {},
    }  # fmt: skip
    scales, dists, models, dedup = {}, {}, {}, {}
    for sp, g in groups.items():
        sel = species == sp
        e, u, d = true_err[sel], raw[sel], nearest[sel]
        dn = None if val.neighbourhood is None else val.neighbourhood[sel]
        fu, fd, fe, ff, fdn = u, d, e, None if val.frame is None else val.frame[sel], dn
        if error_model_extra is not None and np.any(error_model_extra.species == sp):
            fu, fd, fe, ff, fdn = with_extra_atoms(error_model_extra, sp, fu, fd, fe, ff, fdn)
        model = fit_species_error_model(fu, fd, fe, ff, forms=tuple(forms or DEFAULT_FORMS), neighbourhood=fdn, cutoff=val.cutoff,
                                        distance=distance)  # fmt: skip
        sigma = model.sigma(u, d, dn)
        try:
            plain = _predictor_scores(e, g.scale * u, val.p[sel], artifact.atol, g.scale, n)
            calibrated = _predictor_scores(e, *model.predict(sigma, artifact.atol), artifact.atol, 1.0, n)
        except LtauError as exc:  # e.g. one small frame whose atoms all get the same prediction
            raise LtauError(f"{sp} on {val.n_frames} validation frame(s), {int(sel.sum())} atoms: the errors' distributions "
                            f"cannot be fitted ({exc}); give more validation frames") from None  # fmt: skip
        err_fit = plain["fits"][0]
        positive = d[d > 0]
        scales[sp], models[sp] = g.scale, model
        dedup[sp] = float(np.median(positive)) if len(positive) else 0.0
        dists[sp] = {
            "error": err_fit,
            "uncertainty": plain["fits"][1],
            "uncertainty_calibrated": calibrated["fits"][1],
            "distance": fit_uncertainty(positive)[0] if len(positive) >= 10 else None,
        }
        report["species"][sp] = {
            "n_atoms": int(sel.sum()),
            "force_mae_component": float(val.component_error[sel].mean()),
            "force_error_mean": float(e.mean()),
            "error_fit": err_fit.to_dict(),
            "error_cutoff": err_fit.cutoff(n),
            "high_error": int(np.sum(e > err_fit.cutoff(n))),
            "scale": g.scale,
            "miscalibration_area_unscaled": g.area_unscaled,
            "error_model": model.to_dict(),
            "dedup_distance": dedup[sp],
            "ltau": plain["report"],
            "calibrated": calibrated["report"],
        }
        if plots is not None:
            _calibration_plots(Path(plots), sp, e, artifact.atol, err_fit, n, val.p[sel], g, plain, calibrated)
    artifact.set_calibration(scale=scales, distributions=dists, report=report, error_model=ErrorModel(models))
    artifact.meta["dedup_distance"] = dedup
    if artifact.path is not None:
        artifact.save_meta()
    return report


def with_extra_atoms(extra: ValidationErrors, sp: str, u, d, e, frame, dn) -> tuple:
    """One species' validation atoms (u, d, e, frame ids, d̄) with ``extra``'s appended, as the
    error model is fitted on them: their frames numbered after (extra atoms without frame ids
    count as one frame)."""
    x = extra.species == sp
    if (dn is None) != (extra.neighbourhood is None):
        raise LtauError("the error model's extra atoms need the neighbourhood distance exactly when the validation atoms have it")
    n_val = len(e)
    # with fewer than two frame ids the folds are the two halves of the atoms (error_model._folds):
    # keep that for val's, or the extra atoms alone would make one fold
    if frame is None or len(np.unique(frame)) < 2:
        frame = (np.arange(n_val) * 2 // max(n_val, 1)).astype(np.int64)
    x_frame = np.zeros(int(x.sum()), dtype=np.int64) if extra.frame is None else np.asarray(extra.frame)[x]
    x_frame = x_frame + (int(frame.max()) + 1 if n_val else 0)
    cat = lambda a, b: np.concatenate([a, b])
    return (cat(u, extra.ltau_error[x]), cat(d, extra.nearest[x]), cat(e, extra.true_error[x]), cat(frame, x_frame),
            None if dn is None else cat(dn, extra.neighbourhood[x]))  # fmt: skip


def _calibration_plots(out: Path, sp, err, atol, err_fit, n, p_ltau, group, plain, calibrated) -> None:
    from ltau_md.cutoffs import f1_map
    from ltau_md.plots import plot_calibration, plot_distributions, plot_f1_map, plot_parity

    out.mkdir(parents=True, exist_ok=True)
    ec = err_fit.cutoff(n)
    plot_calibration(
        {
            "LTAU, s = 1": calibration_curve(p_ltau, err, atol, 1.0),
            f"LTAU, s = {group.scale:.2f}": plain["curve"],
            "calibrated σ(u, d)": calibrated["curve"],
        },
        out / f"calibration_{sp}.png",
        title=f"{sp}: calibration",
    )
    for name, pred in (("ltau", plain), ("calibrated", calibrated)):
        u, (_, unc_fit, unc_cands) = pred["u"], pred["fits"]
        uc = pred["report"]["uncertainty_cutoff"]
        suffix = "" if name == "calibrated" else "_ltau"
        plot_distributions(
            {f"{sp}: true force error": (err, [err_fit], err_fit, ec), f"{sp}: predicted error ({name})": (u, unc_cands, unc_fit, uc)},
            out / f"distributions_{sp}{suffix}.png",
            xlabel="eV/Å",
        )
        plot_f1_map(f1_map(err, u, 40, 40), out / f"f1_map_{sp}{suffix}.png", ec, uc, title=f"{sp} ({name})")
        plot_parity(u, err, out / f"parity_{sp}{suffix}.png", title=f"{sp}: predicted ({name}) vs true per-atom error")
