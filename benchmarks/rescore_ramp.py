"""Re-score a finished ``ltau-md loop`` / ``ltau-md demo`` run's MD with other error-model settings.

    python benchmarks/rescore_ramp.py RUN_DIR [RUN_DIR ...] [--distance environment nearest]
                                      [--calibration validation held_out]
                                      [-o benchmarks/results/rescore_ramp.json]

For every iteration and walker of each run: the checked MD frames of ``traj.dump`` are embedded by
the iteration's model (member 0, the one the MD ran with) and searched in its artifact; the error
model is refitted on the run's validation frames (``data/validation.xyz``) with each ``--distance``
(held-out likelihood over the default forms, as ``ltau-md calibrate``); lo is the statistical
cutoff of its validation predictions and the true-error cutoff the Maxwell one, both at the run's
N, as the loop scores them. Printed and saved: flagged / truly high-error atoms, P/R/F1 at lo and
R@P.5 (the best recall any lo reaches at precision ≥ 0.5). The trajectory itself is the one the run
made (its halt step came from the predictor it ran with), so this compares predictors on the same
frames, not whole campaigns. ``--calibration held_out`` fits the error model on the validation frames
plus the frames earlier iterations kept out of training (``harvest.calibration_frames`` and
``calibration_share``), as the loop does, with lo still from the validation predictions; iterations
with none are skipped for it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import results_file  # benchmarks/results_file.py (the script's own directory is on sys.path)
import yaml
from ase.io import read

from ltau_app.loop import walkers_of
from ltau_md.artifact import Artifact
from ltau_md.calibration import ValidationErrors, with_extra_atoms
from ltau_md.cutoffs import best_recall_at_precision, classification_scores, fit_maxwell, fit_uncertainty
from ltau_md.error_model import fit_species_error_model, neighbourhood_distance
from ltau_md.lammps_dump import read_dump
from ltau_md.nequip.model import NequIPModel
from ltau_md.relabel import make_calculator
from ltau_md.run_cutoffs import environments_examined
from ltau_md.species import symbols
from ltau_md.user_input import reference_forces


def embed(model: NequIPModel, art: Artifact, frames: list, model_forces: np.ndarray | None, ref_forces: np.ndarray) -> dict:
    res = model.evaluate(frames)
    numbers = np.concatenate([a.numbers for a in frames])
    q = art.query(np.concatenate([r.node_features for r in res]), numbers, predictor="ltau")
    forces = np.concatenate([r.forces for r in res]) if model_forces is None else model_forces
    return {
        "species": np.array(symbols(numbers)), "e": np.linalg.norm(forces - ref_forces, axis=1), "u": q.mixture,
        "d": q.distance[:, 0], "dn": neighbourhood_distance(frames, q.distance[:, 0], model.r_max),
        "frame": np.concatenate([np.full(len(a), i) for i, a in enumerate(frames)]),
    }  # fmt: skip


def scores(val: dict, md: dict, distance: str, n: int, r_max: float, extra: dict | None = None) -> dict:
    """Flagged vs truly high-error atoms, per species as ratios to its cutoffs (as the loop scores).
    ``extra``: more atoms for the error model's fit only (held-out harvest frames), joined to the
    validation atoms as ``ltau-md loop`` joins them (:func:`ltau_md.calibration.with_extra_atoms`)."""
    ratio_u, ratio_e = np.zeros(len(md["e"])), np.zeros(len(md["e"]))
    forms = {}
    held = None
    if extra is not None:
        n_x = len(extra["e"])
        held = ValidationErrors(extra["species"], np.zeros(n_x), extra["u"], extra["d"], extra["e"], np.zeros((n_x, 3)),
                                int(extra["frame"].max()) + 1, extra["frame"], extra["dn"], r_max)  # fmt: skip
    for sp in np.unique(val["species"]):
        v, m = val["species"] == sp, md["species"] == sp
        fit = [val[k][v] for k in ("u", "d", "e", "frame", "dn")]
        if held is not None and np.any(held.species == sp):
            fit = with_extra_atoms(held, sp, *fit)
        u, d, e, frame, dn = fit
        model = fit_species_error_model(u, d, e, frame, neighbourhood=dn, cutoff=r_max, distance=distance)
        forms[str(sp)] = model.form
        lo = fit_uncertainty(model.mean_per_sigma * model.sigma(val["u"][v], val["d"][v], val["dn"][v]))[0].cutoff(n)
        ratio_u[m] = model.mean_per_sigma * model.sigma(md["u"][m], md["d"][m], md["dn"][m]) / lo
        ratio_e[m] = md["e"][m] / fit_maxwell(val["e"][v]).cutoff(n)
    c = classification_scores(ratio_e, ratio_u, 1.0, 1.0)
    best, _ = best_recall_at_precision(ratio_e, ratio_u, 0.5)
    return {"forms": forms, "flagged": c["tp"] + c["fp"], "high": c["tp"] + c["fn"], "precision": c["precision"],
            "recall": c["recall"], "f1": c["f1"], "recall_at_precision_0.5": best}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    ap.add_argument("--distance", nargs="+", default=["environment", "nearest"], choices=["environment", "nearest"])
    ap.add_argument("--calibration", nargs="+", default=["validation"], choices=["validation", "held_out"])
    ap.add_argument("-o", "--output", default="benchmarks/results/rescore_ramp.json")
    args = ap.parse_args()
    rows = []
    for run in args.runs:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        reference = make_calculator(cfg["reference"])
        val_frames = read(run / "data" / "validation.xyz", ":")
        for it in sorted((run / "ltau").glob("iter*")):
            art = Artifact.load(it / "model.ltau", verify_checksums=False)
            model = NequIPModel.load(it / "model")
            val = embed(model, art, val_frames, None, np.concatenate([reference_forces(a) for a in val_frames]))
            held = [f for prev in sorted((run / "ltau").glob("iter*")) if prev.name < it.name
                    for name in ("calibration_held_out.xyz", "calibration_frames.xyz") if (prev / name).exists()
                    for f in read(prev / name, ":")]  # fmt: skip
            extras = {"validation": None}
            if held:
                extras["held_out"] = embed(model, art, held, None, np.concatenate([reference_forces(a) for a in held]))
            walkers = {w["name"]: w for w in walkers_of(cfg)}
            dumps = {name: it / "walkers" / name / "traj.dump" for name in walkers if (it / "walkers" / name / "traj.dump").exists()}
            n = 0  # the run's N: every walker's atoms × checks, as the loop set it
            for name in dumps:
                n_atoms = len(read(it / "walkers" / name / "start.data", format="lammps-data"))
                n += environments_examined(n_atoms, walkers[name]["steps"], cfg["md"]["check_every"])
            for name, dump in dumps.items():
                frames, f_model, f_ref = [], [], []
                for fr in read_dump(dump):
                    atoms = fr.to_atoms({i + 1: s for i, s in enumerate(art.species)})
                    atoms.calc = reference
                    f_ref.append(atoms.get_forces())
                    f_model.append(fr.vector("f"))
                    frames.append(atoms.copy())
                md = embed(model, art, frames, np.concatenate(f_model), np.concatenate(f_ref))
                for distance, calibration in [(d, c) for d in args.distance for c in args.calibration if c in extras]:
                    row = {"run": str(run), "iteration": it.name, "walker": name, "frames": len(frames), "n": n, "distance": distance,
                           "calibration": calibration, **scores(val, md, distance, n, model.r_max, extras[calibration])}  # fmt: skip
                    rows.append(row)
                    print(f"{run}/{it.name}/{name} {distance:>11s} {calibration:>10s} {str(row['forms']):28s} flagged {row['flagged']:5d} "
                          f"high {row['high']:5d} P/R/F1 {row['precision']:.2f}/{row['recall']:.2f}/{row['f1']:.2f} "
                          f"R@P.5 {row['recall_at_precision_0.5']:.2f}", flush=True)  # fmt: skip
    results_file.save(args.output, {"benchmark": "rescore_ramp", "rows": rows})


if __name__ == "__main__":
    main()
