"""The Li / Li–Mg systems of seed 003 (SI Table 1), built as ASE structures (no LAMMPS here).

Seed 003 sampled bcc Li (250 atoms, NVT) and Li, Li3Mg, LiMg on bcc and LiMg3, Mg on hcp with three
vacancies (125 = 128 − 3, 61 = 64 − 3; NPT), all at 600 K, with the Kim 2012 2NN-MEAM. Lattice
constants are this MEAM's 0 K values (lammps_plugin/potentials/README.md): bcc Li 3.532 Å, B2 LiMg 3.407 Å,
hcp Mg a = 3.209 Å, c/a = 1.619; the random alloys take Vegard's law on the volume per atom between
their neighbours (Li3Mg between Li and LiMg, LiMg3 between Li and Mg), so NPT starts near zero pressure.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.build import bulk

from ltau_md.errors import LtauError

# Atomic masses (amu) of every MD ltau-md sets up — the reference MD of make-data, the loop's MD with
# the learned potential and the shipped LAMMPS inputs: those of the reference MEAM (library.meam
# 'atwt'), so a model trained on reference frames runs on the reference's time scale.
MASSES = {"Li": 6.94, "Mg": 24.32}

A_LI_BCC = 3.532  # Å, bcc Li minimum of this MEAM (rc = 5.0 artifact; paper 3.487)
A_LIMG_B2 = 3.407  # Å, B2 LiMg
A_MG_HCP, COA_MG_HCP = 3.209, 1.619  # Å, hcp Mg

# Volume per atom (Å^3) of the end members, for Vegard interpolation of the random alloys.
_V_LI = A_LI_BCC**3 / 2
_V_LIMG = A_LIMG_B2**3 / 2
_V_MG = math.sqrt(3) / 2 * A_MG_HCP**3 * COA_MG_HCP / 2


@dataclass(frozen=True)
class SystemSpec:
    """One row of the seed-003 table plus what is needed to build it."""

    name: str
    lattice: str  # "bcc" or "hcp" (hcp in its 4-atom orthorhombic cell, so boxes are orthogonal)
    mg_fraction: float
    ordered: bool  # True: B2 (CsCl) order; False: Mg placed at random on the sites
    a: float  # Å
    c_over_a: float | None  # hcp only
    sites: int  # default number of lattice sites
    vacancies: int  # default number of vacancies
    ensemble: str  # default "nvt" / "npt"
    barostat: str  # NPT coupling: "iso" for systems liquid at 600 K with this MEAM, "aniso" for solids
    temperature: float = 600.0  # K

    @property
    def cell_sites(self) -> int:
        return 2 if self.lattice == "bcc" else 4

    def cell_lengths(self) -> np.ndarray:
        if self.lattice == "bcc":
            return np.full(3, self.a)
        return np.array([self.a, math.sqrt(3) * self.a, self.a * (self.c_over_a or 0.0)])


def _a_bcc(volume: float) -> float:
    return (2 * volume) ** (1 / 3)


def _a_hcp(volume: float, c_over_a: float) -> float:
    return (4 * volume / (math.sqrt(3) * c_over_a)) ** (1 / 3)


# Li and Li3Mg melt at 600 K with this MEAM (checked: potentials README), so their NPT box is scaled
# isotropically: an anisotropic barostat lets a liquid's box shape drift without restoring force.
# The solids (B2 LiMg, hcp LiMg3 and Mg) get "aniso" so that each box length, and hcp c/a, relaxes.
SYSTEMS: dict[str, SystemSpec] = {
    "Li": SystemSpec("Li", "bcc", 0.0, True, A_LI_BCC, None, 250, 0, "nvt", "iso"),
    "Li3Mg": SystemSpec("Li3Mg", "bcc", 0.25, False, _a_bcc(0.5 * (_V_LI + _V_LIMG)), None, 128, 3, "npt", "iso"),
    "LiMg": SystemSpec("LiMg", "bcc", 0.5, True, A_LIMG_B2, None, 128, 3, "npt", "aniso"),
    "LiMg3": SystemSpec(
        "LiMg3", "hcp", 0.75, False, _a_hcp(0.25 * _V_LI + 0.75 * _V_MG, COA_MG_HCP), COA_MG_HCP, 64, 3, "npt", "aniso"
    ),
    "Mg": SystemSpec("Mg", "hcp", 1.0, True, A_MG_HCP, COA_MG_HCP, 64, 3, "npt", "aniso"),
}

MAX_SITES = 1_000_000  # largest supercell build_system makes
MAX_ANISOTROPY = 1.5  # longest / shortest box length allowed when choosing repeats


def system_spec(name: str) -> SystemSpec:
    try:
        return SYSTEMS[name]
    except KeyError:
        raise LtauError(f"--system {name!r}: unknown system; choose one of {', '.join(SYSTEMS)}") from None


def choose_repeats(spec: SystemSpec, sites: int) -> tuple[int, int, int]:
    """Repeats of the conventional cell whose site count is closest to ``sites`` among near-cubic boxes.

    Only boxes with longest/shortest length ≤ 1.5 are considered (a slab-like box has a short periodic
    length and odd finite-size effects); ties go to the more cubic box, then to the smaller one.
    """
    if sites < 1:
        raise LtauError(f"--atoms {sites}: must be a positive number of atoms")
    lengths = spec.cell_lengths()
    m = spec.cell_sites
    n_max = max(2, int(math.ceil((2 * sites / m) ** (1 / 3) * lengths.max() / lengths.min())) + 1)
    best: tuple[float, float, int, tuple[int, int, int]] | None = None
    for reps in itertools.product(range(1, n_max + 1), repeat=3):
        box = lengths * reps
        aniso = box.max() / box.min()
        if aniso > MAX_ANISOTROPY + 1e-9:
            continue
        count = m * reps[0] * reps[1] * reps[2]
        key = (abs(count - sites), round(aniso, 6), count, reps)
        if best is None or key < best:
            best = key
    assert best is not None  # bcc (1,1,1) and orthorhombic hcp (2,1,1) are always near-cubic
    return best[3]


def build_system(
    name: str, atoms: int | None = None, vacancies: int | None = None, seed: int | np.random.Generator = 0
) -> Atoms:
    """The seed-003 structure ``name`` before MD: a perfect lattice, alloyed and with vacancies.

    ``atoms``: wanted number of atoms after vacancies (default: the table's, e.g. 125 for LiMg);
    the near-cubic supercell whose ``sites − vacancies`` is closest is used. Random Mg placement
    and vacancies come from ``numpy.random.default_rng(seed)`` (or the Generator given), so a seed
    fixes the structure. ``atoms.info`` describes what was built.
    """
    spec = system_spec(name)
    n_vac = spec.vacancies if vacancies is None else int(vacancies)
    if n_vac < 0:
        raise LtauError(f"--vacancies {n_vac}: must be 0 or more")
    target_sites = spec.sites if atoms is None else int(atoms) + n_vac
    if atoms is not None and atoms < 1:
        raise LtauError(f"--atoms {atoms}: must be a positive number of atoms")
    if target_sites > MAX_SITES:  # (the supercell search alone would run for minutes)
        raise LtauError(f"--atoms {atoms}: at most {MAX_SITES} lattice sites; the reference MD runs on one core, ask for fewer")
    reps = choose_repeats(spec, target_sites)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    if spec.lattice == "bcc":
        if spec.ordered and 0 < spec.mg_fraction < 1:
            cell = bulk("LiMg", "cesiumchloride", a=spec.a, cubic=True)  # B2: Li corner, Mg body centre
        else:
            cell = bulk("Li", "bcc", a=spec.a, cubic=True)
    else:
        cell = bulk("Mg", "hcp", a=spec.a, c=spec.a * (spec.c_over_a or 0.0), orthorhombic=True)
    struct = cell.repeat(reps)
    n_sites = len(struct)
    if n_vac >= n_sites:
        raise LtauError(
            f"--vacancies {n_vac}: the {name} supercell has {n_sites} sites; use fewer vacancies or more --atoms"
        )

    if not spec.ordered:
        # Exact stoichiometry, random placement: round(x·N) Mg atoms on randomly chosen sites.
        numbers = np.full(n_sites, 3)
        n_mg = int(round(spec.mg_fraction * n_sites))
        numbers[rng.choice(n_sites, size=n_mg, replace=False)] = 12
        struct.numbers = numbers
    elif spec.mg_fraction == 1.0:
        struct.numbers = np.full(n_sites, 12)
    elif spec.mg_fraction == 0.0:
        struct.numbers = np.full(n_sites, 3)

    removed = np.sort(rng.choice(n_sites, size=n_vac, replace=False)) if n_vac else np.array([], int)
    del struct[list(removed)]
    struct.pbc = True
    struct.info.update(
        system=name,
        lattice=spec.lattice + ("-B2" if spec.ordered and 0 < spec.mg_fraction < 1 else ""),
        lattice_a=float(spec.a),
        repeats="x".join(map(str, reps)),
        sites=int(n_sites),
        vacancies=int(n_vac),
        mg_fraction_nominal=float(spec.mg_fraction),
    )
    if spec.c_over_a:
        struct.info["c_over_a"] = float(spec.c_over_a)
    return struct
