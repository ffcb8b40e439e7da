"""Chemical species as users write them (symbols) and as arrays store them (atomic numbers)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from ltau_md.errors import LtauError


def to_numbers(species: Sequence | np.ndarray, where: str = "species") -> np.ndarray:
    """Atomic numbers (int16) from an array of numbers or of element symbols."""
    arr = np.asarray(species)
    if arr.dtype.kind in "iu":
        bad = (arr < 1) | (arr >= len(chemical_symbols))
        if bad.any():
            raise LtauError(f"{where}: {int(arr[bad][0])} is not an atomic number (1..118)")
        return arr.astype(np.int16)
    if arr.dtype.kind in "US":
        out = np.empty(arr.shape, dtype=np.int16)
        for sym in np.unique(arr):
            s = sym.decode() if isinstance(sym, bytes) else str(sym)
            if s not in atomic_numbers:
                raise LtauError(f"{where}: {s!r} is not an element symbol (write e.g. 'Li' or 3)")
            out[arr == sym] = atomic_numbers[s]
        return out
    if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
        return to_numbers(arr.astype(np.int64), where)
    raise LtauError(f"{where}: expected atomic numbers or element symbols, got dtype {arr.dtype}")


def symbol(z: int) -> str:
    return chemical_symbols[int(z)]


def symbols(numbers: Sequence[int] | np.ndarray) -> list[str]:
    return [chemical_symbols[int(z)] for z in numbers]
