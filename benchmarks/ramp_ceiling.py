"""How much recall at precision ≥ 0.5 can a heating ramp's MD give, if each atom's error followed
the predicted distribution exactly?

    python benchmarks/ramp_ceiling.py RUN_DIR [RUN_DIR ...] [--draws 200]
                                      [-o benchmarks/results/ramp_ceiling.json]

For every strategy's iterations of a finished ``ltau-md loop`` / ``ltau-md demo`` run: the checked
MD atoms of all walkers with fix ltau's predicted error (``f_uq[1]`` in ``traj.dump``) and the true error
against the run's reference, "high" above the loop's error cutoff at the run's N (as the loop
scores them). Printed and saved: the observed AUROC and R@P.5 (the best recall at precision ≥ 0.5
over lo swept around the run's statistical lo, as the loop's report computes it), and that R@P.5 when each atom's error is drawn from
its predicted distribution (σ = predicted / the shape's mean, the species' generalised gamma of
``ltau-md calibrate``; ``--draws`` draws, 5–95 % range): once as predicted, once with every σ
scaled so that the expected number of high atoms equals the number observed. A predicted error
says how large an atom's error is likely to be, not what it is: where the truly high atoms are a
few per cent, just above the cutoff, most of them are tail draws of atoms whose errors are
usually below it, and no ranking of atoms catches them at precision 0.5. The ceiling measures
that for the run's own trajectory; an observed R@P.5 above it means the errors vary less around
the prediction than the fitted shape says.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import results_file  # benchmarks/results_file.py (the script's own directory is on sys.path)
import yaml
from ase.io import read
from scipy import stats

from ltau_app.loop import score_trajectory, walkers_of
from ltau_md.artifact import Artifact
from ltau_md.cutoffs import best_recall_at_precision
from ltau_md.relabel import make_calculator
from ltau_md.run_cutoffs import environments_examined, error_cutoffs, run_cutoffs
from ltau_md.species import symbol


def auroc(score: np.ndarray, high: np.ndarray) -> float:
    r, n1 = stats.rankdata(score), int(high.sum())
    if n1 in (0, len(score)):
        return float("nan")
    return float((r[high].sum() - n1 * (n1 + 1) / 2) / (n1 * (len(score) - n1)))


def draw_errors(sigma: np.ndarray, shape: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """|ΔF| = σ·s·t^(1/c), t ~ Gamma(a): the generalised gamma of ltau_md.error_model (Maxwell: a = 3/2, c = 2, s = √2)."""
    a, c, s = shape.T
    return sigma * s * rng.gamma(a) ** (1.0 / c)


def expected_high(sigma: np.ndarray, shape: np.ndarray, cut: np.ndarray) -> float:
    a, c, s = shape.T
    return float(stats.gamma.sf((cut / (sigma * s)) ** c, a).sum())


def ceiling(sigma: np.ndarray, shape: np.ndarray, cut: np.ndarray, ratio_u: np.ndarray, draws: int, seed: int = 0) -> list[float]:
    """R@P.5 as the loop reports it (:func:`best_recall_at_precision`, lo swept over the run's lo)
    against errors drawn from the predicted distributions."""
    rng = np.random.default_rng(seed)
    return [best_recall_at_precision(draw_errors(sigma, shape, rng) / cut, ratio_u)[0] for _ in range(draws)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("-o", "--output", default="benchmarks/results/ramp_ceiling.json")
    args = ap.parse_args()
    rows = []
    for run in args.runs:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        reference = make_calculator(cfg["reference"], "reference")
        walkers = {w["name"]: w for w in walkers_of(cfg)}
        for it in sorted(p for strategy in cfg["strategies"] for p in (run / strategy).glob("iter*")):  # the random baseline's walkers run fix ltau too
            art = Artifact.load(it / "model.ltau", verify_checksums=False)
            species = art.species
            dirs = {name: it / "walkers" / name for name in walkers if (it / "walkers" / name / "traj.dump").exists()}
            if not dirs:
                continue
            n = sum(environments_examined(len(read(d / "start.data", format="lammps-data")), walkers[name]["steps"], cfg["md"]["check_every"])
                    for name, d in dirs.items())  # fmt: skip
            err_cut = error_cutoffs(art, species, n)
            lo = run_cutoffs(art, species, n, predictor=cfg["md"]["predictor"]).lo  # as fix ltau set it
            truths = [score_trajectory(d / "traj.dump", species, reference) for d in dirs.values()]
            pred = np.concatenate([t.predicted for t in truths]).astype(np.float64)
            true = np.concatenate([t.true_error for t in truths])
            sp = [symbol(int(z)) for z in np.concatenate([t.species for t in truths])]
            models = art.error_model.species
            shape = np.array([models[s].shape for s in sp], dtype=np.float64)
            sigma = pred / np.array([models[s].mean_per_sigma for s in sp])
            cut = np.array([err_cut[s] for s in sp])
            high = true > cut
            ratio_u = pred / np.array([lo[s] for s in sp])
            as_predicted = ceiling(sigma, shape, cut, ratio_u, args.draws)
            lo, hi = 0.1, 10.0  # the σ factor that gives the observed count of high atoms (bisection on a log scale)
            for _ in range(60):
                mid = np.sqrt(lo * hi)
                lo, hi = (mid, hi) if expected_high(mid * sigma, shape, cut) < high.sum() else (lo, mid)
            factor = float(np.sqrt(lo * hi))
            scaled = ceiling(factor * sigma, shape, cut, ratio_u, args.draws)
            row = {
                "run": str(run), "strategy": it.parent.name, "iteration": it.name, "atoms": int(len(pred)), "high": int(high.sum()),
                "expected_high_as_predicted": expected_high(sigma, shape, cut), "auroc": auroc(pred, high),
                "recall_at_precision_0.5": best_recall_at_precision(true / cut, ratio_u)[0],
                "ceiling_as_predicted_p5_p50_p95": np.percentile(as_predicted, [5, 50, 95]).tolist(),
                "sigma_factor_to_observed_count": factor,
                "ceiling_scaled_p5_p50_p95": np.percentile(scaled, [5, 50, 95]).tolist(),
            }  # fmt: skip
            rows.append(row)
            c1, c2 = row["ceiling_as_predicted_p5_p50_p95"], row["ceiling_scaled_p5_p50_p95"]
            print(f"{run}/{it.parent.name}/{it.name}: {row['atoms']} atoms, {row['high']} high (predicted {row['expected_high_as_predicted']:.0f}); "
                  f"AUROC {row['auroc']:.3f}, R@P.5 {row['recall_at_precision_0.5']:.2f}; if errors followed the prediction: "
                  f"{c1[0]:.2f}–{c1[2]:.2f} (median {c1[1]:.2f}); σ×{factor:.2f} to the observed count: {c2[0]:.2f}–{c2[2]:.2f} "
                  f"(median {c2[1]:.2f})", flush=True)  # fmt: skip
    results_file.save(args.output, {"benchmark": "ramp_ceiling", "draws": args.draws, "rows": rows})


if __name__ == "__main__":
    main()
