"""One active-learning iteration end to end (tiny settings), LTAU and the random baseline."""

import json

import numpy as np
import pytest
import yaml

pytest.importorskip("nequip")

from ase.io import read  # noqa: E402
from conftest import ltau_md  # noqa: E402

from ltau_app.loop import calibration_held_out, calibration_picks, load_config  # noqa: E402
from ltau_md.errors import LtauError  # noqa: E402
from ltau_md.queue import CandidateQueue  # noqa: E402

TINY = {
    "iterations": 1,
    "strategies": ["ltau", "random"],
    "initial": {"frames": 8, "equilibrate": 500, "every": 20},
    "validation": {"frames": 4, "equilibrate": 500, "every": 20},
    "test": {"frames": 2, "temperatures": [600.0, 2000.0], "equilibrate": 300, "every": 20},
    "train": {"ensemble": 1, "epochs": 3, "model": {"r_max": 4.0, "num_layers": 2, "num_features": 8, "l_max": 1}},
    "fit": {"k": 3, "contact_fraction": 0.85},
    "md": {"steps": 300, "check_every": 10, "t_end": 2500.0},
    "harvest": {"max_frames": 3, "calibration_frames": 2},
}


@pytest.mark.slow
def test_one_loop_iteration_trains_runs_md_harvests_and_reports(tmp_path):
    # relative config and output paths, from a working directory of their own (the MD and the
    # training run in subprocesses with other working directories)
    (tmp_path / "campaign").mkdir()
    (tmp_path / "campaign" / "loop.yaml").write_text(yaml.safe_dump(TINY))
    p = ltau_md("loop", "loop.yaml", "-o", "../run", timeout=900, cwd=tmp_path / "campaign")
    assert "strategy" in p.stdout and "ltau" in p.stdout and "random" in p.stdout
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    rows = {r["strategy"]: r for r in report["rows"]}
    assert set(rows) == {"ltau", "random"}
    for strategy, r in rows.items():
        assert r["dataset_frames"] == 8 and r["test_force_mae"] > 0
        assert set(r["test_predicted_over_true"]) == {"600", "2000"} and all(v > 0 for v in r["test_predicted_over_true"].values())
        assert 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1 and 0 <= r["f1"] <= 1
        assert r["checked_atoms"] >= 54 and 0 < r["md_steps_run"] <= 300
        assert r["frames_added"] <= 3
        work = tmp_path / "run" / strategy / "iter00"
        assert (work / "model.ltau" / "meta.json").exists() and (work / "walkers" / "w0" / f"log.{strategy}_iter00_w0").exists()
        assert json.loads((work / "model.ltau" / "meta.json").read_text())["contact"]["fraction"] == 0.85  # fit.contact_fraction
        added = read(work / "labelled.xyz", ":") if r["frames_added"] else []
        assert len(added) == r["frames_added"] and all(a.get_forces().shape == (54, 3) for a in added)
        # calibration frames are for later iterations: the last (here the only) one labels none
        assert r["calibration_frames_labelled"] == 0 and not (work / "calibration_frames.xyz").exists()
    n_checked = rows["random"]["checked_atoms"] // 54
    assert rows["random"]["frames_added"] == min(3, n_checked)  # the same budget, spent blindly
    assert rows["ltau"]["frames_added"] == min(3, rows["ltau"]["candidates_found"])
    for strategy, db in (("ltau", "candidates.db"), ("random", "random.db")):  # the queue's lifecycle was followed
        q = CandidateQueue(tmp_path / "run" / strategy / "iter00" / db, must_exist=True)
        assert q.count("labelled") == rows[strategy]["frames_added"] == len(list(q.rows(selected=True)))
    assert (tmp_path / "run" / "loop.png").read_bytes()[:4] == b"\x89PNG"
    assert "P/R/F1" in (tmp_path / "run" / "report.txt").read_text()
    assert "test frames, mean predicted / true force error: 600 K" in (tmp_path / "run" / "report.txt").read_text()
    # the whole run directory moves (or is copied to another machine): artifact → model and
    # error log → training files are found relative to where they are now
    moved = tmp_path / "elsewhere" / "run_moved"
    moved.parent.mkdir()
    (tmp_path / "run").rename(moved)
    work = moved / "ltau" / "iter00"
    p = ltau_md("predict", "ltau/iter00/model.ltau", "data/validation.xyz", "-o", "pred.xyz", cwd=moved)
    assert (moved / "pred.xyz").exists() and "predicted error" in p.stdout
    ltau_md("fit", "--model", work / "model", "--k", 3, "-o", moved / "refit.ltau")
    assert (moved / "refit.ltau" / "meta.json").exists()


def test_loop_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trian: {epochs: 3}\n")
    with pytest.raises(LtauError, match="unknown key 'trian'"):
        load_config(bad)
    bad.write_text("md: {stpes: 3}\n")
    with pytest.raises(LtauError, match="stpes"):
        load_config(bad)
    bad.write_text("strategies: [ltau, greedy]\n")
    with pytest.raises(LtauError, match="greedy"):
        load_config(bad)
    bad.write_text("harvest: {calibration_frames: 2.5}\n")
    with pytest.raises(LtauError, match=r"'harvest.calibration_frames' must be an integer"):
        load_config(bad)
    bad.write_text("harvest: {calibration_share: 1.0}\n")
    with pytest.raises(LtauError, match=r"'harvest.calibration_share' must be below 1"):
        load_config(bad)
    bad.write_text("fit: {contact_fraction: 1.5}\n")
    with pytest.raises(LtauError, match=r"'fit.contact_fraction' must be at most 1"):
        load_config(bad)
    bad.write_text("fit: {contact_fraction: 0}\n")
    assert load_config(bad)["fit"]["contact_fraction"] == 0
    assert load_config(None)["iterations"] == 2
    np.testing.assert_equal(load_config(None)["md"]["check_every"], 10)


def test_calibration_share_holds_out_that_fraction_of_the_harvest_spread_evenly():
    assert calibration_held_out(8, 0.0) == []
    assert calibration_held_out(8, 0.25) == [3, 7]
    assert calibration_held_out(3, 0.34) == [2]
    assert calibration_held_out(2, 0.34) == []  # fewer frames than one share: all train
    assert len(calibration_held_out(10, 0.5)) == 5
    assert len(calibration_held_out(100, 0.29)) == 29  # not 28 (0.29 · 100 = 28.999… in floating point)


def test_calibration_frames_are_picked_evenly_along_the_run_blind_to_the_predictor():
    assert calibration_picks(10, 0) == []
    assert calibration_picks(10, 1) == [5]  # mid-run: neither the in-domain start nor the last (halting) check
    assert calibration_picks(11, 4) == [1, 4, 6, 9]  # the middle of each of 4 equal stretches
    assert calibration_picks(3, 5) == [0, 1, 2]  # fewer checked frames than asked: all of them
    assert calibration_picks(0, 2) == []
    for n_checked in range(1, 30):  # always as many distinct frames as asked (or all there are)
        for n in range(1, n_checked + 1):
            picks = calibration_picks(n_checked, n)
            assert len(set(picks)) == n and picks == sorted(picks) and 0 <= picks[0] and picks[-1] < n_checked


def test_data_sampled_with_other_settings_is_sampled_again_not_reused(tmp_path):
    # a campaign started over in its directory with another seed or size: data/ must follow the config
    from ltau_app.loop import _frames_of

    path = tmp_path / "initial.xyz"
    args = {"system": "Li", "n_frames": 2, "atoms": 16, "temperature": 600.0, "equilibrate": 20, "every": 5, "seed": 1}
    first = _frames_of(path, **args)
    stamp = path.stat().st_mtime_ns
    again = _frames_of(path, **args)
    assert path.stat().st_mtime_ns == stamp and np.allclose(again[1].positions, first[1].positions, atol=1e-6)
    other = _frames_of(path, **{**args, "seed": 2})
    assert not np.allclose(other[1].positions, first[1].positions, atol=1e-3)
    assert len(_frames_of(path, **{**args, "seed": 2, "n_frames": 3})) == len(read(path, ":")) == 3
    # a directory from before the record: kept on a resume (its config was checked), sampled again on a start-over
    (tmp_path / "sampled.json").unlink()
    stamp = path.stat().st_mtime_ns
    assert len(_frames_of(path, True, **args)) == 3 and path.stat().st_mtime_ns == stamp
    (tmp_path / "sampled.json").unlink()
    assert len(_frames_of(path, False, **args)) == 2


def test_show_config_prints_every_key_and_reads_back_as_the_same_campaign(tmp_path, capsys):
    from ltau_app.cli import main

    mine = tmp_path / "mine.yaml"
    mine.write_text("iterations: 5\nharvest: {max_frames: 3}\n")
    assert main(["loop", str(mine), "--show-config"]) == 0
    shown = capsys.readouterr().out
    (tmp_path / "shown.yaml").write_text(shown)
    assert load_config(tmp_path / "shown.yaml") == load_config(mine)
    assert "calibration_frames: 0" in shown and "retries:" in shown  # the defaults, spelled out
    assert main(["loop", str(mine)]) == 2 and "-o DIR is required" in capsys.readouterr().err


def test_a_running_walker_keeps_only_its_two_newest_restart_files(tmp_path):
    from ltau_app.walker import latest_restart, prune_restarts

    for step in (50, 100, 150, 200):
        (tmp_path / f"walker.{step}.restart").write_bytes(b"r")
    (tmp_path / "traj.dump").write_text("ITEM: TIMESTEP\n200\n")  # LAMMPS is writing the restart of step 200
    prune_restarts(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("walker.*.restart")) == ["walker.150.restart", "walker.200.restart"]
    assert latest_restart(tmp_path) == (tmp_path / "walker.150.restart", 150)  # the complete one is kept


def test_a_walker_stopped_twice_goes_on_from_its_last_complete_restart_with_one_dump_log_and_queue(tmp_path, trained, calibrated, li_data):
    from lammps_plugin.frame_dump import frame_keys
    from ltau_app.walker import md_script, prepare_walker, run_walker
    from ltau_md.lammps_dump import read_dump
    from ltau_md.trajectory import read_trajectory

    cfg = load_config(None)
    cfg["md"].update({"check_every": 10, "restart_every": 45, "hi": 1e3, "halt": "no"})  # 45: every 50 steps
    walker = {"name": "w0", "system": "Li", "t_start": 600.0, "t_end": 1500.0, "steps": 300, "ranks": 1, "seed": 0, "atoms": 54}
    start = read(li_data["val"], 0)
    queue = CandidateQueue(tmp_path / "candidates.db", writable=True)

    def prepare(work, prefix):
        make = lambda resume_from: md_script(cfg, walker, trained, calibrated, str(tmp_path / "candidates.db"), work, ["Li"], start, 2000,
                                             resume_from=resume_from)  # fmt: skip
        return prepare_walker(work, f"log.{prefix}", f"{prefix}@", queue, make)

    def stop_at(script, step):  # what a kill at that step leaves: restarts before it, and dumps, rows and log rows after them
        script.write_text(script.read_text().replace("run             300 upto", f"run             {step} upto"))
        ltau_md("run", script.name, "-log", f"log.{script.parent.name}_w0", "-screen", "none", cwd=script.parent)

    ref = tmp_path / "ref"
    assert prepare(ref, "ref_w0").name == "in.md" and "restart         50 walker.*.restart" in (ref / "in.md").read_text()
    run_walker(ref, "log.ref_w0", [])  # the same walker, never stopped
    work = tmp_path / "cut"
    stop_at(prepare(work, "cut_w0"), 130)
    assert any(r.step > 100 for r in queue.rows(run_prefix="cut_w0@")), "the test needs rows after the restart to cut"
    script = prepare(work, "cut_w0")  # from step 100
    assert script.name == "in.resume" and "read_restart    walker.100.restart" in script.read_text()
    stop_at(script, 230)
    (work / "walker.250.restart").write_bytes(b"cut short")  # killed while writing: no dump after it
    assert "read_restart    walker.200.restart" in prepare(work, "cut_w0").read_text()
    (work / "attempts.json").write_text('{"earlier_s": 1000.0, "this_s": 500.0}')  # what run_walker's poll left of the killed attempts
    result = run_walker(work, "log.cut_w0", [], "in.resume")

    assert result["resumed"] and not list(work.glob("walker.*.restart")) and not list(work.glob("log.cut_w0.*"))
    assert 1500 < result["wall_s"] < 1600 and not (work / "attempts.json").exists()  # the killed attempts' time counts
    frames = list(read_dump(work / "traj.dump"))
    assert [f.step for f in frames] == list(range(0, 301, 10))  # each checked step once
    ref_frames = {f.step: f for f in read_dump(ref / "traj.dump")}
    # the same MD as the run never stopped: positions, velocities, the thermostat's state and its
    # ramp's target all go on (up to round-off)
    for f in frames:
        np.testing.assert_allclose(f.positions(), ref_frames[f.step].positions(), atol=1e-4)
    traj = read_trajectory(work / "log.cut_w0")
    assert traj.step.tolist() == list(range(0, 301, 10)) and len(traj.run_names) == 3
    rows = sorted(r.step for r in queue.rows(run_prefix="cut_w0@"))
    assert len(rows) == len(set(rows))
    dumped = sorted(r.step for r in queue.rows(run_prefix="cut_w0@") if r.status != "duplicate")  # duplicates are not dumped
    assert dumped == sorted(k[2] for k in frame_keys(work / "candidates.xyz"))
    assert rows == sorted(r.step for r in queue.rows(run_prefix="ref_w0@"))
