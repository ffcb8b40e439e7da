"""``ltau-md demo``: the whole product on a Li melt with the MEAM reference, in minutes."""

from __future__ import annotations

import argparse

from ltau_app.arguments import output_dir, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="end-to-end demo: Li MEAM data, NequIP ensemble, LTAU, heating-ramp MD that finds failures, 2 loop iterations",
        description="Runs the built-in loop configuration (Li, 2 iterations) and leaves the report, the "
        "per-iteration calibration and trajectory plots in DIR. About 2-5 minutes on 2 cores (measured).",
    )
    p.add_argument("-o", "--output", default="ltau-demo", type=output_dir, metavar="DIR")
    p.add_argument("--iterations", type=positive_int, default=2)
    p.add_argument("--baseline", action="store_true", help="also run the random-sampling baseline (doubles the time)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from ltau_app.loop import load_config, run_loop

    cfg = load_config(None)
    cfg["iterations"] = args.iterations
    if args.baseline:
        cfg["strategies"] = ["ltau", "random"]
    t0 = time.perf_counter()
    result = run_loop(cfg, args.output)
    print(result["text"])
    print(f"demo finished in {(time.perf_counter() - t0) / 60:.1f} min; report {args.output}/report.txt, plots {args.output}/*.png")
    return 0
