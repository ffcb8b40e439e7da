"""``ltau-md cutoffs``: fit per-atom values, print the statistical cutoff (seed 003)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ltau_app.arguments import int_at_least, output_file, probability
from ltau_md.errors import LtauError
from ltau_md.user_input import load_array


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cutoffs",
        help="fit error/uncertainty distributions and print the statistical cutoff",
        description="Fit a distribution to per-atom values and report the cutoff where CDF = 1 - 1/N "
        "(seed 003). --kind error: Maxwell fit of force-error magnitudes; --kind uncertainty: Maxwell, "
        "Gamma and generalized Gamma, chosen by KS test.",
    )
    p.add_argument("values", metavar="VALUES.npy", help="1-D array, one value per atom ((n,3) error vectors allowed for --kind error)")
    p.add_argument("--n", type=int_at_least(2), required=True, metavar="N", help="number of atomic environments to be examined (atoms × checks)")
    p.add_argument("--kind", choices=("error", "uncertainty"), default="uncertainty")
    p.add_argument("--species", metavar="SPECIES.npy", help="per-atom atomic numbers or symbols: fit each species separately")
    p.add_argument("--alpha", type=probability, default=0.05, help="KS p-value a family must reach to be accepted (default 0.05)")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    p.add_argument("--plot", type=output_file(".png", ".pdf", ".svg"), metavar="FILE.png", help="write the histogram with fitted densities and cutoff")
    p.set_defaults(func=run)


def _cutoffs_values(path: str, kind: str) -> np.ndarray:
    arr = load_array(path, "values")
    if arr.dtype.kind not in "fiu":
        raise LtauError(f"{path}: dtype {arr.dtype} is not numeric")
    if kind == "error" and arr.ndim == 2 and arr.shape[1] == 3:
        arr = np.linalg.norm(arr, axis=1)  # force-error vectors → magnitudes
    if arr.ndim != 1:
        raise LtauError(
            f"{path}: shape {arr.shape}; expected one value per atom (1-D)"
            + (" or (n, 3) error vectors" if kind == "error" else "")
        )
    return arr.astype(np.float64)


def _fmt_params(params: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.6g}" for k, v in params.items())


def run(args: argparse.Namespace) -> int:
    from ltau_md.cutoffs import statistical_cutoff, statistical_cutoffs_by_species
    from ltau_md.species import to_numbers

    values = _cutoffs_values(args.values, args.kind)
    if args.species:
        species = load_array(args.species, "species")
        if species.ndim != 1 or len(species) != len(values):
            raise LtauError(f"{args.species}: shape {species.shape}; expected ({len(values)},), one species per value")
        to_numbers(species, args.species)  # a bad entry named with its file
        try:
            results = statistical_cutoffs_by_species(values, species, args.n, args.kind, args.alpha)
        except LtauError as exc:
            raise LtauError(f"{args.values}: {exc}") from None
    else:
        try:
            results = {"all": statistical_cutoff(values, args.n, args.kind, args.alpha)}
        except LtauError as exc:
            raise LtauError(f"{args.values}: {exc}") from None

    if args.plot:
        from ltau_md.plots import plot_distributions

        numbers = to_numbers(species) if args.species else None
        panels = {}
        for label, res in results.items():
            sel = values if numbers is None else values[numbers == to_numbers([label])[0]]
            panels[label if numbers is not None else Path(args.values).name] = (sel, res.candidates, res.fit, res.cutoff)
        plot_distributions(panels, args.plot, xlabel="force error (eV/Å)" if args.kind == "error" else "uncertainty")

    if args.json:
        payload: Any = (
            {sp: r.to_dict() for sp, r in results.items()} if args.species else results["all"].to_dict()
        )
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"{args.kind} cutoffs for {args.values}: CDF = 1 - 1/N with N = {args.n}")
    print(f"{'species':8s} {'family':9s} {'parameters':38s} {'KS D':>8s} {'KS p':>9s} {'cutoff':>11s}")
    for label, res in results.items():
        for cand in res.candidates:
            mark = cand == res.fit
            print(
                f"{label:8s} {cand.family + ('*' if mark else ''):9s} {_fmt_params(cand.params):38s} "
                f"{cand.ks_statistic:8.4f} {cand.ks_pvalue:9.3g} {(f'{res.cutoff:11.5g}' if mark else ''):>11s}"
            )
    print("* chosen family" + (f" (first with KS p >= {args.alpha}, else smallest KS D)" if args.kind == "uncertainty" else ""))
    if args.plot:
        print(f"plot: {args.plot}")
    return 0
