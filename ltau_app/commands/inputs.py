"""``ltau-md inputs``: the LAMMPS inputs that ship with ltau-md, listed or copied out to edit."""

from __future__ import annotations

import argparse

from ltau_app.arguments import output_dir


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inputs",
        help="list the shipped LAMMPS input scripts, or copy them into DIR to run and edit",
        description="The example inputs for 'ltau-md run' (pair_style nequip + fix ltau: Li NVT, LiMg NPT, a "
        "heating ramp) ship inside the package. Without -o: list them with their installed paths. With -o DIR: "
        "copy them (and their README) into DIR; existing files are left alone unless --force.",
    )
    p.add_argument("-o", "--output", type=output_dir, metavar="DIR", help="copy the inputs into DIR (created if needed)")
    p.add_argument("--force", action="store_true", help="overwrite files of the same name in DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from importlib import resources
    from pathlib import Path

    from ltau_md import atomic_write
    from ltau_md.errors import LtauError

    folder = resources.files("lammps_plugin").joinpath("inputs")
    files = sorted((f for f in folder.iterdir() if f.is_file() and (f.name.startswith("in.") or f.name == "README.md")), key=lambda f: f.name)
    if args.output is None:
        for f in files:
            first = next((ln[1:].strip() for ln in f.read_text().splitlines() if ln.startswith("#")), "")
            print(f"{f.name:18s} {first}")
        print(f"installed in {folder}; copy them with 'ltau-md inputs -o DIR'")
        return 0
    out = Path(args.output)
    clash = [f.name for f in files if (out / f.name).exists()]
    if clash and not args.force:
        raise LtauError(f"-o {out}: already holds {', '.join(clash)}; add --force to overwrite or choose another DIR")
    out.mkdir(exist_ok=True)
    for f in files:
        atomic_write.write_bytes(out / f.name, f.read_bytes())
    print(f"copied {len(files)} file(s) into {out}: {' '.join(f.name for f in files)}")
    return 0
