"""Per-atom force-error logs: one error norm per training atom per epoch, streamed to disk.

On-disk format (one directory per trained model, conventionally ``<run>/ltau_errors``)::

    meta.json    {"format": "ltau-md error log", "format_version": 1, "n_atoms": N,
                  "dtype": "float32" | "float16", "epochs": [e0, e1, ...], "metadata": {...}}
    atoms.npz    the atom table, N rows in column order (loads with allow_pickle=False):
                   sources   (S,) str   training files, as named in the training config
                   source    (N,) int32 index into ``sources``
                   frame     (N,) int64 frame index within that file
                   atom      (N,) int32 atom index within that frame
                   species   (N,) int16 atomic number
                   fref_norm (N,) float32 |F_ref| of the atom (for relative tolerances)
    errors.bin   raw little-endian ``dtype`` matrix, row r = epoch ``epochs[r]``, N columns;
                 value = ||F_pred - F_ref||_2 in eV/Å; NaN = atom not seen that epoch

``meta.json`` is the commit point: a row becomes part of the log only once ``epochs`` lists it,
so a killed writer leaves a log that reads as of its last finished epoch. Rows are written whole
and the reader memory-maps ``errors.bin``, so neither side ever holds E×N values in memory.
An atom's id is its column; the key ``(source, frame, atom)`` ties columns of different logs
(several seeds, shuffled loaders, restarts) to the same training atom.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ltau_md import atomic_write
from ltau_md.errors import ErrorLogError

FORMAT = "ltau-md error log"
FORMAT_VERSION = 1
DTYPES = ("float32", "float16")
META, ATOMS, ERRORS = "meta.json", "atoms.npz", "errors.bin"


@dataclass(frozen=True, eq=False)
class AtomTable:
    """Who each training atom is: its file, frame and index there, species and |F_ref|."""

    sources: tuple[str, ...]
    source: np.ndarray
    frame: np.ndarray
    atom: np.ndarray
    species: np.ndarray
    fref_norm: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.source)
        for name in ("frame", "atom", "species", "fref_norm"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"atom table column {name!r} has {len(getattr(self, name))} rows, expected {n}")
        if n and (self.source.min() < 0 or self.source.max() >= len(self.sources)):
            raise ValueError("atom table 'source' indexes outside 'sources'")

    def __len__(self) -> int:
        return len(self.source)

    @classmethod
    def from_frames(
        cls,
        frames: Sequence[tuple[str, int, np.ndarray, np.ndarray]],
    ) -> AtomTable:
        """Build from ``(source_name, frame_index, atomic_numbers, reference_forces)`` per frame,
        in the order the atoms should take as columns."""
        sources: list[str] = []
        lookup: dict[str, int] = {}
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("source", "frame", "atom", "species", "fref")}
        for name, frame_idx, numbers, forces in frames:
            if name not in lookup:
                lookup[name] = len(sources)
                sources.append(name)
            n = len(numbers)
            cols["source"].append(np.full(n, lookup[name], dtype=np.int32))
            cols["frame"].append(np.full(n, frame_idx, dtype=np.int64))
            cols["atom"].append(np.arange(n, dtype=np.int32))
            cols["species"].append(np.asarray(numbers, dtype=np.int16))
            f = np.asarray(forces, dtype=np.float64).reshape(n, 3)
            cols["fref"].append(np.linalg.norm(f, axis=1).astype(np.float32))

        def cat(key: str, dtype: type) -> np.ndarray:
            return np.concatenate(cols[key]) if cols[key] else np.zeros(0, dtype=dtype)

        return cls(
            tuple(sources),
            cat("source", np.int32),
            cat("frame", np.int64),
            cat("atom", np.int32),
            cat("species", np.int16),
            cat("fref", np.float32),
        )

    def save(self, path: str | os.PathLike) -> None:
        atomic_write.save_npz(
            path,
            sources=np.array(self.sources, dtype=str) if self.sources else np.zeros(0, dtype="<U1"),
            source=self.source.astype(np.int32),
            frame=self.frame.astype(np.int64),
            atom=self.atom.astype(np.int32),
            species=self.species.astype(np.int16),
            fref_norm=self.fref_norm.astype(np.float32),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> AtomTable:
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in ("sources", "source", "frame", "atom", "species", "fref_norm")}
        except FileNotFoundError:
            raise ErrorLogError(f"{path}: missing; the error log was not written completely") from None
        except KeyError as exc:
            raise ErrorLogError(f"{path}: no array {exc}; not an ltau-md atom table") from None
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # truncated: EOFError or BadZipFile
            raise ErrorLogError(f"{path}: unreadable ({exc}); the file is corrupted") from None
        try:
            return cls(tuple(str(s) for s in data.pop("sources")), **data)
        except ValueError as exc:
            raise ErrorLogError(f"{path}: {exc}") from None

    def keys(self, sources: Sequence[str] | None = None) -> np.ndarray:
        """Structured ``(source, frame, atom)`` keys; ``sources`` renumbers files to a shared list."""
        src = self.source
        if sources is not None:
            remap = np.array([list(sources).index(s) for s in self.sources], dtype=np.int64)
            src = remap[src] if len(src) else src
        out = np.empty(len(self), dtype=[("source", np.int64), ("frame", np.int64), ("atom", np.int64)])
        out["source"], out["frame"], out["atom"] = src, self.frame, self.atom
        return out

    def columns_of(self, other: AtomTable) -> np.ndarray:
        """For each atom of ``self``, its column in ``other`` (-1 where ``other`` lacks it)."""
        names = list(dict.fromkeys(self.sources + other.sources))
        mine, theirs = self.keys(names), other.keys(names)
        if len(theirs) == 0:
            return np.full(len(mine), -1, dtype=np.int64)
        order = np.argsort(theirs, kind="stable")
        ordered = theirs[order]
        pos = np.minimum(np.searchsorted(ordered, mine), len(order) - 1)
        return np.where(ordered[pos] == mine, order[pos], -1).astype(np.int64)

    def same_atoms(self, other: AtomTable) -> bool:
        return (
            len(self) == len(other)
            and self.sources == other.sources
            and np.array_equal(self.source, other.source)
            and np.array_equal(self.frame, other.frame)
            and np.array_equal(self.atom, other.atom)
            and np.array_equal(self.species, other.species)
        )


def _read_meta(path: Path) -> dict[str, Any]:
    meta_path = path / META
    if not path.is_dir():
        raise ErrorLogError(f"{path}: not an error-log directory (expected {META}, {ATOMS}, {ERRORS})")
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise ErrorLogError(f"{meta_path}: missing; not an ltau-md error log") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ErrorLogError(f"{meta_path}: not valid JSON ({exc.args[0]})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ErrorLogError(f"{meta_path}: 'format' is not {FORMAT!r}; not an ltau-md error log")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ErrorLogError(
            f"{meta_path}: format_version {meta.get('format_version')!r} is not supported "
            f"(this ltau-md reads {FORMAT_VERSION}); upgrade ltau-md"
        )
    if meta.get("dtype") not in DTYPES:
        raise ErrorLogError(f"{meta_path}: 'dtype' must be one of {DTYPES}, got {meta.get('dtype')!r}")
    if not isinstance(meta.get("n_atoms"), int) or meta["n_atoms"] < 0:
        raise ErrorLogError(f"{meta_path}: 'n_atoms' must be a non-negative integer")
    epochs = meta.get("epochs")
    if not isinstance(epochs, list) or not all(isinstance(e, int) for e in epochs):
        raise ErrorLogError(f"{meta_path}: 'epochs' must be a list of integers")
    if any(b <= a for a, b in zip(epochs, epochs[1:])):
        raise ErrorLogError(f"{meta_path}: 'epochs' must increase strictly")
    return meta


class ErrorLogWriter:
    """Appends one row of per-atom errors per epoch; safe to resume after a restart.

    Either hand a whole row to :meth:`write_epoch`, or stream an epoch in pieces with
    :meth:`begin_epoch` / :meth:`add` / :meth:`end_epoch` (the training callback does this, batch by
    batch, in whatever order the loader shuffles the frames). Memory: one row of N values.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        atoms: AtomTable | None = None,
        dtype: str = "float32",
        metadata: dict[str, Any] | None = None,
        resume: bool = False,
    ) -> None:
        self.path = Path(path)
        if (self.path / META).exists():
            if not resume:
                raise ErrorLogError(f"{self.path}: an error log already exists; remove it or resume it")
            self.meta = _read_meta(self.path)
            self.atoms = AtomTable.load(self.path / ATOMS)
            if atoms is not None and not atoms.same_atoms(self.atoms):
                raise ErrorLogError(
                    f"{self.path}: the training atoms differ from the ones this log was started with; "
                    "log a changed training set into a new directory"
                )
            if metadata:
                self.meta.setdefault("metadata", {}).update(metadata)
        else:
            if atoms is None:
                raise ErrorLogError(f"{self.path}: no error log to resume and no atom table to start one")
            if dtype not in DTYPES:
                raise ErrorLogError(f"error log dtype must be one of {DTYPES}, got {dtype!r}")
            self.path.mkdir(parents=True, exist_ok=True)
            self.atoms = atoms
            atoms.save(self.path / ATOMS)
            (self.path / ERRORS).touch()
            self.meta = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "n_atoms": len(atoms),
                "dtype": dtype,
                "epochs": [],
                "metadata": dict(metadata or {}),
                # where the log was written: training files named relative to it are found again
                # after the directory holding both moves (ltau_md.training_set)
                "written_at": str(self.path.resolve()),
            }
            atomic_write.write_json(self.path / META, self.meta)
        self.dtype = np.dtype(self.meta["dtype"]).newbyteorder("<")
        self._row: np.ndarray | None = None
        self._epoch: int | None = None

    @property
    def n_atoms(self) -> int:
        return int(self.meta["n_atoms"])

    @property
    def epochs(self) -> list[int]:
        return list(self.meta["epochs"])

    def begin_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)
        if self._row is None:
            self._row = np.empty(self.n_atoms, dtype=np.float32)
        self._row.fill(np.nan)

    def add(self, atom_ids: np.ndarray, errors: np.ndarray) -> None:
        if self._row is None or self._epoch is None:
            raise RuntimeError("ErrorLogWriter.add() before begin_epoch()")
        self._row[np.asarray(atom_ids)] = np.asarray(errors, dtype=np.float32)

    def end_epoch(self) -> int:
        """Commit the epoch's row; returns how many atoms got no value (NaN) in it."""
        if self._row is None or self._epoch is None:
            raise RuntimeError("ErrorLogWriter.end_epoch() before begin_epoch()")
        self._commit(self._epoch, self._row)
        self._epoch = None
        return int(np.isnan(self._row).sum())

    def write_epoch(self, epoch: int, errors: np.ndarray) -> None:
        errors = np.asarray(errors)
        if errors.shape != (self.n_atoms,):
            raise ValueError(f"errors for epoch {epoch} have shape {errors.shape}, expected ({self.n_atoms},)")
        self._commit(int(epoch), errors)

    def _commit(self, epoch: int, row: np.ndarray) -> None:
        kept = [e for e in self.meta["epochs"] if e < epoch]
        if len(kept) < len(self.meta["epochs"]):
            # A restart re-runs epochs: forget the rows being replaced before overwriting them.
            self.meta["epochs"] = kept
            atomic_write.write_json(self.path / META, self.meta)
        data = np.ascontiguousarray(row, dtype=self.dtype).tobytes()
        with open(self.path / ERRORS, "r+b") as fh:
            fh.seek(len(kept) * len(data))
            fh.write(data)
            fh.truncate()
            fh.flush()
            os.fsync(fh.fileno())
        self.meta["epochs"] = kept + [epoch]
        atomic_write.write_json(self.path / META, self.meta)


class ErrorLog:
    """Read side of an error log: memory-mapped errors, the atom table, the logged epochs."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.meta = _read_meta(self.path)
        self.atoms = AtomTable.load(self.path / ATOMS)
        if len(self.atoms) != self.meta["n_atoms"]:
            raise ErrorLogError(
                f"{self.path / ATOMS}: {len(self.atoms)} atoms but meta.json says n_atoms={self.meta['n_atoms']}"
            )
        self.epochs = np.asarray(self.meta["epochs"], dtype=np.int64)
        self.dtype = np.dtype(self.meta["dtype"]).newbyteorder("<")
        need = len(self.epochs) * self.n_atoms * self.dtype.itemsize
        try:
            size = (self.path / ERRORS).stat().st_size
        except FileNotFoundError:
            raise ErrorLogError(f"{self.path / ERRORS}: missing; the error log was not written completely") from None
        if size < need:
            raise ErrorLogError(
                f"{self.path / ERRORS}: {size} bytes, but {len(self.epochs)} epochs × {self.n_atoms} atoms "
                f"need {need}; the file was truncated"
            )

    @property
    def n_atoms(self) -> int:
        return int(self.meta["n_atoms"])

    @property
    def n_epochs(self) -> int:
        return len(self.epochs)

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self.meta.get("metadata", {}))

    def errors(self) -> np.ndarray:
        """The (epochs, atoms) matrix as a read-only memory map (nothing is read until sliced)."""
        if self.n_epochs == 0 or self.n_atoms == 0:
            return np.zeros((self.n_epochs, self.n_atoms), dtype=self.dtype)
        return np.memmap(self.path / ERRORS, dtype=self.dtype, mode="r", shape=(self.n_epochs, self.n_atoms))

    def rows(self, window: slice | None = None) -> slice:
        """The contiguous row range an epoch window selects (``window`` indexes logged rows)."""
        start, stop, step = (window or slice(None)).indices(self.n_epochs)
        if step != 1:
            raise ErrorLogError(f"{self.path}: epoch windows must be contiguous (step 1)")
        return slice(start, max(start, stop))

    def column_blocks(
        self, window: slice | None = None, max_bytes: int = 64 << 20
    ) -> Iterator[tuple[slice, np.ndarray]]:
        """Yield ``(columns, block)`` with ``block`` = float32 errors of the window's epochs for
        those columns; blocks stay under ``max_bytes`` whatever E and N are."""
        rows = self.rows(window)
        n_rows = rows.stop - rows.start
        mm = self.errors()
        width = max(1, max_bytes // max(1, 4 * n_rows))
        for c0 in range(0, self.n_atoms, width):
            cols = slice(c0, min(self.n_atoms, c0 + width))
            yield cols, np.asarray(mm[rows, cols], dtype=np.float32)

    def epoch_errors(self, row: int) -> np.ndarray:
        """All atoms' errors of one logged row (float32)."""
        return np.asarray(self.errors()[row], dtype=np.float32)

    def final_mae(self) -> float:
        """Mean error norm over training atoms at the last logged epoch (the default atol)."""
        if self.n_epochs == 0:
            raise ErrorLogError(f"{self.path}: no epoch logged yet")
        return float(np.nanmean(self.epoch_errors(self.n_epochs - 1)))


def parse_window(text: str | None) -> slice | None:
    """``"START:STOP"`` over logged epochs, Python slice style (``"-50:"`` = the last 50)."""
    if text is None or text.strip() in ("", ":"):
        return None
    parts = text.split(":")
    if len(parts) != 2:
        raise ErrorLogError(f"epoch window {text!r}: write START:STOP, e.g. '10:' or '-50:'")
    try:
        start, stop = (int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise ErrorLogError(f"epoch window {text!r}: START and STOP must be integers or empty") from None
    return slice(start, stop)


def window_to_json(window: slice | None) -> dict[str, int | None]:
    window = window or slice(None)
    return {"start": window.start, "stop": window.stop}
