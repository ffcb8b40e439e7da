"""``ltau-md trajectory``: the failure view of a run (uncertainty vs step, candidates, halts)."""

from __future__ import annotations

import argparse

from ltau_app.arguments import input_file, output_file, positive_float
from ltau_md.errors import LtauError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "trajectory",
        help="plot max/mean predicted error against step from a LAMMPS log, with candidates and halts",
        description="Reads the thermo output of a LAMMPS log that includes f_ID[1] and f_ID[2] of a fix "
        "ltau (all runs of the script), and optionally the candidate queue for flagged steps and halts.",
    )
    p.add_argument("log", type=input_file, metavar="LOG")
    p.add_argument("--queue", metavar="DB", help="candidate queue of the run: marks flagged frames and halts")
    p.add_argument("--run", help="only queue rows of this run name (default: the runs the log records)")
    p.add_argument("--fix", metavar="ID", help="fix ltau ID (default: the first found in the thermo output)")
    p.add_argument("--lo", type=positive_float, help="draw the lo cutoff (eV/Å)")
    p.add_argument("--hi", type=positive_float, help="draw the hi cutoff (eV/Å)")
    p.add_argument("-o", "--output", required=True, type=output_file(".png", ".pdf", ".svg"), metavar="FILE.png")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ltau_md.trajectory import plot_trajectory, read_trajectory

    traj = read_trajectory(args.log, args.fix)
    cand = cand_err = halts = None
    if args.queue:
        from ltau_md.queue import CandidateQueue

        rows = list(CandidateQueue(args.queue, must_exist=True).rows())
        runs = [args.run] if args.run else traj.run_names  # by default the runs this log records
        if runs:
            mine = [c for c in rows if c.run in runs]
            if not mine and args.run:
                known = sorted({c.run for c in rows})
                raise LtauError(f"--run {args.run}: {args.queue} holds no frames of that run; its runs: "
                                f"{', '.join(known[:6]) + (' …' if len(known) > 6 else '') or 'none'}")
            rows = mine
        else:
            print(f"{args.log} names no ltau-md run: marking the frames of every run in {args.queue} (--run NAME picks one)")
        flagged = [c for c in rows if c.reason != "hi"]
        cand, cand_err = np.array([c.step for c in flagged]), np.array([c.max_error for c in flagged])
        halts = np.array([c.step for c in rows if c.reason == "hi"])
    plot_trajectory(traj, args.output, cand, halts, cand_err, lo=args.lo, hi=args.hi, title=str(args.log))
    m = traj.initial_and_maximum()
    n_halts = len(traj.halts(halts))
    print(f"{len(traj.step)} thermo rows (fix {traj.fix_id}); max predicted error: initial {m['initial']:.4f} eV/Å "
          f"(step {m['initial_step']}), maximum {m['maximum']:.4f} eV/Å at step {m['maximum_step']}; {n_halts} halt(s)"
          + (f"; {len(cand)} candidate(s)" if cand is not None else ""))
    print(f"plot: {args.output}")
    return 0
