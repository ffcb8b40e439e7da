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
    # The in-distribution latent neighbourhood: per species, the nearest-training-atom distance
    # that these validation atoms stay within (fitted family, CDF 1 − 1/n_species).
    dist_fits, d_ref = {}, {}
    for sp in dict.fromkeys(species.tolist()):
        d = nearest[(species == sp) & (nearest > 0)]
        if len(d) >= 10:
            dist_fits[sp] = fit_uncertainty(d)[0]
            d_ref[sp] = dist_fits[sp].cutoff(max(2, int(np.sum(species == sp))))
    factor = np.ones(len(raw))
    for sp, ref in d_ref.items():
        sel = species == sp
        factor[sel] = np.maximum(1.0, nearest[sel] / ref)
    u = raw * factor
    groups = calibrate_groups(p, true_err, u, artifact.atol, species, fit=fit_scale)
    report: dict[str, Any] = {"n_frames": len(frames), "n_atoms": int(len(true_err)), "N": n, "atol": artifact.atol, "species": {}}
    scales, dists = {}, {}
    for sp, g in groups.items():
        sel = species == sp
        e, uu = true_err[sel], g.scale * u[sel]
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
            "distance_ref": d_ref.get(sp),
            "ood_atoms": int(np.sum(factor[sel] > 1)),
        }
        if plots is not None:
            _plots(Path(plots), sp, p[sel], true_err[sel], uu, artifact.atol, g, err_fit, unc_fit, unc_cands, ec, uc)
    artifact.set_calibration(scale=scales, distributions=dists, report=report, ood=d_ref)
    artifact.save_meta()
    return report


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
