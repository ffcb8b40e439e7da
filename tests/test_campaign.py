"""Campaigns on the Parsl engine: concurrent walkers and members, relabelling fanned out per frame
with retries, a shared PostgreSQL queue, kill -9 and --resume."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.io import read

from ltau_app.engine import Engine, mpi_command, parsl_config, threads_per_task, workers_of
from ltau_app.loop import LOCK, Ledger, _check_queue_is_free, _check_resumable, _harvest, _start_over, load_config, run_loop
from ltau_md import pidfile
from ltau_md.errors import LtauError
from ltau_md.lammps_dump import read_dump
from ltau_md.pidfile import run_recorded
from ltau_md.queue import CandidateQueue

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from postgres_server import find_bin_dir, postgres_server  # noqa: E402

BIN = Path(sys.executable).parent


def _config(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "loop.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("engine: {wrokers: 2}\n", r"unknown key\(s\) \['wrokers'\] in 'engine'"),
        ("engine: {type: pbs}\n", r"'engine.type' must be one of local, slurm"),
        ("engine: {slurm: {partiton: cpu}}\n", r"unknown key\(s\) \['partiton'\] in 'engine.slurm'"),
        ("engine: {workers: 0}\n", r"'engine.workers' must be auto or a whole number ≥ 1"),
        ("engine: {mpi: aprun}\n", r"'engine.mpi' must be one of mpiexec, srun"),
        ("walkers: [{system: Li, temprature: 900}]\n", r"unknown key\(s\) \['temprature'\] in 'walkers\[0\]'"),
        ("walkers: [{name: a}, {name: a}]\n", r"walker name\(s\) \['a'\] appear more than once"),
        ("walkers: [{system: Na}]\n", r"'walkers\[0\].system' must be one of"),
        ("walkers: {system: Li}\n", r"'walkers' must be a list of mappings"),
        ("walkers: [{steps: 1.5}]\n", r"'walkers\[0\].steps' must be an integer"),
        ("queue: mysql://db/ltau\n", r"'queue' must be auto .* or a postgresql:// URL"),
        ("queue: postgresql://me:secret@db/ltau\n", r"'queue' holds a password"),
        ("engine: {workers: 0.5}\n", r"'engine.workers' must be auto or a whole number ≥ 1"),
        ("engine: {slurm: {cores_per_node: 1.5}}\n", r"'engine.slurm.cores_per_node' must be auto or a whole number ≥ 1"),
        ("engine: {slurm: {exclusive: 1}}\n", r"'engine.slurm.exclusive' must be a bool"),
    ],
)
def test_engine_walker_and_queue_config_errors_name_the_key(tmp_path, text, message):
    with pytest.raises(LtauError, match=message) as exc:
        load_config(_config(tmp_path, text))
    assert "\n" not in str(exc.value) and str(tmp_path / "loop.yaml") in str(exc.value)


def test_slurm_engine_builds_a_parsl_slurm_provider_and_srun_walkers(tmp_path):
    from parsl.launchers import SrunLauncher
    from parsl.providers import SlurmProvider

    cfg = load_config(_config(tmp_path, yaml.safe_dump({"engine": {
        "type": "slurm", "workers": 8, "mpi": "srun", "retries": 0,
        "slurm": {"partition": "cpu", "account": "proj", "walltime": "02:00:00", "nodes_per_block": 2, "max_blocks": 3,
                  "cores_per_node": 64, "worker_init": "source ~/venv/bin/activate", "exclusive": False}}})))  # fmt: skip
    config = parsl_config(cfg["engine"], tmp_path / "runinfo")
    (executor,) = config.executors
    provider = executor.provider
    assert isinstance(provider, SlurmProvider) and isinstance(provider.launcher, SrunLauncher)
    assert (provider.partition, provider.account, provider.walltime) == ("cpu", "proj", "02:00:00")
    assert (provider.nodes_per_block, provider.max_blocks) == (2, 3)
    assert "source ~/venv/bin/activate" in provider.worker_init and provider.exclusive is False
    assert executor.max_workers_per_node == 8 and config.retries == 0
    assert provider.cores_per_node == 64 and provider.min_blocks == 1
    assert mpi_command(cfg["engine"], 4, BIN) == ["srun", "--overlap", "-n", "4"]
    assert mpi_command(load_config(None)["engine"], 1, BIN) == []  # one rank: no launcher
    # a node's cores set the threads per task, and the workers where those are auto
    assert threads_per_task(cfg["engine"]) == 8 and threads_per_task(cfg["engine"], n_tasks=2) == 32
    auto_workers = {**cfg["engine"], "workers": "auto"}
    assert workers_of(auto_workers) == 64 and threads_per_task(auto_workers) == 1
    auto_cores = {**cfg["engine"], "slurm": {**cfg["engine"]["slurm"], "cores_per_node": "auto"}}
    assert parsl_config(auto_cores, tmp_path / "runinfo").executors[0].provider.cores_per_node is None


def test_resume_needs_the_campaign_and_its_configuration(tmp_path):
    cfg = load_config(None)
    with pytest.raises(LtauError, match="no campaign to resume"):
        run_loop(cfg, tmp_path / "nothing", resume=True)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    changed = {**cfg, "iterations": 5}
    with pytest.raises(LtauError, match=r"different configuration \(iterations changed\)"):
        run_loop(changed, tmp_path / "run", resume=True)
    # a campaign begun before a key existed resumes: the saved config takes that key's default
    older = {**cfg, "harvest": {k: v for k, v in cfg["harvest"].items() if k != "calibration_share"}}
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(older, sort_keys=False))
    _check_resumable(cfg, tmp_path / "run")
    # how often walkers write restart files may change (it changes no result)
    _check_resumable({**cfg, "md": {**cfg["md"], "restart_every": 500}}, tmp_path / "run")


def _queue_with_frames(url: str, prefix: str) -> CandidateQueue:
    q = CandidateQueue(url, writable=True)
    rng = np.random.default_rng(0)
    for i, symbols in enumerate(["Li", "Li", "Mg", "Li"]):
        atoms = bulk(symbols, "bcc", a=3.5, cubic=True).repeat(2)
        atoms.rattle(0.05, seed=i)
        n = len(atoms)
        q.add(atoms, error=rng.uniform(0, 1, n), p=rng.uniform(0, 1, n), run=f"{prefix}w0@x", step=10 * i, reason="lo", source="test")
    q.add(atoms, error=np.ones(n), p=np.ones(n), run="ltau_iter09_w0@x", step=0, reason="lo", source="another iteration")
    return q


def _flaky_reference_config(tmp_path: Path, monkeypatch, workers: int, retries: int) -> dict:
    """The default loop config on ``workers`` engine workers whose reference loses each frame's
    first attempt (a marker file per frame in tmp_path/markers: one per frame asked for)."""
    monkeypatch.setenv("PYTHONPATH", f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")  # the workers import slow_calculators
    cfg = load_config(None)
    cfg["engine"].update(workers=workers, retries=retries)
    (tmp_path / "markers").mkdir()
    cfg["reference"] = f'slow_calculators:FlakyOnce:{{"marker_dir": "{tmp_path / "markers"}"}}'
    return cfg


@pytest.mark.slow
def test_relabelling_fans_out_per_frame_retries_and_records_failures(tmp_path, monkeypatch):
    # a reference that loses each frame's first attempt: every frame is labelled on its retry
    cfg = _flaky_reference_config(tmp_path, monkeypatch, workers=2, retries=1)
    cfg["harvest"]["max_frames"] = 4
    prefix = "ltau_iter00_"
    with Engine(cfg["engine"], tmp_path / "runinfo") as engine:
        url = str(tmp_path / "a.db")
        q = _queue_with_frames(url, prefix)
        _, labelled, new_file = _harvest("ltau", tmp_path, url, prefix, {}, cfg, 0, engine, Ledger(tmp_path / "a.json"))
        assert len(labelled) == 4 and len(list((tmp_path / "markers").iterdir())) == 4
        assert q.count("labelled") == 4 and next(q.rows(run_prefix="ltau_iter09_")).status == "pending"  # other iterations untouched
        assert new_file.exists()
        tasks = [r for r in engine.records if r.stage == "relabel"]
        assert len(tasks) == 8 and sum("(retry 1)" in r.name for r in tasks) == 4 and sum(not r.ok for r in tasks) == 4
        # again (a resumed campaign): labelled frames are not submitted again
        _harvest("ltau", tmp_path, url, prefix, {}, cfg, 0, engine, Ledger(tmp_path / "a.json"))
        assert sum(r.stage == "relabel" for r in engine.records) == 8
        # a reference that never converges on Mg: that frame is recorded as failed, the rest labelled
        cfg["reference"] = "slow_calculators:FailOnMg"
        url = str(tmp_path / "b.db")
        q = _queue_with_frames(url, prefix)
        _harvest("ltau", tmp_path, url, prefix, {}, cfg, 0, engine, Ledger(tmp_path / "b.json"))
        failed = list(q.rows("failed"))
        assert q.count("labelled") == 3 and len(failed) == 1 and "SCF did not converge" in failed[0].data["failure"]
        assert set(failed[0].atoms.get_chemical_symbols()) == {"Mg"}


@pytest.mark.slow
def test_calibration_frames_labelled_before_a_kill_are_kept_and_not_labelled_again(tmp_path, monkeypatch):
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    from ltau_app.loop import Truth, _label_calibration_frames

    cfg = _flaky_reference_config(tmp_path, monkeypatch, workers=1, retries=0)  # every frame asked for fails, leaving a marker
    cfg["harvest"]["calibration_frames"] = 3
    frames = []
    for i in range(6):
        atoms = bulk("Li", "bcc", a=3.5, cubic=True).repeat(2)
        atoms.rattle(0.05, seed=i)
        frames.append((10 * i, atoms))
    truths = {"w0": Truth(frames, np.zeros(1), np.zeros(1), np.zeros(1))}
    # the killed attempt had labelled the second pick (steps 10, 30, 50 are picked) into the file
    kept = frames[3][1].copy()
    kept.calc = SinglePointCalculator(kept, energy=-3.0, forces=np.zeros((len(kept), 3)))
    kept.info.update(walker="w0", step=30, labelled_by=cfg["reference"])
    write(tmp_path / "calibration_frames.xyz", [kept])
    queue = CandidateQueue(tmp_path / "c.db", writable=True)
    with Engine(cfg["engine"], tmp_path / "runinfo") as engine:
        got = _label_calibration_frames("ltau", 0, tmp_path, truths, queue, "ltau_iter00_", cfg, engine, Ledger(tmp_path / "state.json"))
    assert len(list((tmp_path / "markers").iterdir())) == 2  # steps 10 and 50 only
    assert [int(a.info["step"]) for a in got] == [30] and got[0].get_potential_energy() == pytest.approx(-3.0)
    assert [int(a.info["step"]) for a in read(tmp_path / "calibration_frames.xyz", ":")] == [30]
    _kill_all(_leftovers(tmp_path))


@pytest.mark.slow
def test_an_engine_whose_interchange_was_killed_stops_its_workers_instead_of_hanging(tmp_path):
    # timeout, scancel and Ctrl-C signal the whole process group: Parsl's interchange dies with the
    # campaign, and Parsl's own clean-up would wait on it forever
    cfg = load_config(None)
    cfg["engine"].update(workers=1)
    ended, errors = threading.Event(), []

    def campaign() -> None:
        try:
            with Engine(cfg["engine"], tmp_path / "runinfo") as engine:
                engine.result(engine.submit("relabel", "warm-up", time.sleep, 0.1))  # a worker block is up
                interchange = next(iter(engine._dfk.executors.values())).interchange_proc
                interchange.terminate()
                interchange.wait(10)
                raise KeyboardInterrupt  # what the campaign's SIGTERM handler raises
        except KeyboardInterrupt:
            pass
        except Exception as exc:
            errors.append(exc)
        finally:
            ended.set()

    threading.Thread(target=campaign, daemon=True).start()
    assert ended.wait(60), "the engine's clean-up hung on the dead interchange"
    assert not errors, errors
    deadline = time.time() + 20
    while _leftovers(tmp_path) and time.time() < deadline:
        time.sleep(0.2)
    assert not _leftovers(tmp_path), "the worker block was left running"


@pytest.mark.slow
def test_a_failed_task_stops_the_campaign_at_once_and_kills_the_subprocesses_of_the_others(tmp_path):
    # a walker that fails while another still runs its MD: the failure is reported without
    # waiting for the long one, whose MD (in a session of its own) is killed with the engine
    cfg = load_config(None)
    cfg["engine"].update(workers=2)
    rec = tmp_path / "long.pid"
    with pytest.raises(LtauError, match="md task bad failed: ValueError"):
        with Engine(cfg["engine"], tmp_path / "runinfo") as engine:
            long = engine.submit("md", "long", run_recorded, ["sleep", "600"], rec, "sleep", subprocess.DEVNULL)
            deadline = time.time() + 120
            while not rec.exists():
                assert time.time() < deadline and not long.done(), "the long task did not start its subprocess"
                time.sleep(0.1)
            bad = engine.submit("md", "bad", int, "not a number")
            try:
                engine.results([long, bad])  # the long task first: its result is not waited for
            finally:
                assert not long.done()
    sleeper = json.loads(rec.read_text())["pid"]
    deadline = time.time() + 30
    while _running(sleeper) and time.time() < deadline:
        time.sleep(0.1)
    assert not _running(sleeper), "the long task's subprocess outlived the engine"
    _kill_all(_leftovers(tmp_path))


def test_a_second_loop_on_a_running_campaign_is_refused_before_it_changes_anything(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with pidfile.exclusive(out / LOCK, "held by pid {pid}"):
        with pytest.raises(LtauError, match=rf"another 'ltau-md loop' \(pid {os.getpid()}\) is running this campaign"):
            run_loop(load_config(None), out)
    assert {p.name for p in out.iterdir()} == {LOCK}


def test_starting_over_removes_every_earlier_iteration_and_stops_what_still_runs_there(tmp_path):
    out = tmp_path / "run"
    md = subprocess.Popen(["sleep", "600"], start_new_session=True)  # a killed campaign's MD, still running
    try:
        for k in (0, 1):
            (out / "ltau" / f"iter{k:02d}").mkdir(parents=True)
            Ledger(out / "ltau" / f"iter{k:02d}" / "state.json").mark("row", {"row": {}, "new_file": None})
        (out / "ltau" / "iter01" / "walkers" / "w0").mkdir(parents=True)
        pidfile.record(out / "ltau" / "iter01" / "walkers" / "w0" / "walker.pid", md.pid, "sleep")
        (out / "ltau" / ".iter00.removing").mkdir()  # a removal cut short
        for name in ("report.json", "campaign.png", "trajectory_ltau_iter01_w0.png", "config.yaml"):
            (out / name).write_text("x")
        _start_over(load_config(None), out)
        assert md.wait(10) == -signal.SIGKILL
        assert list((out / "ltau").iterdir()) == []
        assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "ltau"]  # the earlier report and plots went too
    finally:
        md.kill()


class _NoEngine:
    """In place of Parsl for the resume bookkeeping test: no task is submitted there."""

    def __init__(self, *args, **kwargs):
        self.records = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


@pytest.mark.parametrize("first", [0, 1])
def test_a_resume_redoes_every_iteration_after_the_first_unfinished_one(tmp_path, monkeypatch, first):
    # a start-over killed in iteration FIRST left the later iterations of the attempt before it:
    # they were trained on data that no longer exists, so the resume must not keep them
    import ltau_app.loop as loop

    out = tmp_path / "run"
    cfg = load_config(None)
    cfg.update(iterations=3, strategies=["ltau"])
    for k in range(3):
        (out / "ltau" / f"iter{k:02d}").mkdir(parents=True)
        if k != first:
            Ledger(out / "ltau" / f"iter{k:02d}" / "state.json").mark("row", {"row": {"iteration": k, "before": True}, "new_file": None})
    li = bulk("Li", "bcc", a=3.5, cubic=True)
    monkeypatch.setattr(loop, "prepare_data", lambda cfg, d, unrecorded_ok: (loop.LoopData([li], [li], d / "v.xyz", [], {"w0": li}), d / "i.xyz"))
    monkeypatch.setattr(loop, "Engine", _NoEngine)
    calls = []

    def iteration(cfg, strategy, k, work, *args):
        calls.append((k, args[-2]))  # (iteration, resume)
        return {"iteration": k}, None, [], []

    monkeypatch.setattr(loop, "run_iteration", iteration)
    rows, _ = loop._run_strategies(cfg, out, resume=True)
    assert calls == [(first, True)] + [(k, False) for k in range(first + 1, 3)]
    assert [r.get("before", False) for r in rows] == [True] * first + [False] * (3 - first)


CAMPAIGN = {
    "iterations": 2,
    "initial": {"frames": 8, "equilibrate": 500, "every": 20},
    "validation": {"frames": 4, "equilibrate": 500, "every": 20},
    "test": {"frames": 2, "temperatures": [600.0, 2000.0], "equilibrate": 300, "every": 20},
    "train": {"ensemble": 2, "epochs": 3, "model": {"r_max": 4.0, "num_layers": 2, "num_features": 8, "l_max": 1}},
    "fit": {"k": 3},
    "md": {"check_every": 10, "halt": "no"},
    # later iterations' calibration gets half of each iteration's harvest (one of two or three) and
    # one more checked MD frame, labelled for it alone
    "harvest": {"max_frames": 3, "calibration_share": 0.5, "calibration_frames": 1},
    # a long and a short walker: the campaign is killed while the long one runs
    "walkers": [{"name": "long", "t_start": 600.0, "t_end": 2500.0, "steps": 1500},
                {"name": "short", "t_start": 600.0, "t_end": 1200.0, "steps": 40, "seed": 1}],
    "engine": {"workers": 2},
}  # fmt: skip


def _wait_for(condition, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the campaign ended (exit {proc.returncode}) before {what}: {proc.stderr.read()[-2000:]}")
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _leftovers(root: Path) -> list[int]:
    """Processes working under ``root`` (a killed campaign's engine workers, MD, training)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(pid) != os.getpid() and (cwd.startswith(str(root)) or str(root) in args):
            found.append(int(pid))
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its parent is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.slow
def test_two_walker_campaign_on_a_postgresql_queue_survives_kill_and_resumes(tmp_path):
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server programs (initdb, pg_ctl) not found in PATH or /usr/lib/postgresql/*/bin")
    with postgres_server(bin_dir, durable=False) as server:
        url = server.create_database("campaign")
        (tmp_path / "loop.yaml").write_text(yaml.safe_dump({**CAMPAIGN, "queue": url}))
        run = tmp_path / "run"
        cmd = [str(BIN / "ltau-md"), "loop", "loop.yaml", "-o", "run"]
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        it1 = run / "ltau" / "iter01"
        walkers = it1 / "walkers"
        q = CandidateQueue(url, writable=True)
        long_rows = lambda: any(True for _ in q.rows(run_prefix="ltau_iter01_long@"))
        short_recorded = lambda: any(t["name"] == "ltau 1 short" and t["end"] is not None
                                     for t in json.loads((run / "tasks.json").read_text())["tasks"])  # fmt: skip
        try:
            # kill -9 in iteration 1: its members trained, the short walker finished, the long one running and queueing
            _wait_for(lambda: (walkers / "short" / "walker.json").exists() and long_rows() and short_recorded(), proc, 900,
                      "iteration 1's short walker finished (and tasks.json says so) and the long one queued a frame")  # fmt: skip
            assert not (walkers / "long" / "walker.json").exists(), "the long walker finished too soon for the test"
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the loop's process group; its engine workers and their MD run on
            proc.wait()
        before = {
            "iter00": json.loads((run / "ltau" / "iter00" / "state.json").read_text())["row"],
            "members": {p.parent.name: p.stat().st_mtime_ns for p in (it1 / "model").glob("seed*/best.ckpt")},
            "short": (walkers / "short" / "walker.json").stat().st_mtime_ns,
        }
        assert len(before["members"]) == 2
        assert _leftovers(tmp_path), "kill -9 of the loop left nothing running: the resume below would not be tested against it"
        # the orphaned long walker's MD runs on; left to run, it may finish (and be kept, rightly) before
        # the resume reaches the walkers. Frozen, it is still there when the resume must stop it.
        orphan = json.loads((walkers / "long" / "walker.pid").read_text())["pid"]
        os.killpg(orphan, signal.SIGSTOP)
        stamps_killed = {c.run for c in q.rows(run_prefix="ltau_iter01_long@")}
        assert stamps_killed
        labelled0 = {c.id: c.key_value_pairs.get("labelled_by") for c in q.rows("labelled", run_prefix="ltau_iter00_")}
        assert labelled0, "iteration 0 labelled no frames"

        try:
            p = subprocess.run([*cmd, "--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
            orphan_alive = _running(orphan)  # before the clean-up below kills whatever is left
        finally:
            _kill_all(_leftovers(tmp_path))  # what outlived both (idle engine workers wait out a heartbeat)
        assert p.returncode == 0, p.stderr[-3000:]
        assert "finished before; kept" in p.stderr
        assert not orphan_alive, "the resume left the killed campaign's MD of the long walker running"
        # nothing finished was done again
        assert json.loads((run / "ltau" / "iter00" / "state.json").read_text())["row"] == before["iter00"]
        assert {p.parent.name: p.stat().st_mtime_ns for p in (it1 / "model").glob("seed*/best.ckpt")} == before["members"]
        assert (walkers / "short" / "walker.json").stat().st_mtime_ns == before["short"]
        assert (walkers / "long" / "walker.json").exists()
        q = CandidateQueue(url)
        assert {c.id: c.key_value_pairs.get("labelled_by") for c in q.rows("labelled", run_prefix="ltau_iter00_")} == labelled0
        # the killed attempt of the long walker left no rows behind: one run of it, the resumed one
        runs_long = {c.run for c in q.rows(run_prefix="ltau_iter01_long@")}
        assert len(runs_long) == 1 and not (stamps_killed & runs_long)
        # the report: both iterations, a walker table each, stage times, the campaign plot
        report = json.loads((run / "report.json").read_text())
        assert [r["iteration"] for r in report["rows"]] == [0, 1]
        for r in report["rows"]:
            assert [w["name"] for w in r["walkers"]] == ["long", "short"]
            assert {w["steps_run"] for w in r["walkers"]} == {1500, 40}  # halt no: both ran to the end
            assert sum(w["candidates"] + w["duplicates"] for w in r["walkers"]) == len(list(q.rows(run_prefix=f"ltau_iter{r['iteration']:02d}_")))
            assert {"train", "fit_calibrate", "md", "score", "harvest"} <= set(r["stage_s"])
            assert r["queue"].startswith("postgresql://")
        # held-out frames: out of iteration 1's training data, into its calibration (carried over the resume)
        row0, row1 = report["rows"]
        assert row0["frames_held_out"] == (row0["frames_added"] + row0["frames_held_out"]) // 2 >= 1 and row0["calibration_frames_held_out"] == 0
        assert row0["calibration_frames_labelled"] == 1
        n_cal = row0["frames_held_out"] + 1
        assert row1["calibration_frames_held_out"] == n_cal and row1["dataset_frames"] == 8 + row0["frames_added"]
        # the error model saw them, the statistical cutoffs' fits did not
        n_val = json.loads((it1 / "model.ltau" / "meta.json").read_text())["calibration"]["n_atoms"]
        em = json.loads((it1 / "model.ltau" / "meta.json").read_text())["error_model"]["Li"]
        assert n_val == 4 * 54 and em["n_atoms"] == (4 + n_cal) * 54
        it0 = run / "ltau" / "iter00"
        held = read(it0 / "calibration_held_out.xyz", ":")
        trained = read(it0 / "labelled_for_training.xyz", ":") if row0["frames_added"] else []
        assert len(held) == row0["frames_held_out"] and len(trained) == row0["frames_added"]
        assert len(read(it0 / "labelled.xyz", ":")) == len(held) + len(trained)  # the harvest's export stays whole
        assert not any(np.allclose(h.positions, t.positions) for h in held for t in trained)
        (picked,) = read(it0 / "calibration_frames.xyz", ":")  # a checked frame the harvest did not take
        assert picked.get_forces().shape == (54, 3) and not any(np.allclose(picked.positions, h.positions) for h in held + trained)
        assert picked.info["labelled_by"] == "meam" and picked.info["walker"] in {"long", "short"}
        steps = {w: {fr.step for fr in read_dump(it0 / "walkers" / w / "traj.dump")} for w in ("long", "short")}
        assert int(picked.info["step"]) in steps[picked.info["walker"]]
        assert row1["calibration_frames_labelled"] == 0 and not (it1 / "calibration_frames.xyz").exists()  # the last iteration
        text = (run / "report.txt").read_text()
        assert "ltau iteration 1: walkers" in text and "wall time per stage" in text
        assert (run / "campaign.png").read_bytes()[:4] == b"\x89PNG"
        tasks = json.loads((run / "tasks.json").read_text())["tasks"]
        resumed = [t for t in tasks if t["session"] == 1]
        assert {t["name"] for t in resumed if t["stage"] == "md"} == {"ltau 1 long"}  # the resumed run ran only the unfinished walker
        assert not [t for t in resumed if t["stage"] == "train"]
        # the killed session's tasks were kept: all of iteration 0, iteration 1's members and short
        # walker (ended), and its long walker, killed while running (no end)
        killed = {(t["stage"], t["name"]): t for t in tasks if t["session"] == 0}
        assert {("md", "ltau 0 long"), ("md", "ltau 0 short"), ("md", "ltau 1 short")} <= set(killed)
        assert sum(stage == "train" and name.startswith("ltau 1 ") for stage, name in killed) == 2
        assert killed[("md", "ltau 1 short")]["end"] is not None and killed[("md", "ltau 1 long")]["end"] is None
        assert min(t["start"] for t in resumed if t["start"] is not None) > 0  # one clock: the campaign's first start
        # a second, new campaign on the same database would delete these rows: refused before any work;
        # this campaign starting over in its own directory (same queue, no --resume) is not
        n_rows = q.count()
        with pytest.raises(LtauError, match=rf"already holds {n_rows} rows .*an empty database of its own.*--resume") as exc:
            run_loop(load_config(tmp_path / "loop.yaml"), tmp_path / "other")
        assert "\n" not in str(exc.value)
        assert q.count() == n_rows and not (tmp_path / "other").exists()
        _check_queue_is_free(load_config(tmp_path / "loop.yaml"), run)
