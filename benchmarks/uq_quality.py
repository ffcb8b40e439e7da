"""UQ quality on held-out Li / Li–Mg data: LTAU variants against an ensemble and the latent distance
(seed 003's comparison, with LTAU added).

    python benchmarks/uq_quality.py [--seeds 0 1 2 3 4] [--members 3] [--epochs 40] [--size small|tiny]
                                    [--work DIR] [-o benchmarks/results/uq_quality.json]

Data (MEAM reference, ``ltau-md make-data``): training, validation (nequip's, during training)
and calibration frames (the validation frames plus as many again, new seeds) of LiMg (B2, 3
vacancies, NPT) and Li (liquid, NVT) at 600 K; test sets with new seeds — in domain: both at
600 K; out of domain: LiMg at 1200 K and 2000 K, Li at 1500 K, Li3Mg (composition shift), LiMg
with 12 vacancies, and a heating ramp of LiMg from 600 to 2500 K. Per training seed: an M-member
ensemble (``ltau-md train --ensemble M``), its LTAU artifact from all M error logs
(``ltau-md fit``), calibrated on the validation frames.

Predictors of member 0's per-atom force error (each calibrated on the calibration frames only):

* ``ltau``        plain LTAU (seed 002): s × the k neighbours' mean logged error; p from their p-values
* ``calibrated``  the predictor ltau-md ships: σ(u, d_env) per species fitted by Maxwell likelihood
                  (``ltau_md.error_model``), u = LTAU's mixture mean, d_env = (d + d̄)/2 with d the latent
                  distance to the nearest training atom and d̄ its mean over the atom and its neighbours
                  within the model's cutoff (the default environment distance); then the close-contact rule
                  (``ltau_md.contact``: an atom nearer a neighbour than 0.9 × the training frames' shortest
                  distance of the two elements is predicted ≥ 1.5 eV/Å)
* ``harvest``     the same σ(u, d_env) fitted on the calibration frames *and* a labelled harvest: another
                  LiMg heating ramp (600 → 2500 K, new seed), as ``ltau-md loop``'s
                  ``harvest.calibration_frames`` adds labelled MD frames to the next iteration's error
                  model (the statistical cutoffs stay fitted on the calibration frames); scored also out of
                  domain without the heating-ramp test set (``out_of_domain_without_ramp``), which its
                  calibration ramp resembles
* ``neighbourhood`` the opt-in form σ = (a·u + c)·exp(b·d + g·d̄) for every species
                  (``ltau-md calibrate --error-model neighbourhood``), fitted on the same atoms
* ``ensemble``    the M members' force spread, √Σ_c var_c, × a Maxwell-likelihood scale
* ``distance``    the latent distance to the nearest training atom, σ = σ0 + σ1·d (seed 003)

Scores per set and pooled: AUROC of high-error atoms (true error above the in-domain 99th
percentile), Spearman ρ, miscalibration area (observed fraction with error ≤ atol against each
predictor's P(error ≤ atol)) and its sampling floor (the area a perfectly calibrated predictor with
the same P's shows on as many atoms), mean predicted / mean true, precision / recall / F1 at the statistical
cutoffs (seed 003: CDF 1 − 1/N of the validation fits, N = atoms in the set) and cost per atom.
Ranges are over the training seeds. Writes JSON, prints a table, plots AUROC, Spearman and mean
predicted / true per set.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

LTAU_MD = Path(sys.executable).parent / "ltau-md"

# name: (system, make-data options, in domain?)
SIZES = {
    "small": {"train": 40, "val": 20, "test": 15, "ramp": 40, "li_train": 20, "li_val": 10, "cal": 20, "li_cal": 20, "harvest": 20, "epochs": 40},
    "tiny": {"train": 6, "val": 4, "test": 3, "ramp": 4, "li_train": 3, "li_val": 2, "cal": 2, "li_cal": 2, "harvest": 2, "epochs": 3},
}


def data_sets(size: dict) -> dict[str, tuple[str, list[str], bool]]:
    t = str(size["test"])
    common = ["--equilibrate", "2000", "--every", "50"]
    return {
        "train_LiMg": ("LiMg", ["--frames", str(size["train"]), "--seed", "11", *common], True),
        "train_Li": ("Li", ["--frames", str(size["li_train"]), "--seed", "12", *common], True),
        "val_LiMg": ("LiMg", ["--frames", str(size["val"]), "--seed", "21", *common], True),
        "val_Li": ("Li", ["--frames", str(size["li_val"]), "--seed", "22", *common], True),
        "cal_LiMg": ("LiMg", ["--frames", str(size["cal"]), "--seed", "25", *common], True),
        "cal_Li": ("Li", ["--frames", str(size["li_cal"]), "--seed", "26", *common], True),
        # what a campaign's first harvest labels: another LiMg heating ramp (``harvest`` predictor),
        # 20 frames 100 steps apart (twice as fast as the test ramp's 40)
        "cal_harvest": (
            "LiMg",
            ["--frames", str(size["harvest"]), "--seed", "39", "--temperature", "600", "--temperature-end", "2500",
             "--equilibrate", "1000", "--every", "100"],
            False,
        ),
        "LiMg 600 K": ("LiMg", ["--frames", t, "--seed", "31", *common], True),
        "Li 600 K": ("Li", ["--frames", t, "--seed", "32", *common], True),
        "LiMg 1200 K": ("LiMg", ["--frames", t, "--seed", "33", "--temperature", "1200", *common], False),
        "LiMg 2000 K": ("LiMg", ["--frames", t, "--seed", "34", "--temperature", "2000", *common], False),
        "Li 1500 K": ("Li", ["--frames", t, "--seed", "35", "--temperature", "1500", *common], False),
        "Li3Mg 600 K": ("Li3Mg", ["--frames", t, "--seed", "36", *common], False),
        "LiMg 12 vac.": ("LiMg", ["--frames", t, "--seed", "37", "--vacancies", "12", *common], False),
        "heating ramp": (
            "LiMg",
            ["--frames", str(size["ramp"]), "--seed", "38", "--temperature", "600", "--temperature-end", "2500",
             "--equilibrate", "1000", "--every", "100"],
            False,
        ),
    }


def file_name(name: str) -> str:
    return name.replace(" ", "_").replace(".", "") + ".xyz"


def sh(cmd: list[str], log: Path) -> None:
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode:
        sys.exit(f"uq_quality: {' '.join(cmd[:3])} … failed (exit {proc.returncode}); see {log}")
    print(f"  {Path(cmd[0]).name} {cmd[1]} … {time.perf_counter() - t0:.0f} s", flush=True)


def prepare(work: Path, size: dict, seeds: list[int], members: int, epochs: int) -> None:
    """Reference data and, per training seed, the ensemble and its LTAU artifact (cached in ``work``,
    which records the settings it was made with: another size, ensemble or epochs is refused)."""
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    settings, record = {"size": size, "members": members, "epochs": epochs}, work / "settings.json"
    if record.exists() and json.loads(record.read_text()) != json.loads(json.dumps(settings)):
        sys.exit(f"uq_quality: --work {work} holds data and ensembles made with other settings ({record.read_text().strip()}); "
                 "give another --work, or remove that one")  # fmt: skip
    record.write_text(json.dumps(settings))
    log = work / "prepare.log"
    for name, (system, opts, _) in data_sets(size).items():
        out = data / file_name(name)
        if not out.exists():
            sh([str(LTAU_MD), "make-data", "--system", system, *opts, "-o", str(out)], log)
    train = [str(data / file_name(n)) for n in ("train_LiMg", "train_Li")]
    val = [str(data / file_name(n)) for n in ("val_LiMg", "val_Li")]
    for seed in seeds:
        run = work / f"seed{seed}"
        run.mkdir(exist_ok=True)
        if not (run / "model" / "ensemble.json").exists():
            sh([str(LTAU_MD), "train", "--data", *train, "--val", *val, "--ensemble", str(members),
                "--epochs", str(epochs), "--seed", str(100 * seed), "-o", str(run / "model")], log)  # fmt: skip
        if not (run / "model.ltau" / "meta.json").exists():
            sh([str(LTAU_MD), "fit", "--model", str(run / "model"), "--data", *train, "-o", str(run / "model.ltau")], log)


PREDICTORS = ("calibrated", "harvest", "neighbourhood", "ltau", "ensemble", "distance")
# out of domain without the heating ramp: the ``harvest`` predictor's calibration frames are another ramp
OOD_WITHOUT_RAMP = "out_of_domain_without_ramp"


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """Mann–Whitney AUROC of ``score`` for the ``positive`` atoms (ties count half)."""
    from scipy.stats import rankdata

    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = rankdata(score)
    return float((r[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def calibration_floor(prob: np.ndarray, draws: int = 20, seed: int = 0) -> float:
    """Miscalibration area a perfectly calibrated predictor still shows on this many atoms: the
    mean area when each atom's outcome (error ≤ atol) is drawn with its own predicted P. An area
    near this floor is sampling noise of the set, not miscalibration."""
    from ltau_md.calibration import calibration_curve

    rng = np.random.default_rng(seed)
    areas = [calibration_curve(prob, (rng.random(len(prob)) >= prob).astype(np.float64) * 2.0, 1.0).area for _ in range(draws)]
    return float(np.mean(areas))


def member_forces(models, frames) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Member 0's forces and latents, the ensemble's per-atom spread √Σ_c var_c, and seconds per
    atom of one forward+forces."""
    t0 = time.perf_counter()
    res0 = models[0].evaluate(frames)
    t_forward = (time.perf_counter() - t0) / sum(len(a) for a in frames)
    forces = [np.concatenate([r.forces for r in res0])]
    for m in models[1:]:
        forces.append(np.concatenate([r.forces for r in m.evaluate(frames)]))
    spread = np.sqrt(np.stack(forces).var(axis=0).sum(axis=1))
    return forces[0], np.concatenate([r.node_features for r in res0]), spread, t_forward


def evaluate_seed(run: Path, data: Path, sets: dict, size: dict) -> dict:
    from scipy import stats as sps

    from ltau_md.artifact import Artifact
    from ltau_md.calibration import ValidationErrors, calibrate_artifact, calibration_curve
    from ltau_md.contact import ContactRule, shortest_distances
    from ltau_md.cutoffs import classification_scores, fit_maxwell, fit_uncertainty
    from ltau_md.error_model import MEAN_PER_SIGMA, fit_species_error_model, frame_pairs, maxwell_cdf, neighbourhood_distance
    from ltau_md.nequip.model import NequIPModel, model_dir_members
    from ltau_md.species import symbols
    from ltau_md.user_input import read_frames, reference_forces

    art = Artifact.load(run / "model.ltau")
    models = [NequIPModel.load(run / "model" / m["checkpoint"]) for m in model_dir_members(run / "model")]
    if art.contact is None:  # fitted before ltau-md fit stored the close-contact rule: the same rule
        train_frames = [f for n in ("train_LiMg", "train_Li") for f in read_frames(data / file_name(n))]
        art.set_contact(ContactRule(shortest_distances(train_frames, models[0].r_max)))
        art.save_meta()
    rule = art.contact

    def arrays(frames) -> dict:
        f0, lat, spread, t_fwd = member_forces(models, frames)
        numbers = np.concatenate([a.numbers for a in frames])
        ref = np.concatenate([reference_forces(a) for a in frames])
        ratio = rule.ratio_from_pairs(*frame_pairs(frames, rule.cutoff, distances=True), numbers) if rule.enabled else np.full(len(numbers), np.inf)
        t0 = time.perf_counter()
        q = art.query(lat, numbers, predictor="ltau")
        t_query = (time.perf_counter() - t0) / len(numbers)
        return {
            "species": np.array(symbols(numbers)), "e": np.linalg.norm(f0 - ref, axis=1), "comp": np.abs(f0 - ref),
            "u": q.mixture, "d": q.distance[:, 0], "p": q.p,
            "dn": neighbourhood_distance(frames, q.distance[:, 0], models[0].r_max), "spread": spread, "t_forward": t_fwd, "t_query": t_query,
            "frame": np.concatenate([np.full(len(a), i) for i, a in enumerate(frames)]), "lat": lat, "numbers": numbers, "frames": frames,
            "contact_ratio": ratio,
        }  # fmt: skip

    # calibration: the training run's validation frames plus more frames of the same conditions
    val_frames = [f for n in ("val_LiMg", "val_Li", "cal_LiMg", "cal_Li") for f in read_frames(data / file_name(n), need_forces=True)]
    v = arrays(val_frames)
    val = ValidationErrors(v["species"], v["p"], v["u"], v["d"], v["e"], v["comp"], len(val_frames), v["frame"], v["dn"], models[0].r_max)
    calibrate_artifact(art, val)
    # the same, with a labelled harvest (another heating ramp) added to the error model's fit only
    # (ltau-md loop's harvest.calibration_frames); a copy, as calibration rewrites meta.json
    harvest_dir = run / "model_harvest.ltau"
    shutil.rmtree(harvest_dir, ignore_errors=True)
    shutil.copytree(run / "model.ltau", harvest_dir)
    art_h = Artifact.load(harvest_dir)
    hv = arrays(read_frames(data / file_name("cal_harvest"), need_forces=True))
    extra = ValidationErrors(hv["species"], hv["p"], hv["u"], hv["d"], hv["e"], hv["comp"], int(hv["frame"].max()) + 1, hv["frame"],
                             hv["dn"], models[0].r_max)  # fmt: skip
    calibrate_artifact(art_h, val, error_model_extra=extra)
    # baselines calibrated on the same validation atoms: ensemble σ = c·spread, distance σ = a + b·d
    ens_c, dist_model, nbr_model, fams = {}, {}, {}, {}
    for sp in art.species:
        sel = v["species"] == sp
        e, sd = v["e"][sel], np.maximum(v["spread"][sel], 1e-12)
        ens_c[sp] = float(np.sqrt(np.mean((e / sd) ** 2) / 3.0))  # Maxwell ML of σ = c·spread
        dist_model[sp] = fit_species_error_model(v["u"][sel], v["d"][sel], e, v["frame"][sel], forms=("distance",))
        nbr_model[sp] = fit_species_error_model(v["u"][sel], v["d"][sel], e, v["frame"][sel], forms=("neighbourhood",),
                                                neighbourhood=v["dn"][sel], cutoff=models[0].r_max)  # fmt: skip

    def predictions(a: dict) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """predictor → (predicted error eV/Å, P(error ≤ atol), atol per atom that P refers to)."""
        out = {k: (np.empty(len(a["e"])), np.empty(len(a["e"])), np.full(len(a["e"]), art.atol)) for k in PREDICTORS}
        for sp in np.unique(a["species"]):
            sel = a["species"] == sp
            u, d = a["u"][sel], a["d"][sel]
            sig = art.error_model.species[sp].sigma(u, d, a["dn"][sel])
            sig_h = art_h.error_model.species[sp].sigma(u, d, a["dn"][sel])
            sig_e = ens_c[sp] * np.maximum(a["spread"][sel], 1e-12)
            sig_d = dist_model[sp].sigma(u, d)
            sig_n = nbr_model[sp].sigma(u, d, a["dn"][sel])
            s = art.scale(sp)
            for name, pred, prob in (  # each fitted model with its own error shape (Maxwell unless fitted)
                ("calibrated", *art.error_model.species[sp].predict(sig, art.atol)),
                ("harvest", *art_h.error_model.species[sp].predict(sig_h, art.atol)),
                ("neighbourhood", *nbr_model[sp].predict(sig_n, art.atol)),
                ("ltau", s * u, a["p"][sel]),
                ("ensemble", MEAN_PER_SIGMA * sig_e, maxwell_cdf(art.atol, sig_e)),
                ("distance", *dist_model[sp].predict(sig_d, art.atol)),
            ):
                out[name][0][sel], out[name][1][sel] = pred, prob
            out["ltau"][2][sel] = art.atol * s  # LTAU's p is calibrated against errors ≤ atol·s
            for name in ("calibrated", "harvest"):  # what ships: the error model, then the close-contact rule
                out[name][0][sel], out[name][1][sel], _ = rule.apply(out[name][0][sel], out[name][1][sel], a["contact_ratio"][sel])
        return out

    val_pred = predictions(v)
    for name in PREDICTORS:  # the statistical cutoffs' families, fitted on validation predictions
        for sp in art.species:
            sel = v["species"] == sp
            fams[(name, sp)] = fit_uncertainty(val_pred[name][0][sel])[0]
    err_fits = {sp: fit_maxwell(v["e"][v["species"] == sp]) for sp in art.species}

    tests = {name: arrays(read_frames(data / file_name(name), need_forces=True)) for name in sets}
    in_domain = np.concatenate([tests[n]["e"] for n, (_, _, ind) in sets.items() if ind])
    threshold = float(np.quantile(in_domain, 0.99))
    preds = {name: predictions(a) for name, a in tests.items()}
    pooled = {
        "e": np.concatenate([a["e"] for a in tests.values()]),
        "species": np.concatenate([a["species"] for a in tests.values()]),
    }
    pooled_pred = {k: tuple(np.concatenate([preds[n][k][i] for n in tests]) for i in range(3)) for k in PREDICTORS}
    ood = {
        "e": np.concatenate([a["e"] for n, a in tests.items() if not sets[n][2]]),
        "species": np.concatenate([a["species"] for n, a in tests.items() if not sets[n][2]]),
    }
    ood_pred = {k: tuple(np.concatenate([preds[n][k][i] for n in tests if not sets[n][2]]) for i in range(3)) for k in PREDICTORS}
    far = [n for n in tests if not sets[n][2] and n != "heating ramp"]
    ood_nr = {"e": np.concatenate([tests[n]["e"] for n in far]), "species": np.concatenate([tests[n]["species"] for n in far])}
    ood_nr_pred = {k: tuple(np.concatenate([preds[n][k][i] for n in far]) for i in range(3)) for k in PREDICTORS}

    def scores(e, species, pr) -> dict:
        out = {}
        high = e > threshold
        for name in PREDICTORS:
            pred, prob, atol = pr[name]
            # observed fraction with error ≤ the predictor's atol (per atom) against its P(error ≤ atol)
            area = calibration_curve(prob, e / atol, 1.0).area
            tp = fp = fn = 0
            for sp in np.unique(species):
                sel = species == sp
                n = int(sel.sum())
                c = classification_scores(e[sel], pred[sel], err_fits[sp].cutoff(n), fams[(name, sp)].cutoff(n))
                tp, fp, fn = tp + c["tp"], fp + c["fp"], fn + c["fn"]
            prec = tp / (tp + fp) if tp + fp else float("nan")
            rec = tp / (tp + fn) if tp + fn else float("nan")
            out[name] = {
                "auroc": auroc(pred, high),
                "spearman": float(sps.spearmanr(pred, e).statistic),
                "miscalibration_area": area,
                "miscalibration_area_floor": calibration_floor(prob),
                "mean_predicted_over_true": float(pred.mean() / e.mean()),
                "precision": prec,
                "recall": rec,
                "f1": 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0,
            }
        out["n_atoms"], out["n_high"] = int(len(e)), int(high.sum())
        return out

    result = {
        "threshold": threshold,
        "sets": {n: scores(a["e"], a["species"], preds[n]) for n, a in tests.items()},
        "pooled": scores(pooled["e"], pooled["species"], pooled_pred),
        "out_of_domain": scores(ood["e"], ood["species"], ood_pred),
        OOD_WITHOUT_RAMP: scores(ood_nr["e"], ood_nr["species"], ood_nr_pred),
        "error_model": art.meta["error_model"],
        "error_model_harvest": art_h.meta["error_model"],
        "scale": art.meta["scale"],
        "ensemble_c": ens_c,
    }
    # cost per atom: the LTAU query (plain; calibrated adds a few array operations) against M forwards
    big = max(tests.values(), key=lambda a: len(a["e"]))
    pairs = frame_pairs(big["frames"], art.pair_cutoff(), distances=True)  # fix ltau: LAMMPS's neighbour list, the pair's edges
    t0 = time.perf_counter()
    art.query(big["lat"], big["numbers"], predictor="calibrated", pairs=pairs)
    t_cal = (time.perf_counter() - t0) / len(big["e"])
    result["cost_us_per_atom"] = {
        "forward": big["t_forward"] * 1e6, "calibrated": t_cal * 1e6, "ltau": big["t_query"] * 1e6,
        "ensemble": big["t_forward"] * len(models) * 1e6, "distance": big["t_query"] * 1e6, "neighbourhood": t_cal * 1e6,
        "harvest": t_cal * 1e6,
    }  # fmt: skip
    return result


def summarise(per_seed: list[dict], sets: dict) -> dict:
    """min/max over seeds of every score."""
    def rng(get) -> list[float]:
        vals = [get(r) for r in per_seed]
        return [float(np.nanmin(vals)), float(np.nanmax(vals))]

    out = {}
    for group in [*sets, "pooled", "out_of_domain", OOD_WITHOUT_RAMP]:
        pick = (lambda r, g=group: r["sets"][g]) if group in sets else (lambda r, g=group: r[g])
        out[group] = {
            name: {m: rng(lambda r, name=name, m=m, pick=pick: pick(r)[name][m]) for m in per_seed[0]["pooled"]["calibrated"]}
            for name in PREDICTORS
        }
    return out


def table(summary: dict) -> str:
    def f(v: list[float]) -> str:
        return f"{v[0]:.3f}" if abs(v[1] - v[0]) < 5e-4 else f"{v[0]:.3f}–{v[1]:.3f}"

    lines = []
    for metric in ("auroc", "spearman", "miscalibration_area", "miscalibration_area_floor", "mean_predicted_over_true", "precision", "recall"):
        lines.append(f"\n{metric} (range over training seeds)")
        lines.append(f"{'set':26s}" + "".join(f"{p:>16s}" for p in PREDICTORS))
        for group, rows in summary.items():
            lines.append(f"{group:26s}" + "".join(f"{f(rows[p][metric]):>16s}" for p in PREDICTORS))
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(summary)
    fig, axes = plt.subplots(1, 3, figsize=(19, 5.4))
    limits = {"auroc": (0.4, 1.0), "spearman": (0.0, 1.0), "mean_predicted_over_true": (0.0, 1.8)}
    labels = {"auroc": "AUROC of high-error atoms", "spearman": "Spearman ρ", "mean_predicted_over_true": "mean predicted / true error"}
    for ax, metric in zip(axes, limits):
        w = 0.8 / len(PREDICTORS)
        for i, name in enumerate(PREDICTORS):
            lo = np.array([summary[g][name][metric][0] for g in groups])
            hi = np.array([summary[g][name][metric][1] for g in groups])
            x = np.arange(len(groups)) + (i - (len(PREDICTORS) - 1) / 2) * w
            ax.bar(x, hi, w, label=name, alpha=0.85)
            ax.plot(np.c_[x - w / 2, x + w / 2].T, np.c_[lo, lo].T, color="k", lw=1)
        ax.set_xticks(np.arange(len(groups)), groups, rotation=40, ha="right")
        ax.set_ylabel(labels[metric])
        ax.set_ylim(*limits[metric])
    axes[2].axhline(1.0, color="k", lw=0.8, ls="--")  # calibrated on average; below: under-predicts
    axes[0].legend(fontsize=8)
    fig.suptitle("bars: the higher of the training seeds, black lines: the lower", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--size", choices=list(SIZES), default="small")
    ap.add_argument("--work", default="benchmarks/results/uq_quality_work")
    ap.add_argument("--prepare-only", action="store_true")
    ap.add_argument("-o", "--output", default="benchmarks/results/uq_quality.json")
    args = ap.parse_args()
    size = SIZES[args.size]
    work = Path(args.work).resolve()
    prepare(work, size, args.seeds, args.members, args.epochs or size["epochs"])
    if args.prepare_only:
        return
    import results_file  # benchmarks/results_file.py

    sets = {n: v for n, v in data_sets(size).items() if not n.startswith(("train_", "val_", "cal_"))}
    per_seed = []
    for seed in args.seeds:
        print(f"evaluating training seed {seed}", flush=True)
        per_seed.append(evaluate_seed(work / f"seed{seed}", work / "data", sets, size))
    summary = summarise(per_seed, sets)
    print(table(summary))
    out = Path(args.output)
    results_file.save(out, {"size": args.size, "members": args.members, "seeds": args.seeds, "summary": summary, "per_seed": per_seed})
    plot(summary, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
