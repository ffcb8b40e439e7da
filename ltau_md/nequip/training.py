"""``ltau-md train``: M nequip-train runs (different model seeds, same data split), each logging
every training atom's force error every epoch.

Output directory (a valid MODEL argument everywhere; its first member is the production model)::

    DIR/ensemble.json       members, data files, settings
    DIR/seed0/config.yaml   the nequip config that ran (hydra output pinned here, so
    DIR/seed0/best.ckpt     ``nequip-train -cp DIR/seed0 -cn config.yaml ++ckpt_path=...``
    DIR/seed0/last.ckpt      resumes into the same error log)
    DIR/seed0/ltau_errors/  the error log (ltau_md.error_log format)
    DIR/seed0/train.log     nequip-train's output
"""

from __future__ import annotations

import copy
import datetime as _dt
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ltau_md import __version__, atomic_write, pidfile
from ltau_md.error_log import ErrorLog
from ltau_md.errors import ErrorLogError, LtauError, RunFailed
from ltau_md.nequip.model import MODEL_DIR_FILE, model_dir_members
from ltau_md.species import symbols
from ltau_md.user_input import read_yaml_mapping

CALLBACK_TARGET = "ltau_md.nequip.PerAtomForceErrorLogger"
DATA_SEED = 456

# Small and CPU-friendly: trains on a few hundred atoms in seconds per epoch on 2 cores.
DEFAULT_MODEL = {
    "r_max": 5.0,
    "num_layers": 2,
    "l_max": 1,
    "num_features": 32,
    "radial_mlp_depth": 1,
    "radial_mlp_width": 32,
}


def _frames_species(paths: Sequence[Path]) -> list[str]:
    from ase.io import iread

    zs: set[int] = set()
    for p in paths:
        for atoms in iread(str(p)):
            zs.update(int(z) for z in np.unique(atoms.numbers))
    return symbols(sorted(zs))


def check_training_files(paths: Sequence[Path], species: Sequence[str] | None = None) -> bool:
    """Every frame has energy and finite forces (and only ``species``, when given): said now, in
    one line naming file and frame, rather than by nequip-train minutes later. Returns whether
    every frame carries a stress too (make-data's MEAM frames and periodic relabelled ones do):
    only then can stress be in the loss, as nequip batches only frames with the same fields."""
    from ltau_md.species import symbol, to_numbers
    from ltau_md.user_input import is_prediction, read_frames

    if species:
        to_numbers(np.asarray(species, dtype=str), "--species")
    allowed = set(species) if species else None
    all_stress = True
    for p in paths:
        for i, atoms in enumerate(read_frames(p, need_forces=True, what="training frames")):
            if is_prediction(atoms):  # nequip-train would read the model's own forces as the labels
                raise LtauError(f"{p}: frame {i} is 'ltau-md predict' output (its forces are the model's); train on the reference frames")
            calc = atoms.calc
            if calc is None or "energy" not in getattr(calc, "results", {}) or not np.isfinite(calc.results["energy"]):
                raise LtauError(f"{p}: frame {i} has no reference energy (write it with the frame, e.g. extxyz energy=)")
            if allowed is not None:
                extra = sorted({symbol(z) for z in atoms.numbers} - allowed)
                if extra:
                    raise LtauError(f"{p}: frame {i} holds {', '.join(extra)}, not in --species {' '.join(species)}; add it to --species")
            all_stress = all_stress and "stress" in calc.results
    return all_stress


def _count_frames(paths: Sequence[Path]) -> int:
    from ase.io import iread

    return sum(1 for p in paths for _ in iread(str(p)))


# The stress term's weight, (eV/Å³)⁻², against the forces' 10 (eV/Å)⁻²: a 1 GPa stress error
# (0.0062 eV/Å³) weighs as much as a 0.06 eV/Å force-component error. Without stress a LiMg model
# (24 frames of 600 K NPT, 60 epochs) put +3.3 GPa on validation frames where MEAM gives 0, and a
# 600 K NPT run of it expanded 14× in 4 ps; with 1000: −0.04 GPa, force MAE 0.044 against 0.047
# eV/Å (100: 2.3 GPa; 3000: no better; at 20 epochs 1000 still costs force accuracy). Its NPT run
# held the volume for 1.5 ps, then expanded too: data at one density leave the equation of state
# away from it untrained (training frames at other densities are what fixes that).
DEFAULT_STRESS_WEIGHT = 1000.0
# Labels the loss does not use (stress only where some frame lacks it, see train). Excluded so that
# files from different sources (make-data with per-atom energies and free energy, relabelled
# candidates, DFT) can be trained on together: nequip refuses to batch frames whose fields differ.
UNUSED_LABELS = ["energies", "free_energy", "stress", "magmom", "magmoms", "charges", "dipole", "virial"]


def _ase_datasets(paths: Sequence[Path], stress: bool = False) -> dict[str, Any]:
    return {
        "_target_": "torch.utils.data.ConcatDataset",
        "datasets": [
            {
                "_target_": "nequip.data.dataset.ASEDataset",
                "file_path": str(p),
                "transforms": "${transforms}",
                "exclude_keys": [k for k in UNUSED_LABELS if not (stress and k == "stress")],
            }
            for p in paths
        ],
    }


TRANSFORMS = [
    {"_target_": "nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper", "model_type_names": "${model_type_names}"},
    {"_target_": "nequip.data.transforms.NeighborListTransform", "r_max": "${cutoff_radius}"},
]


def data_config(data: Sequence[Path], val: Sequence[Path] | None, batch_size: int = 4, stress: bool = False) -> dict[str, Any]:
    """The ``data:`` section: training files concatenated (ids stay per file), validation either
    given or 10 % of the frames split off with a fixed seed (the same split for every member);
    ``stress``: the frames' stress labels are read too."""
    if val:
        datasets: dict[str, Any] = {"train_dataset": _ase_datasets(data, stress), "val_dataset": _ase_datasets(val, stress)}
    else:
        n = _count_frames(data)
        if n < 2:
            raise LtauError(f"{data[0]}: {n} frame(s); need at least 2 to split off validation (or pass --val)")
        n_val = max(1, round(0.1 * n))
        datasets = {"split_dataset": {"dataset": _ase_datasets(data, stress), "train": n - n_val, "val": n_val}}
    return {
        "_target_": "nequip.data.datamodule.NequIPDataModule",
        "seed": DATA_SEED,
        **datasets,
        "train_dataloader": {"_target_": "torch.utils.data.DataLoader", "batch_size": batch_size, "shuffle": True},
        "val_dataloader": {"_target_": "torch.utils.data.DataLoader", "batch_size": batch_size},
        "stats_manager": {"_target_": "nequip.data.CommonDataStatisticsManager", "type_names": "${model_type_names}"},
    }


def default_config(
    data: Sequence[Path],
    val: Sequence[Path] | None,
    species: list[str],
    epochs: int,
    batch_size: int = 4,
    lr: float = 0.01,
    model: dict[str, Any] | None = None,
    force_weight: float = 10.0,
    stress_weight: float = 0.0,
) -> dict[str, Any]:
    """The nequip 0.19 config ltau-md trains with unless the user brings one. ``stress_weight`` > 0:
    stress is in the loss too (the frames must all carry it: :func:`check_training_files`)."""
    m = {**DEFAULT_MODEL, **(model or {})}
    coeffs = {"total_energy": 1.0, "forces": float(force_weight)}
    if stress_weight > 0:
        coeffs["stress"] = float(stress_weight)
    return {
        "run": ["train"],
        "cutoff_radius": float(m["r_max"]),
        "model_type_names": list(species),
        "chemical_species": "${model_type_names}",
        "transforms": copy.deepcopy(TRANSFORMS),
        "data": data_config(data, val, batch_size, stress=stress_weight > 0),
        "trainer": {
            "_target_": "lightning.Trainer",
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": int(epochs),
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
            "logger": {"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": "${hydra:runtime.output_dir}"},
            "callbacks": [
                {
                    "_target_": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "monitor": "val0_epoch/weighted_sum",
                    "dirpath": "${hydra:runtime.output_dir}",
                    "filename": "best",
                    "save_last": True,
                }
            ],
        },
        "training_module": {
            "_target_": "nequip.train.EMALightningModule",
            "ema_decay": 0.99,
            "loss": {
                "_target_": f"nequip.train.{'EnergyForceStressLoss' if stress_weight > 0 else 'EnergyForceLoss'}",
                "per_atom_energy": True,
                "coeffs": coeffs,
            },
            "val_metrics": {
                "_target_": "nequip.train.EnergyForceMetrics",
                "coeffs": {"total_energy_mae": 1.0, "forces_mae": 1.0},
            },
            "train_metrics": "${training_module.val_metrics}",
            "optimizer": {"_target_": "torch.optim.Adam", "lr": float(lr), "amsgrad": True},
            "model": {
                "_target_": "nequip.model.NequIPGNNModel",
                "seed": 0,
                "model_dtype": "float32",
                "type_names": "${model_type_names}",
                "r_max": "${cutoff_radius}",
                "num_layers": int(m["num_layers"]),
                "l_max": int(m["l_max"]),
                "parity": True,
                "num_features": int(m["num_features"]),
                "radial_mlp_depth": int(m["radial_mlp_depth"]),
                "radial_mlp_width": int(m["radial_mlp_width"]),
                "avg_num_neighbors": "${training_data_stats:num_neighbors_mean}",
                "per_type_energy_scales": "${training_data_stats:forces_rms}",
                "per_type_energy_shifts": "${training_data_stats:per_atom_energy_mean}",
            },
        },
    }


def weighted_loss(cfg: dict[str, Any], weights_file: Path) -> None:
    """Swap the loss for per-atom-energy MSE + per-atom-weighted force MSE (+ stress MSE) and add
    the weights callback (coefficients kept from an EnergyForce[Stress]Loss when the config had one)."""
    loss = cfg["training_module"].get("loss") or {}
    target = str(loss.get("_target_", ""))
    coeffs = dict(loss.get("coeffs") or {}) if target.endswith(("EnergyForceLoss", "EnergyForceStressLoss")) else {}
    cfg["training_module"]["loss"] = {
        "_target_": "nequip.train.MetricsManager",
        "metrics": [
            {
                "name": "per_atom_energy_mse",
                "field": {"_target_": "nequip.data.PerAtomModifier", "field": "total_energy"},
                "coeff": float(coeffs.get("total_energy", 1.0)),
                "metric": {"_target_": "nequip.train.MeanSquaredError"},
            },
            {
                "name": "forces_weighted_mse",
                "field": None,
                "coeff": float(coeffs.get("forces", 10.0)),
                "metric": {"_target_": "ltau_md.nequip.loss_weights.WeightedForceMSE"},
            },
        ],
    }
    if target.endswith("EnergyForceStressLoss"):  # the stress term stays, unweighted (one value per frame)
        cfg["training_module"]["loss"]["metrics"].append({
            "name": "stress_mse", "field": "stress", "coeff": float(coeffs.get("stress", 1.0)),
            "metric": {"_target_": "nequip.train.MeanSquaredError"},
        })  # fmt: skip
    callbacks = cfg["trainer"].setdefault("callbacks", [])
    callbacks.insert(0, {"_target_": "ltau_md.nequip.loss_weights.PerAtomLossWeights", "weights_file": str(weights_file)})


def member_config(
    base: dict[str, Any], run_dir: Path, seed: int, epochs: int | None, log_mode: str, log_dtype: str
) -> dict[str, Any]:
    """One ensemble member: its model seed, its pinned output dir, and the error-log callback."""
    cfg = copy.deepcopy(base)
    try:
        model, trainer = cfg["training_module"]["model"], cfg["trainer"]
    except (KeyError, TypeError):
        raise LtauError("the nequip config needs 'trainer' and 'training_module.model' sections") from None
    if not isinstance(model, dict) or not isinstance(trainer, dict):
        raise LtauError("the nequip config's 'trainer' and 'training_module.model' must be mappings (key: value sections)")
    model["seed"] = int(seed)
    if epochs is not None:
        trainer["max_epochs"] = int(epochs)
    callbacks = [c for c in trainer.get("callbacks") or [] if c.get("_target_") != CALLBACK_TARGET]
    callbacks.append({"_target_": CALLBACK_TARGET, "out_dir": str(run_dir / "ltau_errors"), "mode": log_mode, "dtype": log_dtype})
    trainer["callbacks"] = callbacks
    cfg.setdefault("hydra", {}).setdefault("run", {})["dir"] = str(run_dir)
    return cfg


def _tail(path: Path, n: int = 1) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return ""
    return " | ".join(lines[-n:])


def _progress_lines(log_dir: Path, label: str, epochs: int | None, shown: int) -> list[str]:
    """One line per epoch logged after the first ``shown`` (a poll can find several finished)."""
    try:
        log = ErrorLog(log_dir)
    except ErrorLogError:
        return []
    total = f"/{epochs}" if epochs else ""
    return [f"{label}: epoch {int(log.epochs[i]) + 1}{total}, mean training force error "
            f"{float(np.nanmean(log.epoch_errors(i))):.4f} eV/Å" for i in range(shown, log.n_epochs)]


def _print_progress(log_dir: Path, label: str, epochs: int | None, shown: int) -> int:
    lines = _progress_lines(log_dir, label, epochs, shown)
    for line in lines:
        print(line, file=sys.stderr, flush=True)
    return shown + len(lines)


FAILED = "failed.json"  # written beside a member whose nequip-train failed
FINISHED = "finished.json"
PIDFILE = "train.pid"


def run_member(config: dict[str, Any], run_dir: Path, label: str, epochs: int | None, resume: Path | None = None) -> None:
    """Run nequip-train for one member, showing one progress line per finished epoch."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write.write_bytes(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False).encode())
    exe = Path(sys.executable).parent / "nequip-train"
    cmd = [str(exe) if exe.exists() else "nequip-train", "-cp", str(run_dir.resolve()), "-cn", "config.yaml"]
    if resume is not None:
        # quoted for hydra's override grammar: checkpoint names like epoch=3.ckpt hold '='
        quoted = str(Path(resume).resolve()).replace("\\", "\\\\").replace("'", "\\'")
        cmd.append(f"++ckpt_path='{quoted}'")
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore")
    shown = 0

    def progress() -> None:
        nonlocal shown
        shown = _print_progress(run_dir / "ltau_errors", label, epochs, shown)

    with open(run_dir / "train.log", "ab") as out:
        # in the caller's working directory: relative paths in a user's config mean what they do for nequip-train;
        # interrupted (or the engine's worker told to stop): the training is killed, not left running
        returncode = pidfile.run_recorded(cmd, run_dir / PIDFILE, "nequip-train", out, env=env, poll=progress)
    progress()
    if returncode != 0:
        message = f"{label}: nequip-train failed (exit {returncode}); see {run_dir / 'train.log'}: {_tail(run_dir / 'train.log')[-300:]}"
        atomic_write.write_json(run_dir / FAILED, {"exit": returncode, "message": message})  # a retry says it failed
        raise RunFailed(message)
    if not (run_dir / "best.ckpt").is_file():
        raise LtauError(f"{label}: nequip-train wrote no best.ckpt in {run_dir}; see {run_dir / 'train.log'}")
    # the mark a resumed campaign trusts: this member trained to the end
    atomic_write.write_json(run_dir / FINISHED, {"epochs": epochs, "best": "best.ckpt"})


def run_members_serially(jobs: Sequence[tuple]) -> None:
    """The default member runner: one ``run_member(*job)`` after the other."""
    for job in jobs:
        run_member(*job)


def train(
    data: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    val: Sequence[str | os.PathLike] | None = None,
    epochs: int | None = None,
    ensemble: int = 1,
    config: str | os.PathLike | None = None,
    seed: int = 0,
    species: Sequence[str] | None = None,
    batch_size: int = 4,
    lr: float = 0.01,
    model: dict[str, Any] | None = None,
    log_mode: str = "train_step",
    log_dtype: str = "float32",
    reweight: str | None = None,
    weights_from: str | os.PathLike | None = None,
    reweight_lambda: float | None = None,
    run_members: Callable[[Sequence[tuple]], None] | None = None,
    reuse_finished: bool = False,
    stress_weight: float | None = None,
) -> Path:
    """Train ``ensemble`` models with error logging; returns the output directory.

    ``reweight`` ('easy' | 'hard') with ``weights_from`` (an artifact of an earlier model on
    these frames) weights each atom's force loss by its LTAU confidence (seed 002 §4.2).
    ``run_members`` runs the members' ``run_member`` argument tuples (default: one after the
    other; a campaign engine runs them concurrently). ``reuse_finished`` keeps members that
    trained to the end before (a resumed campaign) and trains the others afresh. ``stress_weight``
    (default ``DEFAULT_STRESS_WEIGHT``; 0: none) puts stress in the default config's loss where every
    frame has one."""
    out = Path(out)
    data_paths = [Path(p).resolve() for p in data]
    val_paths = [Path(p).resolve() for p in (val or [])]
    for p in data_paths + val_paths:
        if not p.is_file():
            raise LtauError(f"{p}: no such data file")
    have_stress = check_training_files(data_paths + val_paths, species)  # one read of the files for both
    if not species and data_paths and val_paths:
        trained = set(_frames_species(data_paths))  # read once, not once per validation file
        for p in val_paths:
            only_val = sorted(set(_frames_species([p])) - trained)
            if only_val:  # a model type with no training frame: nothing would teach it
                raise LtauError(f"{p}: holds {', '.join(only_val)}, which no --data frame has; add frames with it to --data "
                                f"or leave it out of --val (or name it in --species on purpose)")
    if ensemble < 1:
        raise LtauError(f"--ensemble {ensemble}: need at least one model")
    if (out / MODEL_DIR_FILE).exists():
        if reuse_finished:
            return out
        raise LtauError(f"{out}: already holds a trained ensemble; choose another -o or remove it")
    started = sorted(d.name for d in out.glob("seed*") if d.is_dir()) if out.is_dir() else []
    if started and not reuse_finished:
        failed = [n for n in started if (out / n / FAILED).is_file()]
        if failed:
            raise LtauError(f"{out}: an earlier 'ltau-md train' failed ({', '.join(failed)}; see {out / failed[0] / 'train.log'}); "
                            "fix the cause, then repeat its command with --resume (finished models are kept), or choose another -o")
        done = [n for n in started if (out / n / FINISHED).is_file()]
        raise LtauError(f"{out}: an interrupted 'ltau-md train' ({len(done)} of the started models {', '.join(started)} finished); "
                        "repeat its command with --resume to keep the finished ones and train the rest, or choose another -o")
    if config is not None:
        base = read_yaml_mapping(config, "nequip config")
        if data_paths:  # the command line's data replace the config's (their stress read where all have one)
            base["data"] = data_config(data_paths, val_paths, batch_size, stress=have_stress)
            base.setdefault("transforms", copy.deepcopy(TRANSFORMS))
            base.setdefault("model_type_names", list(species or _frames_species(data_paths + val_paths)))
            base.setdefault("cutoff_radius", "${training_module.model.r_max}")
    else:
        if not data_paths:
            raise LtauError("--data: give at least one training file (extxyz with energy and forces)")
        sp = list(species) if species else _frames_species(data_paths + val_paths)
        # stress in the loss where every frame has one: without it the model's equation of state is
        # untrained, and an NPT run's box can run away (a LiMg melt expanded until no atom interacted)
        stress_weight = DEFAULT_STRESS_WEIGHT if stress_weight is None else float(stress_weight)
        with_stress = stress_weight > 0 and have_stress
        if stress_weight > 0 and not with_stress:
            print("train: some frames carry no stress; the loss is energy and forces only (NPT runs on an untrained "
                  "equation of state)")  # fmt: skip
        base = default_config(data_paths, val_paths, sp, epochs or 50, batch_size, lr, model,
                              stress_weight=stress_weight if with_stress else 0.0)  # fmt: skip
    weights_art = None
    weights_file = (out / "loss_weights.npz").resolve()
    if reweight is not None:
        from ltau_md.artifact import Artifact

        if weights_from is None:
            raise LtauError("--reweight needs --weights-from NAME.ltau (the artifact whose p-values set the weights); add it")
        weights_art = Artifact.load(weights_from)  # a bad artifact is said before anything is written
    # every member's config before anything is written: a config without its sections leaves no -o behind
    names = [f"seed{seed + m}" for m in range(ensemble)]
    try:
        if weights_art is not None:
            weighted_loss(base, weights_file)
        cfgs = [member_config(base, (out / name).resolve(), seed + m, epochs, log_mode, log_dtype) for m, name in enumerate(names)]
    except (KeyError, TypeError, AttributeError):
        raise LtauError(f"{config}: the nequip config needs a 'training_module' mapping (with 'model' and 'loss')") from None
    except LtauError as exc:
        raise LtauError(f"{config or '--config'}: {exc}") from None
    out.mkdir(parents=True, exist_ok=True)
    if weights_art is not None:
        from ltau_md.reweighting import write_weights

        write_weights(weights_file, weights_art, reweight, reweight_lambda)
    members, jobs = [], []
    for m, (name, cfg) in enumerate(zip(names, cfgs)):
        run_dir = (out / name).resolve()
        members.append({"name": name, "seed": seed + m, "checkpoint": f"{name}/best.ckpt", "error_log": f"{name}/ltau_errors"})
        if reuse_finished and (run_dir / FINISHED).is_file():
            if yaml.safe_load((run_dir / "config.yaml").read_text()) != yaml.safe_load(yaml.safe_dump(cfg, sort_keys=False)):
                raise LtauError(f"{run_dir}: trained with other data or settings than these; repeat the interrupted "
                                f"command's arguments, or choose another -o")
            continue
        if reuse_finished and run_dir.exists():
            pidfile.stop_recorded(run_dir / PIDFILE)  # a killed campaign's training of it may still run
            shutil.rmtree(run_dir)  # a member killed part-way starts again (its error log would not continue cleanly)
        jobs.append((cfg, run_dir, f"model {m + 1}/{ensemble} ({name})", cfg["trainer"].get("max_epochs")))
    (run_members or run_members_serially)(jobs)
    manifest = {
        "format": "ltau-md model dir",
        "ltau_md_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "members": members,
        "data": [str(p) for p in data_paths],
        "val": [str(p) for p in val_paths],
        "config": str(config) if config else None,
        "reweight": {"scheme": reweight, "weights_from": str(weights_from), "lambda": reweight_lambda} if reweight else None,
    }
    atomic_write.write_json(out / MODEL_DIR_FILE, manifest)
    return out


def member_error_logs(model_dir: str | os.PathLike) -> list[Path]:
    """The error-log directories of a ``ltau-md train`` output, production member first."""
    p = Path(model_dir)
    logs = []
    for m in model_dir_members(p):
        if not isinstance(m.get("error_log"), str):
            raise LtauError(f"{p / MODEL_DIR_FILE}: member {m.get('name', '?')} names no 'error_log'; re-run 'ltau-md train' or pass --logs")
        logs.append(p / m["error_log"])
    return logs
