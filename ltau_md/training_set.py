"""The training frames behind an error log's atom table, found and checked.

The table names each training atom by (file, frame in it, atom). The files are looked for where
they were when training ran, else at the same place relative to the error log (a run directory
moved or copied elsewhere keeps working), else they must be passed as ``--data`` (matched by
path, then by file name). Each frame is checked against the table (atom count, species, |F_ref|)
so an artifact is never built from the wrong data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ltau_md.error_log import AtomTable, ErrorLog
from ltau_md.errors import LtauError
from ltau_md.user_input import read_frames, reference_forces


def _moved(source: str, log: ErrorLog | None) -> Path | None:
    """``source`` at its place relative to the log, if the log has moved since it was written."""
    written_at = (log.meta.get("written_at") if log is not None else None) or None
    if not written_at or not os.path.isabs(source):
        return None
    candidate = Path(os.path.normpath(log.path.resolve() / os.path.relpath(source, written_at)))
    return candidate if candidate.is_file() else None


def source_files(table: AtomTable, data: Sequence[str | os.PathLike] | None = None, log: ErrorLog | None = None) -> dict[str, Path]:
    """Where each training source is now: the ``--data`` file standing for it, else as logged,
    else relative to the moved error log."""
    given = [Path(d) for d in (data or [])]
    by_name = {p.name: p for p in given}
    out = {}
    for src in table.sources:
        sp = Path(src)
        if given:
            match = [p for p in given if p.resolve() == sp.resolve()] or ([by_name[sp.name]] if sp.name in by_name else [])
            if not match:
                raise LtauError(
                    f"--data: no file for training source {src}; pass every training file ({', '.join(Path(s).name for s in table.sources)})"
                )
            out[src] = match[0]
        elif sp.is_file():
            out[src] = sp
        else:
            moved = _moved(src, log)
            if moved is None:
                raise LtauError(f"{src}: training file named in the error log is gone; pass it with --data")
            out[src] = moved
    return out


def training_frames(table: AtomTable | ErrorLog, data: Sequence[str | os.PathLike] | None = None) -> list:
    """The frames of the training atoms, in atom-table order (one entry per table frame)."""
    log = table if isinstance(table, ErrorLog) else None
    table = table.atoms if isinstance(table, ErrorLog) else table
    files = source_files(table, data, log)
    cache: dict[str, list] = {}
    frames = []
    # consecutive rows of the table with the same (source, frame) form one frame
    starts = np.flatnonzero(np.r_[True, (np.diff(table.source) != 0) | (np.diff(table.frame) != 0)])
    ends = np.r_[starts[1:], len(table)]
    for a, b in zip(starts, ends):
        src = table.sources[table.source[a]]
        if src not in cache:
            cache[src] = read_frames(files[src], need_forces=True, what="training frames")
        idx = int(table.frame[a])
        path = files[src]
        if idx >= len(cache[src]):
            raise LtauError(f"{path}: has {len(cache[src])} frames, the error log needs frame {idx}; pass the training file")
        atoms = cache[src][idx]
        if len(atoms) != b - a or not np.array_equal(atoms.numbers, table.species[a:b]):
            raise LtauError(f"{path}: frame {idx} has other atoms than the model was trained on; pass the training file")
        fref = np.linalg.norm(reference_forces(atoms), axis=1)
        if not np.allclose(fref, table.fref_norm[a:b], rtol=1e-3, atol=1e-4):
            raise LtauError(f"{path}: frame {idx} has other reference forces than the model was trained on; pass the training file")
        frames.append(atoms)
    return frames
