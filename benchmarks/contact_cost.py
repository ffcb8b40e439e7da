"""What the close-contact rule (``ltau_md.contact``) adds to ``fix ltau``: MD step time of 250 Li atoms
(1 rank) with no fix ltau, with fix ltau every 10 steps and an artifact without the rule, and with
the same artifact refitted with it (``ltau-md fit``'s default).

    python benchmarks/contact_cost.py [--workdir DIR] [--steps 200] [-o benchmarks/results/contact_cost.json]

Uses ``benchmarks/lammps_bridge.py``'s model and artifact in --workdir (made there if missing) and
its timing: the three settings alternate in one ``ltau-md run``, 5 blocks each, the fastest block
per setting. The rule's distances come from the pair style's edges at the checks, so LAMMPS books
them under Pair, not Modify: compare the step times.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lammps_bridge import REPEATS, ltau_md, md_runs, prepare
from results_file import save


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path.home() / ".cache" / "ltau-md" / "bench-lammps")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("-o", "--output", default="benchmarks/results/contact_cost.json")
    args = ap.parse_args()
    w = args.workdir.resolve()
    model, _ = prepare(w)
    arts = {}
    for name, fraction in (("without", "0"), ("with", "0.9")):
        arts[name] = w / f"li_contact_{name}.ltau"
        if not (arts[name] / "meta.json").is_file():
            ltau_md("fit", "--model", "model", "--contact-fraction", fraction, "-o", arts[name].name, cwd=w)
            ltau_md("calibrate", arts[name].name, "--data", "val.xyz", cwd=w)
    blocks = [(f"fix uq all ltau 10 {arts['without']}\nunfix uq", "no fix ltau")]
    for i in range(REPEATS):
        if i:
            blocks.append(("unfix uq", "no fix ltau"))
        blocks += [(f"fix uq all ltau 10 {arts['without']}", "fix ltau, rule off"), (f"fix uq all ltau 10 {arts['with']}", "fix ltau, rule on")]
    out = md_runs(w, "contact", blocks, model=model, steps=args.steps)
    plain = out["no fix ltau"][0]
    results = {label: {"md_step_s": t, "modify_per_step_s": mod, "over_no_fix": t / plain - 1} for label, (t, mod) in out.items()}
    for label, r in results.items():
        mod, over = 1e3 * r["modify_per_step_s"], 100 * r["over_no_fix"]
        print(f"{label:20s} {1e3 * r['md_step_s']:.3f} ms/step  (Modify {mod:.4f} ms/step, {over:+.2f} % over no fix)")
    record = {"benchmark": "contact_cost", "command": "python benchmarks/contact_cost.py", "atoms": 250, "steps": args.steps, "results": results}
    save(args.output, record)
    print(json.dumps(record["results"], indent=1))


if __name__ == "__main__":
    main()
