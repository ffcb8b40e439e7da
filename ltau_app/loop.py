"""``ltau-md loop``: the active-learning cycle of seed 003 §4 with LTAU as the uncertainty.

Each iteration: train M models on the current data → fit the artifact → calibrate on validation
frames → LAMMPS MD (a heating ramp) with ``fix ltau`` writing candidates to a queue → select a
capped, latent-diverse set → relabel it with the reference → export it and add it to the data
(the same select → relabel → export steps as ``ltau-md candidates`` / ``relabel``, marking the
rows). Because the reference is cheap here, every MD check is also scored against the truth:
precision, recall and F1 of flagged (predicted error > lo) against truly high-error atoms
(|ΔF| > the Maxwell cutoff at the same N). A ``random`` strategy (the baseline) queues the same
number of frames picked at random from the MD trajectory instead of the flagged ones.

Layout of ``DIR``: ``data/`` (initial, validation and held-out test frames), ``<strategy>/iterNN/``
(model, artifact, MD input/log/dumps, queue, labelled frames, calibration plots),
``report.json``, ``report.txt``, ``loop.png`` and one trajectory plot and one F1 map per iteration. Every path
inside is relative to the iteration's directory, so a finished run can be moved or copied.
"""

from __future__ import annotations

import copy
import os
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
           "hi": "auto", "halt": "soft", "predictor": "calibrated", "dedup": "yes"},
    "harvest": {"max_frames": 8, "min_distance": 0.0},
}  # fmt: skip
# keys whose value may be 0 (every other number must be positive)
ZERO_OK = {"seed", "equilibrate", "l_max", "min_distance"}
CHOICES = {"halt": ("no", "soft", "hard"), "strategies": ("ltau", "random"), "predictor": ("calibrated", "ltau"), "dedup": ("yes", "no")}


def _check_value(value: Any, default: Any, where: str, path: str | os.PathLike) -> None:
    """``value`` has the type of ``default`` (int for float allowed; 'auto' or a number for 'hi')."""
    key = where.rsplit(".", 1)[-1]
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise LtauError(f"{path}: '{where}' must be a mapping (e.g. {where}: {{{next(iter(default))}: ...}}), got {value!r}")
        unknown = sorted(set(value) - set(default))
        if unknown:
            raise LtauError(f"{path}: unknown key(s) {unknown} in '{where}'; known: {', '.join(default)}")
        for k, v in value.items():
            _check_value(v, default[k], f"{where}.{k}", path)
        return
    if isinstance(default, list):
        if not isinstance(value, list) or not value:
            raise LtauError(f"{path}: '{where}' must be a non-empty list, got {value!r}")
        for v in value:
            _check_value(v, default[0], where, path)
        return
    if default == "auto":
        if value != "auto" and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise LtauError(f"{path}: '{where}' must be auto or a positive number (eV/Å), got {value!r}")
        return
    if isinstance(default, str):
        if not isinstance(value, str):
            raise LtauError(f"{path}: '{where}' must be a string, got {value!r}")
    elif isinstance(default, bool) or isinstance(value, bool):
        raise LtauError(f"{path}: '{where}' must be a {type(default).__name__}, got {value!r}")
    elif isinstance(default, int) and not isinstance(value, int):
        raise LtauError(f"{path}: '{where}' must be an integer, got {value!r}")
    elif isinstance(default, float) and not isinstance(value, (int, float)):
        raise LtauError(f"{path}: '{where}' must be a number, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not np.isfinite(value) or value < 0 or (value == 0 and key not in ZERO_OK):
            raise LtauError(f"{path}: '{where}' must be {'0 or more' if key in ZERO_OK else 'positive'}, got {value!r}")
    if key in CHOICES and value not in CHOICES[key]:
        raise LtauError(f"{path}: '{where}' must be one of {', '.join(CHOICES[key])}, got {value!r}")


def load_config(path: str | os.PathLike | None) -> dict[str, Any]:
    """The defaults, updated (one level deep per section) by a YAML file, every value type-checked."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is None:
        return cfg
    user = read_yaml_mapping(path, "loop config")
    for key, value in user.items():
        if key not in cfg:
            raise LtauError(f"{path}: unknown key {key!r}; known: {', '.join(cfg)}")
        _check_value(value, DEFAULTS[key], key, path)
        if isinstance(cfg[key], dict):
            for k, v in value.items():
                if isinstance(cfg[key][k], dict):
                    cfg[key][k].update(v)
                else:
                    cfg[key][k] = v
        else:
            cfg[key] = value
    from ltau_md.systems import SYSTEMS

    if cfg["system"] not in SYSTEMS:
        raise LtauError(f"{path}: 'system' must be one of {', '.join(SYSTEMS)}, got {cfg['system']!r}")
    return cfg


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _sample(system: str, n_frames: int, atoms: int, temperature: float, equilibrate: int, every: int, seed: int) -> list:
    from lammps_plugin.meam_reference import sample  # the reference MD (LAMMPS)
    from ltau_md.systems import build_system, system_spec

    spec = system_spec(system)
    structure = build_system(system, atoms=atoms, seed=seed)
    return sample(structure, temperature=temperature, ensemble=spec.ensemble, barostat=spec.barostat, frames=n_frames,
                  equilibrate=equilibrate, every=every, seed=seed + 1)  # fmt: skip


def _write_frames(path: Path, frames: list) -> Path:
    from ase.io import write

    atomic_write.write_with(path, lambda fh: write(fh, frames, format="extxyz"), text=True)
    return path


def _frames_of(path: Path, make) -> list:
    """The frames of ``path``, sampled and written first if the file does not exist yet."""
    from ase.io import read

    if path.exists():
        return read(path, ":")
    frames = make()
    _write_frames(path, frames)
    return frames


@dataclass
class LoopData:
    """Reference frames of a loop run, read (or sampled) once."""

    initial: list
    validation: list
    validation_path: Path
    test: list
    md_start: Any


def prepare_data(cfg: dict[str, Any], data_dir: Path) -> tuple[LoopData, Path]:
    """Initial training, validation, held-out test frames and the MD start (sampled once)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    seed, system = int(cfg["seed"]), cfg["system"]
    sets = {}
    for name, sub_seed in (("initial", 1), ("validation", 2)):
        c = cfg[name]
        sets[name] = _frames_of(data_dir / f"{name}.xyz", lambda c=c, s=sub_seed: _sample(
            system, c["frames"], c["atoms"], c["temperature"], c["equilibrate"], c["every"], seed * 100 + s))  # fmt: skip
    test = []
    c = cfg["test"]
    for j, temperature in enumerate(c["temperatures"]):
        test += _frames_of(data_dir / f"test_{int(temperature)}K.xyz", lambda t=temperature, j=j: _sample(
            system, c["frames"], c["atoms"], t, c["equilibrate"], c["every"], seed * 100 + 10 + j))  # fmt: skip
    # the MD starts from an equilibrated reference frame (positions and velocities) of the right size
    md = cfg["md"]
    (start,) = _frames_of(data_dir / "md_start.xyz", lambda: _sample(
        system, 1, md["atoms"], md["t_start"], cfg["initial"]["equilibrate"], 1, seed * 100 + 20))  # fmt: skip
    data = LoopData(sets["initial"], sets["validation"], data_dir / "validation.xyz", test, start)
    return data, data_dir / "initial.xyz"


def md_script(cfg: dict[str, Any], model: Path, artifact: Path, work: Path, species: list[str], start, nsamples: int) -> Path:
    """The iteration's LAMMPS input, run in ``work``: ``start`` (an equilibrated reference frame with
    velocities, so the run begins inside the training domain, not at a perfect lattice) heated from
    t_start to t_end, with fix ltau checking every ``check_every`` steps and a dump of every
    checked frame. Paths are relative to ``work``."""
    from ase.io import write

    from ltau_md.systems import MASSES

    md = cfg["md"]
    write(work / "start.data", start, format="lammps-data", specorder=species, masses=True, velocities=True)
    rel = lambda p: os.path.relpath(Path(p).resolve(), work.resolve())
    masses = "\n".join(f"mass            {i + 1} {MASSES[sp]}" for i, sp in enumerate(species))
    text = f"""# ltau-md loop: heating ramp {md['t_start']} K -> {md['t_end']} K with fix ltau (run in this directory)
units           metal
atom_style      atomic
atom_modify     map array
boundary        p p p
read_data       start.data
{masses}
pair_style      nequip {rel(model)}
pair_coeff      * * {' '.join(species)}
neighbor        1.0 bin
timestep        0.001
fix             md all nvt temp {md['t_start']} {md['t_end']} 0.1
fix             uq all ltau {md['check_every']} {rel(artifact)} lo auto hi {md['hi']} nsamples {nsamples} &
                predictor {md['predictor']} dump candidates.xyz queue candidates.db dedup {md['dedup']} halt {md['halt']}
dump            traj all custom {md['check_every']} traj.dump id type x y z fx fy fz f_uq[1] f_uq[2]
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
    cmd = [str(exe / "ltau-md"), "run", script.name, "-log", "log.lammps", "-screen", "none"]
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


def _harvest(strategy: str, work: Path, truth: Truth, cfg: dict[str, Any], k: int, reference):
    """select → relabel → export, through the queue: fix ltau's candidates, or (random) frames of
    the trajectory queued by hand. Returns the queue and the exported frames."""
    from ltau_md.queue import CandidateQueue
    from ltau_md.relabel import relabel

    cap = int(cfg["harvest"]["max_frames"])
    if strategy == "ltau":
        queue = CandidateQueue(work / "candidates.db")
    else:
        queue = CandidateQueue(work / "random.db")
        rng = np.random.default_rng(int(cfg["seed"]) * 1000 + k)
        n_pick = min(len(truth.frames), cap)  # the same labelling budget, spent blindly
        for i in sorted(rng.choice(len(truth.frames), size=n_pick, replace=False)):
            step, atoms = truth.frames[i]
            n = len(atoms)
            queue.add(atoms, error=np.zeros(n), p=np.ones(n), run="random", step=int(step), reason="manual", source="random baseline")
    if queue.count("pending"):  # random: the budget, whatever the frames' distances
        queue.select(cap, cfg["harvest"]["min_distance"] if strategy == "ltau" else None)
    counts = relabel(queue, reference, only_selected=True)
    if counts["failed"]:
        _log(f"[{strategy} {k}] the reference failed on {counts['failed']} frame(s); recorded in {queue.url}")
    labelled = queue.labelled_frames("labelled", selected_only=True)
    new_file = None
    if labelled:
        new_file = work / "labelled.xyz"
        queue.export(new_file, "labelled", selected_only=True)
    return queue, labelled, new_file


def run_iteration(cfg: dict[str, Any], strategy: str, k: int, work: Path, train_files: list[Path], train_frames: list,
                  data: LoopData, reference, species: list[str]) -> tuple[dict[str, Any], Path | None, list]:
    """One iteration in ``work``; returns the report row, the exported frames' file and the frames."""
    import shutil

    from ltau_md.calibration import calibrate_artifact
    from ltau_md.cutoffs import classification_scores
    from ltau_md.nequip.calibrate import validation_errors
    from ltau_md.nequip.fit import fit_artifact
    from ltau_md.nequip.model import NequIPModel
    from ltau_md.nequip.training import member_error_logs, train
    from ltau_md.run_cutoffs import environments_examined, error_cutoffs, run_cutoffs
    from ltau_md.species import symbol, to_numbers
    from ltau_md.trajectory import plot_trajectory, read_trajectory

    work.mkdir(parents=True, exist_ok=True)
    t, md = cfg["train"], cfg["md"]
    _log(f"[{strategy} {k}] training {t['ensemble']} model(s) on {len(train_frames)} frames")
    model_dir = work / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)  # a half-finished earlier attempt
    for stale in ("candidates.db", "candidates.xyz", "random.db", "traj.dump", "log.lammps", "labelled.xyz"):
        (work / stale).unlink(missing_ok=True)  # its MD and harvest start over with the new model
    train(train_files, model_dir, val=[data.validation_path], epochs=t["epochs"], ensemble=t["ensemble"],
          seed=int(cfg["seed"]), species=species, batch_size=t["batch_size"], lr=t["lr"], model=t["model"])  # fmt: skip
    model = NequIPModel.load(model_dir)
    art = fit_artifact(model, member_error_logs(model_dir), work / "model.ltau", k=cfg["fit"]["k"], progress=False)
    cal = calibrate_artifact(art, validation_errors(art, model, data.validation, progress=False), plots=work / "calibration")
    res = model.evaluate(data.test)
    test_mae = float(np.mean([np.abs(r.forces - a.get_forces()).mean() for a, r in zip(data.test, res)]))
    _log(f"[{strategy} {k}] held-out force MAE {test_mae:.4f} eV/Å; running MD")
    nsamples = environments_examined(len(data.md_start), md["steps"], md["check_every"])
    cuts = run_cutoffs(art, species, nsamples, hi=None if md["hi"] == "auto" else float(md["hi"]), predictor=md["predictor"])  # as fix ltau
    err_cut = error_cutoffs(art, species, nsamples)
    script = md_script(cfg, model_dir, work / "model.ltau", work, species, data.md_start, nsamples)
    run = run_md(script, work, int(md["ranks"]))
    truth = score_trajectory(work / "traj.dump", species, reference)
    lo_atom = np.array([cuts.lo[symbol(z)] for z in truth.species])
    err_atom = np.array([err_cut[symbol(z)] for z in truth.species])
    flagged, high = truth.predicted > lo_atom, truth.true_error > err_atom
    # per-atom cutoffs differ by species: score the ratios against 1
    scores = classification_scores(truth.true_error / err_atom, truth.predicted / lo_atom, 1.0, 1.0)
    # seed 003 Fig. 3 over both cutoffs (as ratios to this run's: the statistical pair sits at 1, 1)
    from ltau_md.cutoffs import f1_map
    from ltau_md.plots import plot_f1_map

    ratio_e, ratio_u = truth.true_error / err_atom, truth.predicted / lo_atom
    fmap = f1_map(ratio_e, ratio_u, np.linspace(0.25, 3.0, 45), np.linspace(0.25, 3.0, 45))
    plot_f1_map(fmap, work.parent.parent / f"f1_map_{strategy}_iter{k:02d}.png", 1.0, 1.0,
                title=f"{strategy} iteration {k}: heating ramp (cutoffs / statistical cutoffs)")  # fmt: skip
    # at the statistical error cutoff: the best recall any lo reaches with precision ≥ 0.5
    ratio_lo = np.linspace(0.05, 3.0, 119)
    at_err = f1_map(ratio_e, ratio_u, np.array([1.0]), ratio_lo)
    ok = at_err.precision[0] >= 0.5
    best_recall = float(at_err.recall[0][ok].max()) if ok.any() else 0.0
    best_lo = float(ratio_lo[ok][np.argmax(at_err.recall[0][ok])]) if ok.any() else float("nan")
    fix_queue = work / "candidates.db"
    candidates = []
    if fix_queue.exists():
        from ltau_md.queue import CandidateQueue

        candidates = list(CandidateQueue(fix_queue).rows())
    queue, labelled, new_file = _harvest(strategy, work, truth, cfg, k, reference)
    last_step = int(truth.frames[-1][0])
    t_reached = md["t_start"] + (md["t_end"] - md["t_start"]) * last_step / md["steps"]
    halted = md["halt"] != "no" and any(c.reason == "hi" for c in candidates)
    plot_trajectory(
        read_trajectory(work / "log.lammps"),
        work.parent.parent / f"trajectory_{strategy}_iter{k:02d}.png",
        candidate_steps=[c.step for c in candidates if c.reason != "hi" and c.status != "duplicate"],
        halt_steps=[c.step for c in candidates if c.reason == "hi"],
        lo=min(cuts.lo.values()),
        hi=min(cuts.hi.values()),
        title=f"{strategy} iteration {k}: heating ramp",
    )
    present = set(np.unique(truth.species).tolist())
    row = {
        "iteration": k,
        "strategy": strategy,
        "dataset_frames": len(train_frames),
        "dataset_atoms": int(sum(len(a) for a in train_frames)),
        "test_force_mae": test_mae,
        "calibration": {sp: {"scale": r["scale"], "error_model": r["error_model"]["form"],
                             **{key: r[md["predictor"]][key] for key in ("spearman_rho", "miscalibration_area", "uncertainty_cutoff")}}
                        for sp, r in cal["species"].items()},  # fmt: skip
        "predictor": md["predictor"],
        "md_steps_run": last_step,
        "md_target_temperature_reached": t_reached,
        "md_halted": halted,
        "md_wall_s": run["wall_s"],
        "candidates_found": sum(c.status != "duplicate" for c in candidates),
        "duplicates": sum(c.status == "duplicate" for c in candidates),
        "frames_added": len(labelled),
        "queue": os.path.relpath(queue.url, work),
        "nsamples": nsamples,
        "lo": cuts.lo,
        "hi": cuts.hi,
        "error_cutoff": err_cut,
        "flagged_atoms": int(flagged.sum()),
        "high_error_atoms": int(high.sum()),
        "checked_atoms": int(len(flagged)),
        "precision": scores["precision"],
        "recall": scores["recall"],
        "f1": scores["f1"],
        "recall_at_precision_0.5": best_recall,  # over lo (error cutoff statistical), with the lo / lo_auto that gives it
        "lo_ratio_for_it": best_lo,
        "max_true_error": float(truth.true_error.max()),
        "max_predicted_error": float(truth.predicted.max()),
        "species": [s for s in species if int(to_numbers([s])[0]) in present],
    }
    _log(f"[{strategy} {k}] MD {last_step}/{md['steps']} steps{' (halted)' if halted else ''}, {len(candidates)} candidate(s), "
         f"P/R/F1 {scores['precision']:.2f}/{scores['recall']:.2f}/{scores['f1']:.2f}, +{len(labelled)} frames")  # fmt: skip
    return row, new_file, labelled


def run_loop(cfg: dict[str, Any], out: str | os.PathLike) -> dict[str, Any]:
    """Run every strategy's iterations in ``out`` (resolved against the caller's working
    directory: the MD subprocesses run inside it); writes and returns the report."""
    from ltau_md.relabel import make_calculator
    from ltau_md.species import symbols

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write.write_bytes(out / "config.yaml", yaml.safe_dump(cfg, sort_keys=False).encode())
    reference = make_calculator(cfg["reference"])
    data, initial_file = prepare_data(cfg, out / "data")
    species = symbols(sorted({int(z) for a in data.initial + data.validation for z in a.numbers}))
    rows: list[dict[str, Any]] = []
    for strategy in cfg["strategies"]:
        files, frames = [initial_file], list(data.initial)
        for k in range(int(cfg["iterations"])):
            row, new_file, added = run_iteration(cfg, strategy, k, out / strategy / f"iter{k:02d}", files, frames, data, reference, species)
            rows.append(row)
            if new_file is not None:
                files, frames = files + [new_file], frames + added
            atomic_write.write_json(out / "report.json", {"config": cfg, "rows": rows})
    text = write_report(rows, out)
    return {"config": cfg, "rows": rows, "text": text}


def write_report(rows: list[dict[str, Any]], out: Path) -> str:
    header = (
        f"{'strategy':8s} {'it':>2s} {'frames':>6s} {'test MAE':>9s} {'MD steps':>9s} {'T (K)':>6s} {'halt':>4s} {'cand':>4s} "
        f"{'dup':>4s} {'added':>5s} {'flagged':>7s} {'high':>5s} {'P':>5s} {'R':>5s} {'F1':>5s}"
    )
    lines = [header]
    for r in rows:
        lines.append(
            f"{r['strategy']:8s} {r['iteration']:2d} {r['dataset_frames']:6d} {r['test_force_mae']:9.4f} {r['md_steps_run']:9d} "
            f"{r['md_target_temperature_reached']:6.0f} "
            f"{'yes' if r['md_halted'] else 'no':>4s} {r['candidates_found']:4d} {r.get('duplicates', 0):4d} {r['frames_added']:5d} {r['flagged_atoms']:7d} "
            f"{r['high_error_atoms']:5d} {r['precision']:5.2f} {r['recall']:5.2f} {r['f1']:5.2f} {r.get('recall_at_precision_0.5', float('nan')):6.2f}"
        )
    lines.append("T: ramp temperature reached when the run ended (halt or end); "
                 "test MAE: force-component MAE (eV/Å) on held-out reference frames at the test temperatures; "
                 "P/R/F1: atoms flagged by fix ltau (predicted error > lo) vs atoms with true |ΔF| above the "
                 "Maxwell error cutoff at the same N, over every checked MD frame; cand: frames queued, dup: frames recorded as "
                 "duplicates (flagged atoms all within the calibrated latent distance of known environments); "
                 "f1_map_*.png: F1 over both cutoffs; R@P.5: the best recall any lo reaches with precision ≥ 0.5 "
                 "(error cutoff as above)")  # fmt: skip
    text = "\n".join(lines)
    atomic_write.write_bytes(out / "report.txt", (text + "\n").encode())
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
