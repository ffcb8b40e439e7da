"""``ltau-md run SCRIPT [-var NAME VALUE ...] [-log FILE] [-screen none]``: a LAMMPS script with
``pair_style nequip`` and ``fix ltau``, on one rank or under ``mpiexec -n P``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ltau_md.errors import LtauError

FLAGS = {"-var": "-var", "-v": "-var", "-log": "-log", "-l": "-log", "-screen": "-screen", "-sc": "-screen"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a LAMMPS script with pair_style nequip and fix ltau (also under mpiexec -n P)",
        description="LAMMPS parses SCRIPT itself (include, variables, loops, if, several runs, minimize, "
        "restarts). Styles: 'pair_style nequip MODEL [mode auto|domain|gathered] [dtype float32|float64] "
        "[device cpu|cuda|auto]' with 'pair_coeff * * EL1 ... ELn', and 'fix ID group ltau N ARTIFACT [k K] [scale S] "
        "[predictor calibrated|ltau] [lo auto|VALUE] [hi auto|VALUE] [nsamples N] [dump FILE] [queue DB] [dedup yes|no] "
        "[halt no|soft|hard]'. Exit status 0, "
        "1 on an error (one line), 3 after a hard halt (a restart file <stem>.halt.restart is written).",
        usage="ltau-md run SCRIPT [-var NAME VALUE [VALUE ...]] [-log FILE] [-screen none|FILE]",
    )
    p.add_argument("script", metavar="SCRIPT", help="LAMMPS input script")
    p.add_argument(
        "lammps_args",
        nargs=argparse.REMAINDER,
        metavar="...",
        help="LAMMPS-style flags: -var NAME VALUE... (several values make an index variable), -log FILE, -screen none",
    )
    p.set_defaults(func=run)


def parse_lammps_args(args: list[str]) -> tuple[list[tuple[str, list[str]]], str | None, str | None]:
    """``-var``/``-log``/``-screen`` as LAMMPS reads them: a flag takes the words up to the next one
    starting with ``-`` (so a mistyped flag is not swallowed as a value and handed on to LAMMPS);
    a ``-var``'s name and first value are taken whatever they are."""
    variables: list[tuple[str, list[str]]] = []
    log = screen = None
    i = 0
    while i < len(args):
        flag = FLAGS.get(args[i])
        if flag is None:
            raise LtauError(f"{args[i]!r}: unknown argument (expected -var NAME VALUE..., -log FILE or -screen none)")
        j = i + 3 if flag == "-var" else i + 1  # as LAMMPS: a -var's name and first value are taken as they are (-50 too)
        j = min(j, len(args))
        while j < len(args) and not args[j].startswith("-"):
            j += 1
        words = args[i + 1 : j]
        if flag == "-var":
            if len(words) < 2:
                raise LtauError(f"-var {' '.join(words)}: give a name and at least one value (-var NAME VALUE ...)")
            variables.append((words[0], words[1:]))
        elif len(words) != 1:
            raise LtauError(f"{flag} takes exactly one value, got {len(words)}")
        elif flag == "-log":
            log = words[0]
        else:
            screen = words[0]
        i = j
    return variables, log, screen


def _check_output(flag: str, value: str | None) -> None:
    if value is None or value == "none":
        return
    path = Path(value)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise LtauError(f"{flag} {value}: is a directory; give a file name (or none)")
    if not parent.is_dir():
        raise LtauError(f"{flag} {value}: directory {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise LtauError(f"{flag} {value}: directory {parent} is not writable; choose another")


def run(args: argparse.Namespace) -> int:
    # usage mistakes: status 2 like every command; what LAMMPS meets while running: 'ERROR:', status 1
    variables, log, screen = parse_lammps_args(list(args.lammps_args))
    _check_output("-log", log)
    _check_output("-screen", screen)
    from lammps_plugin import driver

    return driver.run(args.script, variables, log=log, screen=screen)
