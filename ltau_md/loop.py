"""``ltau-md loop``: the active-learning cycle of seed 003 §4 with LTAU as the uncertainty.

Each iteration: train M models on the current data → fit the artifact → calibrate on validation
frames → LAMMPS MD (a heating ramp) with ``fix ltau`` writing candidates to a queue → select a
capped, latent-diverse set → relabel it with the reference → add it to the data. Because the
reference is cheap here, every MD check is also scored against the truth: precision, recall and F1
of flagged (predicted error > lo) against truly high-error atoms (|ΔF| > the Maxwell cutoff at the
same N). A ``random`` strategy (the baseline) adds the same number of frames picked at random from
the MD trajectory instead of the flagged ones.

Layout of ``DIR``: ``data/`` (initial, validation and held-out test frames), ``<strategy>/iterNN/``
(model, artifact, MD log/dumps, queue, labelled frames), ``report.json``, ``report.txt``, plots.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ltau_md import atomic_write
from ltau_md.errors import LtauError
from ltau_md.user_input import read_yaml_mapping

DEFAULTS: dict[str, Any] = {
    "system": "Li",
    "reference": "meam",
    "iterations": 2,
    "seed": 0,
    "strategies": ["ltau"],  # add "random" for the baseline
    "initial": {"frames": 32, "atoms": 54, "temperature": 600.0, "equilibrate": 2000, "every": 50},
    "validation": {"frames": 6, "atoms": 54, "temperature": 600.0, "equilibrate": 2000, "every": 50},
    "test": {"frames": 4, "atoms": 54, "temperatures": [600.0, 1500.0, 3000.0], "equilibrate": 1000, "every": 50},
    "train": {"ensemble": 2, "epochs": 60, "batch_size": 4, "lr": 0.01,
              "model": {"r_max": 4.5, "num_layers": 2, "num_features": 16, "l_max": 1}},
    "fit": {"k": 5},
    "md": {"atoms": 54, "t_start": 600.0, "t_end": 3000.0, "steps": 3000, "check_every": 10, "ranks": 1,
           "hi": "auto", "halt": "soft"},
    "harvest": {"max_frames": 8, "min_distance": 0.0},
}
MASSES = {"Li": 6.941, "Mg": 24.305}


def load_config(path: str | os.PathLike | None) -> dict[str, Any]:
    """The defaults, updated (one level deep per section) by a YAML file."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is None:
        return cfg
    user = read_yaml_mapping(path, "loop config")
    for key, value in user.items():
        if key not in cfg:
            raise LtauError(f"{path}: unknown key {key!r}; known: {', '.join(cfg)}")
        if isinstance(cfg[key], dict) and isinstance(value, dict):
            unknown = set(value) - set(cfg[key])
            if unknown:
                raise LtauError(f"{path}: unknown key(s) {sorted(unknown)} in '{key}'; known: {', '.join(cfg[key])}")
            cfg[key].update(value)
        else:
            cfg[key] = value
    for s in cfg["strategies"]:
        if s not in ("ltau", "random"):
            raise LtauError(f"{path}: strategies must be ltau and/or random, got {s!r}")
    if int(cfg["iterations"]) < 1:
        raise LtauError(f"{path}: iterations must be at least 1")
    return cfg


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _make_data(system: str, out: Path, frames: int, atoms: int, temperature: float, equilibrate: int, every: int, seed: int) -> Path:
    from lammps_plugin.reference_md import sample  # the reference MD (LAMMPS); lazily, as in make-data
    from ltau_md.systems import build_system, system_spec

    spec = system_spec(system)
    structure = build_system(system, atoms=atoms, seed=seed)
    frames_ = sample(structure, temperature=temperature, ensemble=spec.ensemble, barostat=spec.barostat, frames=frames,
                     equilibrate=equilibrate, every=every, seed=seed + 1)
    from ase.io import write

    atomic_write.write_with(out, lambda fh: write(fh, frames_, format="extxyz"), text=True)
    return out


def prepare_data(cfg: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """Initial training, validation and held-out test frames from the reference MD."""
    data_dir.mkdir(parents=True, exist_ok=True)
    seed = int(cfg["seed"])
    paths: dict[str, Any] = {}
    for name, sub_seed in (("initial", 1), ("validation", 2)):
        c = cfg[name]
        p = data_dir / f"{name}.xyz"
        if not p.exists():
            _make_data(cfg["system"], p, c["frames"], c["atoms"], c["temperature"], c["equilibrate"], c["every"], seed * 100 + sub_seed)
        paths[name] = p
    tests = []
    for j, temperature in enumerate(cfg["test"]["temperatures"]):
        c = cfg["test"]
        p = data_dir / f"test_{int(temperature)}K.xyz"
        if not p.exists():
            _make_data(cfg["system"], p, c["frames"], c["atoms"], temperature, c["equilibrate"], c["every"], seed * 100 + 10 + j)
        tests.append(p)
    paths["test"] = tests
    # the MD starts from an equilibrated reference frame (positions and velocities) of the right size
    start = data_dir / "md_start.xyz"
    if not start.exists():
        md = cfg["md"]
        _make_data(cfg["system"], start, 1, md["atoms"], md["t_start"], cfg["initial"]["equilibrate"], 1, seed * 100 + 20)
    paths["md_start"] = start
    return paths


def md_script(cfg: dict[str, Any], model: Path, artifact: Path, work: Path, species: list[str], start) -> Path:
    """The iteration's LAMMPS input: ``start`` (an equilibrated reference frame with velocities,
    so the run begins inside the training domain, not at a perfect lattice) heated from t_start to
    t_end, with fix ltau checking every ``check_every`` steps and a dump of every checked frame."""
    from ase.io import write

    md = cfg["md"]
    structure = start
    write(work / "start.data", structure, format="lammps-data", specorder=species, masses=True, velocities=True)
    n_checks = md["steps"] // md["check_every"] + 1
    nsamples = len(structure) * n_checks
    hi = md["hi"]
    masses = "\n".join(f"mass            {i + 1} {MASSES.get(sp, 1.0)}" for i, sp in enumerate(species))
    text = f"""# ltau-md loop: heating ramp {md['t_start']} K -> {md['t_end']} K with fix ltau
units           metal
atom_style      atomic
atom_modify     map array
boundary        p p p
read_data       {work / 'start.data'}
{masses}
pair_style      nequip {model}
pair_coeff      * * {' '.join(species)}
neighbor        1.0 bin
timestep        0.001
fix             md all nvt temp {md['t_start']} {md['t_end']} 0.1
fix             uq all ltau {md['check_every']} {artifact} lo auto hi {hi} nsamples {nsamples} dump {work / 'candidates.xyz'} queue {work / 'candidates.db'} halt {md['halt']}
dump            traj all custom {md['check_every']} {work / 'traj.dump'} id type x y z fx fy fz f_uq[1] f_uq[2]
dump_modify     traj sort id
thermo          {md['check_every']}
thermo_style    custom step temp pe press f_uq[1] f_uq[2] f_uq[3] f_uq[4]
run             {md['steps']}
"""
    path = work / "in.md"
    path.write_text(text)
    return path


def run_md(script: Path, work: Path, ranks: int) -> dict[str, Any]:
    exe = Path(sys.executable).parent
    cmd = [str(exe / "ltau-md"), "run", str(script), "-log", str(work / "log.lammps"), "-screen", "none"]
    if ranks > 1:
        cmd = [str(exe / "mpiexec"), "-n", str(ranks), *cmd]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
    (work / "run.out").write_text(p.stdout + p.stderr)
    if p.returncode not in (0, 3):  # 3: halted hard (a restart file was written)
        tail = (p.stdout + p.stderr).strip().splitlines()[-1:] or ["(no output)"]
        raise LtauError(f"MD in {work} failed (exit {p.returncode}): {tail[0]}")
    return {"wall_s": time.perf_counter() - t0, "exit": p.returncode}


@dataclass
class Truth:
    frames: list
    predicted: np.ndarray
    true_error: np.ndarray
    species: np.ndarray


def score_trajectory(dump: Path, species: list[str], reference) -> Truth:
    """Every dumped (checked) MD frame: LTAU's predicted error and the true model error."""
    from ltau_md.lammps_dump import read_dump

    frames, pred, true, sp = [], [], [], []
    for fr in read_dump(dump):
        atoms = fr.to_atoms({i + 1: s for i, s in enumerate(species)})
        atoms.calc = reference
        ref_f = atoms.get_forces()
        model_f = fr.vector("f")
        frames.append((fr.step, atoms.copy()))
        pred.append(fr.columns["f_uq[1]"])
        true.append(np.linalg.norm(model_f - ref_f, axis=1))
        sp.append(atoms.numbers.copy())
    if not frames:
        raise LtauError(f"{dump}: no frames; the MD stopped before its first check")
    return Truth(frames, np.concatenate(pred), np.concatenate(true), np.concatenate(sp))


def run_iteration(cfg: dict[str, Any], strategy: str, k: int, work: Path, data_files: list[Path], paths: dict[str, Any],
                  reference, species: list[str]) -> tuple[dict[str, Any], Path | None]:
    from ase.io import read, write

    from ltau_md.artifact import Artifact
    from ltau_md.candidates import farthest_point_selection
    from ltau_md.cutoffs import classification_scores
    from ltau_md.nequip.calibrate import calibrate_artifact
    from ltau_md.nequip.fit import fit_artifact
    from ltau_md.nequip.model import NequIPModel
    from ltau_md.nequip.training import member_error_logs, train
    from ltau_md.queue import CandidateQueue
    from ltau_md.relabel import label
    from ltau_md.species import symbol, to_numbers

    work.mkdir(parents=True, exist_ok=True)
    t = cfg["train"]
    n_frames = sum(len(read(p, ":")) for p in data_files)
    _log(f"[{strategy} {k}] training {t['ensemble']} model(s) on {n_frames} frames")
    model_dir = work / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)  # a half-finished earlier attempt
    train(data_files, model_dir, val=[paths["validation"]], epochs=t["epochs"], ensemble=t["ensemble"],
          seed=int(cfg["seed"]), species=species, batch_size=t["batch_size"], lr=t["lr"], model=t["model"])
    model = NequIPModel.load(model_dir)
    art_path = work / "model.ltau"
    fit_artifact(model, member_error_logs(model_dir), art_path, k=cfg["fit"]["k"], progress=False)
    art = Artifact.load(art_path)
    val = read(paths["validation"], ":")
    md = cfg["md"]
    n_checks = md["steps"] // md["check_every"] + 1
    cal = calibrate_artifact(art, model, val, n=None, plots=work / "calibration", progress=False)
    test = [a for p in paths["test"] for a in read(p, ":")]
    res = model.evaluate(test)
    test_mae = float(np.mean([np.abs(r.forces - a.get_forces()).mean() for a, r in zip(test, res)]))
    _log(f"[{strategy} {k}] held-out force MAE {test_mae:.4f} eV/Å; running MD")
    script = md_script(cfg, model_dir, art_path, work, species, read(paths["md_start"]))
    run = run_md(script, work, int(md["ranks"]))
    truth = score_trajectory(work / "traj.dump", species, reference)
    n_md_atoms = len(truth.frames[0][1])
    nsamples = n_md_atoms * n_checks
    art = Artifact.load(art_path)
    lo = art.uncertainty_cutoffs(nsamples)
    err_cut = {sp: art.distribution(sp, "error").cutoff(nsamples) for sp in art.species}
    lo_atom = np.array([lo[symbol(z)] for z in truth.species])
    err_atom = np.array([err_cut[symbol(z)] for z in truth.species])
    flagged, high = truth.predicted > lo_atom, truth.true_error > err_atom
    # per-atom cutoffs differ by species: score the ratios against 1
    scores = classification_scores(truth.true_error / err_atom, truth.predicted / lo_atom, 1.0, 1.0)
    queue = CandidateQueue(work / "candidates.db")
    found = queue.count()
    halted = any(c.reason == "hi" for c in queue.rows())
    cap = int(cfg["harvest"]["max_frames"])
    if strategy == "ltau":
        picked = [c.atoms for c in farthest_point_selection(list(queue.rows("pending")), cap, cfg["harvest"]["min_distance"])]
    else:
        rng = np.random.default_rng(int(cfg["seed"]) * 1000 + k)
        n_pick = min(len(truth.frames), cap)  # the same labelling budget, spent blindly
        picked = [truth.frames[i][1] for i in sorted(rng.choice(len(truth.frames), size=n_pick, replace=False))]
    labelled = []
    for atoms in picked:
        try:
            labelled.append(label(atoms, reference))
        except Exception as exc:  # recorded, not fatal, as in relabel
            _log(f"[{strategy} {k}] reference failed on a frame: {exc}")
    new_file = None
    if labelled:
        new_file = work / "labelled.xyz"
        atomic_write.write_with(new_file, lambda fh: write(fh, labelled, format="extxyz"), text=True)
    last_step = int(truth.frames[-1][0])
    t_reached = md["t_start"] + (md["t_end"] - md["t_start"]) * last_step / md["steps"]
    row = {
        "iteration": k,
        "strategy": strategy,
        "dataset_frames": n_frames,
        "dataset_atoms": int(sum(len(a) for p in data_files for a in read(p, ":"))),
        "test_force_mae": test_mae,
        "calibration": {sp: {key: r[key] for key in ("scale", "spearman_rho", "miscalibration_area", "uncertainty_cutoff")}
                        for sp, r in cal["species"].items()},
        "md_steps_run": last_step,
        "md_target_temperature_reached": t_reached,
        "md_halted": halted,
        "md_wall_s": run["wall_s"],
        "candidates_found": found,
        "frames_added": len(labelled),
        "lo": lo,
        "hi": {sp: (max(1.0, v) if md["hi"] == "auto" else float(md["hi"])) for sp, v in lo.items()},
        "error_cutoff": err_cut,
        "flagged_atoms": int(flagged.sum()),
        "high_error_atoms": int(high.sum()),
        "checked_atoms": int(len(flagged)),
        "precision": scores["precision"],
        "recall": scores["recall"],
        "f1": scores["f1"],
        "max_true_error": float(truth.true_error.max()),
        "max_predicted_error": float(truth.predicted.max()),
        "species": [s for s in species if int(to_numbers([s])[0]) in set(np.unique(truth.species).tolist())],
    }
    _log(f"[{strategy} {k}] MD {last_step}/{md['steps']} steps{' (halted)' if halted else ''}, {found} candidate(s), "
         f"P/R/F1 {scores['precision']:.2f}/{scores['recall']:.2f}/{scores['f1']:.2f}, +{len(labelled)} frames")
    return row, new_file


def run_loop(cfg: dict[str, Any], out: str | os.PathLike) -> dict[str, Any]:
    from ltau_md.relabel import make_calculator
    from ltau_md.systems import system_spec

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write.write_bytes(out / "config.yaml", yaml.safe_dump(cfg, sort_keys=False).encode())
    paths = prepare_data(cfg, out / "data")
    reference = make_calculator(cfg["reference"])
    frac = system_spec(cfg["system"]).mg_fraction
    species = ["Li"] if frac == 0 else ["Mg"] if frac == 1 else ["Li", "Mg"]
    rows: list[dict[str, Any]] = []
    for strategy in cfg["strategies"]:
        data_files = [paths["initial"]]
        for k in range(int(cfg["iterations"])):
            row, new_file = run_iteration(cfg, strategy, k, out / strategy / f"iter{k:02d}", data_files, paths, reference, species)
            rows.append(row)
            if new_file is not None:
                data_files = data_files + [new_file]
            report = {"config": cfg, "rows": rows}
            atomic_write.write_json(out / "report.json", report)
    write_report(rows, out)
    return {"config": cfg, "rows": rows}


def write_report(rows: list[dict[str, Any]], out: Path) -> str:
    lines = [
        f"{'strategy':8s} {'it':>2s} {'frames':>6s} {'test MAE':>9s} {'MD steps':>9s} {'T (K)':>6s} {'halt':>4s} {'cand':>4s} {'added':>5s} "
        f"{'flagged':>7s} {'high':>5s} {'P':>5s} {'R':>5s} {'F1':>5s}"
    ]
    for r in rows:
        lines.append(
            f"{r['strategy']:8s} {r['iteration']:2d} {r['dataset_frames']:6d} {r['test_force_mae']:9.4f} {r['md_steps_run']:9d} "
            f"{r['md_target_temperature_reached']:6.0f} "
            f"{'yes' if r['md_halted'] else 'no':>4s} {r['candidates_found']:4d} {r['frames_added']:5d} {r['flagged_atoms']:7d} "
            f"{r['high_error_atoms']:5d} {r['precision']:5.2f} {r['recall']:5.2f} {r['f1']:5.2f}"
        )
    lines.append("T: ramp temperature reached when the run ended (halt or end); "
                 "test MAE: force-component MAE (eV/Å) on held-out reference frames at the test temperatures; "
                 "P/R/F1: atoms flagged by fix ltau (predicted error > lo) vs atoms with true |ΔF| above the "
                 "Maxwell error cutoff at the same N, over every checked MD frame")
    text = "\n".join(lines)
    (out / "report.txt").write_text(text + "\n")
    plot_report(rows, out / "loop.png")
    return text


def plot_report(rows: list[dict[str, Any]], path: Path) -> None:
    """The seed 003 Fig. 4 view: metrics against dataset size, one line per strategy."""
    from ltau_md.plots import plt, save_figure

    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    for strategy in dict.fromkeys(r["strategy"] for r in rows):
        rs = [r for r in rows if r["strategy"] == strategy]
        x = [r["dataset_frames"] for r in rs]
        axes[0].plot(x, [r["test_force_mae"] for r in rs], "o-", label=strategy)
        axes[1].plot(x, [r["candidates_found"] for r in rs], "o-", label=f"{strategy}: candidates")
        axes[1].plot(x, [r["high_error_atoms"] for r in rs], "s--", label=f"{strategy}: high-error atoms")
        for key, style in (("precision", "o-"), ("recall", "s--"), ("f1", "^-")):
            axes[2].plot(x, [r[key] for r in rs], style, label=f"{strategy}: {key}")
        axes[3].plot([r["iteration"] for r in rs], x, "o-", label=strategy)
    axes[0].set(xlabel="dataset size (frames)", ylabel="held-out force MAE (eV/Å)")
    axes[1].set(xlabel="dataset size (frames)", ylabel="count")
    axes[2].set(xlabel="dataset size (frames)", ylabel="score", ylim=(-0.02, 1.02))
    axes[3].set(xlabel="iteration", ylabel="dataset size (frames)")
    for ax in axes:
        ax.legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, path)
