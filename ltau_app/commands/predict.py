"""``ltau-md predict``: per-atom LTAU uncertainty for frames, written as extxyz arrays."""

from __future__ import annotations

import argparse
from pathlib import Path

from ltau_app.arguments import input_file, output_file, positive_int
from ltau_md.errors import LtauError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="per-atom ltau_error (eV/Å) and ltau_p for frames, into an extxyz file",
        description="One forward pass per frame: model energy/forces/stress plus the arrays ltau_error, "
        "ltau_p, ltau_p_std, ltau_distance, ltau_mixture (and ref_forces, force_error when the input has forces).",
    )
    p.add_argument("artifact", metavar="NAME.ltau")
    p.add_argument("frames", type=input_file, metavar="FRAMES.xyz")
    p.add_argument("--model", help="MODEL (default: the one the artifact was fitted for)")
    p.add_argument("--k", type=positive_int, help="neighbours (default: the artifact's k)")
    p.add_argument("--predictor", choices=("calibrated", "ltau"), help="calibrated σ(u, d) (default where 'ltau-md calibrate' "
                   "fitted one) or plain LTAU")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("-o", "--output", required=True, type=output_file(".xyz", ".extxyz"), metavar="OUT.xyz")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ltau_md.nequip.predict import load_for_artifact, predict, write_predictions
    from ltau_md.progress import Progress
    from ltau_md.user_input import read_frames

    if Path(args.output).resolve() == Path(args.frames).resolve():
        raise LtauError(f"-o {args.output}: that is the input file; write the predictions to another file")
    art, model = load_for_artifact(args.artifact, args.model, args.dtype)
    frames = read_frames(args.frames, need_forces=False)
    for i, f in enumerate(frames):
        model.types_of(f.numbers, where=f"{args.frames}: frame {i}")  # a species the model lacks, named by file and frame
    bar = Progress("predicting", len(frames))
    art.resolve_predictor(args.predictor)  # one line now when the artifact has no error model
    preds = predict(model, art, frames, k=args.k, progress=bar.update, predictor=args.predictor)
    bar.close()
    write_predictions(frames, preds, args.output)
    err = np.concatenate([p.error for p in preds])
    print(f"wrote {args.output}: {len(frames)} frames, predicted error mean {err.mean():.4f} max {err.max():.4f} eV/Å")
    return 0
