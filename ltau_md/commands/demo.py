"""``ltau-md demo``: the whole product on a Li melt with the MEAM reference, in minutes."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="end-to-end demo: Li MEAM data, NequIP ensemble, LTAU, heating-ramp MD that finds failures, 2 loop iterations",
        description="Runs the built-in loop configuration (Li, 2 iterations) and leaves the report, the "
        "per-iteration calibration and trajectory plots in DIR. About 10 minutes on 2 cores.",
    )
    p.add_argument("-o", "--output", default="ltau-demo", metavar="DIR")
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--baseline", action="store_true", help="also run the random-sampling baseline (doubles the time)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from ltau_md.errors import LtauError
    from ltau_md.loop import load_config, run_loop, write_report

    if args.iterations < 1:
        raise LtauError(f"--iterations {args.iterations}: must be at least 1")
    cfg = load_config(None)
    cfg["iterations"] = args.iterations
    if args.baseline:
        cfg["strategies"] = ["ltau", "random"]
    out = Path(args.output)
    t0 = time.perf_counter()
    result = run_loop(cfg, out)
    _figures(result, out)
    print(write_report(result["rows"], out))
    print(f"demo finished in {(time.perf_counter() - t0) / 60:.1f} min; report {out}/report.txt, plots {out}/*.png")
    return 0


def _figures(result, out) -> None:
    """Per iteration: the failure view of its MD run."""
    from ltau_md.queue import CandidateQueue
    from ltau_md.trajectory import plot_trajectory, read_trajectory

    for r in result["rows"]:
        work = out / r["strategy"] / f"iter{r['iteration']:02d}"
        rows = list(CandidateQueue(work / "candidates.db").rows())
        lo, hi = min(r["lo"].values()), min(r["hi"].values())
        plot_trajectory(
            read_trajectory(work / "log.lammps"),
            out / f"trajectory_{r['strategy']}_iter{r['iteration']:02d}.png",
            candidate_steps=[c.step for c in rows if c.reason != "hi"],
            halt_steps=[c.step for c in rows if c.reason == "hi"],
            lo=lo,
            hi=hi,
            title=f"{r['strategy']} iteration {r['iteration']}: heating ramp",
        )
