"""Reading LAMMPS ``dump custom`` text files (the format, not the library): frames with any
per-atom columns, e.g. ``id type x y z fx fy fz f_uq[1] f_uq[2]``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ltau_md.errors import LtauError


@dataclass
class DumpFrame:
    step: int
    cell: np.ndarray  # rows = lattice vectors (LAMMPS convention: a along x, b in xy)
    origin: np.ndarray
    columns: dict[str, np.ndarray]  # sorted by atom id

    def positions(self) -> np.ndarray:
        return np.stack([self.columns["x"], self.columns["y"], self.columns["z"]], axis=1)

    def vector(self, prefix: str) -> np.ndarray:
        return np.stack([self.columns[f"{prefix}{c}"] for c in "xyz"], axis=1)

    def to_atoms(self, species_of_type: dict[int, str]):
        from ase import Atoms

        types = self.columns["type"].astype(int)
        try:
            symbols = [species_of_type[t] for t in types]
        except KeyError as exc:
            raise LtauError(f"dump step {self.step}: atom type {exc.args[0]} has no species") from None
        return Atoms(symbols=symbols, positions=self.positions() - self.origin, cell=self.cell, pbc=True)


def _box(lines: list[str], header: str) -> tuple[np.ndarray, np.ndarray]:
    vals = np.array([[float(x) for x in ln.split()] for ln in lines])
    if "xy" in header:
        (xlo_b, xhi_b, xy), (ylo_b, yhi_b, xz), (zlo, zhi, yz) = vals
        xlo = xlo_b - min(0.0, xy, xz, xy + xz)
        xhi = xhi_b - max(0.0, xy, xz, xy + xz)
        ylo, yhi = ylo_b - min(0.0, yz), yhi_b - max(0.0, yz)
    else:
        (xlo, xhi), (ylo, yhi), (zlo, zhi) = vals[:, :2]
        xy = xz = yz = 0.0
    cell = np.array([[xhi - xlo, 0, 0], [xy, yhi - ylo, 0], [xz, yz, zhi - zlo]])
    return cell, np.array([xlo, ylo, zlo])


def read_dump(path: str | os.PathLike) -> Iterator[DumpFrame]:
    """Frames of a text dump in file order (a truncated last frame is skipped)."""
    try:
        fh = open(path)
    except FileNotFoundError:
        raise LtauError(f"{path}: no such dump file") from None
    with fh:
        lines = fh.read().splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("ITEM: TIMESTEP"):
            raise LtauError(f"{path}: line {i + 1}: expected 'ITEM: TIMESTEP'; not a LAMMPS text dump")
        try:
            step = int(lines[i + 1])
            n = int(lines[i + 3])
            box_header = lines[i + 4]
            cell, origin = _box(lines[i + 5 : i + 8], box_header)
            names = lines[i + 8].split()[2:]
            rows = lines[i + 9 : i + 9 + n]
        except (IndexError, ValueError):
            return  # truncated tail (a run killed mid-write)
        if len(rows) < n:
            return
        data = np.array([[float(x) for x in r.split()] for r in rows])
        order = np.argsort(data[:, names.index("id")]) if "id" in names else np.arange(n)
        yield DumpFrame(step, cell, origin, {name: data[order, j] for j, name in enumerate(names)})
        i += 9 + n


def _frame_starts(lines: Iterable[str]) -> Iterator[tuple[int, int | None]]:
    """(index of its ``ITEM: TIMESTEP`` line, step) per frame of a dump's lines; step None where
    the step line is missing or cut short (a killed writer)."""
    at = None
    for n, line in enumerate(lines):
        if at is not None:
            word = line.split()[:1]
            yield at, int(word[0]) if line.endswith("\n") and word and word[0].isdigit() else None
            at = None
        if line.startswith("ITEM: TIMESTEP"):
            at = n
    if at is not None:
        yield at, None


def dump_steps(path: str | os.PathLike) -> list[int]:
    """The steps of a ``dump custom`` text file's frames (a partial last frame's too, where its
    step line is whole; none if the file does not exist)."""
    if not os.path.isfile(path):
        return []
    with open(path) as fh:
        return [step for _, step in _frame_starts(fh) if step is not None]


def cut_dump_at_step(path: str | os.PathLike, step: int) -> int:
    """Drop the frames of a ``dump custom`` text file from the first one at ``step`` or later (a
    run resumed from a restart at ``step`` writes them again), and a frame cut short before its
    step; returns how many frames were kept."""
    from ltau_md.atomic_write import write_bytes

    path = os.fspath(path)
    if not os.path.isfile(path):
        return 0
    with open(path) as fh:
        lines = fh.read().splitlines(keepends=True)
    kept, end = 0, len(lines)
    for at, frame_step in _frame_starts(lines):
        if frame_step is None or frame_step >= step:
            end = at
            break
        kept += 1
    write_bytes(path, "".join(lines[:end]).encode())
    return kept
