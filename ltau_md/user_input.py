"""Reading what users hand us (arrays, frame files), with one-line errors naming the file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ltau_md.errors import LtauError


def load_array(path: str, what: str) -> np.ndarray:
    """``np.load`` a user's .npy without pickle, with one-line errors naming the file."""
    p = Path(path)
    if not p.is_file():
        raise LtauError(f"{path}: no such file ({what})")
    with open(p, "rb") as fh:
        magic = fh.read(6)
    if magic != b"\x93NUMPY":
        raise LtauError(f"{path}: not a .npy array file (save {what} with numpy.save)")
    try:
        arr = np.load(p, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise LtauError(f"{path}: holds Python objects (needs pickle); save a plain numeric array with np.save") from None
        raise LtauError(f"{path}: not a .npy array file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise LtauError(f"{path}: not a .npy array file ({exc})") from None
    return arr


def _bad_token(path: Path, exc: Exception) -> tuple[int, str] | None:
    """(line, problem) for the two mistakes ASE names only by their text: an unknown element
    (KeyError 'Zz') or a word where a number belongs; found as the first line holding that word."""
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str) and re.fullmatch(r"[A-Za-z]{1,3}", exc.args[0]):
        token, problem = exc.args[0], f"unknown element {exc.args[0]!r}"
    else:
        m = re.fullmatch(r"could not convert string to float: '(.*)'", str(exc))
        if m is None:
            return None
        token, problem = m[1], f"{m[1]!r} is not a number"
    with open(path, encoding="utf-8", errors="replace") as fh:
        for i, line in enumerate(fh, 1):
            if token in line.split():
                return i, problem
    return None


def read_frames(path: str | Path, need_forces: bool = True, what: str = "frames") -> list:
    """All frames of an ASE-readable file (extxyz, ...), each checked for what LTAU needs.

    Reference forces/energy, when present, stay on the frame's SinglePointCalculator."""
    from ase.io import read

    p = Path(path)
    if not p.is_file():
        raise LtauError(f"{path}: no such file ({what})")
    if p.stat().st_size == 0:
        raise LtauError(f"{path}: empty file; give {what} as extended XYZ (or another ase.io format)")
    try:
        frames = read(str(p), index=":")
    except Exception as exc:  # ASE raises many types for malformed files
        located = _bad_token(p, exc)
        if located is not None:
            line, problem = located
            raise LtauError(f"{path}, line {line}: {problem}; fix that line") from None
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise LtauError(f"{path}: cannot read it as frames ({text}); give {what} as extended XYZ (or another ase.io format)") from None
    if not frames:
        raise LtauError(f"{path}: holds no frames")
    for i, atoms in enumerate(frames):
        if len(atoms) == 0:
            raise LtauError(f"{path}: frame {i} has no atoms")
        if not np.all(np.isfinite(atoms.positions)):
            raise LtauError(f"{path}: frame {i} has NaN or infinite positions; fix or drop that frame")
        if not np.all(np.isfinite(atoms.cell.array)):
            raise LtauError(f"{path}: frame {i} has a NaN or infinite cell; fix or drop that frame")
        if atoms.pbc.any() and abs(atoms.cell.volume) < 1e-9:
            raise LtauError(f"{path}: frame {i} is periodic but its cell has zero volume; give the cell (extxyz Lattice=)")
        if need_forces:
            forces = reference_forces(atoms)
            if forces is None:
                raise LtauError(f"{path}: frame {i} has no reference forces (write them with the frame, e.g. extxyz 'forces')")
            if not np.all(np.isfinite(forces)):
                raise LtauError(f"{path}: frame {i} has NaN or infinite reference forces; fix or drop that frame")
    return frames


PREDICTION_TAG = "ltau_md_predict"  # info key on the frames 'ltau-md predict' writes


def is_prediction(atoms) -> bool:
    """A frame written by ``ltau-md predict``: its ``forces`` are the model's, the reference (when the
    input had one) is in ``ref_forces``. Not the queue's or fix ltau's frames, which carry
    ``ltau_error`` too but the reference's (or no) forces."""
    return bool(atoms.info.get(PREDICTION_TAG)) or ("ref_forces" in atoms.arrays and "force_error" in atoms.arrays)


def reference_forces(atoms) -> np.ndarray | None:
    """The frame's stored (reference) forces, or None."""
    if is_prediction(atoms):
        ref = atoms.arrays.get("ref_forces")
        return None if ref is None else np.asarray(ref, dtype=np.float64)
    calc = atoms.calc
    if calc is not None and "forces" in getattr(calc, "results", {}):
        return np.asarray(calc.results["forces"], dtype=np.float64)
    if "forces" in atoms.arrays:
        return np.asarray(atoms.arrays["forces"], dtype=np.float64)
    return None


def read_yaml_mapping(path: str | Path, what: str) -> dict:
    """A YAML file whose top level is a mapping (configs), with one-line errors."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise LtauError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise LtauError(f"{path}: is a directory, not a {what}; give the YAML file") from None
    except PermissionError:
        raise LtauError(f"{path}: not readable (permission denied); fix its permissions or copy it") from None
    except UnicodeDecodeError as exc:
        line = Path(path).read_bytes()[: exc.start].count(b"\n") + 1
        raise LtauError(f"{path}, line {line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); save it as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)  # where the parser gave up (0-based)
        where = f", line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise LtauError(f"{path}{where}: not valid YAML ({problem}); fix that line") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LtauError(f"{path}: not a {what} (the top level must be a mapping)")
    return data
