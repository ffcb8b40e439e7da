"""Reading what users hand us (arrays, frame files), with one-line errors naming the file."""

from __future__ import annotations

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
