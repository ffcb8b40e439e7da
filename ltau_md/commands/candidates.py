"""``ltau-md candidates list|show|select|export``: inspect and curate the candidate queue."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("candidates", help="list, show, select or export frames of a candidate queue (ase.db)")
    cs = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    cs.required = True
    q = cs.add_parser("list", help="one line per frame")
    q.add_argument("db", metavar="DB")
    q.add_argument("--status", choices=("pending", "labelled", "failed"))
    q = cs.add_parser("show", help="one frame in detail")
    q.add_argument("db", metavar="DB")
    q.add_argument("id", type=int)
    q = cs.add_parser("select", help="mark at most --max pending frames, diverse in latent space, for relabelling")
    q.add_argument("db", metavar="DB")
    q.add_argument("--max", type=int, required=True, metavar="N")
    q.add_argument("--min-distance", type=float, default=0.0, help="stop when the next frame is closer than this (latent units)")
    q = cs.add_parser("export", help="write frames (labelled: with their reference labels) as extxyz")
    q.add_argument("db", metavar="DB")
    q.add_argument("--status", choices=("pending", "labelled", "failed"), default="labelled")
    q.add_argument("--selected", action="store_true", help="only frames marked by 'select'")
    q.add_argument("-o", "--output", required=True, metavar="FILE.xyz")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ltau_md import atomic_write
    from ltau_md.candidates import farthest_point_selection
    from ltau_md.errors import LtauError
    from ltau_md.queue import CandidateQueue
    from ltau_md.species import symbols

    queue = CandidateQueue(args.db)
    if args.action == "list":
        rows = list(queue.rows(args.status))
        print(f"{'id':>5s} {'status':9s} {'sel':>3s} {'run':16s} {'step':>8s} {'reason':6s} {'atoms':>6s} {'max err':>8s} {'>lo':>4s}")
        for c in rows:
            kv = c.key_value_pairs
            sel = {True: "yes", False: "no"}.get(kv.get("selected"), "")
            print(f"{c.id:5d} {c.status:9s} {sel:>3s} {c.run[:16]:16s} {c.step:8d} {c.reason:6s} {len(c.atoms):6d} "
                  f"{c.max_error:8.4f} {kv.get('n_above_lo', ''):>4}")
        print(f"{len(rows)} frame(s); pending {queue.count('pending')}, labelled {queue.count('labelled')}, failed {queue.count('failed')}")
        return 0
    if args.action == "show":
        c = queue.get(args.id)
        for key, value in sorted(c.key_value_pairs.items()):
            print(f"{key:14s} {value}")
        print(f"{'cell':14s} {np.round(c.atoms.cell.array, 4).tolist()}")
        err, p = np.asarray(c.data["ltau_error"]), np.asarray(c.data["ltau_p"])
        sp = symbols(c.atoms.numbers)
        print("most uncertain atoms (index, species, predicted error eV/Å, p):")
        for i in np.argsort(err)[::-1][:10]:
            print(f"  {i:5d} {sp[i]:3s} {err[i]:8.4f} {p[i]:6.3f}")
        if "failure" in c.data:
            print(f"failure: {c.data['failure']}")
        return 0
    if args.action == "select":
        if args.max < 1:
            raise LtauError(f"--max {args.max}: must be at least 1")
        pending = list(queue.rows("pending"))
        chosen = farthest_point_selection(pending, args.max, args.min_distance)
        ids = {c.id for c in chosen}
        with queue.db:  # one transaction: the marks change together or not at all
            for c in pending:
                queue.db.update(c.id, selected=c.id in ids)
        print(f"selected {len(chosen)} of {len(pending)} pending frame(s): {' '.join(str(c.id) for c in chosen)}")
        return 0
    rows = [c for c in queue.rows(args.status) if not args.selected or c.key_value_pairs.get("selected")]
    if not rows:
        raise LtauError(f"{args.db}: no {args.status} frames{' marked selected' if args.selected else ''} to export")
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    frames = []
    for c in rows:
        atoms = c.atoms
        row = queue.db.get(id=c.id)
        results = {k: row.get(k) for k in ("energy", "forces", "stress") if row.get(k) is not None}
        atoms.calc = SinglePointCalculator(atoms, **results) if results else None
        atoms.info.update({"candidate_id": c.id, "run": c.run, "step": c.step, "status": c.status,
                           "labelled_by": c.key_value_pairs.get("labelled_by", "")})
        atoms.arrays["ltau_error"] = np.asarray(c.data["ltau_error"])
        frames.append(atoms)
    atomic_write.write_with(args.output, lambda fh: write(fh, frames, format="extxyz"), text=True)
    print(f"wrote {len(frames)} frame(s) to {args.output}")
    return 0
