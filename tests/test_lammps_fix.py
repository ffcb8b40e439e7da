"""fix ltau inside LAMMPS: per-atom and global outputs against the Python LTAU calculator, lo auto
cutoffs, and runs that must dump, queue and halt (soft and hard, 1 and 2 ranks) and restart."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import LI_BOX

BIN = Path(sys.executable).parent


def ltau_run(script: Path, *args: str, ranks: int = 1, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "ltau-md"), "run", str(script), *args]
    if ranks > 1:
        cmd = [str(BIN / "mpiexec"), "-n", str(ranks), *cmd]
    return subprocess.run(cmd, cwd=script.parent, check=False, capture_output=True, text=True, timeout=timeout)


def check(p: subprocess.CompletedProcess, code: int = 0) -> None:
    assert p.returncode == code, f"exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"


@pytest.fixture(scope="module")
def calibrated_neighbourhood(tmp_path_factory, fitted, trained, li_data) -> Path:
    """The same, its error model forced to the form that averages d over each atom's neighbourhood
    (fix ltau then checks in two phases, with a forward communication of d to the ghosts)."""
    art = tmp_path_factory.mktemp("calibrated_nbr") / "li.ltau"
    shutil.copytree(fitted, art)
    p = subprocess.run([str(BIN / "ltau-md"), "calibrate", str(art), "--data", str(li_data["val"]), "--model", str(trained),
                        "--error-model", "neighbourhood"], check=False, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert p.returncode == 0, p.stderr
    return art


SETUP = LI_BOX + """velocity all create 600 4928459 loop geom
"""

OUTPUT_SCRIPT = SETUP + """
pair_style nequip {model} dtype float64 mode {mode}
pair_coeff * * Li
group half id 1:40
fix nve all nve
fix uq half ltau 5 {artifact} lo {lo} hi {hi} halt no
thermo 5
thermo_style custom step pe f_uq[1] f_uq[2] f_uq[3] f_uq[4]
thermo_modify format float %.17g
dump d all custom 5 uq.dump id x y z f_uq[1] f_uq[2]
dump_modify d sort id format float %.17g
run 10
"""


def last_dump_frame(path: Path, n: int) -> tuple[int, np.ndarray, np.ndarray]:
    lines = path.read_text().splitlines()
    step = int(lines[-n - 8])
    box = np.array([ln.split() for ln in lines[-n - 4 : -n - 1]], dtype=float)
    return step, box, np.array([ln.split() for ln in lines[-n:]], dtype=float)


def ltau_calculator_on_dump(box: np.ndarray, d: np.ndarray, model: Path, artifact: Path) -> dict:
    """LtauCalculator's results on the atoms of a dumped frame (columns id x y z ...)."""
    from ase import Atoms

    from ltau_md.nequip.calculator import LtauCalculator

    atoms = Atoms(f"Li{len(d)}", positions=d[:, 1:4], cell=np.diag(box[:, 1] - box[:, 0]), pbc=True)
    atoms.calc = LtauCalculator(model, artifact, dtype="float64")
    atoms.get_forces()
    return atoms.calc.results


def with_dedup_distance(artifact: Path, dest: Path, eps: float) -> Path:
    """A copy of ``artifact`` whose dedup ε for Li is ``eps``."""
    import json

    shutil.copytree(artifact, dest)
    meta = json.loads((dest / "meta.json").read_text())
    meta["dedup_distance"] = {"Li": eps}
    (dest / "meta.json").write_text(json.dumps(meta))
    return dest


@pytest.mark.parametrize("error_model", ["chosen", "neighbourhood"])
@pytest.mark.parametrize("ranks,mode", [(1, "gathered"), (2, "domain")])
def test_per_atom_and_global_outputs_equal_python_ltau(tmp_path, trained, calibrated, calibrated_neighbourhood, ranks, mode, error_model):
    """f_uq[1]/[2] per atom at step 10 equal LtauCalculator on the dumped positions; f_uq[1..4]
    are max, mean, count above lo, count above hi over the group (atoms 1..40); the others are 0.
    With the neighbourhood error model, d̄ averages over every atom's neighbours, ghosts of the other
    rank included, as the calculator does over the periodic frame."""

    from ltau_md.artifact import Artifact

    if error_model == "neighbourhood":
        calibrated = calibrated_neighbourhood
        assert Artifact.load(calibrated).neighbourhood_cutoff() > 0

    lo, hi = (0.25, 0.4) if error_model == "chosen" else (0.2, 0.23)
    script = tmp_path / "in.uq"
    script.write_text(OUTPUT_SCRIPT.format(model=trained, artifact=calibrated, mode=mode, lo=lo, hi=hi))
    check(ltau_run(script, "-screen", "none", "-log", "log.uq", ranks=ranks))
    step, box, d = last_dump_frame(tmp_path / "uq.dump", 54)
    assert step == 10
    results = ltau_calculator_on_dump(box, d, trained, calibrated)
    err, p = results["ltau_error"], results["ltau_p"]
    group = d[:, 0] <= 40
    assert np.abs(d[group, 4] - err[group]).max() < 1e-6
    assert np.abs(d[group, 5] - p[group]).max() < 1e-6
    assert np.all(d[~group, 4:] == 0.0)
    thermo = [ln.split() for ln in (tmp_path / "log.uq").read_text().splitlines() if ln.split()[:1] == ["10"]]
    _, _, vmax, vmean, nlo, nhi = (float(v) for v in thermo[-1])
    e = err[group]
    assert vmax == pytest.approx(e.max(), abs=1e-6) and vmean == pytest.approx(e.mean(), abs=1e-6)
    assert (nlo, nhi) == (np.sum(e > lo), np.sum(e > hi))
    assert 0 < nlo < 40 or 0 < nhi < 40, f"choose lo/hi inside the range of the predicted errors {np.quantile(e, [0, .5, 1])}"


LO_AUTO_SCRIPT = SETUP + """
pair_style nequip {model}
pair_coeff * * Li
fix nve all nve
fix uq all ltau 10 {artifact}
thermo 10
thermo_style custom step pe f_uq[1] f_uq[3] f_uq[4]
run 30
run 0
fix uq all ltau 10 {artifact} nsamples 1000000 scale 2.0
run 0
"""


def test_lo_auto_is_the_fitted_cutoff_at_atoms_times_checks(tmp_path, trained, calibrated):
    from ltau_md.artifact import Artifact

    script = tmp_path / "in.lo"
    script.write_text(LO_AUTO_SCRIPT.format(model=trained, artifact=calibrated))
    check(ltau_run(script, "-screen", "none", "-log", "log.lo"))
    lines = [ln for ln in (tmp_path / "log.lo").read_text().splitlines() if ln.startswith("fix ltau uq: predictor calibrated, lo/hi")]
    assert len(lines) == 3, lines
    art = Artifact.load(calibrated)
    fit, s = art.distribution("Li", "uncertainty_calibrated"), 1.0  # the calibrated predictor's s is 1
    expected = [
        (fit.cutoff(54 * 4), 54 * 4),  # run 30 with checks every 10: steps 0, 10, 20, 30
        (fit.cutoff(54 * 1), 54),  # run 0: one check
        (fit.cutoff(1_000_000) * 2.0 / s, 1_000_000),  # nsamples; scale s' stretches predicted errors by s'/s
    ]
    for line, (lo, n) in zip(lines, expected):
        got_lo, got_hi = (float(v) for v in line.split("Li ")[1].split(";")[0].split("/"))
        assert got_lo == pytest.approx(lo, rel=1e-3), line
        assert got_hi == pytest.approx(max(1.0, lo), rel=1e-3), line  # hi auto: max(1 eV/Å, lo)
        assert f"N = {n}," in line


HALT_SCRIPT = SETUP + """
pair_style nequip {model}
pair_coeff * * Li
fix nve all nve
# lo below every atom: each check writes a frame; hi out of reach: no halt
fix uq all ltau 5 {artifact} lo 1e-6 hi 1e3 dump cand.xyz queue cand.db
thermo 5
thermo_style custom step pe f_uq[1] f_uq[3] f_uq[4]
run 20
print "AFTER1 $(step)" append steps.txt
# hi below every atom: the first check of the run halts; soft: the script goes on
fix uq all ltau 5 {artifact} lo 1e-6 hi 1e-6 halt soft dump cand.xyz queue cand.db
run 20
print "AFTER2 $(step)" append steps.txt
run 7
print "AFTER3 $(step)" append steps.txt
fix uq all ltau 5 {artifact} lo 1e-6 hi 1e-6 halt hard dump cand.xyz queue cand.db
run 20
print "NEVER $(step)" append steps.txt
"""

CONTINUE_SCRIPT = """
units metal
atom_style atomic
atom_modify map array
read_restart {restart}
pair_style nequip {model}
pair_coeff * * Li
fix nve all nve
fix uq all ltau 5 {artifact} lo 1e3 hi 1e3 halt hard
run 10
print "CONTINUED $(step) $(count(all))" append steps.txt
"""


@pytest.mark.parametrize("ranks", [1, 2])
def test_run_dumps_queues_and_halts(tmp_path, trained, calibrated, ranks):
    from ase.io import read

    from ltau_md.artifact import Artifact
    from ltau_md.queue import CandidateQueue
    from ltau_md.trajectory import run_names

    script = tmp_path / "in.halt"
    script.write_text(HALT_SCRIPT.format(model=trained, artifact=calibrated))
    p = ltau_run(script, "-screen", "none", "-log", "log.halt", ranks=ranks)
    check(p, 3)
    restart = tmp_path / "halt.halt.restart"
    assert p.stdout == ""
    assert p.stderr.splitlines() == [f"halted at step 35 (54 atoms above hi): restart written to {restart.name}"]
    assert restart.is_file()
    # run 20: checks at 5..20 write frames (lo); the soft-halt fix halts its run 20 at its first
    # check (25) and the following run 7 at 30, and the script goes on; the hard-halt fix's run
    # starts at 30 (setup writes nothing and does not halt) and stops LAMMPS at 35
    assert (tmp_path / "steps.txt").read_text().split() == ["AFTER1", "20", "AFTER2", "25", "AFTER3", "30"]

    frames = read(tmp_path / "cand.xyz", ":")
    art = Artifact.load(calibrated)
    assert [f.info["step"] for f in frames] == [5, 10, 15, 20, 25, 30, 35]
    assert [f.info["reason"] for f in frames] == ["lo"] * 4 + ["hi"] * 3
    assert [f.info["n_above_hi"] for f in frames] == [0] * 4 + [54] * 3
    q = CandidateQueue(tmp_path / "cand.db")
    rows = sorted(q.rows(), key=lambda r: r.id)
    assert len(rows) == len(frames)
    for f, r in zip(frames, rows):
        assert len(f) == 54 and f.info["model_fingerprint"] == art.meta["model"]["fingerprint"]
        assert f.info["artifact_fingerprint"] == art.fingerprint and f.info["n_above_lo"] == 54
        assert np.all(f.arrays["ltau_error"] > 0) and np.all((f.arrays["ltau_p"] >= 0) & (f.arrays["ltau_p"] <= 1))
        assert np.array_equal(f.arrays["lammps_id"], np.arange(1, 55))
        assert np.abs(f.get_velocities()).max() > 0
        assert r.status == "pending" and r.step == f.info["step"] and r.reason == f.info["reason"]
        assert r.key_value_pairs["model"] == f"sha256:{art.meta['model']['fingerprint'][:16]}"
        assert r.key_value_pairs["artifact"] == f"sha256:{art.fingerprint[:16]}"
        assert np.allclose(r.data["ltau_error"], f.arrays["ltau_error"]) and r.data["latent"].shape == (54, art.meta["descriptor_dim"])
        assert np.allclose(r.atoms.positions, f.positions) and np.allclose(r.atoms.get_velocities(), f.get_velocities())
        assert r.run == f.info["run"] and r.run.startswith("halt@")
    assert run_names(tmp_path / "log.halt") == [rows[0].run]  # what 'trajectory --queue' matches on

    cont = tmp_path / "in.continue"
    cont.write_text(CONTINUE_SCRIPT.format(restart=restart.name, model=trained, artifact=calibrated))
    check(ltau_run(cont, "-screen", "none", "-log", "log.continue", ranks=ranks))
    assert (tmp_path / "steps.txt").read_text().split()[-3:] == ["CONTINUED", "45", "54"]


KILL_SCRIPT = SETUP + """
pair_style nequip {model}
pair_coeff * * Li
fix nve all nve
# dedup no: the re-runs below repeat the same trajectory, whose frames dedup would record as duplicates
fix uq all ltau 5 {artifact} lo 1e-6 hi 1e3 dump cand.xyz queue cand.db dedup no
run 20
"""

# ltau-md run in a process whose queue writer kills it (SIGKILL, no cleanup) as it is about to
# commit the third frame: the dump already holds that frame, the queue does not.
KILLER = """
import os, signal, sys
from ltau_md.queue import CandidateQueue
add = CandidateQueue.add
def add_then_die(self, *a, **k):
    if self.count() == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return add(self, *a, **k)
CandidateQueue.add = add_then_die
from ltau_app.cli import main
sys.exit(main(["run", sys.argv[1], "-screen", "none", "-log", "none"]))
"""


def test_dump_and_queue_agree_after_a_kill_between_the_two_writes(tmp_path, trained, calibrated):
    from ase.io import read

    from ltau_md.queue import CandidateQueue

    script = tmp_path / "in.kill"
    script.write_text(KILL_SCRIPT.format(model=trained, artifact=calibrated))
    p = subprocess.run([sys.executable, "-c", KILLER, script.name], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == -9, p.stderr
    assert len(read(tmp_path / "cand.xyz", ":")) == 3 and CandidateQueue(tmp_path / "cand.db").count() == 2

    p = ltau_run(script, "-screen", "none", "-log", "none")  # the same fix opens both again
    check(p)
    notes = [ln for ln in p.stderr.splitlines() if "disagreed" in ln]
    assert len(notes) == 1 and "queued 1 frame(s) found only in the dump" in notes[0], p.stderr
    frames, rows = read(tmp_path / "cand.xyz", ":"), list(CandidateQueue(tmp_path / "cand.db").rows())
    assert len(frames) == len(rows) == 3 + 4  # the recovered frame, then this run's checks at 5..20
    assert sorted((f.info["run"], f.info["step"]) for f in frames) == sorted((r.run, r.step) for r in rows)
    recovered = [r for r in rows if r.key_value_pairs["source"].startswith("recovered from")]
    assert len(recovered) == 1 and recovered[0].step == 15
    assert np.allclose(recovered[0].data["ltau_error"], frames[2].arrays["ltau_error"])

    # the reverse: a queue row whose frame the dump lost is appended back to the dump
    lines = (tmp_path / "cand.xyz").read_text().splitlines(keepends=True)
    (tmp_path / "cand.xyz").write_text("".join(lines[: -(54 + 2)]))  # drop the last frame
    p = ltau_run(script, "-screen", "none", "-log", "none")
    check(p)
    assert any("appended 1 found only in the queue" in ln for ln in p.stderr.splitlines()), p.stderr
    assert len(read(tmp_path / "cand.xyz", ":")) == CandidateQueue(tmp_path / "cand.db").count() == 7 + 4


MINIMIZE_SCRIPT = LI_BOX + """
displace_atoms all random 0.25 0.25 0.25 8817
pair_style nequip {model}
pair_coeff * * Li
fix uq all ltau 2 {artifact} predictor {predictor} lo 1e-6 hi 1e3 dedup no dump min.xyz queue min.db halt no
thermo 2
thermo_style custom step pe fmax f_uq[1] f_uq[3]
minimize 0 0 8 100
print "MIN1 $(step)" append steps.txt
fix uq all ltau 2 {artifact} lo 1e-6 hi 1e-6 dedup no halt soft
thermo_style custom step pe fmax
minimize 0 0 20 100
print "MIN2 $(step)" append steps.txt
"""


@pytest.mark.parametrize("predictor", ["calibrated", "ltau"])
def test_fix_ltau_reports_dumps_queues_and_halts_during_minimize(tmp_path, trained, calibrated, predictor):
    from ase.io import read

    from ltau_md.queue import CandidateQueue

    script = tmp_path / "in.min"
    script.write_text(MINIMIZE_SCRIPT.format(model=trained, artifact=calibrated, predictor=predictor))
    check(ltau_run(script, "-screen", "none", "-log", "log.min"))
    log = (tmp_path / "log.min").read_text()
    assert f"fix ltau uq: predictor {predictor}, lo/hi" in log
    frames = read(tmp_path / "min.xyz", ":")
    steps = [int(a.info["step"]) for a in frames]
    assert steps == [2, 4, 6, 8], steps  # every 2 minimizer iterations (the first minimize)
    assert all(a.info["minimize"] for a in frames)
    rows = list(CandidateQueue(tmp_path / "min.db", must_exist=True).rows())
    assert [r.step for r in rows] == steps and all(r.status == "pending" and r.key_value_pairs["phase"] == "minimize" for r in rows)
    thermo = {int(ln.split()[0]): [float(v) for v in ln.split()[1:]] for ln in log.splitlines()
              if ln.split()[:1] and ln.split()[0].isdigit() and len(ln.split()) == 5}  # fmt: skip
    for a in frames:  # the dumped per-atom values are those the thermo output reduced
        assert thermo[int(a.info["step"])][2] == pytest.approx(a.arrays["ltau_error"].max(), rel=1e-6)
    # the soft halt stops the second minimization at its first check; the script goes on
    first, second = (int(ln.split()[1]) for ln in (tmp_path / "steps.txt").read_text().split("\n") if ln)
    assert first == 8 and second == first + 2, (first, second)
    assert "soft halt at step 10" in log


DEDUP_SCRIPT = SETUP + """
pair_style nequip {model}
pair_coeff * * Li
fix nve all nve
fix uq all ltau 5 {artifact} lo 1e-6 hi 1e3 dump d.xyz queue q.db
thermo 5
thermo_style custom step pe f_uq[3] f_uq[5]
run 20
write_restart dedup.restart
clear
read_restart dedup.restart
pair_style nequip {model}
pair_coeff * * Li
fix uq all ltau 5 {artifact} lo 1e3 hi 1e4
thermo_style custom step pe f_uq[3] f_uq[5]
run 0
"""


@pytest.mark.parametrize("eps, duplicates", [(0.0, 0), (1e9, 4)])
def test_frames_whose_flagged_atoms_are_all_known_are_recorded_as_duplicates_not_queued(tmp_path, trained, calibrated, eps, duplicates):

    from ltau_md.queue import CandidateQueue

    art = with_dedup_distance(calibrated, tmp_path / "eps.ltau", eps)
    script = tmp_path / "in.dedup"
    script.write_text(DEDUP_SCRIPT.format(model=trained, artifact=art))
    check(ltau_run(script, "-screen", "none", "-log", "log.dedup"))
    q = CandidateQueue(tmp_path / "q.db", must_exist=True)
    assert q.count("duplicate") == duplicates and q.count("pending") == 4 - duplicates  # frames at steps 5, 10, 15, 20
    assert all(c.status == "pending" for c in q.select(10))  # duplicates are never selected
    log = (tmp_path / "log.dedup").read_text()
    assert log.count("recorded as a duplicate, not queued") == duplicates
    after_run, resumed = [ln.split() for ln in log.splitlines() if ln.split()[:1] == ["20"]][-2:]
    assert float(after_run[3]) == duplicates  # f_uq[5]
    assert float(resumed[3]) == duplicates and float(resumed[2]) == 0  # the count went on over read_restart (nothing above lo 1e3)
    n_dumped = (tmp_path / "d.xyz").read_text().count("Lattice=") if (tmp_path / "d.xyz").exists() else 0
    assert n_dumped == 4 - duplicates


CONTACT_SCRIPT = LI_BOX + """
set atom 2 x 0.7 y 0.7 z 0.7
pair_style nequip {model} dtype float64 mode {mode}
pair_coeff * * Li
fix uq all ltau 2 {artifact} lo 0.1 halt no queue q.db dedup yes
dump d all custom 2 uq.dump id x y z f_uq[1] f_uq[2]
dump_modify d sort id format float %.17g
run 4
# a hi of the user's, above the rule's error: the contact frames are above lo only, and still not duplicates
unfix uq
undump d
fix own all ltau 2 {artifact} lo 0.1 hi 100 halt no queue q_own_hi.db dedup yes
run 4
"""


@pytest.mark.parametrize("ranks,mode", [(1, "gathered"), (2, "domain")])
def test_atoms_closer_than_any_training_pair_are_predicted_at_least_the_contact_error(tmp_path, trained, calibrated, ranks, mode):
    """Atom 2 moved to 1.2 Å of atom 1 (the training frames' shortest Li-Li pair is > 2 Å): both are
    in close contact, predicted ≥ the rule's error with p 0 in LtauCalculator, and in LAMMPS (edges
    of the pair style, on either rank, at checks every 2 steps) above hi auto as well; no other
    atom is. Both frames are queued as above hi, although dedup's ε here calls every environment
    known: contacts hide near training atoms in latent space; with a hi of the user's above the
    rule's error they are queued as above lo, and not as duplicates either."""
    from ltau_md.artifact import Artifact
    from ltau_md.queue import CandidateQueue

    rule = Artifact.load(calibrated).contact
    assert rule is not None and rule.enabled and rule.shortest["Li-Li"] * rule.fraction > 1.3
    art = with_dedup_distance(calibrated, tmp_path / "eps.ltau", 1e9)
    script = tmp_path / "in.contact"
    script.write_text(CONTACT_SCRIPT.format(model=trained, artifact=art, mode=mode))
    check(ltau_run(script, "-screen", "none", "-log", "log.contact", ranks=ranks))
    q = CandidateQueue(tmp_path / "q.db", must_exist=True)
    assert q.count("pending") == 2 and q.count("duplicate") == 0  # the checks at steps 2 and 4
    step, box, d = last_dump_frame(tmp_path / "uq.dump", 54)
    assert step == 4
    results = ltau_calculator_on_dump(box, d, trained, calibrated)
    contact = results["ltau_contact"]
    assert np.flatnonzero(contact).tolist() == [0, 1]
    assert np.all(results["ltau_error"][:2] >= rule.error) and np.all(d[:2, 5] == 0.0)
    hi = float(re.search(r"lo/hi \(eV/Å\) Li [0-9.e+-]+/([0-9.e+-]+)", (tmp_path / "log.contact").read_text()).group(1))
    assert np.all(d[:2, 4] > hi) and np.all(d[:2, 4] >= rule.error)  # with hi auto: above hi even where it exceeds the rule's
    assert np.all(d[2:, 4] < rule.error)
    np.testing.assert_allclose(d[2:, 4], results["ltau_error"][2:], atol=1e-6)
    np.testing.assert_allclose(d[:, 5], results["ltau_p"], atol=1e-6)
    assert {c.reason for c in q.select(10)} == {"hi"}
    own = CandidateQueue(tmp_path / "q_own_hi.db", must_exist=True)
    assert own.count("pending") == 2 and own.count("duplicate") == 0 and {c.reason for c in own.select(10)} == {"lo"}
