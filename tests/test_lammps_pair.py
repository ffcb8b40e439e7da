"""pair_style nequip inside LAMMPS (``ltau-md run``, 1 and 2 ranks) against ASE periodic evaluation.

Forces, energy, per-atom energy, virial (pressure) and per-atom virial of a displaced, sheared
54-atom Li cell, both modes (domain: ghost shell + reverse communication; gathered: periodic graph
of the whole cell), float32 and float64; then NVE energy conservation.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import LI_BOX

BIN = Path(sys.executable).parent
NKTV2P = 1.6021765e6  # LAMMPS metal: bar per eV/Å³
MODES = ("gathered", "domain")
DTYPES = ("float32", "float64")
TOL = {
    "float32": {"f": 1e-5, "e": 1e-4, "ea": 1e-5, "s": 1e-7},  # forces eV/Å, energy eV, per-atom eV, stress eV/Å³
    "float64": {"f": 1e-9, "e": 1e-9, "ea": 1e-10, "s": 1e-11},
}


def ltau_run(script: Path, *args: str, ranks: int = 1, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "ltau-md"), "run", str(script), *args]
    if ranks > 1:
        cmd = [str(BIN / "mpiexec"), "-n", str(ranks), *cmd]
    return subprocess.run(cmd, cwd=script.parent, check=False, capture_output=True, text=True, timeout=timeout)


def check(p: subprocess.CompletedProcess) -> None:
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"


def sheared_li(seed: int = 7):
    """54 Li atoms, bcc 3×3×3 displaced by up to 0.15 Å, in a LAMMPS-style triclinic cell."""
    from ase import Atoms

    rng = np.random.default_rng(seed)
    a = 3.532
    frac = np.array([[i, j, k] for i in range(3) for j in range(3) for k in range(3)], dtype=float)
    frac = np.concatenate([frac, frac + 0.5]) / 3.0
    cell = np.array([[3 * a, 0, 0], [0.4, 3 * a, 0], [-0.3, 0.25, 3 * a]])
    pos = frac @ cell + rng.uniform(-0.15, 0.15, size=(len(frac), 3))
    return Atoms(f"Li{len(pos)}", positions=pos, cell=cell, pbc=True)


def write_data(atoms, path: Path, masses: dict[int, float] | None = None) -> None:
    """A LAMMPS data file (atom_style atomic, type 1 = the only species), ids in ASE order."""
    cell = atoms.cell.array
    assert np.allclose(cell[np.triu_indices(3, 1)], 0), "lower-triangular (LAMMPS) cell expected"
    lines = [
        "ltau-md test structure", "", f"{len(atoms)} atoms", "1 atom types", "",
        f"0.0 {float(cell[0, 0])!r} xlo xhi", f"0.0 {float(cell[1, 1])!r} ylo yhi", f"0.0 {float(cell[2, 2])!r} zlo zhi",
        f"{float(cell[1, 0])!r} {float(cell[2, 0])!r} {float(cell[2, 1])!r} xy xz yz", "", "Masses", "", "1 6.94", "",
        "Atoms # atomic", "",
    ]  # fmt: skip
    lines += [f"{i + 1} 1 {float(x)!r} {float(y)!r} {float(z)!r}" for i, (x, y, z) in enumerate(atoms.positions)]
    path.write_text("\n".join(lines) + "\n")


def read_dump(path: Path) -> np.ndarray:
    return np.loadtxt(path, skiprows=9)


PAIR_SCRIPT = """
units metal
atom_style atomic
atom_modify map array
read_data struct.data
compute pea all pe/atom
compute sa all stress/atom NULL virial
compute ssum all reduce sum c_sa[1] c_sa[2] c_sa[3] c_sa[4] c_sa[5] c_sa[6]
compute pv all pressure NULL virial
thermo_style custom step pe c_pv[1] c_pv[2] c_pv[3] c_pv[4] c_pv[5] c_pv[6] c_ssum[1] c_ssum[2] c_ssum[3] c_ssum[4] c_ssum[5] c_ssum[6] vol
"""

BLOCK = """
pair_style nequip {model} mode {mode} dtype {dtype}
pair_coeff * * Li
run 0
write_dump all custom out.{mode}.{dtype} id fx fy fz c_pea c_sa[1] c_sa[2] c_sa[3] c_sa[4] c_sa[5] c_sa[6] modify sort id format float %.17g
print "{mode} {dtype} $(pe:%.17g) $(c_pv[1]:%.17g) $(c_pv[2]:%.17g) $(c_pv[3]:%.17g) $(c_pv[4]:%.17g) $(c_pv[5]:%.17g) &
  $(c_pv[6]:%.17g) $(c_ssum[1]:%.17g) $(c_ssum[2]:%.17g) $(c_ssum[3]:%.17g) $(c_ssum[4]:%.17g) $(c_ssum[5]:%.17g) &
  $(c_ssum[6]:%.17g) $(vol:%.17g)" append results.txt
"""


@pytest.fixture(scope="module")
def reference(trained):
    """ASE (NequIPModel.evaluate) energy, forces, per-atom energy and stress, float32 and float64."""
    from ltau_md.nequip.model import NequIPModel

    atoms = sheared_li()
    out = {}
    for dtype in DTYPES:
        (r,) = NequIPModel.load(trained, dtype=dtype).evaluate([atoms])
        out[dtype] = r
    return atoms, out


@pytest.mark.parametrize("ranks", [1, 2])
def test_forces_energy_virial_equal_ase(tmp_path, trained, reference, ranks):
    atoms, ref = reference
    write_data(atoms, tmp_path / "struct.data")
    script = tmp_path / "in.pair"
    script.write_text(PAIR_SCRIPT + "".join(BLOCK.format(model=trained, mode=m, dtype=d) for m in MODES for d in DTYPES))
    run = ltau_run(script, "-screen", "none", "-log", "log.pair", ranks=ranks)
    check(run)
    assert "receptive-field graph changes" not in run.stderr  # domain mode ran on the pruned graph
    log = (tmp_path / "log.pair").read_text()
    assert f"{ranks} MPI processor grid" in log or f"by {ranks} MPI" in log
    rows = {tuple(ln.split()[:2]): np.array(ln.split()[2:], dtype=float) for ln in (tmp_path / "results.txt").read_text().splitlines()}
    per_atom_virial = {}
    for mode in MODES:
        for dtype in DTYPES:
            tol, r = TOL[dtype], ref[dtype]
            d = read_dump(tmp_path / f"out.{mode}.{dtype}")
            assert np.array_equal(d[:, 0], np.arange(1, 55))
            assert np.abs(d[:, 1:4] - r.forces).max() <= tol["f"], (mode, dtype)
            assert np.abs(d[:, 4] - r.atomic_energy).max() <= tol["ea"], (mode, dtype)
            pe, pv, ssum, vol = rows[mode, dtype][0], rows[mode, dtype][1:7], rows[mode, dtype][7:13], rows[mode, dtype][13]
            assert abs(pe - r.energy) <= tol["e"], (mode, dtype)
            # LAMMPS pressure (xx yy zz xy xz yz, bar) = −stress; ASE stress is xx yy zz yz xz xy
            sigma_lmp = -pv[[0, 1, 2, 5, 4, 3]] / NKTV2P
            assert np.abs(sigma_lmp - r.stress).max() <= tol["s"], (mode, dtype, sigma_lmp, r.stress)
            # per-atom virial (compute stress/atom) sums to the global virial
            assert np.allclose(ssum, -pv * vol, rtol=1e-9, atol=1e-6 * abs(pv * vol).max()), (mode, dtype)
            assert np.allclose(d[:, 5:].sum(axis=0), ssum, rtol=1e-9, atol=1e-9 * abs(ssum).max())
            per_atom_virial[mode, dtype] = d[:, 5:]
    # the edge-split per-atom virial is the same in both modes
    for dtype in DTYPES:
        a, b = per_atom_virial["gathered", dtype], per_atom_virial["domain", dtype]
        assert np.abs(a - b).max() <= (1e-3 if dtype == "float32" else 1e-8) * np.abs(a).max()


NVE_SCRIPT = LI_BOX + """velocity all create 600 4928459 loop geom
pair_style nequip {model}
pair_coeff * * Li
timestep 0.001
fix nve all nve
thermo 10
thermo_style custom step temp pe etotal
thermo_modify format float %.10f
run 500
"""


def thermo_table(log: str, columns: int) -> np.ndarray:
    rows = []
    for line in log.splitlines():
        parts = line.split()
        if len(parts) == columns:
            try:
                rows.append([float(v) for v in parts])
            except ValueError:
                continue
    return np.array(rows)


def test_nve_conserves_energy(tmp_path, trained):
    """500 steps of 1 fs at 600 K, float32: total energy stays within 2e-5 eV/atom of its start
    (the kinetic energy swings by ~0.04 eV/atom meanwhile), and the mean over the last 100 steps
    has drifted by less than 1e-5 eV/atom."""
    script = tmp_path / "in.nve"
    script.write_text(NVE_SCRIPT.format(model=trained))
    check(ltau_run(script, "-screen", "none", "-log", "log.nve"))
    t = thermo_table((tmp_path / "log.nve").read_text(), 4)
    assert len(t) == 51 and t[-1, 0] == 500
    n = 54
    etot = t[:, 3]
    assert np.abs(etot - etot[0]).max() / n < 2e-5, etot
    assert abs(etot[-10:].mean() - etot[:10].mean()) / n < 1e-5
    assert np.ptp(t[:, 2]) / n > 1e-3  # the potential energy did move: the test is not vacuous
