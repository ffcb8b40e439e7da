"""``ltau-md candidates list|show|select|export``: inspect and curate the candidate queue."""

from __future__ import annotations

import argparse

from ltau_app.arguments import nonnegative_float, output_file, positive_int
from ltau_md.queue import STATUSES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("candidates", help="list, show, select or export frames of a candidate queue (ase.db)")
    cs = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    cs.required = True
    q = cs.add_parser("list", help="one line per frame")
    q.add_argument("db", metavar="DB")
    q.add_argument("--status", choices=STATUSES)
    q = cs.add_parser("show", help="one frame in detail")
    q.add_argument("db", metavar="DB")
    q.add_argument("id", type=positive_int, help="row id (see list)")
    q = cs.add_parser("select", help="mark at most --max pending frames, diverse in latent space, for relabelling")
    q.add_argument("db", metavar="DB")
    q.add_argument("--max", type=positive_int, required=True, metavar="N")
    q.add_argument("--min-distance", type=nonnegative_float, default=0.0, help="stop when the next frame is closer than this (latent units)")
    q = cs.add_parser("export", help="write frames (labelled: with their reference labels) as extxyz")
    q.add_argument("db", metavar="DB")
    q.add_argument("--status", choices=STATUSES, default="labelled")
    q.add_argument("--selected", action="store_true", help="only frames marked by 'select'")
    q.add_argument("-o", "--output", required=True, type=output_file(".xyz", ".extxyz"), metavar="FILE.xyz")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ltau_md.queue import CandidateQueue
    from ltau_md.species import symbols

    queue = CandidateQueue(args.db, must_exist=True, writable=args.action == "select")
    if args.action == "list":
        rows = list(queue.rows(args.status))
        # the run column is as wide as the longest run name: names like heating_ramp@2024-… differ at the end
        w = max([3, *(len(c.run) for c in rows)])
        print(f"{'id':>5s} {'status':9s} {'sel':>3s} {'run':{w}s} {'step':>8s} {'reason':6s} {'atoms':>6s} {'max err':>8s} {'>lo':>4s}")
        for c in rows:
            kv = c.key_value_pairs
            # '-' until 'candidates select' has run over the frame
            sel = {True: "yes", False: "no"}.get(kv.get("selected"), "-")
            print(f"{c.id:5d} {c.status:9s} {sel:>3s} {c.run:{w}s} {c.step:8d} {c.reason:6s} {len(c.atoms):6d} "
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
        n_pending = queue.count("pending")
        chosen = queue.select(args.max, args.min_distance)
        print(f"selected {len(chosen)} of {n_pending} pending frame(s): {' '.join(str(c.id) for c in chosen)}")
        return 0
    n = queue.export(args.output, args.status, selected_only=args.selected)
    print(f"wrote {n} frame(s) to {args.output}")
    return 0
