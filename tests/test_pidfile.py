"""Subprocesses of campaign tasks: killed with their whole session when the task stops waiting
(SIGTERM included), stopped later only while they are still the recorded process, and one
process at a time holding a campaign's lock."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ltau_md import pidfile
from ltau_md.errors import LtauError

# a task: runs bash, whose background sleep is a grandchild in the same session, via run_recorded
TASK = r"""
import subprocess, sys
from ltau_md.pidfile import run_recorded
run_recorded(["bash", "-c", "sleep 600 & echo $! > " + sys.argv[2] + "; wait"], sys.argv[1], "bash", subprocess.DEVNULL)
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_sigterm_to_a_waiting_task_kills_its_subprocess_session_too(tmp_path):
    # a Parsl worker told to stop, or a scheduler's time limit: without this the training or MD
    # (in a session of its own) ran on after the campaign had stopped
    rec, grandchild = tmp_path / "task.pid", tmp_path / "sleep.pid"
    task = subprocess.Popen([sys.executable, "-c", TASK, str(rec), str(grandchild)])
    try:
        _wait(lambda: rec.exists() and grandchild.exists() and grandchild.read_text().strip(), "the task's subprocess")
        child, sleeper = json.loads(rec.read_text())["pid"], int(grandchild.read_text())
        assert _alive(child) and _alive(sleeper)
        task.send_signal(signal.SIGTERM)
        assert task.wait(30) == 128 + signal.SIGTERM
        _wait(lambda: not _alive(child) and not _alive(sleeper), "the session to end", 10)
    finally:
        task.kill()


# a command (here 'ltau-md inputs', its work replaced) that waits on a recorded subprocess, as
# 'ltau-md train' waits on nequip-train
COMMAND = r"""
import subprocess, sys
from ltau_app import cli
from ltau_app.commands import inputs
from ltau_md.pidfile import run_recorded
inputs.run = lambda args: run_recorded(["sleep", "600"], sys.argv[1], "sleep", subprocess.DEVNULL)
sys.exit(cli.main(["inputs"]))
"""


def test_a_command_terminated_while_it_waits_says_so_and_exits_143(tmp_path):
    rec = tmp_path / "sleep.pid"
    cmd = subprocess.Popen([sys.executable, "-c", COMMAND, str(rec)], stderr=subprocess.PIPE, text=True)
    try:
        _wait(rec.exists, "the recorded subprocess")
        child = json.loads(rec.read_text())["pid"]
        cmd.send_signal(signal.SIGTERM)
        _, err = cmd.communicate(timeout=30)
        assert cmd.returncode == 128 + signal.SIGTERM
        assert err.strip().splitlines() == ["ltau-md: terminated"], err
        _wait(lambda: not _alive(child), "the subprocess to end", 10)
    finally:
        cmd.kill()


def test_a_recorded_process_is_stopped_only_while_it_is_the_one_recorded(tmp_path):
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        rec = tmp_path / "walker.pid"
        pidfile.record(rec, proc.pid, "sleep")
        saved = json.loads(rec.read_text())
        assert {"start", "boot"} <= set(saved)
        # the same pid and command word, but started at another time: a later process that reused the pid
        rec.write_text(json.dumps({**saved, "start": str(int(saved["start"]) + 1)}))
        assert not pidfile.stop_recorded(rec) and _alive(proc.pid)
        rec.write_text(json.dumps({**saved, "command": "nequip-train"}))
        assert not pidfile.stop_recorded(rec) and _alive(proc.pid)
        rec.write_text(json.dumps(saved))
        assert pidfile.stop_recorded(rec)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        proc.kill()


def test_a_second_holder_of_a_campaign_lock_is_refused_with_the_first_ones_pid(tmp_path):
    lock = tmp_path / ".lock"
    with pidfile.exclusive(lock, "busy: pid {pid}"):
        with pytest.raises(LtauError, match=f"^busy: pid {os.getpid()}$"):
            with pidfile.exclusive(lock, "busy: pid {pid}"):
                pass
    with pidfile.exclusive(lock, "busy: pid {pid}"):  # released when the first holder ended
        pass


def test_what_is_left_of_a_recorded_session_is_stopped_after_its_leader_ended(tmp_path):
    # a killed campaign's mpiexec ended, its ranks run on: the resume must stop them too
    rec, rank = tmp_path / "walker.pid", tmp_path / "rank.pid"
    leader = subprocess.Popen(["bash", "-c", f"sleep 600 & echo $! > {rank}"], start_new_session=True)
    try:
        pidfile.record(rec, leader.pid, "bash")
        _wait(lambda: rank.exists() and rank.read_text().strip(), "the leader's child")
        assert leader.wait(10) == 0  # the leader is gone, its child lives on in the session
        orphan = int(rank.read_text())
        assert _alive(orphan)
        assert pidfile.stop_recorded(rec)
        _wait(lambda: not _alive(orphan), "the orphan to be killed", 10)
    finally:
        leader.kill()
