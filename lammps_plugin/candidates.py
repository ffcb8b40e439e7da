"""Frames flagged by ``fix ltau`` (rank 0): an ASE Atoms, appended to the dump file and queued.

Per frame ``info``: ``step``, ``timestep`` (ps), ``run``, ``fix``, ``reason`` (lo | hi),
``n_above_lo``, ``n_above_hi``, ``max_error``, ``model_fingerprint``, ``artifact_fingerprint``;
per-atom arrays: ``ltau_error`` (eV/Å, 0 outside the fix group), ``ltau_p``, ``momenta`` (ASE's form
of the velocities: ``atoms.get_velocities()``) and ``lammps_id``.

The dump file is extended XYZ, appended one whole frame per ``write()`` on a file opened for
appending, then fsync'ed: a frame costs its own size (rewriting the file per frame, as a temporary
copy renamed over it would, grows quadratically: a heating ramp flags a frame every check). A
process killed in the middle of that write can leave a partial last frame; :func:`repair_extxyz`
cuts it off when a fix opens the file again, so every run starts from a file of whole frames.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from ase import Atoms, units

from ltau_md.errors import LtauError

PS = 1000.0 * units.fs  # LAMMPS metal time unit in ASE time units


def frame_atoms(
    numbers: np.ndarray,
    positions: np.ndarray,
    velocities: np.ndarray,
    boxlo,
    cell: np.ndarray,
    pbc: tuple[bool, bool, bool],
) -> Atoms:
    """Atoms in ASE units from LAMMPS metal rows (positions relative to boxlo, velocities Å/ps)."""
    atoms = Atoms(numbers=numbers, positions=positions - np.asarray(boxlo), cell=cell, pbc=pbc)
    atoms.set_velocities(velocities / PS)
    if any(pbc):
        atoms.wrap()
    return atoms


def extxyz_bytes(atoms: Atoms) -> bytes:
    from ase.io import write

    buf = io.StringIO()
    write(buf, atoms, format="extxyz", parallel=False)  # rank 0 only: no ASE broadcast
    return buf.getvalue().encode()


def append_extxyz(path: str | os.PathLike, atoms: Atoms) -> None:
    """Append one frame with a single write, then fsync."""
    data = extxyz_bytes(atoms)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        view = memoryview(data)
        while view:  # write() may be short (signals, full disk): finish or raise
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def repair_extxyz(path: str | os.PathLike) -> int:
    """Cut a partial last frame (a writer killed mid-frame) off ``path``; returns bytes removed.

    Frames are located by their atom-count lines (count, comment, count atom lines). A file that
    does not start with a count line is not touched: it is not a dump of ours."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    good = 0
    with open(path, "rb") as fh:
        if not fh.readline().strip().isdigit():
            raise LtauError(f"dump {path}: exists but is not an extended XYZ file; remove it or name another dump file")
        fh.seek(0)
        while True:
            header = fh.readline()
            if not header:
                break
            try:
                n = int(header.strip())
            except ValueError:
                break
            lines = [fh.readline() for _ in range(n + 1)]
            if len(lines) != n + 1 or not lines[-1].endswith(b"\n"):
                break
            good = fh.tell()
    size = path.stat().st_size
    if good < size:
        os.truncate(path, good)
    return size - good
