"""``ltau-md calibrate``: true errors on validation frames → scale s, fitted distributions, report.

Per species: s minimising the miscalibration area (seed 002 §4.1); a Maxwell fit of the true
force-error magnitudes and the KS-chosen family of the calibrated predicted errors (seed 003),
stored in the artifact's meta.json so a run can compute its own cutoffs at its own N; Spearman ρ
between predicted and true per-atom errors; precision/recall/F1 at the statistical cutoffs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from ltau_md.artifact import Artifact
from ltau_md.calibration import calibrate_groups, calibration_curve
from ltau_md.cutoffs import classification_scores, f1_map, fit_maxwell, fit_uncertainty
from ltau_md.nequip.model import NequIPModel
from ltau_md.nequip.predict import predict
from ltau_md.progress import Progress
from ltau_md.species import symbols
from ltau_md.user_input import reference_forces


def calibrate_artifact(
    artifact: Artifact,
    model: NequIPModel,
    frames: Sequence,
    n: int | None = None,
    k: int | None = None,
    plots: str | os.PathLike | None = None,
    fit_scale: bool = True,
    batch_size: int = 8,
    progress: bool = True,
) -> dict[str, Any]:
    """Calibrate ``artifact`` in place (meta.json rewritten) and return the report."""
    bar = Progress("evaluating validation frames", len(frames), enabled=progress)
    preds = predict(model, artifact, frames, k=k, scale=1.0, batch_size=batch_size, progress=bar.update, ood=False)
    bar.close()
    true_err = np.concatenate([np.linalg.norm(p.model.forces - reference_forces(a), axis=1) for a, p in zip(frames, preds)])
    comp_err = np.concatenate([np.abs(p.model.forces - reference_forces(a)).ravel() for a, p in zip(frames, preds)])
    p = np.concatenate([x.p for x in preds])
    raw = np.concatenate([x.error for x in preds])  # LTAU's neighbour average, s = 1
    nearest = np.concatenate([x.distance for x in preds])
    species = np.array(symbols(np.concatenate([a.numbers for a in frames])))
    n = int(n or len(true_err))
    # Out of domain (see Artifact.ood_error): per species, the nearest-training-atom distance the
    # validation atoms stay within (fitted family, CDF 1 − 1/n_species) and the error the latent
    # distance predicts per unit distance (σ = σ0 + σ1·d by Maxwell likelihood; E|ΔF| = 2σ√(2/π)).
    dist_fits, ood = {}, {}
    for sp in dict.fromkeys(species.tolist()):
        sel = species == sp
        d = nearest[sel & (nearest > 0)]
        if len(d) >= 10:
            dist_fits[sp] = fit_uncertainty(d)[0]
            ood[sp] = (dist_fits[sp].cutoff(max(2, int(sel.sum()))), distance_error_slope(nearest[sel], true_err[sel]))
    extra = np.zeros(len(raw))
    for sp, (d_ref, slope) in ood.items():
        sel = species == sp
        extra[sel] = slope * np.maximum(0.0, nearest[sel] - d_ref)
    u = raw + extra
    groups = calibrate_groups(p, true_err, u, artifact.atol, species, fit=fit_scale)
    report: dict[str, Any] = {"n_frames": len(frames), "n_atoms": int(len(true_err)), "N": n, "atol": artifact.atol, "species": {}}
    scales, dists = {}, {}
    for sp, g in groups.items():
        sel = species == sp
        e, uu = true_err[sel], g.scale * raw[sel] + extra[sel]
        err_fit = fit_maxwell(e)
        unc_fit, unc_cands = fit_uncertainty(uu)
        ec, uc = err_fit.cutoff(n), unc_fit.cutoff(n)
        scores = classification_scores(e, uu, ec, uc)
        rho = float(sps.spearmanr(uu, e).statistic) if sel.sum() > 2 else float("nan")
        scales[sp] = g.scale
        dists[sp] = {"error": err_fit, "uncertainty": unc_fit, "distance": dist_fits.get(sp)}
        report["species"][sp] = {
            "n_atoms": int(sel.sum()),
            "force_mae_component": float(comp_err.reshape(-1, 3)[sel].mean()),
            "force_error_mean": float(e.mean()),
            "predicted_error_mean": float(uu.mean()),
            "spearman_rho": rho,
            "scale": g.scale,
            "miscalibration_area_unscaled": g.area_unscaled,
            "miscalibration_area": g.area,
            "sharpness": g.sharpness,
            "dispersion": g.dispersion,
            "error_fit": err_fit.to_dict(),
            "uncertainty_fit": unc_fit.to_dict(),
            "error_cutoff": ec,
            "uncertainty_cutoff": uc,
            "precision": scores["precision"],
            "recall": scores["recall"],
            "f1": scores["f1"],
            "flagged": scores["tp"] + scores["fp"],
            "high_error": scores["tp"] + scores["fn"],
            "distance_ref": ood.get(sp, (None, None))[0],
            "distance_error_slope": ood.get(sp, (None, None))[1],
            "ood_atoms": int(np.sum(extra[sel] > 0)),
        }
        if plots is not None:
            _plots(Path(plots), sp, p[sel], true_err[sel], uu, artifact.atol, g, err_fit, unc_fit, unc_cands, ec, uc)
    artifact.set_calibration(scale=scales, distributions=dists, report=report, ood=ood)
    artifact.save_meta()
    return report


def distance_error_slope(distance: np.ndarray, error: np.ndarray) -> float:
    """d E|ΔF| / d(latent distance), eV/Å per latent unit, ≥ 0: seed 003's latent-distance model
    σ = σ0 + σ1·d fitted to force-error magnitudes by Maxwell maximum likelihood."""
    from scipy import optimize

    d, e = np.asarray(distance, dtype=np.float64), np.asarray(error, dtype=np.float64)
    sigma = np.sqrt(np.mean(e * e) / 3.0)

    def nll(x: np.ndarray) -> float:
        s = x[0] + x[1] * d
        if np.any(s <= 0) or x[1] < 0:
            return 1e300
        return float(-np.sum(sps.maxwell.logpdf(e, scale=s)))

    res = optimize.minimize(nll, np.array([sigma, 0.0]), method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-8})
    return float(max(0.0, res.x[1]) * 2.0 * np.sqrt(2.0 / np.pi))


def _plots(out: Path, sp, p, err, u, atol, group, err_fit, unc_fit, unc_cands, ec, uc) -> None:
    from ltau_md.plots import plot_calibration, plot_distributions, plot_f1_map, plot_parity

    out.mkdir(parents=True, exist_ok=True)
    plot_calibration(
        {"s = 1": calibration_curve(p, err, atol, 1.0), f"s = {group.scale:.2f}": calibration_curve(p, err, atol, group.scale)},
        out / f"calibration_{sp}.png",
        title=f"{sp}: LTAU calibration",
    )
    plot_distributions(
        {f"{sp}: true force error": (err, [err_fit], err_fit, ec), f"{sp}: predicted error (s·LTAU)": (u, unc_cands, unc_fit, uc)},
        out / f"distributions_{sp}.png",
        xlabel="eV/Å",
    )
    plot_f1_map(f1_map(err, u, 40, 40), out / f"f1_map_{sp}.png", ec, uc, title=sp)
    plot_parity(u, err, out / f"parity_{sp}.png", title=f"{sp}: predicted vs true per-atom error")
