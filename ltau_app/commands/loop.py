"""``ltau-md loop``: train → fit → calibrate → MD with fix ltau → harvest → relabel → merge, K times."""

from __future__ import annotations

import argparse

from ltau_app.arguments import output_dir


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "loop",
        help="run K active-learning iterations and report them (table + plots)",
        description="CONFIG (YAML) overrides the defaults section by section: system, reference, "
        "iterations, seed, strategies ([ltau] or [ltau, random] for the baseline), initial, "
        "validation, test, train, fit, md, harvest, queue, walkers, engine. See README.",
    )
    p.add_argument("config", metavar="CONFIG", help="loop config (YAML); '-' for the built-in defaults")
    p.add_argument("-o", "--output", type=output_dir, metavar="DIR", help="the campaign's directory (required unless --show-config)")
    p.add_argument("--resume", action="store_true",
                   help="continue the campaign in DIR where it stopped (trained members, finished walkers and labelled frames are kept)")
    p.add_argument("--show-config", action="store_true",
                   help="print the whole configuration, CONFIG over the defaults (every key), as YAML and exit: a start for your own")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ltau_app.loop import load_config, run_loop
    from ltau_md.errors import LtauError

    if args.show_config:
        import yaml

        print(yaml.safe_dump(load_config(None if args.config == "-" else args.config), sort_keys=False), end="")
        return 0
    if args.output is None:
        raise LtauError("-o DIR is required: the directory the campaign writes (or --show-config to print its configuration)")
    if args.config != "-" and Path(args.config).resolve() == (Path(args.output) / "config.yaml").resolve():
        raise LtauError(f"{args.config}: the campaign writes its full configuration to {args.output}/config.yaml; "
                        "keep your config outside -o DIR (or pass it with --resume only to continue that campaign)")  # fmt: skip
    cfg = load_config(None if args.config == "-" else args.config)
    result = run_loop(cfg, args.output, resume=args.resume)
    print(result["text"])
    print(f"report: {args.output}/report.txt, {args.output}/report.json; plots: {args.output}/loop.png, {args.output}/campaign.png, "
          f"{args.output}/trajectory_*.png")
    return 0
