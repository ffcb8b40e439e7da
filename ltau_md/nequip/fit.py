"""``ltau-md fit``: model + error logs + training frames → the LTAU artifact.

The training atoms are the error logs' atom table (their frames found and checked by
:mod:`ltau_md.training_set`); their descriptors come from one forward pass of the model — the
only part that needs torch. Everything else (p-values, index, artifact) is the science core.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ltau_md.artifact import Artifact, check_k
from ltau_md.contact import CONTACT_FRACTION, ContactRule, shortest_distances
from ltau_md.error_log import ErrorLog
from ltau_md.progress import Progress
from ltau_md.pvalues import training_statistics
from ltau_md.training_set import training_frames


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
    contact_fraction: float = CONTACT_FRACTION,
) -> Artifact:
    """Build and save ``out`` (NAME.ltau) for a loaded :class:`~ltau_md.nequip.model.NequIPModel`,
    with the close-contact rule (:mod:`ltau_md.contact`) from the training frames' shortest pair
    distances within the model's cutoff (``contact_fraction`` 0: stored, but off)."""
    from ltau_md.error_log import window_to_json

    error_logs = [ErrorLog(p) for p in logs]
    stats = training_statistics(error_logs, atol=atol, rtol=rtol, window=window)
    check_k(stats.atoms.species, k)  # before the descriptor pass, not after it
    frames = training_frames(error_logs[0], data)
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
    art.set_contact(ContactRule(shortest_distances(frames, model.r_max), fraction=contact_fraction))
    art.save(out)
    return art
