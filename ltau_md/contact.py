"""Close contacts: an atom nearer to a neighbour than any two training atoms of the same elements.

A force field fitted to MD frames has never seen the short-range repulsion below the closest
approach in its data, and a model that is too soft there lets atoms run into each other. Such an
atom's latent features change smoothly with the pair distance, so its latent distance to the
training atoms stays small and neither LTAU nor the calibrated error model sees the failure:

* ``examples/02_python_api`` (Li, 600 → ~1500 K): pairs at 0.87–1.4 Å, where the shortest
  training pair is 2.20 Å, gave true force errors of 6–11 eV/Å at predicted errors of 0.06–0.12.
* ``benchmarks/uq_quality.py``: atoms of the MEAM test sets closer than 0.9× the shortest
  training pair of their elements (70 of 21 740, all in the 1500–2500 K sets and the heating
  ramp) all had errors above the in-domain 99th percentile, 1.5–1.7 eV/Å on average, while the
  calibrated predictor gave them 0.35–0.52 eV/Å. No atom of the 600 K sets came that close (the
  smallest ratio: 0.995 in domain, 0.973–0.975 in the Li3Mg and vacancy sets).

So an atom whose nearest neighbour of some element lies below ``fraction`` (default
:data:`CONTACT_FRACTION`) of the shortest distance between those two elements among the training
frames (within the model's cutoff) is *in contact*: its predicted error is raised to at least
``error`` (default :data:`CONTACT_ERROR`) and its ``p`` set to 0; with ``hi auto`` ``fix ltau``
also puts it just above hi (which is max(1 eV/Å, lo)), so a contact is dumped, queued and halts the
run (``halt soft|hard``): the model has left the physical region there (seed 003's reason for hi).
A ``hi`` the user gives is respected (a contact then counts above it only where hi < its error). Element pairs that never meet in the training frames are
not judged. The rule is stored in the artifact (``meta.json`` ``contact``) by ``ltau-md fit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ltau_md.error_model import frame_pairs
from ltau_md.errors import LtauError
from ltau_md.species import symbol

CONTACT_FRACTION = 0.9  # of the shortest training distance of the element pair
CONTACT_ERROR = 1.5  # eV/Å: the mean true error of such atoms on benchmarks/uq_quality.py (module docstring)


def pair_key(a: str, b: str) -> str:
    """'Li-Mg' for either order."""
    return "-".join(sorted((a, b)))


def shortest_distances(frames, cutoff: float) -> dict[str, float]:
    """Per element pair, the shortest distance (Å) between two atoms of ``frames`` within ``cutoff``."""
    frames = list(frames)
    found = frame_pairs(frames, cutoff, distances=True)
    if found is None or len(found[2]) == 0:
        return {}
    i, j, r = found
    numbers = np.concatenate([atoms.numbers for atoms in frames])
    lo, hi = np.minimum(numbers[i], numbers[j]), np.maximum(numbers[i], numbers[j])
    pairs, inv = np.unique(np.stack([lo, hi]), axis=1, return_inverse=True)
    shortest = np.full(pairs.shape[1], np.inf)
    np.minimum.at(shortest, inv.ravel(), r)
    return dict(sorted((pair_key(symbol(int(a)), symbol(int(b))), float(v)) for (a, b), v in zip(pairs.T, shortest)))


def nearest_by_species(i: np.ndarray, j: np.ndarray, r: np.ndarray, numbers: np.ndarray, n: int, species: np.ndarray) -> np.ndarray:
    """(n, len(species)): per centre atom ``i < n``, its nearest neighbour of each element (Å; inf
    where none). ``numbers`` are the atomic numbers of every row that ``j`` indexes."""
    species = np.asarray(species)
    out = np.full((n, len(species)), np.inf)
    i, j, r = np.asarray(i), np.asarray(j), np.asarray(r, dtype=np.float64)
    keep = i < n
    col = np.searchsorted(species, np.asarray(numbers)[j[keep]])
    known = (col < len(species)) & (species[np.minimum(col, len(species) - 1)] == np.asarray(numbers)[j[keep]])
    np.minimum.at(out.ravel(), i[keep][known] * len(species) + col[known], r[keep][known])
    return out


@dataclass(frozen=True)
class ContactRule:
    """When an atom is in contact (module docstring), and what it is predicted then."""

    shortest: dict[str, float]  # 'Li-Mg' -> Å
    fraction: float = CONTACT_FRACTION
    error: float = CONTACT_ERROR  # eV/Å

    def __post_init__(self) -> None:
        if isinstance(self.fraction, bool) or not (isinstance(self.fraction, (int, float)) and 0 <= self.fraction <= 1):
            raise LtauError(f"contact fraction must be between 0 and 1 (0: off), not {self.fraction!r}")
        if isinstance(self.error, bool) or not (isinstance(self.error, (int, float)) and np.isfinite(self.error) and self.error > 0):
            raise LtauError(f"contact error must be a positive number of eV/Å, not {self.error!r}")
        for key, value in self.shortest.items():
            if not (isinstance(key, str) and key.count("-") == 1):
                raise LtauError(f"contact pair {key!r} must read like 'Li-Mg'")
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise LtauError(f"contact distance of {key} must be a positive number of Å, not {value!r}")

    @property
    def enabled(self) -> bool:
        return self.fraction > 0 and bool(self.shortest)

    @property
    def cutoff(self) -> float:
        """Å: neighbours beyond this never put an atom in contact."""
        return self.fraction * max(self.shortest.values()) if self.enabled else 0.0

    def ratio(self, nearest: np.ndarray, numbers: np.ndarray, species: np.ndarray) -> np.ndarray:
        """Per atom, min over elements of its nearest neighbour's distance over the shortest training
        distance of that pair (inf where no pair is judged). ``nearest``: :func:`nearest_by_species`
        over ``species`` (atomic numbers); ``numbers``: the atoms' own."""
        numbers = np.asarray(numbers)
        out = np.full(len(numbers), np.inf)
        for z in np.unique(numbers):
            rows = numbers == z
            for c, other in enumerate(np.asarray(species)):
                ref = self.shortest.get(pair_key(symbol(int(z)), symbol(int(other))))
                if ref is not None:
                    out[rows] = np.minimum(out[rows], nearest[rows, c] / ref)
        return out

    def ratio_from_pairs(self, i: np.ndarray, j: np.ndarray, r: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        """:meth:`ratio` of every atom from directed pairs (i, j) at distances r among them."""
        numbers = np.asarray(numbers)
        species = np.unique(numbers)
        return self.ratio(nearest_by_species(i, j, r, numbers, len(numbers), species), numbers, species)

    def apply(self, error: np.ndarray, p: np.ndarray, ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(error, p, in-contact mask) with atoms in contact raised to ``error`` and p 0."""
        contact = np.asarray(ratio) < self.fraction if self.enabled else np.zeros(len(error), dtype=bool)
        if contact.any():
            error, p = np.array(error, dtype=np.float64), np.array(p, dtype=np.float64)
            error[contact] = np.maximum(error[contact], self.error)
            p[contact] = 0.0
        return error, p, contact

    def to_dict(self) -> dict[str, Any]:
        return {"shortest": {k: float(v) for k, v in self.shortest.items()}, "fraction": float(self.fraction), "error": float(self.error)}

    @classmethod
    def from_dict(cls, d: Any) -> ContactRule:
        if not isinstance(d, dict) or not isinstance(d.get("shortest"), dict):
            raise LtauError("'contact' must hold 'shortest' (element pair -> Å), 'fraction' and 'error'")
        return cls(dict(d["shortest"]), d.get("fraction", CONTACT_FRACTION), d.get("error", CONTACT_ERROR))
