"""``ltau-md calibrate``: fit s and the cutoff distributions on validation frames."""

from __future__ import annotations

import argparse

from ltau_app.arguments import input_file, int_at_least, output_dir, positive_int
from ltau_md.error_model import DEFAULT_FORMS, FORMS, MAXWELL_SHAPE, NEIGHBOURHOOD_FORMS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="fit scale s and error/uncertainty distributions per species on validation frames",
        description="Evaluates the model on VAL frames (reference forces needed) and fits, per species: plain "
        "LTAU's s by the miscalibration area; the calibrated predictor σ(u, d, d̄) of LTAU's mixture u, the latent "
        "distance d and its mean d̄ over the atom's neighbourhood (form chosen by held-out Maxwell likelihood); a Maxwell fit of the true errors; the KS-chosen "
        "family of each predictor's predicted errors. Stores them in NAME.ltau/meta.json and prints a table.",
    )
    p.add_argument("artifact", metavar="NAME.ltau")
    p.add_argument("--data", required=True, nargs="+", type=input_file, metavar="VAL.xyz")
    p.add_argument("--model", help="MODEL (default: the one the artifact was fitted for)")
    p.add_argument("--k", type=positive_int, help="neighbours (default: the artifact's k)")
    p.add_argument("--n", type=int_at_least(2), metavar="N", help="N for the printed cutoffs (default: validation atoms)")
    p.add_argument("--no-scale", action="store_true", help="keep s = 1 (only fit distributions)")
    p.add_argument("--plots", type=output_dir, metavar="DIR", help="write calibration, distribution, F1-map and parity plots")
    p.add_argument("--error-model", nargs="+", metavar="FORM", choices=FORMS,
                   help=f"candidate forms of the calibrated predictor, chosen by held-out likelihood: {', '.join(DEFAULT_FORMS)} "
                   f"(the default set), {', '.join(NEIGHBOURHOOD_FORMS)} (opt-in: weighs d and d averaged over the atom's "
                   "neighbours freely)")
    p.add_argument("--distance", choices=("environment", "nearest"), default="environment",
                   help="the latent distance the forms read: environment = (d + d̄)/2, the atom's own and its "
                   "neighbourhood's (default), or nearest = the atom's own d")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ltau_md.calibration import calibrate_artifact, require_atoms_per_species
    from ltau_md.nequip.calibrate import validation_errors
    from ltau_md.nequip.predict import load_for_artifact
    from ltau_md.species import symbols
    from ltau_md.user_input import read_frames

    art, model = load_for_artifact(args.artifact, args.model, args.dtype)
    frames = []
    for path in args.data:
        for i, f in enumerate(read_frames(path, need_forces=True, what="validation frames")):
            model.types_of(f.numbers, where=f"{path}: frame {i}")  # a species the model lacks, named by file and frame
            frames.append(f)
    require_atoms_per_species(symbols(np.concatenate([f.numbers for f in frames])))
    val = validation_errors(art, model, frames, k=args.k)
    rep = calibrate_artifact(art, val, n=args.n, plots=args.plots, fit_scale=not args.no_scale,
                             forms=tuple(args.error_model) if args.error_model else None, distance=args.distance)
    print(f"calibrated {args.artifact} on {rep['n_frames']} frames / {rep['n_atoms']} atoms; cutoffs at N = {rep['N']}")
    print(f"{'species':7s} {'atoms':>6s} {'F MAE':>7s} {'err cut':>8s} {'predictor':>10s} {'form / s':>9s} {'rho':>6s} "
          f"{'area':>6s} {'unc family':>10s} {'unc cut':>8s} {'P/R/F1':>14s}")  # fmt: skip
    for sp, r in rep["species"].items():
        for name in ("ltau", "calibrated"):
            q = r[name]
            form = f"{r['scale']:.3f}" if name == "ltau" else r["error_model"]["form"]
            prf = f"{q['precision']:.2f}/{q['recall']:.2f}/{q['f1']:.2f}"
            print(f"{sp:7s} {r['n_atoms']:6d} {r['force_mae_component']:7.4f} {r['error_cutoff']:8.4f} {name:>10s} {form:>9s} "
                  f"{q['spearman_rho']:6.3f} {q['miscalibration_area']:6.3f} {q['uncertainty_fit']['family']:>10s} "
                  f"{q['uncertainty_cutoff']:8.4f} {prf:>14s}")  # fmt: skip
    for sp, r in rep["species"].items():
        em = r["error_model"]
        if em["shape"] != list(MAXWELL_SHAPE):
            a, c, s = em["shape"]
            nll = em["shape_heldout_nll"]
            print(f"{sp}: error shape generalised gamma a={a:.3f} c={c:.3f} s={s:.3f} (held-out -log L per atom "
                  f"{nll['fitted']:.4f}, Maxwell {nll['maxwell']:.4f})")  # fmt: skip
    print("F MAE: force-component MAE (eV/Å); err cut, unc cut: CDF = 1 - 1/N (eV/Å); ltau: plain LTAU × s (form / s: "
          "s by miscalibration area); calibrated: σ(u, d[, d̄]) by held-out Maxwell likelihood, used by default, its error "
          "shape Maxwell unless named above "
          f"(d: the {args.distance} latent distance); "
          "rho: Spearman, predicted vs true per-atom error; area: miscalibration area")
    if args.plots:
        print(f"plots: {args.plots}")
    return 0
