"""The dump file of ``fix ltau`` (rank 0): a flagged LAMMPS frame as an ASE Atoms, appended to an
extended-XYZ dump, and kept in step with the candidate queue.

Per frame ``info``: ``step``, ``timestep`` (ps), ``run``, ``fix``, ``reason`` (lo | hi),
``n_above_lo``, ``n_above_hi``, ``max_error``, ``model_fingerprint``, ``artifact_fingerprint``;
per-atom arrays: ``ltau_error`` (eV/Å, 0 outside the fix group), ``ltau_p``, ``momenta`` (ASE's form
of the velocities: ``atoms.get_velocities()``) and ``lammps_id``.

The dump file is extended XYZ, appended one whole frame per ``write()`` on a file opened for
appending, then fsync'ed: a frame costs its own size (rewriting the file per frame, as a temporary
copy renamed over it would, grows quadratically: a heating ramp flags a frame every check). A
process killed in the middle of that write can leave a partial last frame; :func:`repair_extxyz`
cuts it off when a fix opens the file again, so every run starts from a file of whole frames.

A frame goes to the dump first, then to the queue (one transaction). A process killed between the
two leaves the dump one frame ahead; :func:`reconcile` (run when a fix opens both again) queues
dump frames the queue lacks and appends queue rows of this dump that the dump lacks, and says so
in one line.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

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
    if good:
        _check_is_dump(path)
    size = path.stat().st_size
    if good < size:
        os.truncate(path, good)
    return size - good


def _check_is_dump(path: Path) -> None:
    """The first (whole) frame of ``path`` is one fix ltau wrote: its run/step keys and its
    per-atom LTAU arrays. Anything else (a data set, a predict output, a queue export) named as
    a dump would have frames appended to it and, by :func:`reconcile`, queued as candidates."""
    from ase.io.extxyz import key_val_str_to_dict

    with open(path, "rb") as fh:
        fh.readline()
        info = key_val_str_to_dict(fh.readline().decode("utf-8", errors="replace"))
    properties = str(info.get("Properties", ""))
    if not {"run", "step"} <= set(info) or "ltau_error:" not in properties or "ltau_p:" not in properties:
        raise LtauError(f"dump {path}: exists but is not a fix ltau dump (its frames lack run/step and ltau_error/ltau_p); "
                        "remove it or name another dump file")  # fmt: skip


def probe_writable(path: str | os.PathLike, what: str = "dump") -> None:
    """Fail now, naming the file, if ``path`` could not be appended to later (leaves nothing behind)."""
    path = Path(path)
    if path.is_dir():
        raise LtauError(f"{what} {path}: is a directory; name a file")
    if not path.parent.is_dir():
        raise LtauError(f"{what} {path}: directory {path.parent} does not exist; create it first")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise LtauError(f"{what} {path}: not writable; choose another file")
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except OSError as exc:
        raise LtauError(f"{what} {path}: cannot be created ({exc.strerror}); choose a writable directory") from None
    os.close(fd)
    os.unlink(path)


def _keyed(keys: list[tuple[str, str, int]]) -> list[tuple[str, str, int, int]]:
    """(run, fix, step) + how many times it came before: one run may repeat a step (reset_timestep)."""
    seen: dict[tuple[str, str, int], int] = {}
    out = []
    for k in keys:
        out.append((*k, seen.get(k, 0)))
        seen[k] = seen.get(k, 0) + 1
    return out


def frame_keys(path: str | os.PathLike) -> list[tuple[str, str, int, int]]:
    """(run, fix, step, occurrence) of every frame of a dump, from the comment lines only."""
    from ase.io.extxyz import key_val_str_to_dict

    keys = []
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, "rb") as fh:
        while True:
            header = fh.readline()
            if not header.strip():
                break
            n = int(header)
            info = key_val_str_to_dict(fh.readline().decode())
            keys.append((str(info.get("run", "")), str(info.get("fix", "")), int(info.get("step", -1))))
            for _ in range(n):
                fh.readline()
    return _keyed(keys)


def reconcile(dump: str | os.PathLike, queue: Any) -> tuple[int, int]:
    """Make an existing ``dump`` and the queue rows written with it hold the same frames; returns
    (frames queued from the dump, frames appended to the dump). A dump that does not exist is a
    fresh start: nothing is copied into it."""
    from ase.io import iread

    dump = Path(dump)
    if not dump.is_file():
        return 0, 0
    tag = str(dump.resolve())
    in_dump = frame_keys(dump)
    selected = sorted(queue.db.select(dump=tag, include_data=False), key=lambda r: r.id)
    row_keys = _keyed([(str(r.get("run", "")), str(r.get("fix", "")), int(r.get("step", -1))) for r in selected])
    rows = dict(zip(row_keys, (r.id for r in selected)))
    dump_set = set(in_dump)
    missing_rows = {i for i, key in enumerate(in_dump) if key not in rows}
    queued = 0
    if missing_rows:
        for i, atoms in enumerate(iread(str(dump), index=":", format="extxyz")):
            if i not in missing_rows:
                continue
            info = atoms.info
            error, p = atoms.arrays.pop("ltau_error"), atoms.arrays.pop("ltau_p")
            queue.add(
                atoms, error=error, p=p, run=str(info.get("run", "")), step=int(info.get("step", -1)),
                reason=str(info.get("reason", "lo")), model_fingerprint=str(info.get("model_fingerprint", "")),
                artifact_fingerprint=str(info.get("artifact_fingerprint", "")), source=f"recovered from {dump}", dump=tag,
                fix=str(info.get("fix", "")),
            )  # fmt: skip
            queued += 1
    appended = 0
    for key, row_id in rows.items():
        if key in dump_set:
            continue
        c = queue.get(row_id)
        atoms = c.atoms
        atoms.arrays["ltau_error"] = np.asarray(c.data["ltau_error"])
        atoms.arrays["ltau_p"] = np.asarray(c.data["ltau_p"])
        atoms.info.update(step=c.step, run=c.run, fix=key[1], reason=c.reason, max_error=c.max_error,
                          model_fingerprint=c.data.get("model_fingerprint", ""),
                          artifact_fingerprint=c.data.get("artifact_fingerprint", ""))  # fmt: skip
        append_extxyz(dump, atoms)
        appended += 1
    return queued, appended


def cut_frames_after_step(path: str | os.PathLike, step: int) -> int:
    """Drop the frames of a fix ltau dump from the first one after ``step`` (a run resumed from a
    restart at ``step`` writes them again; the frame at ``step`` itself was checked before the
    restart was written and stays); returns how many frames were kept. A partial last frame goes too."""
    path = Path(path)
    if not path.is_file():
        return 0
    repair_extxyz(path)
    steps = [key[2] for key in frame_keys(path)]
    keep = next((i for i, s in enumerate(steps) if s > step), len(steps))
    if keep < len(steps):
        good = 0
        with open(path, "rb") as fh:
            for _ in range(keep):
                n = int(fh.readline())
                for _ in range(n + 1):
                    fh.readline()
            good = fh.tell()
        os.truncate(path, good)
    return keep
