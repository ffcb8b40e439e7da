"""Choosing which queued frames to relabel: a cap, and diversity in latent space.

A stuck or slowly drifting run flags near-identical frames again and again; labelling all of
them wastes reference calculations. Each frame is summarised by the mean latent vector of its
most uncertain atoms (the environments that made it a candidate); frames are then picked by
farthest-point sampling — the most uncertain frame first, then repeatedly the one farthest from
everything picked — until the cap is reached or the next one is closer than ``min_distance``.
Frames without stored latents fall back to their per-atom uncertainty profile.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ltau_md.queue import Candidate

TOP_ATOMS = 5


def frame_vector(c: Candidate, top: int = TOP_ATOMS) -> np.ndarray:
    err = np.asarray(c.data.get("ltau_error"))
    order = np.argsort(err)[::-1][:top]
    latent = c.data.get("latent")
    if latent is not None and len(latent) == len(err):
        return np.asarray(latent, dtype=np.float64)[order].mean(axis=0)
    return np.sort(err)[::-1][: max(top, 1)].astype(np.float64)


def farthest_point_selection(
    candidates: Sequence[Candidate], cap: int, min_distance: float = 0.0
) -> list[Candidate]:
    """Up to ``cap`` candidates, most uncertain first, each far from those before it."""
    if not candidates or cap <= 0:
        return []
    vectors = np.stack([frame_vector(c) for c in candidates])
    first = int(np.argmax([c.max_error for c in candidates]))
    chosen = [first]
    dist = np.linalg.norm(vectors - vectors[first], axis=1)
    while len(chosen) < min(cap, len(candidates)):
        dist[chosen] = -np.inf
        nxt = int(np.argmax(dist))
        if dist[nxt] <= min_distance:
            break
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(vectors - vectors[nxt], axis=1))
    return [candidates[i] for i in chosen]
