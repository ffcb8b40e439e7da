"""Shared synthetic data with known truth for the science-core tests."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import descriptor_like  # noqa: F401  (re-exported for tests)

from ltau_md.error_log import AtomTable, ErrorLog, ErrorLogWriter


def atom_table(n_frames: int = 4, n_atoms: int = 5, sources=("a.xyz", "b.xyz"), seed: int = 0) -> AtomTable:
    rng = np.random.default_rng(seed)
    frames = []
    for s in sources:
        for f in range(n_frames):
            numbers = rng.choice([3, 12], size=n_atoms)
            frames.append((s, f, numbers, rng.normal(size=(n_atoms, 3))))
    return AtomTable.from_frames(frames)


def write_log(path, errors: np.ndarray, atoms: AtomTable, epochs=None, dtype="float32") -> ErrorLog:
    w = ErrorLogWriter(path, atoms, dtype=dtype)
    for e, row in zip(epochs if epochs is not None else range(len(errors)), errors):
        w.write_epoch(e, row)
    return ErrorLog(path)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def synthetic_training(tmp_path, n_frames: int = 30, n_atoms: int = 10, n_epochs: int = 25, n_models: int = 2, seed: int = 0):
    """Error logs of M fake models over one training set, plus descriptors that cluster by
    species; returns ``(stats, descriptors, errors_per_model)``."""
    from ltau_md.pvalues import training_statistics

    rng = np.random.default_rng(seed)
    atoms = atom_table(n_frames=n_frames, n_atoms=n_atoms, sources=("train_a.xyz", "train_b.xyz"), seed=seed)
    n = len(atoms)
    hardness = rng.gamma(2.0, 0.04, size=n)  # each atom's typical error
    decay = np.exp(-np.arange(n_epochs) / 8.0)[:, None]
    errs = [
        (hardness[None, :] * (1 + 3 * decay) * rng.gamma(4.0, 0.25, size=(n_epochs, n))).astype(np.float32)
        for _ in range(n_models)
    ]
    logs = [write_log(tmp_path / f"log{m}", e, atoms) for m, e in enumerate(errs)]
    stats = training_statistics(logs)
    base = descriptor_like(n, d=16, seed=seed, n_species=1)
    offsets = {3: 0.0, 12: 4.0}
    desc = base + np.array([offsets[int(z)] for z in atoms.species], dtype=np.float32)[:, None]
    return stats, desc.astype(np.float32), errs


# -- NequIP / reference-data fixtures (session scoped: trained once per test run) -----------------

import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

LTAU_MD = Path(sys.executable).parent / "ltau-md"
REPO = Path(__file__).resolve().parents[1]


def source_tree(dest: Path) -> Path:
    """The checkout's files as git sees them (committed or not, ignored ones left out)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True, capture_output=True, text=True)
    for name in files.stdout.splitlines():
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


# A 54-atom bcc Li box for the LAMMPS tests (atom IDs mapped: the styles need tags).
LI_BOX = """
units metal
atom_style atomic
atom_modify map array
lattice bcc 3.532
region box block 0 3 0 3 0 3
create_box 1 box
create_atoms 1 box
mass 1 6.94
"""
TINY_MODEL = ["--r-max", "4.0", "--num-layers", "2", "--num-features", "8", "--l-max", "1"]


def ltau_md(*args, check: bool = True, timeout: float = 900, cwd=None) -> subprocess.CompletedProcess:
    p = subprocess.run([str(LTAU_MD), *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError(f"ltau-md {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="session")
def li_data(tmp_path_factory) -> dict[str, Path]:
    """Small Li MEAM datasets: two training files and a validation file (54 atoms per frame)."""
    d = tmp_path_factory.mktemp("li_data")
    out = {}
    for name, seed, frames in (("train_a", 1, 6), ("train_b", 2, 6), ("val", 3, 4)):
        out[name] = d / f"{name}.xyz"
        ltau_md("make-data", "--system", "Li", "--atoms", 54, "--frames", frames, "--equilibrate", 200,
                "--every", 20, "--seed", seed, "-o", out[name])
    return out


@pytest.fixture(scope="session")
def trained(tmp_path_factory, li_data) -> Path:
    """A 2-model tiny ensemble trained for 3 epochs on the two Li training files."""
    out = tmp_path_factory.mktemp("trained") / "model"
    ltau_md("train", "--data", li_data["train_a"], li_data["train_b"], "--val", li_data["val"], "--epochs", 3,
            "--ensemble", 2, "--batch-size", 2, *TINY_MODEL, "-o", out)
    return out


@pytest.fixture(scope="session")
def fitted(tmp_path_factory, trained) -> Path:
    art = tmp_path_factory.mktemp("fitted") / "li.ltau"
    ltau_md("fit", "--model", trained, "--k", 3, "-o", art)
    return art


@pytest.fixture(scope="session")
def calibrated(tmp_path_factory, fitted, li_data) -> Path:
    """A calibrated copy of ``fitted`` (fitted distributions: lo/hi auto work with it)."""
    from ltau_app.cli import main

    art = tmp_path_factory.mktemp("calibrated") / "li.ltau"
    shutil.copytree(fitted, art)
    assert main(["calibrate", str(art), "--data", str(li_data["val"])]) == 0
    return art
