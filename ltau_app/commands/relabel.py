"""``ltau-md relabel``: reference labels for pending candidate frames."""

from __future__ import annotations

import argparse
import sys

from ltau_app.arguments import positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "relabel",
        help="label pending frames of a candidate queue with any ASE calculator (resumable)",
        description="Calculator specs: meam (the shipped Li-Mg MEAM reference), gpaw[:{json}] "
        "(PBE plane waves, if installed), module:Class[:{json kwargs}]. A killed relabel resumes "
        "where it stopped; failures are recorded on the row and the rest goes on. Several relabels "
        "on one queue (e.g. one per node on a PostgreSQL queue) share its frames: each claims a frame before labelling it.",
    )
    p.add_argument("db", metavar="DB")
    p.add_argument("--calculator", required=True, metavar="SPEC")
    p.add_argument("--retry-failed", action="store_true", help="also retry rows that failed before")
    p.add_argument("--selected", action="store_true", help="only frames marked by 'ltau-md candidates select'")
    p.add_argument("--limit", type=positive_int, help="label at most this many frames now")
    p.add_argument("--reclaim", action="store_true",
                   help="also take frames claimed by a relabel on another host (one that was killed there)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ltau_md.progress import Progress
    from ltau_md.queue import claimed_here, display_url
    from ltau_md.relabel import relabel

    bar = Progress("relabelling", 0, unit=" frames")
    counts = relabel(args.db, args.calculator, retry_failed=args.retry_failed, only_selected=args.selected,
                     limit=args.limit, progress=bar.update, reclaim=args.reclaim)
    bar.close()
    print(f"{display_url(args.db)}: labelled {counts['labelled']}, failed {counts['failed']} with {args.calculator}")
    if counts["first_failure"]:
        print(f"first failure, {counts['first_failure']} (every reason: 'ltau-md candidates show DB ID'); "
              "after fixing the calculator, --retry-failed labels them again", file=sys.stderr)
    if counts["claimed_elsewhere"]:
        holder = counts["claim_holder"]
        hint = "" if claimed_here(holder) else "; if it was killed on its host, --reclaim takes them over"
        print(f"{counts['claimed_elsewhere']} frame(s) are still being labelled by another relabel of this queue ({holder}){hint}")
    if counts["labelled_elsewhere"]:
        print(f"{counts['labelled_elsewhere']} frame(s) were labelled meanwhile by another relabel of this queue; their labels kept")
    if counts["not_selected"]:
        print(f"{counts['not_selected']} frame(s) not marked by 'ltau-md candidates select' were left (--selected)")
    if counts["failed_before"] and not counts["labelled"] + counts["failed"]:
        print(f"{counts['failed_before']} frame(s) failed before and were left; --retry-failed labels them again")
    # a run in which every frame failed is a failure of the command (scripts and campaigns see it)
    return 1 if counts["failed"] and not counts["labelled"] else 0
