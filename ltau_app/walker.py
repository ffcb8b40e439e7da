"""A walker of ``ltau-md loop``: one LAMMPS MD run with ``fix ltau`` in a directory of its own
(a heating ramp from an equilibrated start), written as a LAMMPS input, run as an engine task, and
resumed from its last complete restart file when a campaign was killed part-way: what it wrote
after that step (dumped frames, candidate frames, queue rows, log rows) is cut, and its logs are
joined into one when it ends."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ltau_md import atomic_write, pidfile
from ltau_md.errors import RunFailed

RESTART_FILES = "walker.*.restart"  # a walker's restart files (LAMMPS puts the step in place of *)
RESUME_SCRIPT = "in.resume"
ATTEMPTS_FILE = "attempts.json"  # a running walker's wall time so far (and its killed attempts')


def md_script(cfg: dict[str, Any], walker: dict[str, Any], model: Path, artifact: Path, queue: str, work: Path,
              species: list[str], start, nsamples: int, resume_from: Path | None = None) -> Path:  # fmt: skip
    """A walker's LAMMPS input, run in ``work``: ``start`` (an equilibrated reference frame with
    velocities, so the run begins inside the training domain, not at a perfect lattice) taken from
    t_start to t_end, with fix ltau checking every ``check_every`` steps, writing to the
    iteration's queue, and a dump of every checked frame. Paths are relative to ``work``. With
    ``resume_from`` (one of its restart files): ``in.resume``, the same run from there on (the
    temperature ramp and the thermostat's state go on; the dump is appended to)."""
    from ase.io import write

    from ltau_md.systems import MASSES

    md = cfg["md"]
    rel = lambda p: os.path.relpath(Path(p).resolve(), work.resolve())
    if resume_from is None:
        write(work / "start.data", start, format="lammps-data", specorder=species, masses=True, velocities=True)
        masses = "\n".join(f"mass            {i + 1} {MASSES[sp]}" for i, sp in enumerate(species))
        begin = f"boundary        p p p\nread_data       start.data\n{masses}"
    else:
        begin = f"read_restart    {rel(resume_from)}"
    queue_arg = queue if "://" in queue else rel(queue)
    every = -(-int(md["restart_every"]) // int(md["check_every"])) * int(md["check_every"])  # a checked step: see latest_restart
    restart = f"restart         {every} {RESTART_FILES}\n" if every else ""
    text = f"""# ltau-md loop walker {walker['name']}: {walker['system']} {walker['t_start']} K -> {walker['t_end']} K with fix ltau (run in this directory)
units           metal
atom_style      atomic
atom_modify     map array
{begin}
pair_style      nequip {rel(model)}
pair_coeff      * * {' '.join(species)}
neighbor        1.0 bin
timestep        0.001
fix             md all nvt temp {walker['t_start']} {walker['t_end']} 0.1
fix             uq all ltau {md['check_every']} {rel(artifact)} lo auto hi {md['hi']} nsamples {nsamples} &
                predictor {md['predictor']} dump candidates.xyz queue {queue_arg} dedup {md['dedup']} halt {md['halt']}
dump            traj all custom {md['check_every']} traj.dump id type x y z fx fy fz f_uq[1] f_uq[2]
dump_modify     traj sort id{' append yes' if resume_from is not None else ''}
thermo          {md['check_every']}
thermo_style    custom step temp pe press f_uq[1] f_uq[2] f_uq[3] f_uq[4]
thermo_modify   flush yes
{restart}run             {walker['steps']} upto start 0 stop {walker['steps']}
"""
    path = work / ("in.md" if resume_from is None else RESUME_SCRIPT)
    path.write_text(text)
    return path


def latest_restart(work: Path) -> tuple[Path, int] | None:
    """A walker's newest complete restart file and its step (None: none). LAMMPS writes a step's
    dump before its restart file and the next checked step's dump after it, so a restart is
    complete once ``traj.dump`` holds a later step (one killed while being written is passed over)."""
    from ltau_md.lammps_dump import dump_steps

    dumped = max(dump_steps(work / "traj.dump"), default=-1)
    found = []
    for p in work.glob(RESTART_FILES):
        step = p.name.split(".")[1]
        if step.isdigit() and int(step) < dumped:
            found.append((int(step), p))
    if not found:
        return None
    step, path = max(found)
    return path, step


def prune_restarts(work: Path, keep: int = 2) -> None:
    """Remove all but a walker's ``keep`` newest restart files. LAMMPS finishes one before it
    starts the next, so of the two newest at least one is complete (:func:`latest_restart`
    picks it); a long run no longer piles up steps / restart_every of them."""
    found = sorted((int(p.name.split(".")[1]), p) for p in work.glob(RESTART_FILES) if p.name.split(".")[1].isdigit())
    for _, p in found[: max(0, len(found) - keep)]:
        p.unlink(missing_ok=True)


def _log_parts(work: Path, log_name: str) -> list[tuple[Path, int]]:
    """The logs of a walker's earlier attempts, in order, each with the step it is cut at."""
    parts = []
    for p in work.glob(f"{log_name}.part*.upto*"):
        n, upto = p.name[len(log_name) + 5 :].split(".upto")
        if n.isdigit() and upto.isdigit():
            parts.append((int(n), p, int(upto)))
    return [(p, upto) for _, p, upto in sorted(parts)]


def _settle_log_join(work: Path, log_name: str) -> None:
    """Finish or undo a join of the logs that was killed part-way (see :func:`join_walker_log`)."""
    joined = work / f"{log_name}.joined"
    if joined.exists():
        if _log_parts(work, log_name):
            joined.unlink()  # the parts are still all there: join again later
        else:
            os.replace(joined, work / log_name)  # the parts were removed: the join is the log


def prepare_resume(work: Path, log_name: str, queue, run_prefix: str, step: int) -> None:
    """Cut what a killed walker wrote after its restart at ``step`` (the resumed run writes it
    again): later frames of its dumps, its queue rows of later steps; its log becomes
    ``LOG.partNNN.uptoSTEP`` (joined with the next ones when the walker ends). Every step can be
    killed and done again."""
    from lammps_plugin.frame_dump import cut_frames_after_step
    from ltau_md.lammps_dump import cut_dump_at_step

    _settle_log_join(work, log_name)
    cut_dump_at_step(work / "traj.dump", step)  # the resumed run dumps its first step again
    cut_frames_after_step(work / "candidates.xyz", step)  # fix ltau checked that step before the restart
    queue.remove(run_prefix, after_step=step)
    log = work / log_name
    if log.exists():
        os.replace(log, work / f"{log_name}.part{len(_log_parts(work, log_name)):03d}.upto{step}")


def join_walker_log(work: Path, log_name: str) -> bool:
    """One log for a resumed walker's whole run: each earlier attempt's rows before the step the
    next one went on from, then the last attempt's log. Written aside, the parts removed, then
    renamed into place, so a kill at any point leaves something :func:`_settle_log_join` finishes."""
    from ltau_md.trajectory import log_before_step

    _settle_log_join(work, log_name)
    parts = _log_parts(work, log_name)
    if not parts:
        return False
    lines = [ln for p, upto in parts for ln in log_before_step(p.read_text(errors="replace").splitlines(keepends=True), upto)]
    joined = work / f"{log_name}.joined"
    atomic_write.write_bytes(joined, "".join(lines).encode() + (work / log_name).read_bytes())
    for p, _ in parts:
        p.unlink()
    os.replace(joined, work / log_name)
    return True


def prepare_walker(work: Path, log_name: str, run_prefix: str, queue, make_script: Callable[[Path | None], Path],
                   log: Callable[[str], None] = print) -> Path:  # fmt: skip
    """A walker's directory before it runs (again): stops what a killed campaign left running of
    it; goes on from its last complete restart file, or starts over (its directory and queue rows
    removed). ``make_script(restart file or None)`` writes the input; returns it. ``log``: where a
    resume is said."""
    restart = None
    if work.exists():
        pidfile.stop_recorded(work / "walker.pid")  # a killed campaign's MD of it may still run
        restart = latest_restart(work)
        if restart is None:
            shutil.rmtree(work)
    if restart is None:
        work.mkdir(parents=True)
        queue.remove(run_prefix)  # rows of a killed earlier attempt of this walker
        return make_script(None)
    log(f"goes on from its restart at step {restart[1]}")
    prepare_resume(work, log_name, queue, run_prefix, restart[1])
    return make_script(restart[0])


def run_walker(work: Path, log_name: str, launcher: list[str], script: str = "in.md") -> dict[str, Any]:
    """One walker (a Parsl task): ``[mpiexec -n P] ltau-md run in.md`` (or ``in.resume``) in
    ``work``. Writes ``walker.json`` when it has finished (what a resumed campaign trusts)."""
    exe = Path(sys.executable).parent
    cmd = [*launcher, str(exe / "ltau-md"), "run", script, "-log", log_name, "-screen", "none"]
    t0 = time.perf_counter()
    earlier_s = _earlier_attempts_s(work)  # a resumed walker's wall time counts its killed attempts too
    warned = []

    def poll() -> None:  # bookkeeping: an error here (a shared file system's hiccup) must not kill the MD
        try:
            prune_restarts(work)
            atomic_write.write_json(work / ATTEMPTS_FILE, {"earlier_s": earlier_s, "this_s": time.perf_counter() - t0})
        except OSError as exc:
            if not warned:  # once, not every 10 s
                print(f"ltau-md: warning: {work}: restart files or wall time not kept up to date ({exc})", file=sys.stderr, flush=True)
                warned.append(exc)

    with open(work / "run.out", "w") as out:  # interrupted, or the worker told to stop: the MD is killed, not left running
        returncode = pidfile.run_recorded(cmd, work / "walker.pid", "ltau-md", out, cwd=work, poll=poll, every=10.0)
    if returncode not in (0, 3):  # 3: halted hard (a restart file was written)
        tail = (work / "run.out").read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise RunFailed(f"MD in {work} failed (exit {returncode}): {tail[0]}")
    result = {"wall_s": earlier_s + time.perf_counter() - t0, "exit": returncode}
    if join_walker_log(work, log_name):
        result["resumed"] = True
    atomic_write.write_json(work / "walker.json", result)
    for p in [*work.glob(RESTART_FILES), work / ATTEMPTS_FILE]:  # only a walker killed part-way needs them
        p.unlink(missing_ok=True)
    return result


def _earlier_attempts_s(work: Path) -> float:
    """Seconds the walker's killed attempts ran (to within run_walker's 10 s poll)."""
    try:
        rec = json.loads((work / ATTEMPTS_FILE).read_text())
        return float(rec["earlier_s"]) + float(rec["this_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0
