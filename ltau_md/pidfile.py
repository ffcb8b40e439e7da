"""A task's subprocess, recorded so that a resumed campaign can stop what a killed one left running.

``kill -9`` of a campaign leaves its engine's worker processes, and the subprocesses they started
(``nequip-train``, ``ltau-md run``), running on; a resumed campaign that trains or runs that
member or walker again would share its directory with them. Each such subprocess runs in a
session of its own and its pid is written beside its outputs; before the directory is rebuilt,
:func:`stop_recorded` kills that session if the process is still the one recorded.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from ltau_md import atomic_write


def record(path: str | os.PathLike, pid: int, command: str) -> None:
    """Write ``pid`` and a word of its command line (checked before killing: pids are reused)."""
    atomic_write.write_json(path, {"pid": int(pid), "command": command})


def stop_recorded(path: str | os.PathLike) -> bool:
    """Kill the process group of the recorded process if it still runs; True if it did."""
    import json

    path = Path(path)
    try:
        rec = json.loads(path.read_text())
        pid, word = int(rec["pid"]), str(rec["command"])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if word not in cmdline:
        return False  # that pid is another process now
    try:
        os.killpg(pid, signal.SIGKILL)  # the subprocess was started in a session of its own
    except (ProcessLookupError, PermissionError):
        return False
    return True
