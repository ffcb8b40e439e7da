"""Sample confidence p_i from error logs (seed 002, Algorithm 1) and its ensemble statistics.

p_i(a) = (number of logged epochs t in the window with ε_i^t ≤ a + rtol·|F_ref,i|) / (epochs with a
value for atom i). Over M logs (M training runs) μ_M(p_i) and σ_M(p_i) are the mean and population
standard deviation of the M per-run values. Everything streams over column blocks of the
memory-mapped logs, so memory stays bounded whatever E, M and N are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ltau_md.error_distribution import DEFAULT_LEVELS, ErrorDistribution, column_quantiles
from ltau_md.error_log import AtomTable, ErrorLog
from ltau_md.errors import ErrorLogError


def _count_p(block: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(block)
    n = valid.sum(axis=0)
    hits = np.sum(block <= threshold[None, :], axis=0)  # NaN compares False
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, hits / np.maximum(n, 1), np.nan)


def p_values(log: ErrorLog, atol: float, rtol: float = 0.0, window: slice | None = None) -> np.ndarray:
    """p_i(atol) of one log, in that log's column order (float64; NaN for atoms never logged)."""
    out = np.empty(log.n_atoms, dtype=np.float64)
    fref = log.atoms.fref_norm.astype(np.float64)
    for cols, block in log.column_blocks(window):
        out[cols] = _count_p(block, atol + rtol * fref[cols])
    return out


@dataclass(frozen=True, eq=False)
class TrainingStatistics:
    """What an artifact keeps per training atom, in the first log's atom order."""

    atoms: AtomTable
    p_mean: np.ndarray  # μ_M(p_i) at atol
    p_std: np.ndarray  # σ_M(p_i) at atol (0 for M = 1)
    errors: ErrorDistribution  # pooled over the window's epochs of all M logs
    atol: float
    rtol: float
    n_models: int
    n_epochs: list[int]  # epochs used per model


def _aligned_columns(logs: Sequence[ErrorLog]) -> list[np.ndarray | None]:
    """Per log, the column of each reference atom (None when the order already matches)."""
    ref = logs[0].atoms
    out: list[np.ndarray | None] = [None]
    for log in logs[1:]:
        if log.atoms.same_atoms(ref):
            out.append(None)
            continue
        cols = ref.columns_of(log.atoms)
        if len(log.atoms) != len(ref) or np.any(cols < 0):
            missing = int(np.sum(cols < 0)) + abs(len(log.atoms) - len(ref))
            raise ErrorLogError(
                f"{log.path}: {missing} training atoms differ from {logs[0].path}; "
                "the logs of one ensemble must cover the same training frames"
            )
        out.append(cols)
    return out


def training_statistics(
    logs: Sequence[ErrorLog],
    atol: float | None = None,
    rtol: float = 0.0,
    window: slice | None = None,
    levels: np.ndarray = DEFAULT_LEVELS,
    max_bytes: int = 64 << 20,
) -> TrainingStatistics:
    """μ_M(p), σ_M(p) and the pooled per-atom error distribution of an ensemble of logs.

    ``atol`` defaults to the final training error: the mean over atoms and models of the error
    norm at each log's last epoch (seed 002: atol = MAE of the trained model).
    """
    if not logs:
        raise ErrorLogError("no error logs given; pass the directories written during training")
    for log in logs:
        rows = log.rows(window)
        if rows.stop <= rows.start:
            raise ErrorLogError(f"{log.path}: the epoch window selects no logged epoch ({log.n_epochs} logged)")
    if atol is None:
        atol = float(np.mean([log.final_mae() for log in logs]))
    if not np.isfinite(atol) or atol <= 0:
        raise ErrorLogError(f"atol must be a positive number of eV/Å, got {atol}")
    ref = logs[0].atoms
    n = len(ref)
    aligned = _aligned_columns(logs)
    fref = ref.fref_norm.astype(np.float64)
    levels = np.asarray(levels, dtype=np.float64)
    p_per_model = np.empty((len(logs), n), dtype=np.float64)
    err_mean = np.empty(n, dtype=np.float32)
    err_q = np.empty((n, len(levels)), dtype=np.float32)
    mms = [log.errors() for log in logs]
    row_ranges = [log.rows(window) for log in logs]
    total_rows = sum(r.stop - r.start for r in row_ranges)
    width = max(1, max_bytes // max(1, 8 * total_rows))  # sort makes a second copy
    for c0 in range(0, n, width):
        cols = slice(c0, min(n, c0 + width))
        blocks = []
        for m, (mm, rows, colmap) in enumerate(zip(mms, row_ranges, aligned)):
            if colmap is None:
                block = np.asarray(mm[rows, cols], dtype=np.float32)
            else:
                block = np.asarray(mm[rows][:, colmap[cols]], dtype=np.float32)
            p_per_model[m, cols] = _count_p(block, atol + rtol * fref[cols])
            blocks.append(block)
        pooled = np.concatenate(blocks, axis=0)
        q, n_valid = column_quantiles(pooled, levels)
        if np.any(n_valid == 0):
            bad = c0 + int(np.argmax(n_valid == 0))
            raise ErrorLogError(
                f"{logs[0].path}: training atom {bad} (source {ref.sources[ref.source[bad]]}, frame "
                f"{ref.frame[bad]}, atom {ref.atom[bad]}) has no logged error in the window"
            )
        err_q[cols] = q
        with np.errstate(invalid="ignore"):
            err_mean[cols] = np.nanmean(pooled, axis=0)
    with np.errstate(invalid="ignore"):
        p_mean = np.nanmean(p_per_model, axis=0)
        p_std = np.nanstd(p_per_model, axis=0)
    return TrainingStatistics(
        atoms=ref,
        p_mean=p_mean,
        p_std=p_std,
        errors=ErrorDistribution(levels=levels, quantiles=err_q, mean=err_mean),
        atol=float(atol),
        rtol=float(rtol),
        n_models=len(logs),
        n_epochs=[r.stop - r.start for r in row_ranges],
    )
