"""``ltau-md`` command line: one module per subcommand in ``ltau_app/commands/``.

Errors a user can fix come out as one line, ``ltau-md <command>: error: ...``, exit status 2 (1 when
a step that ran failed: nequip-train, a walker's MD).
Heavy imports (torch, nequip, LAMMPS) happen inside the commands that need them.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence

from ltau_app.launcher import launcher_rank, launcher_size
from ltau_md import __version__
from ltau_md.errors import LtauError, RunFailed
from ltau_md.pidfile import Terminated

# One module per subcommand in ltau_app/commands/, each with add_parser(subparsers).
COMMANDS = (
    "make_data", "train", "fit", "calibrate", "predict", "cutoffs", "candidates", "relabel", "trajectory", "inputs", "run",
    "loop", "demo",
)  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line that points at --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        m = re.fullmatch(r"argument ([^:]+): (.*)", message, flags=re.S)
        if m:  # "argument -o/--output: x: ..." → "--output x: ..." (the value first, as our types word it)
            opt, rest = max(m[1].split("/"), key=len), m[2]
            bad = re.fullmatch(r"invalid (int|float) value: '(.*)'", rest)
            if bad:
                rest = f"{bad[2]}: not {'an integer' if bad[1] == 'int' else 'a number'}; give one"
            own = not re.match(r"(invalid|expected|not allowed|ignored|one of)", rest)
            message = (f"{opt} {rest}" if opt.startswith("-") else rest) if own else f"{opt}: {rest}"
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see '{self.prog} --help')\n")


def _remember_parsers(sub: argparse._SubParsersAction) -> None:
    """Each (sub)command's parser in its own defaults, so that a stray option is reported by the
    command it was given to ('ltau-md predict: error: ...'), not by the top-level parser."""
    for parser in sub.choices.values():
        parser.set_defaults(_parser=parser)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                _remember_parsers(action)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ltau-md", description="LTAU uncertainty for NequIP potentials in LAMMPS.")
    parser.add_argument("--version", action="version", version=f"ltau-md {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"ltau_app.commands.{name}").add_parser(sub)
    _remember_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        getattr(args, "_parser", parser).error(f"unrecognized argument(s) {' '.join(extra)}: remove or correct them")
    try:
        if getattr(args, "command", None) not in (None, "run"):
            if launcher_size() > 1:  # each rank would do the whole job: N relabellings, N data sets, ...
                raise LtauError(f"only 'ltau-md run' uses MPI; run 'ltau-md {args.command}' without mpiexec "
                                f"(it would run {launcher_size()} times)")
        return int(args.func(args) or 0)
    except LtauError as exc:
        prog = f"ltau-md {args.command}" if getattr(args, "command", None) else "ltau-md"
        if launcher_rank() == 0:  # under mpiexec every rank finds the same mistake: say it once
            sys.stderr.write(f"{prog}: error: {exc}\n")
        return 1 if isinstance(exc, RunFailed) else 2
    except KeyboardInterrupt:
        if launcher_rank() == 0:  # Ctrl-C reaches every rank under mpiexec: said once
            sys.stderr.write("ltau-md: interrupted\n")
        return 130
    except Terminated as exc:  # SIGTERM while a subprocess ran (a time limit, timeout): it was stopped too
        if launcher_rank() == 0:
            sys.stderr.write("ltau-md: terminated\n")
        return int(exc.code)
    except BrokenPipeError:
        # Output piped into e.g. `head`: stop quietly, as Unix tools do.
        sys.stderr.close()
        return 141


if __name__ == "__main__":
    sys.exit(main())
