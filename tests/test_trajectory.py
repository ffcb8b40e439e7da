import numpy as np
import pytest
from conftest import ltau_md

from ltau_md.errors import LtauError
from ltau_md.trajectory import log_before_step, read_thermo, read_trajectory

LOG = """LAMMPS (22 Jul 2025 - Update 4)
fix uq all ltau 10 li.ltau lo auto hi auto
Per MPI rank memory allocation (min/avg/max) = 3.1 | 3.1 | 3.1 Mbytes
   Step          Temp          PotEng        f_uq[1]        f_uq[2]        f_uq[3]        f_uq[4]
         0   600            -410.2          0.21           0.05           0              0
        10   612            -409.9          0.25           0.06           1              0
        20   630            -409.1          0.31           0.07           2              0
Loop time of 1.2 on 1 procs for 20 steps with 250 atoms

variable T equal 900
   Step          Temp          PotEng        f_uq[1]        f_uq[2]        f_uq[3]        f_uq[4]
        20   630            -409.1          0.31           0.07           2              0
        30   700            -408.0          0.52           0.09           4              0
        40   820            -407.1          1.35           0.12           9              1
ERROR: fix ltau halted the run (fix_ltau.cpp:123)
"""


def test_all_thermo_blocks_are_read_and_joined(tmp_path):
    (tmp_path / "log.lammps").write_text(LOG)
    blocks = read_thermo(tmp_path / "log.lammps")
    assert len(blocks) == 2 and list(blocks[0]["Step"]) == [0, 10, 20]
    traj = read_trajectory(tmp_path / "log.lammps")
    assert traj.fix_id == "uq"
    assert list(traj.step) == [0, 10, 20, 20, 30, 40]
    assert traj.max_error[-1] == pytest.approx(1.35) and traj.mean_error[1] == pytest.approx(0.06)


def test_a_log_is_cut_at_its_first_thermo_row_of_the_restart_step_or_later(tmp_path):
    lines = LOG.splitlines(keepends=True)
    kept = log_before_step(lines, 30)  # the second block's 20 stays; its 30 and all after it go
    (tmp_path / "log.before").write_text("".join(kept))
    assert [list(b["Step"]) for b in read_thermo(tmp_path / "log.before")] == [[0, 10, 20], [20]]
    assert kept == lines[: len(kept)] and kept[-1].split()[0] == "20"
    assert log_before_step(lines, 10)[-1].split()[0] == "0" and log_before_step(lines, 1000) == lines
    assert log_before_step([*lines, "        50   900   -406"], 1000) == lines  # a row cut short by a kill goes


def _dump_frame(step: int) -> str:
    return (f"ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n1\nITEM: BOX BOUNDS pp pp pp\n0 1\n0 1\n0 1\n"
            "ITEM: ATOMS id type x y z\n1 1 0 0 0\n")  # fmt: skip


def test_a_dump_is_cut_at_the_restart_step_and_before_a_frame_cut_short(tmp_path):
    from ltau_md.lammps_dump import cut_dump_at_step, dump_steps

    dump = tmp_path / "traj.dump"
    dump.write_text(_dump_frame(0) + _dump_frame(10) + _dump_frame(20) + "ITEM: TIMESTEP\n3")  # "30" cut short
    assert dump_steps(dump) == [0, 10, 20]
    assert cut_dump_at_step(dump, 100) == 3 and dump.read_text() == _dump_frame(0) + _dump_frame(10) + _dump_frame(20)
    assert cut_dump_at_step(dump, 10) == 1 and dump.read_text() == _dump_frame(0)  # the resumed run writes 10 again
    assert dump_steps(tmp_path / "none.dump") == [] and cut_dump_at_step(tmp_path / "none.dump", 10) == 0


HALTED = """   Step          Temp          f_uq[1]        f_uq[2]
         0   600            0.21           0.05
        10   640            0.25           0.06
WARNING: the neighbour list was rebuilt 3 times (src/neighbor.cpp:1)
        20   700            0.31           0.07
fix ltau uq: soft halt at step 30: 2 atoms above hi (max predicted error 2.182 eV/Å); this run ends, the script goes on
        30   1390           2.18           0.21
Loop time of 30.2986 on 1 procs for 30 steps with 54 atoms

Performance: 1.426 ns/day, 16.833 hours/ns, 16.502 timesteps/s, 891.129 atom-step/s
   Step          Temp          f_uq[1]        f_uq[2]
        30   1390           2.18           0.21
        40   1500           0.90           0.20
WARNING: Fix halt condition for fix-id stop met on step 40 with value 30 (src/fix_halt.cpp:303)
        40   1500           0.90           0.20
Loop time of 1.0 on 1 procs for 10 steps with 54 atoms
"""


def test_the_halting_row_after_a_halt_message_is_read_and_the_halts_are_marked(tmp_path):
    (tmp_path / "log.lammps").write_text(HALTED)
    traj = read_trajectory(tmp_path / "log.lammps")
    assert list(traj.step) == [0, 10, 20, 30, 30, 40, 40]  # nothing lost to the lines between rows
    assert traj.initial_and_maximum()["maximum"] == pytest.approx(2.18) and traj.initial_and_maximum()["maximum_step"] == 30
    assert list(traj.halt_steps) == [30, 40]  # fix ltau's soft halt and LAMMPS's fix halt
    p = ltau_md("trajectory", tmp_path / "log.lammps", "-o", tmp_path / "t.png")
    assert "maximum 2.1800 eV/Å at step 30; 2 halt(s)" in p.stdout


def test_numeric_fix_print_lines_of_a_rows_width_are_not_rows(tmp_path):
    printed = HALTED.replace("        10   640", "0.5 1.25 3.0 4.0\n-2.5 1 2 3\n        10   640")
    (tmp_path / "log.lammps").write_text(printed.replace("        20   700", "7 1.0 2.0 3.0\n        20   700"))
    assert list(read_trajectory(tmp_path / "log.lammps").step) == [0, 10, 20, 30, 30, 40, 40]
    # a stray line whose step runs ahead of the rows does not hide the rows after it
    ahead = HALTED.replace("WARNING: the neighbour list", "54 1.0 2.0 3.0\nWARNING: the neighbour list")
    (tmp_path / "log.lammps").write_text(ahead)
    assert list(read_trajectory(tmp_path / "log.lammps").step) == [0, 10, 20, 30, 30, 40, 40]


def test_log_without_fix_columns_is_a_one_line_error(tmp_path):
    (tmp_path / "log.lammps").write_text("   Step Temp\n 0 300\n 10 310\nLoop time of 1\n")
    with pytest.raises(LtauError, match="thermo_style custom"):
        read_trajectory(tmp_path / "log.lammps")


def test_trajectory_command_draws_the_failure_view(tmp_path):
    from ase.build import bulk

    from ltau_md.queue import CandidateQueue

    (tmp_path / "log.lammps").write_text(LOG)
    q = CandidateQueue(tmp_path / "q.db")
    a = bulk("Li", cubic=True)
    for step, reason in ((10, "lo"), (30, "lo"), (40, "hi")):
        q.add(a, error=np.ones(2), p=np.ones(2) * 0.5, run="r", step=step, reason=reason)
    p = ltau_md("trajectory", tmp_path / "log.lammps", "--queue", tmp_path / "q.db", "--lo", 0.3, "--hi", 1.0, "-o", tmp_path / "t.png")
    assert "1 halt(s); 2 candidate(s)" in p.stdout and "step 40" in p.stdout
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_trajectory_marks_only_the_frames_of_the_runs_its_log_records(tmp_path, capsys):
    from ase.build import bulk

    from ltau_app.cli import main
    from ltau_md.queue import CandidateQueue

    this, other = "ramp@20261207T110700", "ramp@20261207T110720"  # two runs of one script sharing a queue
    (tmp_path / "log.lammps").write_text(LOG.replace("fix uq all", f"ltau-md run {this}: 1 MPI rank(s) x 1 torch thread(s) (default)\nfix uq all"))
    q = CandidateQueue(tmp_path / "q.db")
    a = bulk("Li", cubic=True)
    for run, step, reason in ((this, 10, "lo"), (this, 40, "hi"), (other, 20, "lo"), (other, 30, "lo"), (other, 30, "hi")):
        q.add(a, error=np.ones(2), p=np.ones(2) * 0.5, run=run, step=step, reason=reason)
    args = ["trajectory", str(tmp_path / "log.lammps"), "--queue", str(tmp_path / "q.db"), "-o", str(tmp_path / "t.png")]
    assert main(args) == 0
    assert "1 halt(s); 1 candidate(s)" in capsys.readouterr().out
    assert main([*args, "--run", other]) == 0
    assert "1 halt(s); 2 candidate(s)" in capsys.readouterr().out
    assert main([*args, "--run", "ramp@nosuch"]) == 2
    err = capsys.readouterr().err
    assert "holds no frames of that run" in err and this in err and other in err
