"""A task's subprocess, recorded so that a resumed campaign can stop what a killed one left running.

``kill -9`` of a campaign leaves its engine's worker processes, and the subprocesses they started
(``nequip-train``, ``ltau-md run``), running on; a resumed campaign that trains or runs that
member or walker again would share its directory with them. Each such subprocess runs in a
session of its own (so a terminal's Ctrl-C reaches only its parent, which decides) and its pid is
written beside its outputs; before the directory is rebuilt, :func:`stop_recorded` kills that
session if the process is still the one recorded. :func:`run_recorded` starts one and kills its
session whenever its parent stops waiting for it: an exception, Ctrl-C, or a SIGTERM (a Parsl
worker told to stop, a scheduler's time limit, ``timeout``), which would otherwise end the parent
at once and leave the session running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ltau_md import atomic_write
from ltau_md.errors import LtauError


class Terminated(SystemExit):
    """A SIGTERM raised where the main thread was (:func:`run_recorded`): exits with status 143, as
    an unhandled SIGTERM would, and lets a command say why it stopped."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


def process_identity(pid: int) -> dict[str, str]:
    """What tells this process apart from a later one with the same pid: the boot and the start
    time (clock ticks since boot, field 22 of /proc/PID/stat). Empty where /proc lacks them."""
    try:
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except (OSError, IndexError):
        return {}
    return {"start": start, "boot": boot}


def record(path: str | os.PathLike, pid: int, command: str) -> None:
    """Write ``pid``, a word of its command line and when it started (checked before killing: pids
    are reused)."""
    atomic_write.write_json(path, {"pid": int(pid), "command": command, **process_identity(int(pid))})


def stop_recorded(path: str | os.PathLike) -> bool:
    """Kill the session of the recorded process if it still runs, or what is left of it if the
    process itself has ended; True if anything was killed."""
    path = Path(path)
    try:
        rec = json.loads(path.read_text())
        pid, word = int(rec["pid"]), str(rec["command"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if "boot" in rec and process_identity(os.getpid()).get("boot") != rec["boot"]:
        return False  # recorded before a reboot: nothing of it runs
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        # the process ended; its session lives on while any member does (say mpiexec's ranks), and
        # Linux gives no new process a pid that is still a session's id
        return _kill_session(pid)
    if word not in cmdline:
        return False  # that pid is another process now
    if "start" in rec and process_identity(pid) != {"start": rec["start"], "boot": rec.get("boot")}:
        return False  # another process, started later, that happens to match the word
    return _kill_session(pid)


def _kill_session(sid: int) -> bool:
    """SIGKILL every process of session ``sid`` (the subprocess leads a session of its own; its
    process group, and any other group a launcher made inside the session); True if any was."""
    killed = False
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:  # state, ppid, pgrp, session
                os.kill(int(entry), signal.SIGKILL)
                killed = True
        except (OSError, IndexError, ValueError):  # ended meanwhile, or not ours
            continue
    return killed


@contextmanager
def sigterm_raises(exception: Callable[[], BaseException]) -> Iterator[None]:
    """While the block runs, a SIGTERM raises ``exception()`` where the main thread is, so the
    block's clean-up runs (by default SIGTERM ends the process at once); the previous handler comes
    back after. Off the main thread nothing changes: signal handlers live there."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame) -> None:
        raise exception()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def run_recorded(cmd: Sequence[str], record_path: str | os.PathLike, word: str, stdout: IO, *, cwd: str | os.PathLike | None = None,
                 env: dict[str, str] | None = None, poll: Callable[[], None] | None = None, every: float = 1.0) -> int:  # fmt: skip
    """Run ``cmd`` in a session of its own, its output to ``stdout``, recorded at ``record_path``
    (see :func:`record`); ``poll()`` every ``every`` seconds while it runs. Returns its exit status.
    If this process stops waiting (an exception in ``poll``, Ctrl-C, SIGTERM), the subprocess's
    whole session is killed first. A SIGTERM is raised here as :class:`Terminated` (exit status 143) while it runs
    (:func:`sigterm_raises`)."""
    proc = None
    with sigterm_raises(Terminated):
        try:
            proc = subprocess.Popen(list(cmd), stdout=stdout, stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True)
            record(record_path, proc.pid, word)
            while True:
                try:
                    return proc.wait(timeout=every if poll is not None else None)
                except subprocess.TimeoutExpired:
                    poll()
        except BaseException:
            if proc is not None:
                _kill_session(proc.pid)  # after the child was reaped too: what it started may still run
                proc.wait()
            raise


@contextmanager
def exclusive(path: str | os.PathLike, busy: str) -> Iterator[None]:
    """Hold ``path`` locked while the block runs (``flock``: the kernel releases it when this
    process ends, however it ends); if another process holds it, ``LtauError(busy)`` with ``{pid}``
    replaced by the holder's pid."""
    import fcntl

    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise LtauError(busy.format(pid=fh.read().strip() or "?")) from None
        except OSError as exc:  # a file system without flock (some Lustre or FUSE mounts): run unguarded, and say so
            print(f"ltau-md: warning: cannot lock {path} ({exc.strerror}); a second process on it would not be refused",
                  file=sys.stderr)  # fmt: skip
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        yield
