"""``ltau-md loop``: the active-learning cycle of seed 003 §4 with LTAU as the uncertainty.

Each iteration: train M models on the current data (concurrently) → fit the artifact → calibrate
on validation frames → the walkers' LAMMPS MD (heating ramps, concurrently) with ``fix ltau``
writing candidates to one queue → select a capped, latent-diverse set → relabel it with the
reference (one engine task per frame, retried) → export it and add it to the data (the same
select → relabel → export steps as ``ltau-md candidates`` / ``relabel``, marking the rows); with
``harvest.calibration_frames`` > 0 that many checked MD frames the harvest did not take, evenly
spaced along the walkers' runs, are labelled too and added to the frames every later iteration's
error model is fitted on (out-of-domain errors to calibrate on, see :mod:`ltau_md.error_model`;
picked blind to the predictor, so not selected for large errors); ``harvest.calibration_share``
> 0 instead holds that share of the harvest out of training for the same use. The statistical
cutoffs stay fitted on the validation frames, which are in the training domain as their CDF
1 − 1/N assumes.
Because the reference is cheap here, every MD check is also scored against the truth: precision,
recall and F1 of flagged (predicted error > lo) against truly high-error atoms (|ΔF| > the
Maxwell cutoff at the same N). A ``random`` strategy (the baseline) queues the same number of
frames picked at random from the walkers' trajectories instead of the flagged ones. Tasks run on
the engine of :mod:`ltau_app.engine` (Parsl); ``state.json`` per iteration records the stages
done, which ``--resume`` skips.

Layout of ``DIR``: ``data/`` (initial, validation and held-out test frames, each walker's start),
``<strategy>/iterNN/`` (model, artifact, calibration plots, ``candidates.db``, labelled frames,
``state.json``, and ``walkers/NAME/`` with each walker's MD input, log, dumps and ``walker.json``),
``report.json``, ``report.txt``, ``tasks.json``, ``loop.png``, ``campaign.png``, an F1 map per
iteration and a trajectory plot per walker and iteration. Every path inside is relative to the
iteration's directory, so a finished run can be moved or copied.
"""

from __future__ import annotations

import concurrent.futures
import copy
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ltau_app.engine import ENGINE_DEFAULTS, ENGINE_TYPES, MPI_LAUNCHERS, Engine, check_engine_tools, mpi_command, workers_of
from ltau_app.walker import md_script, prepare_walker, run_walker
from ltau_md import atomic_write, pidfile
from ltau_md.contact import CONTACT_FRACTION
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
    # contact_fraction: ltau-md fit --contact-fraction (close contacts above hi auto; 0: off)
    "fit": {"k": 5, "contact_fraction": CONTACT_FRACTION},
    # restart_every: steps between a walker's restart files (rounded up to a multiple of check_every;
    # 0: none); a walker killed part-way (--resume) goes on from its last one instead of from step 0
    "md": {"atoms": 54, "t_start": 600.0, "t_end": 3000.0, "steps": 3000, "check_every": 10, "ranks": 1,
           "hi": "auto", "halt": "soft", "predictor": "calibrated", "dedup": "yes", "restart_every": 1000},
    # calibration_frames: checked MD frames per iteration, evenly spaced along the walkers' runs and
    # not harvested, labelled too but never trained on: every later iteration's error model is
    # fitted on them with the validation frames (out-of-domain errors, unselected by the predictor).
    # calibration_share: the fraction of each iteration's harvest held out of training, for the same use
    "harvest": {"max_frames": 8, "min_distance": 0.0, "calibration_frames": 0, "calibration_share": 0.0},
    "queue": "auto",  # auto: a SQLite file per iteration; or a postgresql:// URL all walkers share
    "walkers": [],  # none: one walker from md (system, t_start → t_end, steps, ranks)
    "engine": ENGINE_DEFAULTS,
}  # fmt: skip
# one walker: what it runs (missing keys come from md and the top level)
WALKER_KEYS = {"name": "", "system": "", "t_start": 600.0, "t_end": 3000.0, "steps": 3000, "ranks": 1, "seed": 0, "atoms": 54}
# keys whose value may be 0 (every other number must be positive)
ZERO_OK = {"seed", "equilibrate", "l_max", "min_distance", "retries", "calibration_frames", "calibration_share", "contact_fraction",
           "restart_every"}
CHOICES = {"halt": ("no", "soft", "hard"), "strategies": ("ltau", "random"), "predictor": ("calibrated", "ltau"), "dedup": ("yes", "no"),
           "type": ENGINE_TYPES, "mpi": MPI_LAUNCHERS}  # fmt: skip
STATE = "state.json"  # per iteration: the stages done (what --resume skips)
SAMPLED = "sampled.json"  # in data/: how each file of reference frames was sampled
LOCK = ".ltau-md.lock"  # in the campaign's directory: held by the one process that runs it
TRASH = ".removing"  # an iteration's directory, renamed while it is deleted
# what a campaign writes beside its iterations (a start-over removes the earlier run's)
REPORT_FILES = ("report.json", "report.txt", "tasks.json", "loop.png", "campaign.png", "trajectory_*.png", "f1_map_*.png")
AUTO_INTEGERS = {"workers", "cores_per_node"}  # auto or a count


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
    if key == "walkers":
        _check_walkers(value, path)
        return
    if where == "queue":  # auto or a URL: checked once the whole config is read
        if not isinstance(value, str):
            raise LtauError(f"{path}: 'queue' must be auto or a postgresql:// URL, got {value!r}")
        return
    if isinstance(default, list):
        if not isinstance(value, list) or not value:
            raise LtauError(f"{path}: '{where}' must be a non-empty list, got {value!r}")
        for v in value:
            _check_value(v, default[0], where, path)
        return
    if default == "auto" and key in AUTO_INTEGERS:
        if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise LtauError(f"{path}: '{where}' must be auto or a whole number ≥ 1, got {value!r}")
        return
    if default == "auto":
        if value != "auto" and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise LtauError(f"{path}: '{where}' must be auto or a positive number{' (eV/Å)' if key == 'hi' else ''}, got {value!r}")
        return
    if isinstance(default, str):
        if not isinstance(value, str):
            raise LtauError(f"{path}: '{where}' must be a string, got {value!r}")
    elif isinstance(default, bool) != isinstance(value, bool):
        raise LtauError(f"{path}: '{where}' must be a {type(default).__name__}, got {value!r}")
    elif isinstance(default, bool):
        return
    elif isinstance(default, int) and not isinstance(value, int):
        raise LtauError(f"{path}: '{where}' must be an integer, got {value!r}")
    elif isinstance(default, float) and not isinstance(value, (int, float)):
        raise LtauError(f"{path}: '{where}' must be a number, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not np.isfinite(value) or value < 0 or (value == 0 and key not in ZERO_OK):
            raise LtauError(f"{path}: '{where}' must be {'0 or more' if key in ZERO_OK else 'positive'}, got {value!r}")
    if key in CHOICES and value not in CHOICES[key]:
        raise LtauError(f"{path}: '{where}' must be one of {', '.join(CHOICES[key])}, got {value!r}")


def _check_walkers(value: Any, path: str | os.PathLike) -> None:
    if not isinstance(value, list):
        raise LtauError(f"{path}: 'walkers' must be a list of mappings (e.g. - {{system: Li, t_start: 600, t_end: 2500}}), got {value!r}")
    names = []
    for i, w in enumerate(value):
        where = f"walkers[{i}]"
        _check_value(w, WALKER_KEYS, where, path)  # a mapping of known keys, each value typed like a section's
        name = w.get("name") or f"w{i}"
        if not name.replace("_", "").replace("-", "").isalnum():
            raise LtauError(f"{path}: '{where}.name' {name!r}: use letters, digits, - and _ (it names a directory)")
        names.append(name)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise LtauError(f"{path}: walker name(s) {dup} appear more than once in 'walkers'; give each a unique name")


def walkers_of(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The iteration's walkers, every key filled in (from md and the top level)."""
    md = cfg["md"]
    base = {"system": cfg["system"], "t_start": md["t_start"], "t_end": md["t_end"], "steps": md["steps"], "ranks": md["ranks"],
            "seed": 0, "atoms": md["atoms"]}  # fmt: skip
    given = cfg["walkers"] or [{}]
    # seed defaults to the walker's index: walkers of one system and temperature still start apart
    return [{**base, "seed": i, **w, "name": w.get("name") or f"w{i}"} for i, w in enumerate(given)]


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
    for i, w in enumerate(cfg["walkers"]):
        if w.get("system", cfg["system"]) not in SYSTEMS:
            raise LtauError(f"{path}: 'walkers[{i}].system' must be one of {', '.join(SYSTEMS)}, got {w['system']!r}")
    if cfg["harvest"]["calibration_share"] >= 1:
        raise LtauError(f"{path}: 'harvest.calibration_share' must be below 1 (the share of labelled frames held out of training), "
                        f"got {cfg['harvest']['calibration_share']!r}")  # fmt: skip
    if cfg["fit"]["contact_fraction"] > 1:
        raise LtauError(f"{path}: 'fit.contact_fraction' must be at most 1 (a fraction of the training frames' shortest distance; "
                        f"0 turns the close-contact rule off), got {cfg['fit']['contact_fraction']!r}")  # fmt: skip
    from ltau_md.relabel import calculator_factory

    calculator_factory(cfg["reference"], f"{path}: 'reference'")  # a bad one refused here, not after config.yaml is written
    q = cfg["queue"]
    if q != "auto" and not q.startswith(("postgresql://", "postgres://")):
        raise LtauError(f"{path}: 'queue' must be auto (a SQLite file per iteration) or a postgresql:// URL, got {q!r}")
    if q != "auto" and (":" in q.split("://", 1)[1].split("@", 1)[0] and "@" in q or "password=" in q):
        raise LtauError(f"{path}: 'queue' holds a password, which would be written to config.yaml, the MD inputs and logs; "
                        "keep it in ~/.pgpass or PGPASSWORD and leave it out of the URL")  # fmt: skip
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


def _frames_of(path: Path, unrecorded_ok: bool = True, **sampling: Any) -> list:
    """The frames of ``path``: read if it holds frames sampled with these settings (``_sample``'s
    arguments, recorded in data/sampled.json), else sampled and written. A campaign started over
    in its directory with another system, seed or sizes samples those files again. A file without
    a record (sampled before records were kept) is read if ``unrecorded_ok`` (a resume: its
    configuration was checked against config.yaml), else sampled again."""
    from ase.io import read

    record = path.parent / SAMPLED
    done = _read_json(record)
    wanted = json.loads(json.dumps(sampling))
    if path.exists() and done.get(path.name, wanted if unrecorded_ok else None) == wanted:
        frames = read(path, ":")
    else:
        if path.exists():
            _log(f"{path}: sampled with other settings; sampling it again")
        frames = _sample(**sampling)
        _write_frames(path, frames)
    if done.get(path.name) != wanted:
        atomic_write.write_json(record, {**done, path.name: wanted})
    return frames


@dataclass
class LoopData:
    """Reference frames of a loop run, read (or sampled) once."""

    initial: list
    validation: list
    validation_path: Path
    test: list
    starts: dict[str, Any]  # walker name → its equilibrated start frame


def prepare_data(cfg: dict[str, Any], data_dir: Path, unrecorded_ok: bool = True) -> tuple[LoopData, Path]:
    """Initial training, validation, held-out test frames and each walker's start (sampled once;
    ``unrecorded_ok``: see :func:`_frames_of`)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    seed, system = int(cfg["seed"]), cfg["system"]
    sets = {}
    for name, sub_seed in (("initial", 1), ("validation", 2)):
        c = cfg[name]
        sets[name] = _frames_of(data_dir / f"{name}.xyz", unrecorded_ok, system=system, n_frames=c["frames"], atoms=c["atoms"], temperature=c["temperature"],
                                equilibrate=c["equilibrate"], every=c["every"], seed=seed * 100 + sub_seed)  # fmt: skip
    test = []
    c = cfg["test"]
    for j, temperature in enumerate(c["temperatures"]):
        test += _frames_of(data_dir / f"test_{int(temperature)}K.xyz", unrecorded_ok, system=system, n_frames=c["frames"], atoms=c["atoms"],
                           temperature=temperature, equilibrate=c["equilibrate"], every=c["every"], seed=seed * 100 + 10 + j)  # fmt: skip
    # each walker starts from an equilibrated reference frame (positions and velocities) of its
    # system and size at its first temperature
    starts = {}
    for w in walkers_of(cfg):
        (starts[w["name"]],) = _frames_of(data_dir / f"md_start_{w['name']}.xyz", unrecorded_ok, system=w["system"], n_frames=1, atoms=w["atoms"],
                                          temperature=w["t_start"], equilibrate=cfg["initial"]["equilibrate"], every=1,
                                          seed=seed * 100 + 20 + int(w["seed"]))  # fmt: skip
    data = LoopData(sets["initial"], sets["validation"], data_dir / "validation.xyz", test, starts)
    return data, data_dir / "initial.xyz"


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


def label_frame(atoms, spec: str):
    """One reference label (a Parsl task; failures are retried by the engine, then recorded)."""
    from ltau_md.relabel import label, make_calculator

    return label(atoms, make_calculator(spec, "reference"))


def label_with_retries(frames: dict[str, Any], label: str, cfg: dict[str, Any], engine: Engine,
                       done: Callable[[str, Any], None], fail: Callable[[str, str], None]) -> int:  # fmt: skip
    """Reference labels of ``frames`` (key → atoms), one engine task each, retried up to
    ``engine.retries`` times; ``done(key, labelled atoms)`` as each arrives (so a killed campaign
    keeps what was labelled), ``fail(key, message)`` once retries are spent. Returns the failures."""
    threads = engine.threads_for(len(frames))
    submit = lambda key, attempt: engine.submit("relabel", f"{label} {key}" + (f" (retry {attempt})" if attempt else ""),
                                                label_frame, frames[key], cfg["reference"], threads=threads)  # fmt: skip
    pending = {submit(key, 0): (key, 0) for key in frames}
    failed = 0
    while pending:
        # as they end, not in order: a slow frame does not hold back recording the others
        finished, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
        for fut in finished:
            key, attempt = pending.pop(fut)
            try:
                atoms = engine.result(fut)
            except Exception as exc:  # any failure of the reference on this frame: retried, then recorded
                if attempt < int(cfg["engine"]["retries"]):
                    pending[submit(key, attempt + 1)] = (key, attempt + 1)
                else:
                    fail(key, str(exc))
                    failed += 1
                continue
            done(key, atoms)  # outside the try: a queue that cannot record the label is no failure of the reference
    return failed


class Ledger:
    """``state.json`` of an iteration: the stages done, with what they produced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state: dict[str, Any] = {}
        if path.exists():
            import json

            self.state = json.loads(path.read_text())

    def done(self, stage: str) -> bool:
        return stage in self.state

    def get(self, stage: str, default: Any = None) -> Any:
        return self.state.get(stage, default)

    def mark(self, stage: str, info: Any) -> None:
        self.state[stage] = info
        atomic_write.write_json(self.path, self.state)


def _harvest(strategy: str, work: Path, queue_url: str, prefix: str, truths: dict[str, Truth], cfg: dict[str, Any], k: int,
             engine: Engine, ledger: Ledger):  # fmt: skip
    """select → relabel (one task per frame) → export, through the queue: the walkers'
    candidates, or (random) frames of their trajectories queued by hand. Frames labelled before
    (a resumed campaign) are not labelled again. Returns the queue and the exported frames."""
    from ltau_md.queue import CandidateQueue, claim_owner

    cap = int(cfg["harvest"]["max_frames"])
    queue = CandidateQueue(queue_url, writable=True)
    if not ledger.done("select"):
        if strategy == "random":
            queue.remove(prefix)  # picks of a killed earlier attempt
            rng = np.random.default_rng(int(cfg["seed"]) * 1000 + k)
            pool = [(name, step, atoms) for name, t in truths.items() for step, atoms in t.frames]
            n_pick = min(len(pool), cap)  # the same labelling budget, spent blindly
            for i in sorted(rng.choice(len(pool), size=n_pick, replace=False)):
                name, step, atoms = pool[i]
                n = len(atoms)
                queue.add(atoms, error=np.zeros(n), p=np.ones(n), run=f"{prefix}{name}", step=int(step), reason="manual",
                          source="random baseline")  # fmt: skip
        if any(True for _ in queue.rows("pending", run_prefix=prefix)):  # random: the budget, whatever the frames' distances
            queue.select(cap, cfg["harvest"]["min_distance"] if strategy == "ltau" else None, run_prefix=prefix)
        ledger.mark("select", {"selected": sum(1 for _ in queue.rows(selected=True, run_prefix=prefix))})
    # claimed as a relabel would, so a relabel started on this queue meanwhile leaves these frames
    # to the campaign; any earlier claim is taken over: that of this campaign's killed process may
    # come from another host (a resumed Slurm campaign's login node may differ), and the campaign
    # lock says no other campaign runs on this queue
    owner = claim_owner()
    todo = {f"row {c.id}": c for c in queue.rows("pending", selected=True, run_prefix=prefix)
            if queue.claim(c.id, owner, reclaim=True) is None}  # fmt: skip
    failed = label_with_retries({key: c.atoms for key, c in todo.items()}, f"{strategy} {k}", cfg, engine,
                                done=lambda key, atoms: queue.mark_labelled(todo[key].id, atoms, cfg["reference"]),
                                fail=lambda key, msg: queue.mark_failed(todo[key].id, msg, cfg["reference"]))  # fmt: skip
    if failed:
        _log(f"[{strategy} {k}] the reference failed on {failed} frame(s) after {cfg['engine']['retries']} retries; recorded in {queue.url}")
    labelled = queue.labelled_frames("labelled", selected_only=True, run_prefix=prefix)
    new_file = None
    if labelled:
        new_file = work / "labelled.xyz"
        queue.export(new_file, "labelled", selected_only=True, run_prefix=prefix)
    return queue, labelled, new_file


def _scores(truth: Truth, cuts, err_cut: dict[str, float]) -> dict[str, Any]:
    """Flagged (predicted > lo) vs truly high-error atoms, per-atom cutoffs as ratios against 1."""
    from ltau_md.cutoffs import classification_scores
    from ltau_md.species import symbol

    lo_atom = np.array([cuts.lo[symbol(z)] for z in truth.species])
    err_atom = np.array([err_cut[symbol(z)] for z in truth.species])
    ratio_e, ratio_u = truth.true_error / err_atom, truth.predicted / lo_atom
    return {"ratio_e": ratio_e, "ratio_u": ratio_u, **classification_scores(ratio_e, ratio_u, 1.0, 1.0)}


def _merge_truths(truths: dict[str, Truth]) -> Truth:
    ts = list(truths.values())
    return Truth([f for t in ts for f in t.frames], *(np.concatenate([getattr(t, a) for t in ts]) for a in ("predicted", "true_error", "species")))


def run_iteration(cfg: dict[str, Any], strategy: str, k: int, work: Path, train_files: list[Path], train_frames: list,
                  data: LoopData, reference, species: list[str], engine: Engine, resume: bool,
                  calibration_frames: list | None = None) -> tuple[dict[str, Any], Path | None, list, list]:  # fmt: skip
    """One iteration in ``work``; returns the report row, the file and frames it adds to the
    training data, and the labelled frames it keeps out of training for later iterations'
    calibration (``harvest.calibration_frames`` picks and the ``calibration_share`` of the
    harvest). The artifact is calibrated on the validation frames, its error model on them and
    ``calibration_frames`` (those frames of earlier iterations) together.
    With ``resume``, stages the ledger records as done are skipped (trained members, finished
    walkers, labelled frames); without, the iteration starts from scratch."""
    from ltau_md.artifact import Artifact
    from ltau_md.calibration import calibrate_artifact
    from ltau_md.cutoffs import best_recall_at_precision, f1_map
    from ltau_md.nequip.calibrate import validation_errors
    from ltau_md.nequip.fit import fit_artifact
    from ltau_md.nequip.model import NequIPModel
    from ltau_md.nequip.predict import predict
    from ltau_md.nequip.training import member_error_logs, train
    from ltau_md.plots import plot_f1_map
    from ltau_md.queue import CandidateQueue
    from ltau_md.run_cutoffs import environments_examined, error_cutoffs, run_cutoffs
    from ltau_md.species import to_numbers
    from ltau_md.trajectory import plot_trajectory, read_trajectory

    if not resume and work.exists():
        _remove_iteration(work)  # its model, MD and harvest start over
    work.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(work / STATE)
    stage_s: dict[str, float] = dict(ledger.get("stage_s", {}))
    t, md = cfg["train"], cfg["md"]
    walkers = walkers_of(cfg)
    prefix = f"{strategy}_iter{k:02d}_"  # the walkers' rows: run = PREFIX + walker name + @ + stamp
    queue_url = str(work / "candidates.db") if cfg["queue"] == "auto" else cfg["queue"]
    # the random baseline's picks: rows of their own, never mixed with what fix ltau queued
    pick_url, pick_prefix = (str(work / "random.db") if cfg["queue"] == "auto" else cfg["queue"]), f"random-pick_iter{k:02d}_"

    def timed(stage: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = fn()
        stage_s[stage] = stage_s.get(stage, 0.0) + time.perf_counter() - t0
        ledger.mark("stage_s", stage_s)
        return out

    model_dir = work / "model"
    if not ledger.done("train"):
        _log(f"[{strategy} {k}] training {t['ensemble']} model(s) on {len(train_frames)} frames, {min(engine.workers, t['ensemble'])} at a time")
        run_members = lambda jobs: engine.map("train", _run_member, list(jobs), [f"{strategy} {k} {j[2]}" for j in jobs],
                                              threads=engine.threads_for(len(jobs)))  # fmt: skip
        timed("train", lambda: train(train_files, model_dir, val=[data.validation_path], epochs=t["epochs"], ensemble=t["ensemble"],
                                     seed=int(cfg["seed"]), species=species, batch_size=t["batch_size"], lr=t["lr"], model=t["model"],
                                     run_members=run_members, reuse_finished=True))  # fmt: skip
        ledger.mark("train", {"members": t["ensemble"]})
    model = NequIPModel.load(model_dir)
    held_before = list(calibration_frames or [])
    if ledger.done("calibrate"):
        art = Artifact.load(work / "model.ltau")
        cal = ledger.get("calibrate")
    else:
        def fit_and_calibrate():
            a = fit_artifact(model, member_error_logs(model_dir), work / "model.ltau", k=cfg["fit"]["k"], progress=False,
                             contact_fraction=float(cfg["fit"]["contact_fraction"]))
            extra = validation_errors(a, model, held_before, progress=False) if held_before else None
            return a, calibrate_artifact(a, validation_errors(a, model, data.validation, progress=False), plots=work / "calibration",
                                         error_model_extra=extra)  # fmt: skip

        art, cal = timed("fit_calibrate", fit_and_calibrate)
        cal = {"species": {sp: {"scale": r["scale"], "error_model": r["error_model"]["form"], **{p: r[p] for p in ("ltau", "calibrated") if p in r}}
                           for sp, r in cal["species"].items()}}  # fmt: skip
        ledger.mark("calibrate", cal)
    preds = predict(model, art, data.test, predictor=md["predictor"])
    test_mae = float(np.mean([np.abs(pr.model.forces - a.get_forces()).mean() for a, pr in zip(data.test, preds)]))
    # out-of-domain calibration: mean predicted over mean true |ΔF| on the test frames of each temperature
    n_test = int(cfg["test"]["frames"])
    test_pred_over_true = {}
    pairs = list(zip(data.test, preds))
    for j, temperature in enumerate(cfg["test"]["temperatures"]):
        chunk = pairs[j * n_test:(j + 1) * n_test]
        true = np.concatenate([np.linalg.norm(pr.model.forces - a.get_forces(), axis=1) for a, pr in chunk])
        test_pred_over_true[f"{temperature:g}"] = float(np.concatenate([pr.error for _, pr in chunk]).mean() / true.mean())
    _log(f"[{strategy} {k}] held-out force MAE {test_mae:.4f} eV/Å; running {len(walkers)} walker(s), {min(engine.workers, len(walkers))} at a time")

    # -- walkers: concurrent MD apps, one shared queue -------------------------------------------
    n_atoms = {w["name"]: len(data.starts[w["name"]]) for w in walkers}
    nsamples = sum(environments_examined(n_atoms[w["name"]], w["steps"], md["check_every"]) for w in walkers)
    cuts = run_cutoffs(art, species, nsamples, hi=None if md["hi"] == "auto" else float(md["hi"]), predictor=md["predictor"])  # as fix ltau
    err_cut = error_cutoffs(art, species, nsamples)
    futures = {}
    queue = CandidateQueue(queue_url, writable=True)  # created once, before the walkers open it together
    t_md = time.perf_counter()
    to_run = [w for w in walkers if not (work / "walkers" / w["name"] / "walker.json").exists()]  # the others finished before
    threads = engine.threads_for(len(to_run))
    for w in to_run:
        wdir, log_name = work / "walkers" / w["name"], f"log.{prefix}{w['name']}"
        script = prepare_walker(wdir, log_name, f"{prefix}{w['name']}@", queue,
                                lambda resume_from, w=w, wdir=wdir: md_script(cfg, w, model_dir, work / "model.ltau", queue_url, wdir, species,
                                                                              data.starts[w["name"]], nsamples, resume_from=resume_from),
                                lambda msg, w=w: _log(f"[{strategy} {k}] walker {w['name']} {msg}"))  # fmt: skip
        launcher = mpi_command(cfg["engine"], int(w["ranks"]), Path(sys.executable).parent)
        futures[w["name"]] = engine.submit("md", f"{strategy} {k} {w['name']}", run_walker, wdir, log_name, launcher, script.name,
                                           threads=max(1, threads // int(w["ranks"])))  # fmt: skip
    engine.results(list(futures.values()))  # a walker that fails stops the campaign at once
    stage_s["md"] = stage_s.get("md", 0.0) + time.perf_counter() - t_md
    ledger.mark("stage_s", stage_s)

    # -- truth: every checked frame of every walker against the reference -------------------------
    stage_s.pop("score", None)  # recomputed in full on a resume
    truths = timed("score", lambda: {w["name"]: score_trajectory(work / "walkers" / w["name"] / "traj.dump", species, reference) for w in walkers})
    walker_rows = []
    candidates = list(queue.rows(run_prefix=prefix))  # what fix ltau queued (the random baseline's walkers too)
    for w in walkers:
        wdir, tr = work / "walkers" / w["name"], truths[w["name"]]
        mine = [c for c in candidates if c.run.startswith(f"{prefix}{w['name']}@")]
        info = _read_json(wdir / "walker.json")
        last = int(tr.frames[-1][0])
        sc = _scores(tr, cuts, err_cut)
        walker_rows.append({
            "name": w["name"], "system": w["system"], "t_start": w["t_start"], "t_end": w["t_end"], "ranks": int(w["ranks"]),
            "steps": int(w["steps"]), "steps_run": last, "halted": md["halt"] != "no" and any(c.reason == "hi" for c in mine),
            "t_reached": w["t_start"] + (w["t_end"] - w["t_start"]) * last / w["steps"],
            "candidates": sum(c.status != "duplicate" for c in mine), "duplicates": sum(c.status == "duplicate" for c in mine),
            "precision": sc["precision"], "recall": sc["recall"], "f1": sc["f1"], "wall_s": info.get("wall_s"),
        })  # fmt: skip
        plot_trajectory(
            read_trajectory(wdir / f"log.{prefix}{w['name']}"),
            work.parent.parent / f"trajectory_{strategy}_iter{k:02d}_{w['name']}.png",
            candidate_steps=[c.step for c in mine if c.reason != "hi" and c.status != "duplicate"],
            candidate_errors=[c.max_error for c in mine if c.reason != "hi" and c.status != "duplicate"],
            halt_steps=[c.step for c in mine if c.reason == "hi"],
            lo=min(cuts.lo.values()),
            hi=min(cuts.hi.values()),
            title=f"{strategy} iteration {k}, walker {w['name']}: {w['system']} {w['t_start']:.0f} → {w['t_end']:.0f} K",
        )
    truth = _merge_truths(truths)
    sc = _scores(truth, cuts, err_cut)
    ratio_e, ratio_u = sc["ratio_e"], sc["ratio_u"]
    # seed 003 Fig. 3 over both cutoffs (as ratios to this run's: the statistical pair sits at 1, 1)
    fmap = f1_map(ratio_e, ratio_u, np.linspace(0.25, 3.0, 45), np.linspace(0.25, 3.0, 45))
    plot_f1_map(fmap, work.parent.parent / f"f1_map_{strategy}_iter{k:02d}.png", 1.0, 1.0,
                title=f"{strategy} iteration {k}: all walkers", relative=True)  # fmt: skip
    best_recall, best_lo = best_recall_at_precision(ratio_e, ratio_u, 0.5)  # at the statistical error cutoff

    t_h = time.perf_counter()
    h_url, h_prefix = (queue_url, prefix) if strategy == "ltau" else (pick_url, pick_prefix)
    queue, labelled, new_file = _harvest(strategy, work, h_url, h_prefix, truths, cfg, k, engine, ledger)
    picked = _label_calibration_frames(strategy, k, work, truths, queue, h_prefix, cfg, engine, ledger)
    held = calibration_held_out(len(labelled), float(cfg["harvest"]["calibration_share"]))
    held_frames = [labelled[i] for i in held]
    cal_file = None
    if held_frames:  # the harvest's export stays whole in labelled.xyz; training gets the rest
        held_set = set(held)
        added = [a for i, a in enumerate(labelled) if i not in held_set]
        cal_file = _write_frames(work / "calibration_held_out.xyz", held_frames)
        new_file = _write_frames(work / "labelled_for_training.xyz", added) if added else None
        labelled = added
    stage_s["harvest"] = stage_s.get("harvest", 0.0) + time.perf_counter() - t_h
    present = set(np.unique(truth.species).tolist())
    flagged, high = ratio_u > 1.0, ratio_e > 1.0
    row = {
        "iteration": k,
        "strategy": strategy,
        "dataset_frames": len(train_frames),
        "dataset_atoms": int(sum(len(a) for a in train_frames)),
        "test_force_mae": test_mae,
        "test_predicted_over_true": test_pred_over_true,  # per test temperature (K): the predictor's calibration out of domain
        "calibration": {sp: {"scale": r["scale"], "error_model": r["error_model"],
                             **{key: r[md["predictor"]][key] for key in ("spearman_rho", "miscalibration_area", "uncertainty_cutoff")}}
                        for sp, r in cal["species"].items()},  # fmt: skip
        "predictor": md["predictor"],
        "walkers": walker_rows,
        "md_steps_run": int(sum(r["steps_run"] for r in walker_rows)),
        "md_target_temperature_reached": float(max(r["t_reached"] for r in walker_rows)),
        "md_halted": any(r["halted"] for r in walker_rows),
        "md_wall_s": stage_s.get("md", 0.0),
        "stage_s": stage_s,
        "candidates_found": sum(r["candidates"] for r in walker_rows),
        "duplicates": sum(r["duplicates"] for r in walker_rows),
        "frames_added": len(labelled),
        "calibration_frames_labelled": len(picked),  # checked MD frames labelled for later iterations' calibration
        "frames_held_out": len(held_frames),  # of the harvest, for the calibration of later iterations
        "calibration_frames_held_out": len(held_before),
        "queue": os.path.relpath(queue.url, work) if cfg["queue"] == "auto" else queue.url,  # where the harvest's frames are
        "nsamples": nsamples,
        "lo": cuts.lo,
        "hi": cuts.hi,
        "error_cutoff": err_cut,
        "flagged_atoms": int(flagged.sum()),
        "high_error_atoms": int(high.sum()),
        "checked_atoms": int(len(flagged)),
        "precision": sc["precision"],
        "recall": sc["recall"],
        "f1": sc["f1"],
        "recall_at_precision_0.5": best_recall,  # over lo (error cutoff statistical), with the lo / lo_auto that gives it
        "lo_ratio_for_it": best_lo,
        "max_true_error": float(truth.true_error.max()),
        "max_predicted_error": float(truth.predicted.max()),
        "species": [s for s in species if int(to_numbers([s])[0]) in present],
    }
    ledger.mark("row", {"row": row, "new_file": new_file.name if new_file else None, "calibration_file": cal_file.name if cal_file else None})
    _log(f"[{strategy} {k}] {len(walkers)} walker(s), {row['md_steps_run']} MD steps{' (halted)' if row['md_halted'] else ''}, "
         f"{row['candidates_found']} candidate(s), P/R/F1 {sc['precision']:.2f}/{sc['recall']:.2f}/{sc['f1']:.2f}, +{len(labelled)} frames")  # fmt: skip
    return row, new_file, labelled, held_frames + picked


def calibration_picks(n_checked: int, n: int) -> list[int]:
    """Which of ``n_checked`` checked MD frames (in run order, harvested ones left out) are labelled
    for calibration: the middle frame of each of ``n`` equal stretches of the run (all ``n``
    distinct) — blind to the predictor, unlike the harvest, so the errors they show are not
    selected for being large."""
    if n >= n_checked:
        return list(range(n_checked))
    return [int((i + 0.5) * n_checked / n) for i in range(n)]


def _label_calibration_frames(strategy: str, k: int, work: Path, truths: dict[str, Truth], queue, h_prefix: str,
                              cfg: dict[str, Any], engine: Engine, ledger: Ledger) -> list:  # fmt: skip
    """``harvest.calibration_frames`` checked MD frames the harvest did not select, labelled with
    the reference into ``calibration_frames.xyz``: out-of-domain errors for the error models of
    later iterations, never trained on (none in the last iteration: no later one would use them).
    The picks spread over all walkers' checked frames, walker after walker. A resumed iteration
    reads the file back."""
    n = int(cfg["harvest"]["calibration_frames"])
    path = work / "calibration_frames.xyz"
    if n == 0 or k == int(cfg["iterations"]) - 1:
        return []
    if ledger.done("calibration_frames"):
        return read_frames(path) if path.exists() else []
    taken = {(c.run[len(h_prefix):].split("@")[0], int(c.step)) for c in queue.rows(selected=True, run_prefix=h_prefix)}
    pool = [(name, int(step), atoms) for name, t in truths.items() for step, atoms in t.frames if (name, int(step)) not in taken]
    key_of = lambda name, step: f"{name} step {int(step)}"
    picks = {key_of(*pool[i][:2]): pool[i] for i in calibration_picks(len(pool), n)}
    # the file is rewritten as each label arrives: a killed campaign keeps them, and its resume labels only the rest
    got: dict[str, Any] = {}
    for a in read_frames(path) if path.exists() else []:
        key = key_of(a.info.get("walker"), a.info.get("step", -1))
        if key in picks:
            got[key] = a

    def keep(key: str, atoms: Any) -> None:
        name, step, _ = picks[key]
        atoms.info.update({"walker": name, "step": step, "labelled_by": cfg["reference"]})
        got[key] = atoms
        _write_frames(path, [got[key] for key in picks if key in got])

    errors: list[str] = []
    failed = label_with_retries({key: atoms for key, (_, _, atoms) in picks.items() if key not in got}, f"{strategy} {k} calibration",
                                cfg, engine, done=keep, fail=lambda key, msg: errors.append(f"{key}: {msg}"))  # fmt: skip
    frames = [got[key] for key in picks if key in got]
    if frames:
        _write_frames(path, frames)  # exactly the picks (an earlier attempt's file may hold others)
    else:
        path.unlink(missing_ok=True)
    if failed:
        _log(f"[{strategy} {k}] the reference failed on {failed} calibration frame(s) after {cfg['engine']['retries']} retries; "
             f"left out (first: {(errors[0].splitlines() or [''])[0]})")  # fmt: skip
    ledger.mark("calibration_frames", {"picked": len(picks), "labelled": len(frames)})
    return frames


def calibration_held_out(n: int, share: float) -> list[int]:
    """Which of ``n`` labelled frames (in harvest order) are held out for calibration: ⌊n·share⌋ of
    them, spread evenly over the harvest."""
    eps = 1e-9  # 0.29 · 100 is 28.999… in floating point; ⌊n·share⌋ means 29
    return [i for i in range(n) if int((i + 1) * share + eps) > int(i * share + eps)]


def _run_member(*job: Any) -> None:
    from ltau_md.nequip.training import run_member

    run_member(*job)


def _read_json(path: Path) -> dict[str, Any]:
    import json

    return json.loads(path.read_text()) if path.exists() else {}


def _check_resumable(cfg: dict[str, Any], out: Path) -> None:
    """--resume continues the campaign that DIR holds, with the same configuration."""
    saved = out / "config.yaml"
    if not saved.exists():
        raise LtauError(f"{out}: no campaign to resume (no config.yaml); run without --resume")
    # read as the loop reads a config: keys added since the campaign began take their defaults
    before = load_config(saved)
    # where tasks run (engine) may change between the two; what they compute may not
    # (nor how often a walker writes restart files)
    strip = lambda c: {**c, "md": {k: v for k, v in c.get("md", {}).items() if k != "restart_every"}}
    before, now = strip(before), strip(cfg)
    keys = sorted(k for k in set(before) | set(now) if k != "engine" and before.get(k) != now.get(k))
    if keys:
        raise LtauError(f"{out}: --resume with a different configuration ({', '.join(keys)} changed); "
                        "resume with the config it was started with, or start a new -o DIR")  # fmt: skip


def _check_queue_is_free(cfg: dict[str, Any], out: Path) -> None:
    """A new campaign on a PostgreSQL queue needs a database of its own: run names are only the
    strategy and iteration (``ltau_iter00_…``), and a campaign deletes its walkers' rows before it
    runs them (what a killed attempt left), so it would delete another campaign's. Starting this
    ``out``'s own campaign over (same queue, no --resume) stays allowed."""
    from ltau_md.queue import CandidateQueue, display_url

    saved = out / "config.yaml"
    if saved.exists() and (yaml.safe_load(saved.read_text()) or {}).get("queue") == cfg["queue"]:
        return
    n = CandidateQueue(cfg["queue"]).count()
    if n:
        raise LtauError(f"queue {display_url(cfg['queue'])} already holds {n} rows (another campaign's or runs'); give each campaign "
                        "an empty database of its own, or continue that campaign with 'ltau-md loop CONFIG -o ITS_DIR --resume'")  # fmt: skip


class TaskJournal:
    """``tasks.json``: every engine task of the campaign (stage, name, start and end in seconds
    since the campaign's first session began, ok, session), rewritten as tasks start and end, so a
    killed campaign keeps what it ran; a resumed one adds its tasks as the next session."""

    def __init__(self, path: Path, engine: str, workers: int, resume: bool, now: float) -> None:
        self.path, self.engine, self.workers = path, engine, workers
        self.earlier: list[dict[str, Any]] = []
        self.started = now
        if resume and path.exists():
            try:
                old = json.loads(path.read_text())
                started, earlier = float(old["started"]), list(old["tasks"])
            except (ValueError, KeyError, TypeError):  # unreadable, or written before sessions were kept
                started, earlier = now, []
            self.started, self.earlier = started, earlier
        self.session = 1 + max((int(t.get("session", 0)) for t in self.earlier), default=-1)

    def write(self, records: list) -> list[dict[str, Any]]:
        fin = lambda x: round(x - self.started, 3) if np.isfinite(x) else None
        tasks = self.earlier + [{"stage": r.stage, "name": r.name, "start": fin(r.start), "end": fin(r.end), "ok": r.ok,
                                 "session": self.session} for r in list(records)]  # fmt: skip
        atomic_write.write_json(self.path, {"engine": self.engine, "workers": self.workers, "started": self.started, "tasks": tasks})
        return tasks


def _remove_iteration(work: Path) -> None:
    """Remove an iteration's directory, first stopping the training and MD a killed campaign may
    have left running in it; renamed before it is deleted, so an interrupted removal leaves no
    half-directory that a resume would read."""
    for rec in [*work.glob("model/*/train.pid"), *work.glob("walkers/*/walker.pid")]:
        pidfile.stop_recorded(rec)
    trash = work.with_name(f".{work.name}{TRASH}")
    _remove_trash(trash)
    work.rename(trash)
    _remove_trash(trash)


def _remove_trash(trash: Path) -> None:
    for attempt in range(3):  # a process killed just before may still be closing files in it
        try:
            shutil.rmtree(trash)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if attempt == 2:
                raise LtauError(f"{trash}: cannot remove it ({exc.strerror}); remove it by hand, then run again") from None
            time.sleep(1.0)


def _start_over(cfg: dict[str, Any], out: Path) -> None:
    """A campaign run again in its directory without --resume: what the earlier run left goes first
    (every iteration of every strategy, its report and plots, and its rows in a PostgreSQL queue),
    so that nothing of it is mistaken for this run's; data/ stays where it was sampled with the
    same settings."""
    from ltau_md.queue import CandidateQueue

    for trash in out.glob(f"*/.iter*{TRASH}"):  # a removal cut short
        _remove_trash(trash)
    for work in sorted(out.glob("*/iter[0-9][0-9]")):
        _remove_iteration(work)
    for pattern in REPORT_FILES:
        for path in out.glob(pattern):
            path.unlink()
    if cfg["queue"] != "auto":
        queue = CandidateQueue(cfg["queue"], writable=True)
        for prefix in [f"{strategy}_iter" for strategy in CHOICES["strategies"]] + ["random-pick_iter"]:
            queue.remove(prefix)


def _run_strategies(cfg: dict[str, Any], out: Path, resume: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The data, then every strategy's iterations on the engine; returns the report rows and tasks."""
    from ltau_md.relabel import make_calculator
    from ltau_md.species import symbols

    reference = make_calculator(cfg["reference"], "reference")
    data, initial_file = prepare_data(cfg, out / "data", unrecorded_ok=resume)
    species = symbols(sorted({int(z) for a in data.initial + data.validation for z in a.numbers}))
    for w in walkers_of(cfg):
        extra = sorted(set(data.starts[w["name"]].get_chemical_symbols()) - set(species))
        if extra:
            raise LtauError(f"walker {w['name']}: system {w['system']} holds {', '.join(extra)}, which the training data "
                            f"({cfg['system']}) lack; choose a walker system made of {', '.join(species)}")  # fmt: skip

    with pidfile.sigterm_raises(KeyboardInterrupt):  # a scheduler's SIGTERM ends the campaign like Ctrl-C: the engine shuts down
        return _run_iterations(cfg, out, resume, data, initial_file, reference, species)


def _run_iterations(cfg: dict[str, Any], out: Path, resume: bool, data: LoopData, initial_file: Path, reference,
                    species: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
    """Every strategy's iterations on the engine (a resume keeps those that finished before);
    returns the report rows and the tasks."""
    rows: list[dict[str, Any]] = []
    journal = TaskJournal(out / "tasks.json", cfg["engine"]["type"], workers_of(cfg["engine"]), resume, time.time())
    with Engine(cfg["engine"], out / "runinfo", journal=journal.write) as engine:
        for strategy in cfg["strategies"]:
            files, frames, held_out = [initial_file], list(data.initial), []
            continued = resume  # False once an iteration runs: the later ones' directories are an earlier attempt's
            for k in range(int(cfg["iterations"])):
                work = out / strategy / f"iter{k:02d}"
                done = Ledger(work / STATE).get("row") if continued else None
                if done is not None:  # finished before the campaign was stopped
                    row, new_file = done["row"], work / done["new_file"] if done["new_file"] else None
                    added = read_frames(new_file) if new_file else []
                    held = read_frames(work / done["calibration_file"]) if done.get("calibration_file") else []
                    if row.get("calibration_frames_labelled"):
                        held = held + read_frames(work / "calibration_frames.xyz")
                    _log(f"[{strategy} {k}] finished before; kept")
                else:
                    row, new_file, added, held = run_iteration(cfg, strategy, k, work, files, frames, data, reference, species, engine,
                                                               continued, held_out)  # fmt: skip
                    continued = False
                rows.append(row)
                held_out = held_out + held
                if new_file is not None:
                    files, frames = files + [new_file], frames + added
                atomic_write.write_json(out / "report.json", {"config": cfg, "rows": rows})
        tasks = journal.write(engine.records)
    return rows, tasks


def run_loop(cfg: dict[str, Any], out: str | os.PathLike, resume: bool = False) -> dict[str, Any]:
    """Run every strategy's iterations in ``out`` (resolved against the caller's working
    directory: the MD subprocesses run inside it) on the configured engine; writes and returns
    the report. ``resume`` continues a killed campaign where it stopped."""
    from contextlib import nullcontext

    from ltau_md.queue import campaign_lock

    out = Path(out).resolve()
    check_engine_tools(cfg["engine"])
    if resume:
        _check_resumable(cfg, out)
    else:
        entries = {p.name for p in out.iterdir()} - {LOCK} if out.is_dir() else set()
        # a campaign's directory: its config.yaml and data/ (or only the config: killed before the data)
        if entries and not ((out / "config.yaml").is_file() and ((out / "data").is_dir() or entries == {"config.yaml"})):
            raise LtauError(f"{out}: holds files but no ltau-md campaign (config.yaml and data/), which the campaign's "
                            "would mix with; choose a new or empty directory")  # fmt: skip
    try:
        out.mkdir(parents=True)
        created = True  # by this process: a refusal below leaves no trace of it
    except FileExistsError:
        created = False
    # one process runs a campaign (a --resume started twice, a requeued job beside the first), and
    # one campaign a PostgreSQL queue: the second is refused before it changes anything
    busy = f"{out}: another 'ltau-md loop' (pid {{pid}}) is running this campaign; wait for it to end, or stop it first"
    with pidfile.exclusive(out / LOCK, busy):
        try:
            with nullcontext() if cfg["queue"] == "auto" else campaign_lock(cfg["queue"]):
                if resume:
                    for trash in out.glob(f"*/.iter*{TRASH}"):  # a removal cut short
                        _remove_trash(trash)
                else:
                    if cfg["queue"] != "auto":
                        _check_queue_is_free(cfg, out)
                    _start_over(cfg, out)
                atomic_write.write_bytes(out / "config.yaml", yaml.safe_dump(cfg, sort_keys=False).encode())
                rows, tasks = _run_strategies(cfg, out, resume)
        except LtauError:
            if created and {p.name for p in out.iterdir()} == {LOCK}:  # refused before anything was written (lock still held)
                (out / LOCK).unlink()
                out.rmdir()
            raise
    text = write_report(rows, out)
    plot_campaign(rows, tasks, out / "campaign.png")
    return {"config": cfg, "rows": rows, "text": text}


def read_frames(path: Path) -> list:
    from ase.io import read

    return read(path, ":")


def write_report(rows: list[dict[str, Any]], out: Path) -> str:
    header = (
        f"{'strategy':8s} {'it':>2s} {'frames':>6s} {'test MAE':>9s} {'MD steps':>9s} {'T (K)':>6s} {'halt':>4s} {'cand':>4s} "
        f"{'dup':>4s} {'added':>5s} {'flagged':>7s} {'high':>5s} {'P':>5s} {'R':>5s} {'F1':>5s} {'R@P.5':>6s}"
    )
    lines = [header]
    for r in rows:
        lines.append(
            f"{r['strategy']:8s} {r['iteration']:2d} {r['dataset_frames']:6d} {r['test_force_mae']:9.4f} {r['md_steps_run']:9d} "
            f"{r['md_target_temperature_reached']:6.0f} "
            f"{'yes' if r['md_halted'] else 'no':>4s} {r['candidates_found']:4d} {r.get('duplicates', 0):4d} {r['frames_added']:5d} {r['flagged_atoms']:7d} "
            f"{r['high_error_atoms']:5d} {r['precision']:5.2f} {r['recall']:5.2f} {r['f1']:5.2f} {r.get('recall_at_precision_0.5', float('nan')):6.2f}"
        )
    lines.append("T: the highest ramp temperature a walker reached when it ended (halt or end); "
                 "test MAE: force-component MAE (eV/Å) on held-out reference frames at the test temperatures; "
                 "P/R/F1: atoms flagged by fix ltau (predicted error > lo) vs atoms with true |ΔF| above the "
                 "Maxwell error cutoff at the same N, over every checked MD frame of every walker; cand: frames queued, dup: frames recorded as "
                 "duplicates (flagged atoms all within the calibrated latent distance of known environments); "
                 "f1_map_*.png: F1 over both cutoffs; R@P.5: the best recall any lo reaches with precision ≥ 0.5 "
                 "(error cutoff as above)")  # fmt: skip
    for r in rows:
        lines += ["", f"{r['strategy']} iteration {r['iteration']}: walkers",
                  (f"  {'walker':10s} {'system':6s} {'T start→end (K)':>16s} {'ranks':>5s} {'steps':>11s} {'halt':>4s} {'cand':>4s} {'dup':>4s} "
                   f"{'P':>5s} {'R':>5s} {'F1':>5s} {'wall s':>7s}")]  # fmt: skip
        for w in r.get("walkers", []):
            lines.append(f"  {w['name']:10s} {w['system']:6s} {w['t_start']:7.0f}→{w['t_end']:<8.0f} {w['ranks']:5d} {w['steps_run']:5d}/{w['steps']:<5d} "
                         f"{'yes' if w['halted'] else 'no':>4s} {w['candidates']:4d} {w['duplicates']:4d} {w['precision']:5.2f} {w['recall']:5.2f} "
                         f"{w['f1']:5.2f} {w['wall_s'] or float('nan'):7.1f}")  # fmt: skip
        if r.get("test_predicted_over_true"):
            lines.append("  test frames, mean predicted / true force error: "
                         + ", ".join(f"{t} K {v:.2f}" for t, v in r["test_predicted_over_true"].items()))
        if r.get("calibration_frames_held_out"):
            lines.append(f"  error model fitted on the validation frames and {r['calibration_frames_held_out']} labelled frame(s) of earlier "
                         "iterations kept out of training")  # fmt: skip
        if r.get("calibration_frames_labelled"):
            lines.append(f"  {r['calibration_frames_labelled']} checked MD frame(s) labelled for the calibration of later iterations")
        if r.get("frames_held_out"):
            lines.append(f"  {r['frames_held_out']} harvested frame(s) held out of training for the calibration of later iterations")
        stages = r.get("stage_s", {})
        if stages:
            lines.append("  wall time per stage (s): " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
    text = "\n".join(lines)
    atomic_write.write_bytes(out / "report.txt", (text + "\n").encode())
    plot_report(rows, out / "loop.png")
    return text


def plot_campaign(rows: list[dict[str, Any]], tasks: list[dict[str, Any]], path: Path) -> None:
    """Where the campaign's time went: wall time per stage and iteration, and every engine task
    (training members, walkers, reference labels) on a time line, one row per task."""
    from ltau_md.plots import plt, save_figure

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [1, 2]})
    labels = [f"{r['strategy']} {r['iteration']}" for r in rows]
    stages = list(dict.fromkeys(s for r in rows for s in r.get("stage_s", {})))
    bottom = np.zeros(len(rows))
    for st in stages:
        v = np.array([r.get("stage_s", {}).get(st, 0.0) for r in rows])
        ax0.bar(labels, v, bottom=bottom, label=st)
        bottom += v
    ax0.set(ylabel="wall time (s)", title="stages per iteration")
    ax0.legend(fontsize=7)
    colors = {"train": "C0", "md": "C2", "relabel": "C3"}
    done = [t for t in tasks if t["start"] is not None and t["end"] is not None]
    for i, t in enumerate(done):
        ax1.barh(i, t["end"] - t["start"], left=t["start"], color=colors.get(t["stage"], "C7"), alpha=0.9 if t["ok"] else 0.3)
    ax1.set_yticks(range(len(done)), [f"{t['stage']}: {t['name']}" for t in done], fontsize=6)
    ax1.set(xlabel="time since the campaign started (s)", title="engine tasks (concurrent bars ran at once)")
    ax1.invert_yaxis()
    fig.tight_layout()
    save_figure(fig, path)


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
