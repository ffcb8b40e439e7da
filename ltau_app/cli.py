"""``ltau-md`` command line: one module per subcommand in ``ltau_app/commands/``.

Errors a user can fix come out as one line, ``ltau-md <command>: error: ...``, exit status 2.
Heavy imports (torch, nequip, LAMMPS) happen inside the commands that need them.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence

from ltau_md import __version__
from ltau_md.errors import LtauError

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
            opt = max(m[1].split("/"), key=len)
            own = not re.match(r"(invalid|expected|not allowed|ignored|one of)", m[2])
            message = (f"{opt} {m[2]}" if opt.startswith("-") else m[2]) if own else f"{opt}: {m[2]}"
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ltau-md", description="LTAU uncertainty for NequIP potentials in LAMMPS.")
    parser.add_argument("--version", action="version", version=f"ltau-md {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"ltau_app.commands.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LtauError as exc:
        prog = f"ltau-md {args.command}" if getattr(args, "command", None) else "ltau-md"
        from lammps_plugin.driver import launcher_rank  # stdlib only: MPI is not started for this

        if launcher_rank() == 0:  # under mpiexec every rank finds the same mistake: say it once
            sys.stderr.write(f"{prog}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("ltau-md: interrupted\n")
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`: stop quietly, as Unix tools do.
        sys.stderr.close()
        return 141


if __name__ == "__main__":
    sys.exit(main())
