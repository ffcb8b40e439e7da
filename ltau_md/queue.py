"""The candidate queue: frames flagged during MD, waiting for a reference (DFT) label — and their
whole lifecycle: add → select → label | fail → export.

An ``ase.db`` database (a SQLite file by default, or a PostgreSQL URL through ASE), so anything
that opens ase.db opens it (``ase db cand.db``, ``ase.db.connect``). One row per candidate frame:

* the frame (positions, velocities as momenta, cell, pbc, species; labelled rows also carry the
  reference energy/forces/stress as calculator results),
* key-value pairs: ``status`` (pending → labelled | failed; or duplicate: flagged, but every flagged
  atom was already known, :mod:`ltau_md.dedup` — recorded, never selected), ``selected`` (marked by
  :meth:`CandidateQueue.select`), ``run``, ``step``, ``reason`` (lo | hi | manual),
  ``max_error`` / ``mean_error`` (predicted, eV/Å), ``n_above_lo``, ``model`` and ``artifact``
  (fingerprints, first 16 hex), ``source`` (where it came from), ``dump`` (the dump file the
  frame was also written to, if any), ``fix`` (the fix ID that flagged it) and ``phase`` (md or
  minimize),
* data: per-atom ``ltau_error`` and ``ltau_p`` arrays, ``flagged`` (above lo), optional per-atom
  ``latent`` features,
  ``failure`` text for failed labels, full fingerprints.

Every write is one database transaction, so a writer killed at any point leaves the queue as it
was before or after that row, never in between.

Selection: a stuck or slowly drifting run flags near-identical frames again and again; labelling
all of them wastes reference calculations. Each frame is summarised by the mean latent vector of
its most uncertain atoms (the environments that made it a candidate); frames are picked by
farthest-point sampling — the most uncertain frame first, then repeatedly the one farthest from
everything picked — until the cap is reached or the next one is closer than ``min_distance``.
Frames without stored latents fall back to their per-atom uncertainty profile.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ltau_md import atomic_write
from ltau_md.errors import LtauError

STATUSES = ("pending", "labelled", "failed", "duplicate")
REASONS = ("lo", "hi", "manual")
TOP_ATOMS = 5  # atoms whose latents summarise a frame for selection
_SQLITE_MAGIC = b"SQLite format 3\x00"


def is_url(url: str | os.PathLike) -> bool:
    return "://" in str(url)


def _check_sqlite_file(path: Path) -> None:
    """An existing file must be an ase.db SQLite database (an empty file is a new one)."""
    if path.is_dir():
        raise LtauError(f"queue {path}: is a directory; name a .db file")
    if path.stat().st_size == 0:
        return
    with open(path, "rb") as fh:
        if fh.read(16) != _SQLITE_MAGIC:
            raise LtauError(f"queue {path}: not an SQLite database; name a new .db file or an ase.db queue")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise LtauError(f"queue {path}: unreadable SQLite database ({exc}); name another .db file") from None
    if tables and "systems" not in tables:
        raise LtauError(f"queue {path}: an SQLite database but not an ase.db (no 'systems' table); name another .db file")


def _probe_writable(path: Path) -> None:
    """Fail now, naming the file, if ``path`` could not be written later (without leaving anything)."""
    if path.exists():
        if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
            raise LtauError(f"queue {path}: not writable; choose a file in a writable directory")
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except OSError as exc:
        raise LtauError(f"queue {path}: cannot be created ({exc.strerror}); choose a writable directory") from None
    os.close(fd)
    os.unlink(path)


def _connect(url: str | os.PathLike, must_exist: bool, writable: bool):
    """ase.db without its lock file (a writer killed with -9 leaves it behind and every later
    writer waits forever; SQLite's and PostgreSQL's own locking keep transactions atomic) and in
    serial mode (ASE would otherwise turn each call into an MPI collective under mpiexec, and
    only one rank writes the queue)."""
    import ase.db

    text = str(url)
    if not is_url(text):
        path = Path(text)
        if path.suffix != ".db":
            raise LtauError(f"queue {text}: a queue is an ase.db file ending in .db (or a postgresql:// URL)")
        if not path.parent.is_dir():
            raise LtauError(f"queue {text}: directory {path.parent} does not exist; create it first")
        if path.exists():
            _check_sqlite_file(path)
        elif must_exist:
            raise LtauError(f"queue {text}: no such queue; give the .db file a run's fix ltau wrote (queue keyword)")
        if writable:
            _probe_writable(path)
        return ase.db.connect(str(path), type="db", append=True, use_lock_file=False, serial=True)
    try:
        db = ase.db.connect(text, use_lock_file=False, serial=True)
        db.count()  # connect now: a wrong URL, server or password is reported here, not at the first frame
    except ImportError as exc:
        raise LtauError(f"queue {text}: this URL needs a database backend that is not installed ({exc})") from None
    except Exception as exc:  # drivers raise their own types
        raise LtauError(f"queue {text}: cannot connect ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]})") from None
    return db


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

    @property
    def selected(self) -> bool:
        return bool(self.key_value_pairs.get("selected"))


class CandidateQueue:
    """``CandidateQueue("cand.db")``; rows are ase.db rows with the keys above.

    ``must_exist=True`` for readers (a mistyped name is an error, not a new empty queue);
    ``writable=True`` checks now that rows can be added later (a fix that will write it)."""

    def __init__(self, url: str | os.PathLike, must_exist: bool = False, writable: bool = False) -> None:
        self.url = str(url)
        self.db = _connect(url, must_exist, writable)

    # -- rows -------------------------------------------------------------------------------

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
        dump: str | None = None,
        fix: str | None = None,
        status: str = "pending",
        phase: str | None = None,
    ) -> int:
        """Queue one frame as ``pending`` (or record it as a ``duplicate``); returns its row id."""
        error = np.asarray(error, dtype=np.float64)
        if error.shape != (len(atoms),) or np.shape(p) != (len(atoms),):
            raise LtauError(f"queue {self.url}: per-atom arrays must have one value per atom ({len(atoms)})")
        if reason not in REASONS:
            raise LtauError(f"queue {self.url}: reason must be one of {', '.join(REASONS)}, got {reason!r}")
        if status not in ("pending", "duplicate"):
            raise LtauError(f"queue {self.url}: a new row is pending or duplicate, not {status!r}")
        kvp: dict[str, Any] = {
            "status": status,
            "run": str(run),
            "step": int(step),
            "reason": reason,
            "max_error": float(error.max()),
            "mean_error": float(error.mean()),
            "model": (model_fingerprint or "")[:16],
            "artifact": (artifact_fingerprint or "")[:16],
            "source": str(source),
        }
        if dump:
            kvp["dump"] = str(dump)
        if fix:
            kvp["fix"] = str(fix)
        if phase:
            kvp["phase"] = str(phase)
        if lo is not None:
            kvp["n_above_lo"] = int(np.sum(error > lo))
        data: dict[str, Any] = {
            "ltau_error": error,
            "ltau_p": np.asarray(p, dtype=np.float64),
            "model_fingerprint": model_fingerprint or "",
            "artifact_fingerprint": artifact_fingerprint or "",
        }
        if lo is not None:
            data["flagged"] = error > lo
        if latent is not None:
            data["latent"] = np.asarray(latent, dtype=np.float32)
        frame = atoms.copy()
        frame.calc = None  # a candidate has no reference label yet
        return int(self.db.write(frame, key_value_pairs=kvp, data=data))

    def __len__(self) -> int:
        return self.db.count()

    def count(self, status: str | None = None) -> int:
        return self.db.count(status=status) if status else self.db.count()

    def rows(self, status: str | None = None, selected: bool | None = None, **keys: Any) -> Iterator[Candidate]:
        """Rows in id order; ``status``, ``selected`` and other key-value pairs filter them."""
        if status is not None and status not in STATUSES:
            raise LtauError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        sel = dict(keys)
        if status:
            sel["status"] = status
        for row in self.db.select(**sel):
            c = self._candidate(row)
            if selected is None or c.selected == selected:
                yield c

    def get(self, row_id: int) -> Candidate:
        try:
            row = self.db.get(id=int(row_id))
        except KeyError:
            raise LtauError(f"queue {self.url}: no row {row_id}; 'ltau-md candidates list {self.url}' shows the ids") from None
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

    # -- lifecycle --------------------------------------------------------------------------

    def select(self, max_frames: int, min_distance: float | None = 0.0) -> list[Candidate]:
        """Mark at most ``max_frames`` pending frames, diverse in latent space, for relabelling
        (and unmark the other pending ones), in one transaction; returns the chosen rows.
        ``min_distance=None``: take ``max_frames`` whatever their distances (exact duplicates too)."""
        if max_frames < 1:
            raise LtauError(f"select: at most {max_frames} frames; give at least 1")
        pending = list(self.rows("pending"))
        chosen = farthest_point_selection(pending, max_frames, min_distance)
        ids = {c.id for c in chosen}
        with self.db:  # the marks change together or not at all
            for c in pending:
                self.db.update(c.id, selected=c.id in ids)
        for c in chosen:
            c.key_value_pairs["selected"] = True
        return chosen

    def mark_labelled(self, row_id: int, labelled_atoms, calculator: str) -> None:
        """Store the reference energy/forces/stress (``labelled_atoms.calc`` results)."""
        self.db.update(int(row_id), atoms=labelled_atoms, status="labelled", labelled_by=str(calculator))

    def mark_failed(self, row_id: int, error: str, calculator: str) -> None:
        self.db.update(int(row_id), status="failed", labelled_by=str(calculator), data={"failure": str(error)[:2000]})

    def labelled_frames(self, status: str = "labelled", selected_only: bool = False) -> list:
        """Frames of rows with ``status`` (labelled: with their reference energy/forces/stress as a
        SinglePointCalculator), carrying the row id, run, step and per-atom ``ltau_error``."""
        from ase.calculators.singlepoint import SinglePointCalculator

        frames = []
        for c in self.rows(status, selected=True if selected_only else None):
            atoms = c.atoms
            row = self.db.get(id=c.id)
            results = {k: row.get(k) for k in ("energy", "forces", "stress") if row.get(k) is not None}
            atoms.calc = SinglePointCalculator(atoms, **results) if results else None
            atoms.info.update({"candidate_id": c.id, "run": c.run, "step": c.step, "status": c.status,
                               "labelled_by": c.key_value_pairs.get("labelled_by", "")})  # fmt: skip
            atoms.arrays["ltau_error"] = np.asarray(c.data["ltau_error"])
            frames.append(atoms)
        return frames

    def export(self, path: str | os.PathLike, status: str = "labelled", selected_only: bool = False) -> int:
        """Write those frames as extended XYZ (atomically); returns how many."""
        from ase.io import write

        frames = self.labelled_frames(status, selected_only)
        if not frames:
            hint = (f"run 'ltau-md relabel {self.url} --calculator SPEC{' --selected' if selected_only else ''}' first"
                    if status == "labelled" else "choose another --status")
            raise LtauError(f"{self.url}: no {status} frames{' marked selected' if selected_only else ''} to export; {hint}")
        atomic_write.write_with(path, lambda fh: write(fh, frames, format="extxyz"), text=True)
        return len(frames)


# -- selection ----------------------------------------------------------------------------------


def frame_vector(c: Candidate, top: int = TOP_ATOMS, use_latent: bool = True) -> np.ndarray:
    """A frame's position for diversity: the mean latent of its ``top`` most uncertain atoms, or
    (no latents, or ``use_latent=False``) its ``top`` largest predicted errors, zero-padded."""
    err = np.asarray(c.data.get("ltau_error"), dtype=np.float64)
    order = np.argsort(err)[::-1][:top]
    latent = c.data.get("latent")
    if use_latent and latent is not None and len(latent) == len(err):
        return np.asarray(latent, dtype=np.float64)[order].mean(axis=0)
    profile = np.zeros(max(top, 1))
    head = np.sort(err)[::-1][: len(profile)]
    profile[: len(head)] = head
    return profile


def _frame_vectors(candidates: Sequence[Candidate]) -> np.ndarray:
    """One row per frame; latents when every frame has them of one size, else error profiles for
    all (rows queued without latents — recovered from a dump, added by hand — mix with fix rows)."""
    vectors = [frame_vector(c) for c in candidates]
    if len({len(v) for v in vectors}) > 1 or any("latent" not in c.data for c in candidates):
        vectors = [frame_vector(c, use_latent=False) for c in candidates]
    return np.stack(vectors)


def farthest_point_selection(candidates: Sequence[Candidate], cap: int, min_distance: float | None = 0.0) -> list[Candidate]:
    """Up to ``cap`` candidates, most uncertain first, each far from those before it (stopping
    early when the next is no farther than ``min_distance``; never with None)."""
    if not candidates or cap <= 0:
        return []
    vectors = _frame_vectors(candidates)
    first = int(np.argmax([c.max_error for c in candidates]))
    chosen = [first]
    dist = np.linalg.norm(vectors - vectors[first], axis=1)
    while len(chosen) < min(cap, len(candidates)):
        dist[chosen] = -np.inf
        nxt = int(np.argmax(dist))
        if min_distance is not None and dist[nxt] <= min_distance:
            break
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(vectors - vectors[nxt], axis=1))
    return [candidates[i] for i in chosen]

