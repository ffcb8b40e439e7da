"""``ltau-md fit``: model + error logs + training frames → the LTAU artifact.

The training atoms are the error logs' atom table; their descriptors come from one forward pass
of the model over the training frames named there (or the ``--data`` files standing in for them,
matched by file name); the frames are checked against the table (atom count, species, |F_ref|) so
an artifact is never built from the wrong data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ltau_md.artifact import Artifact
from ltau_md.error_log import AtomTable, ErrorLog
from ltau_md.errors import LtauError
from ltau_md.progress import Progress
from ltau_md.pvalues import training_statistics
from ltau_md.user_input import read_frames, reference_forces


def _source_files(table: AtomTable, data: Sequence[str | os.PathLike] | None) -> dict[str, Path]:
    """Where each training source is now: as logged, or the ``--data`` file of the same name."""
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
        else:
            if not sp.is_file():
                raise LtauError(f"{src}: training file named in the error log is gone; pass it with --data")
            out[src] = sp
    return out


def training_frames(table: AtomTable, data: Sequence[str | os.PathLike] | None = None) -> list:
    """The frames of the training atoms, in atom-table order (one entry per table frame)."""
    files = _source_files(table, data)
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


def fit_artifact(
    model,
    logs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    data: Sequence[str | os.PathLike] | None = None,
    k: int = 10,
    atol: float | None = None,
    rtol: float = 0.0,
    window: slice | None = None,
    index_type: str = "auto",
    index_params: dict[str, Any] | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> Artifact:
    """Build and save ``out`` (NAME.ltau) for a loaded :class:`~ltau_md.nequip.model.NequIPModel`."""
    from ltau_md.error_log import window_to_json

    error_logs = [ErrorLog(p) for p in logs]
    stats = training_statistics(error_logs, atol=atol, rtol=rtol, window=window)
    frames = training_frames(stats.atoms, data)
    bar = Progress("descriptors of training frames", len(frames), enabled=progress)
    results = model.evaluate(frames, batch_size=batch_size, progress=bar.update)
    bar.close()
    descriptors = np.concatenate([r.node_features for r in results]).astype(np.float32)
    ibar = Progress("indexing training atoms", len(descriptors), enabled=progress)
    art = Artifact.create(
        stats,
        descriptors,
        model_path=str(Path(model.path).resolve()),
        model_fingerprint=model.fingerprint,
        k=k,
        index_type=index_type,
        index_params=index_params,
        window=window_to_json(window),
        error_logs=[str(Path(p).resolve()) for p in logs],
        progress=ibar.update,
    )
    ibar.close()
    art.save(out)
    return art
