"""Trajectory failure view (seed 002 §4.3): uncertainty against step, candidates and halts marked.

Reads a LAMMPS log (``log.lammps`` or ``ltau-md run -log FILE``) whose thermo output includes the
``fix ltau`` global vector — ``f_ID[1]`` (max predicted error) and ``f_ID[2]`` (mean) — across all
the runs of the script, plus optionally the candidate queue (steps of flagged frames, and the
halting frame as reason ``hi``), and draws max/mean predicted error with the lo/hi cutoffs and the
initial and maximum uncertainty (for a minimization, steps are its iterations).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ltau_md.errors import LtauError

_FIX_COL = re.compile(r"^f_([A-Za-z0-9_]+)\[(\d)\]$")
# the lines that say a run was stopped: fix ltau's own halts and LAMMPS's fix halt
_HALT = re.compile(r"^(?:WARNING: |ERROR: )?(?:fix ltau \S+: (?:soft|hard) halt at step (\d+)|Fix halt condition for fix-id \S+ met on step (\d+))")

# the line 'ltau-md run' prints at start: the run name the frames it queues carry
_RUN_NAME = re.compile(r"^ltau-md run (\S+): \d+ MPI rank")


@dataclass
class Trajectory:
    step: np.ndarray
    max_error: np.ndarray
    mean_error: np.ndarray
    fix_id: str
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    halt_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))  # where the log says a run was stopped
    run_names: list[str] = field(default_factory=list)  # the ltau-md runs the log records (the queue's ``run``)

    def halts(self, queue_halts: np.ndarray | list | None = None) -> np.ndarray:
        """Halt steps: the log's, joined with those the candidate queue records (reason ``hi``)."""
        return np.union1d(self.halt_steps, [] if queue_halts is None else queue_halts).astype(int)

    def initial_and_maximum(self) -> dict[str, float]:
        """Seed 002 §4.3's predictors of a failing relaxation or run: the max predicted error at
        the first check and the largest along the way (with its step)."""
        i = int(np.argmax(self.max_error))
        return {"initial": float(self.max_error[0]), "initial_step": int(self.step[0]),
                "maximum": float(self.max_error[i]), "maximum_step": int(self.step[i])}  # fmt: skip


def read_thermo(path: str | os.PathLike) -> list[dict[str, np.ndarray]]:
    """Every thermo block of a LAMMPS log as {column: values}. A block runs from its ``Step`` header
    to ``Loop time of`` (or the next header, or the end of a log cut short); lines in between that
    are not rows — warnings, a halt message printed just before the halting step's row, a ``fix print``'s
    numbers — are skipped."""
    return _thermo_blocks(_log_lines(path))


def halt_steps(path: str | os.PathLike) -> np.ndarray:
    """Steps at which the log says a run was halted (fix ltau soft/hard, or LAMMPS's fix halt)."""
    return _halts(_log_lines(path))


def run_names(path: str | os.PathLike) -> list[str]:
    """The ltau-md runs a log records (the ``run`` of the frames they queued), in order."""
    return _run_names(_log_lines(path))


def _run_names(lines: list[str]) -> list[str]:
    return list(dict.fromkeys(m.group(1) for m in map(_RUN_NAME.match, lines) if m))


def _thermo_lines(lines: list[str]) -> Iterator[tuple[int, str, list[str] | None, list[float] | None]]:
    """Per line of a log: (index, what, header, row), what one of ``header`` (a block's ``Step``
    line), ``end`` (its ``Loop time of``), ``row`` (a numeric line of the header's width whose step
    is an integer) or ``other``. The one reading of thermo output :func:`read_thermo` and
    :func:`log_before_step` share."""
    header = None
    for n, line in enumerate(lines):
        words = line.split()
        if words and words[0] == "Step":
            header = words
            yield n, "header", header, None
        elif header is not None and line.startswith("Loop time of"):
            yield n, "end", header, None
            header = None
        elif header is not None and len(words) == len(header) and words[0].lstrip("-").isdigit():
            try:
                row = [float(w) for w in words]
            except ValueError:
                yield n, "other", header, None
                continue
            yield n, "row", header, row
        else:
            yield n, "other", header, None


def _thermo_blocks(lines: list[str]) -> list[dict[str, np.ndarray]]:
    blocks, header, rows = [], None, []

    def close() -> None:
        kept = _steps_in_order(rows)
        if header is not None and kept:
            blocks.append({h: np.array([r[i] for r in kept]) for i, h in enumerate(header)})

    for _, what, head, row in _thermo_lines(lines):
        if what == "header":
            close()
            header, rows = head, []
        elif what == "end":
            close()
            header, rows = None, []
        elif what == "row":
            rows.append(row)
    close()
    return blocks


def log_before_step(lines: list[str], step: int) -> list[str]:
    """The lines of a LAMMPS log up to its first thermo row at ``step`` or later: what a run
    resumed from a restart at ``step`` keeps of the log of the run it continues (it prints
    that row again). A last line cut short (a killed writer) goes too."""
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    for n, what, _, row in _thermo_lines(lines):
        if what == "row" and row[0] >= step:
            return lines[:n]
    return list(lines)


def _steps_in_order(rows: list[list[float]]) -> list[list[float]]:
    """The rows of a block whose steps never go back, leaving out stray numeric lines of a row's width
    (a ``fix print``'s) one at a time: a line whose step goes back is stray unless the lines after it
    go back too, in which case the line before it was (its step ran ahead of the rows)."""
    kept: list[list[float]] = []
    for i, row in enumerate(rows):
        if not kept or row[0] >= kept[-1][0]:
            kept.append(row)
        elif len(kept) >= 2 and row[0] >= kept[-2][0] and (i + 1 == len(rows) or rows[i + 1][0] < kept[-1][0]):
            kept[-1] = row
    return kept


def _halts(lines: list[str]) -> np.ndarray:
    steps = [int(m.group(1) or m.group(2)) for m in map(_HALT.match, lines) if m]
    return np.array(sorted(set(steps)), dtype=int)


def _log_lines(path: str | os.PathLike) -> list[str]:
    try:
        return Path(path).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        raise LtauError(f"{path}: no such LAMMPS log") from None


def read_trajectory(path: str | os.PathLike, fix_id: str | None = None) -> Trajectory:
    lines = _log_lines(path)  # read once: a long run's log is large
    blocks = _thermo_blocks(lines)
    ids = []
    for b in blocks:
        for col in b:
            m = _FIX_COL.match(col)
            if m and m.group(2) == "1" and f"f_{m.group(1)}[2]" in b and (fix_id is None or m.group(1) == fix_id):
                ids.append(m.group(1))
    if not ids:
        want = f"f_{fix_id}[1] and f_{fix_id}[2]" if fix_id else "f_ID[1] and f_ID[2] of a fix ltau"
        raise LtauError(f"{path}: no thermo output with {want}; add them to thermo_style custom")
    fid = ids[0]
    use = [b for b in blocks if f"f_{fid}[1]" in b]
    step = np.concatenate([b["Step"] for b in use])
    order = np.argsort(step, kind="stable")
    cols = {k: np.concatenate([b[k] for b in use])[order] for k in use[0] if all(k in b for b in use)}
    return Trajectory(step[order], cols[f"f_{fid}[1]"], cols[f"f_{fid}[2]"], fid, cols, _halts(lines), _run_names(lines))


def plot_trajectory(
    traj: Trajectory,
    path: str | os.PathLike,
    candidate_steps: np.ndarray | None = None,
    halt_steps: np.ndarray | None = None,
    candidate_errors: np.ndarray | None = None,
    lo: float | None = None,
    hi: float | None = None,
    temperature: bool = True,
    title: str = "",
) -> None:
    from ltau_md.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    ax.plot(traj.step, traj.max_error, lw=1.2, label="max predicted error")
    ax.plot(traj.step, traj.mean_error, lw=1.2, label="mean predicted error")
    if lo is not None:
        ax.axhline(lo, color="tab:orange", ls="--", lw=1, label=f"lo {lo:.3g}")
    if hi is not None:
        ax.axhline(hi, color="tab:red", ls="--", lw=1, label=f"hi {hi:.3g}")
    if candidate_steps is not None and len(candidate_steps):
        # each at its own max predicted error (the queue's); else read off the thermo line
        y = candidate_errors if candidate_errors is not None else np.interp(candidate_steps, traj.step, traj.max_error)
        ax.plot(candidate_steps, y, "o", ms=5, mfc="none", color="tab:orange", label=f"candidates ({len(candidate_steps)})")
    halts = traj.halts(halt_steps)
    if len(halts):
        for s in halts:
            ax.axvline(s, color="tab:red", lw=1.5)
        ax.plot([], [], color="tab:red", lw=1.5, label="halt")
    marks = traj.initial_and_maximum()
    ax.plot([marks["initial_step"]], [marks["initial"]], "D", color="tab:green", ms=6, label=f"initial {marks['initial']:.3g}")
    ax.plot([marks["maximum_step"]], [marks["maximum"]], "*", color="tab:red", ms=10, label=f"maximum {marks['maximum']:.3g}")
    ax.set(xlabel="step (minimize: iteration)", ylabel="predicted force error (eV/Å)")
    if temperature and "Temp" in traj.columns:
        ax2 = ax.twinx()
        ax2.plot(traj.step, traj.columns["Temp"], color="0.6", lw=0.8)
        ax2.set_ylabel("T (K)", color="0.4")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title)
    save_figure(fig, path)
