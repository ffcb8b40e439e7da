"""The nequip-train callback under Lightning DDP (2 CPU ranks, gloo): every atom once per epoch,
the same errors and p-values as a single process evaluating the same weights, one writer.

One real ``nequip-train`` run with ``strategy: ddp, devices: 2`` (Lightning's subprocess launcher
re-runs the command for rank 1) on 7 frames, so the DistributedSampler pads each epoch with one
repeated frame. It carries both loggers (``train_step`` and ``epoch_end``) and :class:`DdpProbe`,
a callback that records on every rank which frames each training step held and, on rank 0, the
raw weights each step's forward used: the single-process reference is computed from those.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

pytest.importorskip("nequip")

from ltau_md.error_log import ErrorLog, ErrorLogWriter  # noqa: E402
from ltau_md.nequip.error_logger import (  # noqa: E402
    FRAME_KEY,
    PerAtomForceErrorLogger,
    _gather_to_rank_zero,
    first_occurrences,
)
from ltau_md.pvalues import p_values, training_statistics  # noqa: E402

TESTS = Path(__file__).resolve().parent
EPOCHS = 2
BATCH = 2


class DdpProbe(Callback):
    """Runs inside nequip-train on every rank (the config names it; ``tests/`` is on PYTHONPATH)."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.steps: list[dict] = []
        self.writers: dict[str, bool] = {}

    def on_train_start(self, trainer, pl_module) -> None:  # after the loggers' (listed before it)
        self.writers = {str(c.out_dir): c.writer is not None for c in trainer.callbacks if isinstance(c, PerAtomForceErrorLogger)}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.steps.append({"epoch": trainer.current_epoch, "step": trainer.global_step, "frames": batch[FRAME_KEY].view(-1).tolist()})
        if trainer.global_rank == 0:  # DDP keeps the ranks' weights equal: rank 0's stand for both
            self.out_dir.mkdir(parents=True, exist_ok=True)
            torch.save(pl_module.model.state_dict(), self.out_dir / f"step{trainer.global_step}.pt")

    def on_train_end(self, trainer, pl_module) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        record = {"rank": trainer.global_rank, "world_size": trainer.world_size, "pid": os.getpid(),
                  "writers": self.writers, "steps": self.steps}
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def _subset(src: Path, n: int, dest: Path) -> Path:
    from ase.io import read, write

    write(str(dest), read(str(src), index=f":{n}"), format="extxyz")
    return dest


@pytest.fixture(scope="module")
def ddp_run(li_data, tmp_path_factory) -> Path:
    """3 + 4 = 7 training frames over 2 ranks: each epoch 8 sampler slots, one frame twice."""
    from test_error_logger import TINY

    from ltau_md.nequip.training import CALLBACK_TARGET, default_config, member_config, run_member

    d = tmp_path_factory.mktemp("ddp")
    data = [_subset(li_data["train_a"], 3, d / "train_a.xyz"), _subset(li_data["train_b"], 4, d / "train_b.xyz")]
    val = _subset(li_data["val"], 2, d / "val.xyz")
    run_dir = d / "run"
    cfg = default_config(data, [val], ["Li"], EPOCHS, BATCH, 0.01, TINY)  # lr > 0: every step moves the weights
    cfg["trainer"].update({"devices": 2, "strategy": "ddp"})
    cfg["trainer"]["callbacks"].append({
        "_target_": "lightning.pytorch.callbacks.ModelCheckpoint", "dirpath": str(run_dir / "epochs"),
        "filename": "{epoch}", "save_top_k": -1, "every_n_epochs": 1,
    })
    cfg = member_config(cfg, run_dir, seed=0, epochs=None, log_mode="train_step", log_dtype="float32")
    cfg["trainer"]["callbacks"] += [
        # batch_size 1: rank 0 scores 4 frames in 4 forwards, rank 1 3 in 3 (uneven, no deadlock)
        {"_target_": CALLBACK_TARGET, "out_dir": str(run_dir / "ltau_errors_epoch_end"), "mode": "epoch_end",
         "dtype": "float32", "batch_size": 1},
        {"_target_": "test_error_logger_ddp.DdpProbe", "out_dir": str(run_dir / "probe")},
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
        try:
            run_member(cfg, run_dir, "ddp", EPOCHS)
        except Exception as exc:
            log = (run_dir / "train.log").read_text(errors="replace")[-4000:]
            raise AssertionError(f"DDP nequip-train failed: {exc}\n{log}") from None
    return run_dir


def _probe(run_dir: Path) -> list[dict]:
    ranks = [json.loads((run_dir / "probe" / f"rank{r}.json").read_text()) for r in range(2)]
    assert [p["world_size"] for p in ranks] == [2, 2] and ranks[0]["pid"] != ranks[1]["pid"]
    return ranks


def _first_steps(ranks: list[dict], epoch: int, n_frames: int) -> tuple[np.ndarray, list[list[int]]]:
    """Per frame, the global step of its first occurrence in the sampler's order (local position
    × R + rank), and per frame the steps of all its occurrences."""
    best: dict[int, tuple[int, int]] = {}
    seen: list[list[int]] = [[] for _ in range(n_frames)]
    for p in ranks:
        pos = 0
        for s in (s for s in p["steps"] if s["epoch"] == epoch):
            for f in s["frames"]:
                order = pos * len(ranks) + p["rank"]
                if f not in best or order < best[f][0]:
                    best[f] = (order, s["step"])
                seen[f].append(s["step"])
                pos += 1
    assert sorted(best) == list(range(n_frames)), f"epoch {epoch}: the ranks together missed frames"
    return np.array([best[f][1] for f in range(n_frames)]), seen


def _model_at(run_dir: Path, state_file: Path):
    """The raw weights a step's forward used, as an ltau-md model (structure from last.ckpt)."""
    import hydra
    from nequip.utils.global_state import set_global_state

    from ltau_md.nequip.model import NequIPModel

    set_global_state()
    ckpt = run_dir / "last.ckpt"
    ck = torch.load(ckpt, map_location="cpu", weights_only=False)
    cls = hydra.utils.get_class(ck["hyper_parameters"]["info_dict"]["training_module"]["_target_"])
    lm = cls.load_from_checkpoint(str(ckpt), map_location="cpu", weights_only=False)
    lm.model.load_state_dict(torch.load(state_file, map_location="cpu"))
    gm = lm.model["sole_model"].eval()
    for p in gm.parameters():
        p.requires_grad_(False)
    return NequIPModel(gm, ckpt, "float32")


def _frame_starts(log: ErrorLog) -> np.ndarray:
    a = log.atoms
    return np.flatnonzero(np.r_[True, (np.diff(a.source) != 0) | (np.diff(a.frame) != 0), True])


def _reference_log(path: Path, log: ErrorLog, rows: list[np.ndarray]) -> ErrorLog:
    w = ErrorLogWriter(path, log.atoms)
    for e, row in zip(log.epochs, rows):
        w.write_epoch(int(e), row)
    return ErrorLog(path)


def _clear_atols(errors: np.ndarray, margin: float) -> list[float]:
    """Thresholds around 0.5, 1 and 2 × the mean error, each moved off every logged error by more
    than ``margin`` (p-values step there; equal within float tolerance is then well defined)."""
    values = np.sort(errors.ravel())
    out = []
    for target in np.mean(errors) * np.array([0.5, 1.0, 2.0]):
        candidates = (values[:-1] + values[1:]) / 2
        gaps = values[1:] - values[:-1]
        ok = gaps > 2 * margin
        out.append(float(candidates[ok][np.argmin(np.abs(candidates[ok] - target))]))
    return out


def _assert_same_p_values(ddp: ErrorLog, ref: ErrorLog, tol: float) -> None:
    for atol in _clear_atols(np.asarray(ref.errors()), tol):
        np.testing.assert_array_equal(p_values(ddp, atol), p_values(ref, atol))
        a, b = training_statistics([ddp], atol=atol), training_statistics([ref], atol=atol)
        np.testing.assert_array_equal(a.p_mean, b.p_mean)
        np.testing.assert_allclose(a.errors.quantiles, b.errors.quantiles, atol=tol)


# -- no training: the dedup rule and the gather ---------------------------------------------------


@pytest.mark.parametrize("n,world", [(7, 2), (5, 3), (1, 2), (6, 2)])
def test_padding_repeats_are_dropped_keeping_each_frames_original_slot(n, world):
    """The rule the callback applies to a DistributedSampler's epoch: order = local position × R +
    rank keeps, for every frame, its slot in the shuffled list and drops the padded tail's repeats."""
    from torch.utils.data import DistributedSampler

    per_rank = []
    for r in range(world):
        s = DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=True, seed=3)
        s.set_epoch(1)
        per_rank.append(list(s))
    slots = len(per_rank[0]) * world
    assert slots >= n
    cols, order, errs = [], [], []
    for r, frames in enumerate(per_rank):
        for j, f in enumerate(frames):
            cols.append(f)
            order.append(j * world + r)
            errs.append(float(j * world + r))  # the error names the slot it came from
    kept_cols, kept = first_occurrences(np.array(cols), np.array(order), np.array(errs, dtype=np.float32))
    assert sorted(kept_cols.tolist()) == list(range(n))  # each frame exactly once
    assert np.all(kept < n)  # never a slot of the padding (slots n .. slots-1 repeat slots 0 ..)
    # and the kept slot is where the sampler's full list holds the frame first
    full = [per_rank[k % world][k // world] for k in range(slots)]
    np.testing.assert_array_equal(kept[np.argsort(kept_cols)], [full.index(f) for f in range(n)])


def _gather_worker(rank: int, init: str, counts: list[int], out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=len(counts))
    try:
        rows = np.full((counts[rank], 3), float(rank))
        rows[:, 1] = np.arange(counts[rank])
        got = _gather_to_rank_zero(rows, trainer=None)
        if rank == 0:
            np.save(out, got)
        else:
            assert got is None
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned ranks each import nequip
def test_gather_to_rank_zero_concatenates_uneven_shards_including_an_empty_one(tmp_path):
    counts = [0, 3]  # rank 0 itself empty: the padded gather must still take only real rows
    out = tmp_path / "got.npy"
    torch.multiprocessing.spawn(_gather_worker, args=(f"file://{tmp_path / 'rdv'}", counts, str(out)), nprocs=len(counts))
    got = np.load(out)
    want = np.concatenate([np.c_[np.full(k, r), np.arange(k), np.full(k, r)] for r, k in enumerate(counts)])
    np.testing.assert_array_equal(got, want)


# -- a real 2-rank DDP run ---------------------------------------------------------------------------


@pytest.mark.slow
def test_ddp_logs_every_training_atom_exactly_once_per_epoch_in_both_modes(ddp_run):
    ranks = _probe(ddp_run)
    for name in ("ltau_errors", "ltau_errors_epoch_end"):
        log = ErrorLog(ddp_run / name)
        assert log.epochs.tolist() == list(range(EPOCHS))
        assert log.n_atoms == 7 * 54
        assert not np.isnan(np.asarray(log.errors())).any()  # no atom missing
    # the padding really repeated a frame in every epoch (else this run would test nothing)
    for t in range(EPOCHS):
        _, seen = _first_steps(ranks, t, 7)
        assert sorted(len(s) for s in seen) == [1] * 6 + [2]


@pytest.mark.slow
def test_ddp_train_step_errors_are_each_frames_first_forward_and_give_single_process_p_values(ddp_run, tmp_path):
    """lr > 0, so a repeated frame's two forwards (different steps, different weights) differ: the log
    must hold the one at its first slot in the sampler's order, not the padding's — and the p-values
    equal those of errors recomputed in this (single) process from the weights of that step."""
    from ltau_md.training_set import training_frames
    from ltau_md.user_input import reference_forces

    ranks = _probe(ddp_run)
    log = ErrorLog(ddp_run / "ltau_errors")
    starts = _frame_starts(log)
    frames = training_frames(log.atoms)
    assert len(frames) == 7
    by_step: dict[int, np.ndarray] = {}

    def errors_at(step: int) -> np.ndarray:
        if step not in by_step:
            model = _model_at(ddp_run, ddp_run / "probe" / f"step{step}.pt")
            res = model.evaluate(frames)
            by_step[step] = np.concatenate([np.linalg.norm(r.forces - reference_forces(a), axis=1) for a, r in zip(frames, res)])
        return by_step[step]

    rows = []
    for t in range(EPOCHS):
        first, seen = _first_steps(ranks, t, 7)
        want = np.empty(log.n_atoms, dtype=np.float32)
        for f in range(7):
            cols = slice(starts[f], starts[f + 1])
            want[cols] = errors_at(int(first[f]))[cols]
            for other in set(seen[f]) - {int(first[f])}:  # the padding's forward is distinguishable
                assert np.abs(errors_at(other)[cols] - want[cols]).max() > 1e-3
        np.testing.assert_allclose(np.asarray(log.errors())[t], want, atol=2e-5)
        rows.append(want)
    _assert_same_p_values(log, _reference_log(tmp_path / "ref", log, rows), 2e-5)


@pytest.mark.slow
def test_ddp_epoch_end_errors_and_p_values_equal_a_single_process_pass_over_each_epochs_checkpoint(ddp_run, tmp_path):
    from test_error_logger import recomputed_errors

    from ltau_md.nequip.model import NequIPModel

    log = ErrorLog(ddp_run / "ltau_errors_epoch_end")
    rows = []
    for t in range(EPOCHS):
        model = NequIPModel.load(ddp_run / "epochs" / f"epoch={t}.ckpt")  # EMA weights, as saved
        rows.append(recomputed_errors(model, log).astype(np.float32))
        np.testing.assert_allclose(np.asarray(log.errors())[t], rows[-1], atol=2e-5)
    _assert_same_p_values(log, _reference_log(tmp_path / "ref", log, rows), 2e-5)


@pytest.mark.slow
def test_ddp_only_rank_zero_writes_the_error_logs(ddp_run):
    ranks = _probe(ddp_run)
    names = {str(ddp_run / "ltau_errors"), str(ddp_run / "ltau_errors_epoch_end")}
    assert ranks[0]["writers"] == dict.fromkeys(names, True)
    assert ranks[1]["writers"] == dict.fromkeys(names, False)
    for name in names:
        d = Path(name)
        assert sorted(p.name for p in d.iterdir()) == ["atoms.npz", "errors.bin", "meta.json"]  # no stray temp files
        meta = json.loads((d / "meta.json").read_text())
        assert meta["epochs"] == list(range(EPOCHS))  # each epoch committed once, in order
        assert meta["metadata"]["world_size"] == 2
        assert (d / "errors.bin").stat().st_size == EPOCHS * meta["n_atoms"] * 4  # no row written twice
