"""The candidate queue: frames flagged during MD, waiting for a reference (DFT) label.

An ``ase.db`` database (a SQLite file by default, or a PostgreSQL URL through ASE), so anything
that opens ase.db opens it (``ase db cand.db``, ``ase.db.connect``). One row per candidate frame:

* the frame (positions, velocities as momenta, cell, pbc, species; labelled rows also carry the
  reference energy/forces/stress as calculator results),
* key-value pairs: ``status`` (pending → labelled | failed), ``run``, ``step``, ``reason``
  (lo | hi), ``max_error`` / ``mean_error`` (predicted, eV/Å), ``n_above_lo``, ``model`` and
  ``artifact`` (fingerprints, first 16 hex), ``source`` (where it came from),
* data: per-atom ``ltau_error`` and ``ltau_p`` arrays, optional per-atom ``latent`` features,
  ``failure`` text for failed labels, full fingerprints.

Every write is one database transaction, so a writer killed at any point leaves the queue as it
was before or after that row, never in between.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ltau_md.errors import LtauError

STATUSES = ("pending", "labelled", "failed")


def _connect(url: str | os.PathLike):
    """ase.db without its lock file (a writer killed with -9 leaves it behind and every later
    writer waits forever; SQLite's and PostgreSQL's own locking keep transactions atomic) and in
    serial mode (ASE would otherwise turn each call into an MPI collective under mpiexec, and
    only one rank writes the queue)."""
    import ase.db

    text = str(url)
    if "://" not in text:
        path = Path(text)
        if path.suffix != ".db":
            raise LtauError(f"{text}: a queue is an ase.db file ending in .db (or a postgresql:// URL)")
        if not path.parent.exists():
            raise LtauError(f"{text}: directory {path.parent} does not exist")
        return ase.db.connect(str(path), type="db", append=True, use_lock_file=False, serial=True)
    return ase.db.connect(text, use_lock_file=False, serial=True)


@dataclass
class Candidate:
    id: int
    atoms: Any
    status: str
    step: int
    run: str
    reason: str
    max_error: float
    key_value_pairs: dict[str, Any]
    data: dict[str, Any]


class CandidateQueue:
    """``CandidateQueue("cand.db")``; rows are ase.db rows with the keys above."""

    def __init__(self, url: str | os.PathLike) -> None:
        self.url = str(url)
        self.db = _connect(url)

    def add(
        self,
        atoms,
        *,
        error: np.ndarray,
        p: np.ndarray,
        run: str,
        step: int,
        reason: str,
        model_fingerprint: str | None = None,
        artifact_fingerprint: str | None = None,
        lo: float | np.ndarray | None = None,
        latent: np.ndarray | None = None,
        source: str = "",
    ) -> int:
        """Queue one frame as ``pending``; returns its row id."""
        error = np.asarray(error, dtype=np.float64)
        if error.shape != (len(atoms),) or np.shape(p) != (len(atoms),):
            raise LtauError(f"queue {self.url}: per-atom arrays must have one value per atom ({len(atoms)})")
        if reason not in ("lo", "hi", "manual"):
            raise LtauError(f"queue {self.url}: reason must be lo, hi or manual, got {reason!r}")
        kvp: dict[str, Any] = {
            "status": "pending",
            "run": str(run),
            "step": int(step),
            "reason": reason,
            "max_error": float(error.max()),
            "mean_error": float(error.mean()),
            "model": (model_fingerprint or "")[:16],
            "artifact": (artifact_fingerprint or "")[:16],
            "source": str(source),
        }
        if lo is not None:
            kvp["n_above_lo"] = int(np.sum(error > lo))
        data: dict[str, Any] = {
            "ltau_error": error,
            "ltau_p": np.asarray(p, dtype=np.float64),
            "model_fingerprint": model_fingerprint or "",
            "artifact_fingerprint": artifact_fingerprint or "",
        }
        if latent is not None:
            data["latent"] = np.asarray(latent, dtype=np.float32)
        frame = atoms.copy()
        frame.calc = None  # a candidate has no reference label yet
        return int(self.db.write(frame, key_value_pairs=kvp, data=data))

    def __len__(self) -> int:
        return self.db.count()

    def count(self, status: str | None = None) -> int:
        return self.db.count(status=status) if status else self.db.count()

    def rows(self, status: str | None = None) -> Iterator[Candidate]:
        if status is not None and status not in STATUSES:
            raise LtauError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        sel = {"status": status} if status else {}
        for row in self.db.select(**sel):
            yield self._candidate(row)

    def get(self, row_id: int) -> Candidate:
        try:
            row = self.db.get(id=int(row_id))
        except KeyError:
            raise LtauError(f"queue {self.url}: no row {row_id}") from None
        return self._candidate(row)

    @staticmethod
    def _candidate(row) -> Candidate:
        kvp = dict(row.key_value_pairs)
        return Candidate(
            id=row.id,
            atoms=row.toatoms(add_additional_information=False),
            status=kvp.get("status", "pending"),
            step=int(kvp.get("step", -1)),
            run=str(kvp.get("run", "")),
            reason=str(kvp.get("reason", "")),
            max_error=float(kvp.get("max_error", float("nan"))),
            key_value_pairs=kvp,
            data=dict(row.data),
        )

    def mark_labelled(self, row_id: int, labelled_atoms, calculator: str) -> None:
        """Store the reference energy/forces/stress (``labelled_atoms.calc`` results)."""
        self.db.update(int(row_id), atoms=labelled_atoms, status="labelled", labelled_by=str(calculator))

    def mark_failed(self, row_id: int, error: str, calculator: str) -> None:
        self.db.update(int(row_id), status="failed", labelled_by=str(calculator), data={"failure": str(error)[:2000]})
