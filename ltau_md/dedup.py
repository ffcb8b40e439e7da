"""Duplicates at harvest time: a flagged frame that teaches nothing new is recorded, not queued.

A run that lingers in one unfamiliar region flags near-identical frames check after check; each
would cost a reference calculation. A frame is a *duplicate* when every one of its flagged atoms
(predicted error above lo) lies within a latent distance ε of an atom of its species that is
already known — a training atom, or a flagged atom of a frame already queued. ε per species is
the median distance of validation atoms to their nearest training atom (``ltau-md calibrate``
stores it as ``dedup_distance``): closer than that, an environment is as familiar as a typical
in-domain one.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from ltau_md.species import symbol


@dataclass(frozen=True)
class DuplicateCheck:
    duplicate: bool
    farthest: float  # the largest distance of a flagged atom to a known environment (latent units)
    n_flagged: int


class KnownEnvironments:
    """The latents a run already knows: the artifact's training atoms and the flagged atoms of
    frames queued (in this run or before, from the queue's stored latents)."""

    def __init__(self, artifact) -> None:
        self.artifact = artifact
        self.eps = {str(sp): float(v) for sp, v in (artifact.meta.get("dedup_distance") or {}).items()}
        self.dim = int(artifact.meta["descriptor_dim"])
        self._queued: dict[int, faiss.IndexFlatL2] = {}

    @property
    def enabled(self) -> bool:
        """False for an artifact calibrated before ε existed: nothing is called a duplicate."""
        return bool(self.eps)

    def _nearest_queued(self, z: int, x: np.ndarray) -> np.ndarray:
        ix = self._queued.get(z)
        if ix is None or ix.ntotal == 0:
            return np.full(len(x), np.inf)
        d2, _ = ix.search(np.ascontiguousarray(x, dtype=np.float32), 1)
        return np.sqrt(np.maximum(d2[:, 0], 0.0))

    def check(self, latent: np.ndarray, numbers: np.ndarray, flagged: np.ndarray) -> DuplicateCheck:
        flagged = np.asarray(flagged, dtype=bool)
        n = int(flagged.sum())
        if not self.enabled or n == 0:
            return DuplicateCheck(False, float("inf"), n)
        x, z = np.asarray(latent, dtype=np.float32)[flagged], np.asarray(numbers)[flagged]
        train, _ = self.artifact.index.search(x, z, 1)
        nearest = train[:, 0].astype(np.float64)
        eps = np.empty(n)
        for zz in np.unique(z):
            sel = z == zz
            nearest[sel] = np.minimum(nearest[sel], self._nearest_queued(int(zz), x[sel]))
            eps[sel] = self.eps.get(symbol(int(zz)), 0.0)
        return DuplicateCheck(bool(np.all(nearest <= eps)), float(nearest.max()), n)

    def add(self, latent: np.ndarray, numbers: np.ndarray, flagged: np.ndarray) -> None:
        flagged = np.asarray(flagged, dtype=bool)
        x, z = np.asarray(latent, dtype=np.float32)[flagged], np.asarray(numbers)[flagged]
        for zz in np.unique(z):
            ix = self._queued.setdefault(int(zz), faiss.IndexFlatL2(self.dim))
            ix.add(np.ascontiguousarray(x[z == zz]))

    def add_queue(self, queue) -> int:
        """Know the flagged atoms of every frame already in ``queue`` that stored latents of this
        artifact's model (another model's latents — an earlier iteration's, in a shared queue —
        live in another space); returns the number of frames taken."""
        model = (self.artifact.meta.get("model") or {}).get("fingerprint")
        if not model:
            return 0  # which space the stored latents are in cannot be told
        taken = 0
        for c in queue.rows():
            lat, flagged = c.data.get("latent"), c.data.get("flagged")
            if lat is None or flagged is None or np.shape(lat) != (len(c.atoms), self.dim) or c.data.get("model_fingerprint") != model:
                continue
            self.add(np.asarray(lat), c.atoms.numbers, np.asarray(flagged, dtype=bool))
            taken += 1
        return taken
