"""``ltau-md make-data``: sample seed-003 Li / Li–Mg frames with the MEAM reference, write extxyz."""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np

from ltau_md.errors import LtauError
from ltau_md.systems import SYSTEMS

# Defaults follow the short seed-003 datasets (SI Table 1: 101 frames 10 fs apart over 1 ps).
FRAMES = 101
EVERY = 10  # steps (fs)
EQUILIBRATE = 5000  # steps: 5 ps = 5 barostat periods (Pdamp 1 ps), 50 thermostat periods


def add_parser(sub: argparse._SubParsersAction) -> None:
    table = "; ".join(
        f"{s.name}: {s.lattice}{' B2' if s.name == 'LiMg' else ''} {s.sites - s.vacancies} atoms "
        f"({s.vacancies} vacancies) {s.ensemble.upper()}"
        for s in SYSTEMS.values()
    )
    p = sub.add_parser(
        "make-data",
        help="sample Li / Li-Mg reference frames with the Kim 2012 MEAM in LAMMPS (extxyz)",
        description="Run Nosé-Hoover MD (1 fs, Tdamp 0.1 ps, Pdamp 1 ps, 0 bar) of a seed-003 system with "
        "the 2NN-MEAM reference (shipped in lammps_plugin/potentials/meam_kim2012) and write frames with energy, forces, "
        f"virial stress, per-atom energies and their origin as extended XYZ. Systems (600 K): {table}.",
    )
    p.add_argument("--system", required=True, choices=list(SYSTEMS), help="seed-003 system")
    p.add_argument("--atoms", type=int, metavar="N", help="atoms wanted; the near-cubic supercell whose sites minus vacancies is closest is used "
                   "(default: the table's)")
    p.add_argument("--temperature", type=float, default=600.0, metavar="K", help="thermostat temperature (default 600)")
    p.add_argument("--temperature-end", type=float, metavar="K", help="heating (or cooling) ramp: the thermostat's target goes linearly "
                   "from --temperature at the first frame to K at the last (default: constant)")
    p.add_argument("--ensemble", choices=("nvt", "npt"), help="default: the table's (NVT for Li, NPT otherwise)")
    p.add_argument("--barostat", choices=("iso", "aniso"), help="NPT coupling (default: iso for Li and Li3Mg, which melt at 600 K; aniso for the solids)")
    p.add_argument("--vacancies", type=int, metavar="V", help="vacant sites, chosen at random (default: the table's, 0 for Li, 3 otherwise)")
    p.add_argument("--frames", type=int, default=FRAMES, metavar="F", help=f"frames to write (default {FRAMES})")
    p.add_argument("--every", type=int, default=EVERY, metavar="STEPS", help=f"MD steps (fs) between frames (default {EVERY})")
    p.add_argument("--equilibrate", type=int, default=EQUILIBRATE, metavar="STEPS", help=f"MD steps before the first frame (default {EQUILIBRATE})")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="fixes alloy order, vacancies and velocities (default 0)")
    p.add_argument("-o", "--output", required=True, metavar="FILE.xyz", help="extended XYZ file to write (replaced atomically)")
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> Path:
    for name in ("atoms", "frames", "every"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise LtauError(f"--{name} {value}: must be a positive integer")
    if args.atoms is not None and args.atoms < 2:
        raise LtauError(f"--atoms {args.atoms}: MD needs at least 2 atoms")
    if args.vacancies is not None and args.vacancies < 0:
        raise LtauError(f"--vacancies {args.vacancies}: must be 0 or more")
    if args.vacancies is not None and args.atoms is not None and args.vacancies >= args.atoms:
        raise LtauError(f"--vacancies {args.vacancies}: must be fewer than --atoms {args.atoms}")
    if args.equilibrate < 0:
        raise LtauError(f"--equilibrate {args.equilibrate}: must be 0 or more steps")
    if not np.isfinite(args.temperature) or args.temperature <= 0:
        raise LtauError(f"--temperature {args.temperature}: must be a positive temperature in K")
    if args.temperature_end is not None and (not np.isfinite(args.temperature_end) or args.temperature_end <= 0):
        raise LtauError(f"--temperature-end {args.temperature_end}: must be a positive temperature in K")
    if args.seed < 0:
        raise LtauError(f"--seed {args.seed}: must be 0 or a positive integer")
    out = Path(args.output)
    if out.suffix.lower() not in (".xyz", ".extxyz"):
        raise LtauError(f"-o {out}: name it .xyz or .extxyz (the file is extended XYZ, which ase.io.read infers from the name)")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise LtauError(f"-o {out}: directory {parent} does not exist; create it first")
    if out.is_dir():
        raise LtauError(f"-o {out}: is a directory; give a file name")
    if not os.access(parent, os.W_OK):
        raise LtauError(f"-o {out}: directory {parent} is not writable")
    return out


def run(args: argparse.Namespace) -> int:
    from ase.io.extxyz import write_extxyz

    from lammps_plugin.meam_reference import meam_files
    from ltau_md import __version__
    from ltau_md.atomic_write import write_with
    from ltau_md.progress import Progress
    from ltau_md.systems import build_system

    out = _check_args(args)
    meam_files()  # missing or altered potential files: say so before anything runs
    spec = SYSTEMS[args.system]
    ensemble = args.ensemble or spec.ensemble
    barostat = args.barostat or spec.barostat
    # One seed drives everything: independent streams for the structure and for LAMMPS's velocities.
    struct_ss, md_ss = np.random.SeedSequence(args.seed).spawn(2)
    structure = build_system(args.system, atoms=args.atoms, vacancies=args.vacancies, seed=np.random.default_rng(struct_ss))
    if len(structure) < 2:
        raise LtauError(f"--atoms/--vacancies: the {args.system} cell would hold {len(structure)} atom; ask for more atoms")
    lammps_seed = int(np.random.default_rng(md_ss).integers(1, 2**31 - 1))

    from lammps_plugin.meam_reference import iter_frames  # LAMMPS only now that the arguments are good

    info = structure.info
    print(
        f"make-data: {args.system}, {len(structure)} atoms ({info['lattice']} {info['repeats']}, "
        f"{info['sites']} sites, {info['vacancies']} vacancies), {ensemble.upper()}"
        f"{f' ({barostat}, 0 bar)' if ensemble == 'npt' else ''} at {args.temperature:g} K"
        f"{f' ramped to {args.temperature_end:g} K' if args.temperature_end is not None else ''}, "
        f"{args.frames} frames every {args.every} fs after {args.equilibrate} fs, seed {args.seed}"
    )
    sys.stdout.flush()
    total = args.equilibrate + (args.frames - 1) * args.every
    bar = Progress("sampling", total, " steps")
    start = time.perf_counter()

    def write(fh: io.BufferedWriter) -> None:
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="\n")
        try:
            for frame in iter_frames(
                structure,
                ensemble=ensemble,
                temperature=args.temperature,
                frames=args.frames,
                every=args.every,
                equilibrate=args.equilibrate,
                seed=lammps_seed,
                barostat=barostat,
                temperature_end=args.temperature_end,
                info={"generator": "ltau-md make-data", "seed": args.seed, "ltau_md_version": __version__},
                progress=bar.update,
            ):
                write_extxyz(text, [frame])
            text.flush()
        finally:
            text.detach()  # hand the binary file back to write_with, which syncs and renames it

    write_with(out, write)
    bar.close()
    print(f"wrote {args.frames} frames ({len(structure)} atoms each) to {out} in {time.perf_counter() - start:.1f} s")
    return 0
