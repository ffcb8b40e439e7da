"""Candidate queue (ase.db), selection, export and resumable relabelling."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read
from conftest import ltau_md

from ltau_md.errors import LtauError
from ltau_md.queue import CandidateQueue, farthest_point_selection
from ltau_md.relabel import make_calculator, relabel

TESTS = Path(__file__).resolve().parent


def frame(seed: int, species: str = "Li", n: int = 2):
    atoms = bulk(species, "bcc", a=3.5, cubic=True).repeat((n, n, n)) if species == "Li" else bulk("Mg", "hcp", a=3.2, c=5.2).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=seed)
    atoms.set_velocities(np.random.default_rng(seed).normal(size=(len(atoms), 3)) * 0.01)
    return atoms


def fill(db: Path, n: int, latent_of=None, species_of=None) -> CandidateQueue:
    q = CandidateQueue(db)
    for i in range(n):
        atoms = frame(i, species_of(i) if species_of else "Li")
        err = np.random.default_rng(i).gamma(2, 0.05, len(atoms))
        q.add(atoms, error=err, p=1 - err, run="run0", step=10 * i, reason="lo", model_fingerprint="m" * 64,
              artifact_fingerprint="a" * 64, lo=0.1, latent=latent_of(i, len(atoms)) if latent_of else None)
    return q


def test_rows_keep_frame_arrays_and_provenance(tmp_path):
    q = fill(tmp_path / "q.db", 3)
    rows = list(q.rows("pending"))
    assert [r.step for r in rows] == [0, 10, 20] and len(q) == 3
    r = rows[1]
    np.testing.assert_allclose(r.atoms.positions, frame(1).positions)
    np.testing.assert_allclose(r.atoms.get_velocities(), frame(1).get_velocities())
    assert len(r.data["ltau_error"]) == len(r.atoms) and r.key_value_pairs["model"] == "sha256:" + "m" * 16
    assert r.data["model_fingerprint"] == "m" * 64 and r.reason == "lo" and r.run == "run0"
    with pytest.raises(LtauError, match=".db"):
        CandidateQueue(tmp_path / "q.sqlite")


@pytest.mark.parametrize("fingerprint", ["01667234e9069785" + "0" * 48, "0123456789012345" + "f" * 48])
def test_fingerprints_that_read_as_numbers_are_stored(tmp_path, fingerprint):
    # ase.db refuses a string value that parses as a float; a hash prefix sometimes does
    q = CandidateQueue(tmp_path / "q.db")
    atoms = frame(0)
    q.add(atoms, error=np.full(len(atoms), 0.2), p=np.full(len(atoms), 0.5), run="r", step=0, reason="lo",
          model_fingerprint=fingerprint, artifact_fingerprint=fingerprint)  # fmt: skip
    (row,) = q.rows()
    assert row.key_value_pairs["artifact"] == "sha256:" + fingerprint[:16] and row.data["artifact_fingerprint"] == fingerprint


def test_meam_relabel_equals_the_reference_calculator(tmp_path):
    fill(tmp_path / "q.db", 3)
    ltau_md("relabel", tmp_path / "q.db", "--calculator", "meam")
    q = CandidateQueue(tmp_path / "q.db")
    assert q.count("labelled") == 3 and q.count("pending") == 0
    calc = make_calculator("meam")
    for r in q.rows("labelled"):
        ref = r.atoms.copy()
        ref.calc = calc
        np.testing.assert_allclose(q.db.get(id=r.id).forces, ref.get_forces(), atol=1e-10)
        assert r.key_value_pairs["labelled_by"] == "meam"


def test_failures_are_recorded_and_can_be_retried(tmp_path):
    fill(tmp_path / "q.db", 4, species_of=lambda i: "Mg" if i % 2 else "Li")
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    p = subprocess.run([str(Path(sys.executable).parent / "ltau-md"), "relabel", str(tmp_path / "q.db"), "--calculator",
                        "slow_calculators:FailOnMg"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    q = CandidateQueue(tmp_path / "q.db")
    assert q.count("labelled") == 2 and q.count("failed") == 2
    assert all("SCF did not converge" in r.data["failure"] for r in q.rows("failed"))
    ltau_md("relabel", tmp_path / "q.db", "--calculator", "meam", "--retry-failed")
    assert CandidateQueue(tmp_path / "q.db").count("labelled") == 4


def test_relabel_resumes_after_being_killed(tmp_path):
    fill(tmp_path / "q.db", 8)
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    cmd = [str(Path(sys.executable).parent / "ltau-md"), "relabel", str(tmp_path / "q.db"), "--calculator",
           'slow_calculators:SlowLJ:{"delay": 0.4}']
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while CandidateQueue(tmp_path / "q.db").count("labelled") < 3 and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    q = CandidateQueue(tmp_path / "q.db")
    done = q.count("labelled")
    assert 3 <= done < 8 and q.count("pending") == 8 - done and len(q) == 8
    p = subprocess.run([*cmd[:-1], 'slow_calculators:SlowLJ:{"delay": 0.0}'], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert f"labelled {8 - done}" in p.stdout  # only the rest, nothing twice
    q = CandidateQueue(tmp_path / "q.db")
    assert q.count("labelled") == 8 and len(q) == 8


WRITER = """
import sys, numpy as np
from ase.build import bulk
from ltau_md.queue import CandidateQueue
q = CandidateQueue(sys.argv[1])
for i in range(100000):
    a = bulk("Li", "bcc", a=3.5, cubic=True).repeat((3, 3, 3))
    a.rattle(0.01, seed=i)
    q.add(a, error=np.full(len(a), 0.2), p=np.full(len(a), 0.5), run="w", step=i, reason="lo", latent=np.ones((len(a), 32)))
"""


def test_queue_stays_consistent_after_kill_9_of_a_writer(tmp_path):
    db = tmp_path / "q.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)])
    deadline = time.time() + 60
    while (not db.exists() or CandidateQueue(db).count() < 20) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    q = CandidateQueue(db)
    rows = list(q.rows())
    assert len(rows) >= 20
    assert [r.step for r in rows] == list(range(len(rows)))  # every committed row whole, none half
    for r in rows:
        assert len(r.atoms) == 54 and len(r.data["ltau_error"]) == 54 and r.data["latent"].shape == (54, 32)
    q.add(frame(0), error=np.zeros(16), p=np.ones(16), run="after", step=-1, reason="manual")  # still writable
    assert len(q) == len(rows) + 1


def test_select_caps_and_takes_one_frame_per_cluster_first(tmp_path):
    centers = np.random.default_rng(0).normal(size=(3, 16)) * 10

    def latent(i, n):
        return centers[i % 3] + 0.01 * np.random.default_rng(i).normal(size=(n, 16))

    q = fill(tmp_path / "q.db", 12, latent_of=latent)
    chosen = farthest_point_selection(list(q.rows("pending")), 3)
    assert sorted((c.id - 1) % 3 for c in chosen) == [0, 1, 2]
    assert chosen[0].max_error == max(c.max_error for c in q.rows())
    p = ltau_md("candidates", "select", tmp_path / "q.db", "--max", 3)
    assert "selected 3 of 12" in p.stdout
    marked = [c for c in CandidateQueue(tmp_path / "q.db").rows() if c.key_value_pairs.get("selected")]
    assert len(marked) == 3
    # a tight min-distance stops at the clusters
    assert len(farthest_point_selection(list(q.rows()), 12, min_distance=1.0)) == 3
    # a frame queued without latents (recovered from a dump, added by hand) does not stop selection:
    # every frame is then placed by its error profile
    atoms = frame(99)
    q.add(atoms, error=np.full(len(atoms), 0.9), p=np.zeros(len(atoms)), run="run1", step=5, reason="manual")
    chosen = q.select(4)
    assert len(chosen) == 4 and chosen[0].step == 5  # the most uncertain frame first


def test_export_writes_labelled_frames_for_training(tmp_path):
    fill(tmp_path / "q.db", 3)
    ltau_md("relabel", tmp_path / "q.db", "--calculator", "meam", "--limit", 2)
    ltau_md("candidates", "export", tmp_path / "q.db", "-o", tmp_path / "new.xyz")
    frames = read(tmp_path / "new.xyz", ":")
    assert len(frames) == 2
    assert all(f.get_forces().shape == (16, 3) and "candidate_id" in f.info for f in frames)
    # what train, fit and calibrate read: the relabelled forces are the reference (they carry ltau_error too)
    from ltau_md.nequip.training import check_training_files
    from ltau_md.user_input import read_frames, reference_forces

    check_training_files([tmp_path / "new.xyz"])
    for f, g in zip(frames, read_frames(tmp_path / "new.xyz")):
        np.testing.assert_array_equal(reference_forces(g), f.get_forces())
    out = ltau_md("candidates", "list", tmp_path / "q.db").stdout
    assert "pending 1, labelled 2, failed 0" in out
    assert "most uncertain atoms" in ltau_md("candidates", "show", tmp_path / "q.db", 1).stdout


def test_candidates_list_shows_whole_run_names_and_marks_frames_not_yet_selected(tmp_path, capsys):
    from ltau_app.cli import main

    q = fill(tmp_path / "q.db", 2)
    long_run = "heating_ramp@2026-12-07T10:54:47_rank0"  # names of one campaign differ at their ends
    q.add(frame(7), error=np.full(16, 0.5), p=np.zeros(16), run=long_run, step=70, reason="hi")
    assert main(["candidates", "list", str(tmp_path / "q.db")]) == 0
    rows = capsys.readouterr().out.splitlines()[1:-1]
    assert len(rows) == 3 and long_run in rows[2]
    assert all(r.split()[2] == "-" for r in rows)  # before any 'select'
    q.select(1)
    assert main(["candidates", "list", str(tmp_path / "q.db")]) == 0
    sel = [r.split()[2] for r in capsys.readouterr().out.splitlines()[1:-1]]
    assert sorted(sel) == ["no", "no", "yes"]


def test_relabel_says_why_frames_failed_and_which_were_left_and_fails_when_none_labelled(tmp_path, capsys):
    from ltau_app.cli import main

    fill(tmp_path / "q.db", 3)
    emt = ["relabel", str(tmp_path / "q.db"), "--calculator", "ase.calculators.emt:EMT"]  # EMT has no Li
    assert main([*emt, "--limit", "2"]) == 1
    out, err = capsys.readouterr()
    assert "labelled 0, failed 2" in out and "first failure, frame 1: NotImplementedError: No EMT-potential for Li" in err
    assert main([*emt, "--selected"]) == 0  # nothing selected yet: nothing tried, and it says so
    out = capsys.readouterr().out
    assert "1 frame(s) not marked by 'ltau-md candidates select'" in out
    assert "2 frame(s) failed before and were left; --retry-failed" in out


def test_bad_calculator_specs_are_one_line_errors(tmp_path):
    fill(tmp_path / "q.db", 1)
    for spec, needle in [("nosuch", "meam"), ("nosuchmodule:Calc", "cannot import"), ("meam:{oops", "JSON")]:
        p = ltau_md("relabel", tmp_path / "q.db", "--calculator", spec, check=False)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and needle in p.stderr, (spec, p.stderr)


def test_relabel_keeps_the_label_another_relabeller_stored_meanwhile(tmp_path, capsys):
    from ase.calculators.calculator import Calculator, all_changes

    q = fill(tmp_path / "q.db", 2)
    elsewhere = CandidateQueue(tmp_path / "q.db", writable=True)  # another relabeller of this queue

    class Racing(Calculator):  # while it computes row 1, the other relabeller stores its label
        implemented_properties = ["energy", "forces", "stress"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            if elsewhere.get(1).status == "pending":
                theirs = elsewhere.get(1).atoms
                theirs.calc = SinglePointCalculator(theirs, energy=-7.0, forces=np.zeros((len(theirs), 3)))
                assert elsewhere.mark_labelled(1, theirs, "theirs")
            self.results = {"energy": 1.0, "forces": np.zeros((len(atoms), 3)), "stress": np.zeros(6)}

    counts = relabel(q, Racing())
    assert (counts["labelled"], counts["labelled_elsewhere"], counts["failed"]) == (1, 1, 0)
    assert q.get(1).key_value_pairs["labelled_by"] == "theirs" and q.get(2).key_value_pairs["labelled_by"] == "Racing"


def test_a_claim_lapses_with_its_process_here_and_holds_from_another_host_until_reclaimed(tmp_path):
    from ltau_md.queue import claim_owner

    q = fill(tmp_path / "q.db", 2)
    ended = subprocess.run([sys.executable, "-c", "from ltau_md.queue import claim_owner; print(claim_owner())"],
                           capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    me, elsewhere = claim_owner(), "node17/another-boot/4242/1234"
    assert q.claim(1, ended) is None and q.get(1).key_value_pairs["claimed_by"] == ended
    assert q.claim(1, me) is None  # a relabel killed on this host: its claim lapsed with it
    assert q.claim(1, elsewhere) == me  # this process still runs
    assert q.claim(2, elsewhere) is None
    assert q.claim(2, me) == elsewhere  # cannot be checked from here: held ...
    assert q.claim(2, me, reclaim=True) is None  # ... until taken over
    labelled = q.get(2).atoms
    labelled.calc = SinglePointCalculator(labelled, energy=0.0, forces=np.zeros((len(labelled), 3)))
    assert q.mark_labelled(2, labelled, "x")
    assert q.claim(2, me, reclaim=True) == "labelled" and q.claim(2, me, ("pending", "failed")) == "labelled"


def test_relabel_leaves_frames_another_hosts_relabel_holds_and_says_how_to_take_them(tmp_path, capsys):
    from ltau_app.cli import main

    q = fill(tmp_path / "q.db", 3)
    assert q.claim(2, "node17/another-boot/4242/1234") is None  # a relabel on another node
    assert main(["relabel", str(tmp_path / "q.db"), "--calculator", "meam"]) == 0
    out = capsys.readouterr().out
    assert "labelled 2," in out and "1 frame(s) are still being labelled by another relabel of this queue (node17/" in out
    assert "--reclaim takes them over" in out
    assert main(["relabel", str(tmp_path / "q.db"), "--calculator", "meam", "--reclaim"]) == 0
    assert "labelled 1," in capsys.readouterr().out and q.count("labelled") == 3
