"""Where the shipped Li–Mg reference potential (Kim 2012 2NN-MEAM) lives, and its checksums.

The files sit verbatim in ``inputs/potentials/meam_kim2012/`` of the repository (provenance in
``inputs/potentials/README.md``); the package is installed editable, so the repository root is
two levels above this file. No LAMMPS import here: this only finds and checks files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ltau_md.errors import LtauError

NAME = "meam_kim2012"
# sha256 of the files as distributed by NIST (implementation 2012--Kim-Y-M--Mg-Li--LAMMPS--ipr1).
SHA256 = {
    "library.meam": "adf4ea62c382c5a1e10d8a7cb2265cc07408e3d64baab4d81f5211c7b46437d8",
    "LiMg.meam": "53526011ffc0c03368568ed389281a60f38cb8559e1b24209b109f424c744763",
}
ELEMENTS = ("Li", "Mg")  # LAMMPS atom types 1 and 2, in this order
MASSES = {"Li": 6.94, "Mg": 24.32}  # amu, as in library.meam


def meam_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "inputs" / "potentials" / NAME


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def meam_files(verify: bool = True) -> tuple[Path, Path]:
    """``(library.meam, LiMg.meam)`` of the shipped potential; checksums verified unless ``verify=False``."""
    d = meam_dir()
    paths = (d / "library.meam", d / "LiMg.meam")
    for p in paths:
        if not p.is_file():
            raise LtauError(
                f"{p}: reference MEAM file missing; restore inputs/potentials/{NAME}/ from git "
                "(ltau-md must be installed editable from its repository: pip install -e .)"
            )
        if verify and _sha256(p) != SHA256[p.name]:
            raise LtauError(
                f"{p}: sha256 differs from the NIST file; restore it verbatim (git checkout -- {p.name}), never retype it"
            )
    return paths


def pair_commands(library: Path, params: Path) -> list[str]:
    """LAMMPS commands (metal units, types 1 = Li, 2 = Mg) that set up this potential."""
    return [
        "pair_style meam",
        f'pair_coeff * * "{library}" Li Mg "{params}" Li Mg',
        f"mass 1 {MASSES['Li']}",
        f"mass 2 {MASSES['Mg']}",
    ]
