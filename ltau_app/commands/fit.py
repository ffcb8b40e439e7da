"""``ltau-md fit``: build the LTAU artifact from a model, its error logs and training frames."""

from __future__ import annotations

import argparse
import json

from ltau_app.arguments import float_in, input_file, nonnegative_float, output_dir, positive_float, positive_int
from ltau_md.contact import CONTACT_ERROR, CONTACT_FRACTION


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit",
        help="build NAME.ltau from a model, its error logs and the training frames",
        description="p-values from the error logs (atol default: final training error), descriptors "
        "of every training atom from one forward pass, a FAISS index per species.",
    )
    p.add_argument("--model", required=True, help="ltau-md train DIR, nequip .ckpt or .nequip.zip")
    p.add_argument("--data", nargs="+", type=input_file, metavar="TRAIN.xyz", help="training files (default: the paths the logs name)")
    p.add_argument("--logs", nargs="+", metavar="DIR", help="error-log directories (default: every member of a train DIR)")
    p.add_argument("--k", type=positive_int, default=10, help="neighbours per query (default 10)")
    p.add_argument("--atol", type=positive_float, help="error tolerance, eV/Å (default: final training force error)")
    p.add_argument("--rtol", type=nonnegative_float, default=0.0, help="relative tolerance × |F_ref| (default 0)")
    p.add_argument("--window", metavar="START:STOP", help="epochs to use, slice over logged epochs (e.g. '-50:')")
    p.add_argument("--index", choices=("auto", "flat", "hnsw", "ivfpq"), default="auto")
    p.add_argument("--contact-fraction", type=float_in(0.0, 1.0, low_open=False, high_open=False), default=CONTACT_FRACTION, metavar="F",
                   help="an atom nearer a neighbour than F × the shortest training distance of the two elements is in "
                        f"close contact: predicted error ≥ {CONTACT_ERROR:g} eV/Å, p 0 (default {CONTACT_FRACTION:g}; 0: off)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("-o", "--output", required=True, type=output_dir, metavar="NAME.ltau")
    p.add_argument("--force", action="store_true", help="replace an artifact already at -o (its calibration goes with it)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ltau_md.error_log import parse_window
    from ltau_md.errors import LtauError
    from ltau_md.nequip.fit import fit_artifact
    from ltau_md.nequip.model import NequIPModel, resolve_model_path
    from ltau_md.nequip.training import member_error_logs

    meta = Path(args.output) / "meta.json"
    if meta.is_file() and not args.force:  # as train and inputs: what is there is not replaced unasked
        try:
            calibrated = "error_model" in json.loads(meta.read_text())
        except (ValueError, UnicodeDecodeError):  # a damaged artifact: still not replaced unasked
            calibrated = False
        raise LtauError(f"-o {args.output}: already holds an LTAU artifact{' with its calibration' if calibrated else ''}; "
                        "choose another name, or add --force to replace it")  # fmt: skip
    resolve_model_path(args.model)  # a missing or malformed model is the first thing to say
    logs = args.logs
    if not logs:
        if not Path(args.model).is_dir():
            raise LtauError(f"--logs: required when --model is a file ({args.model}); give the error-log directories nequip-train wrote")
        logs = member_error_logs(args.model)
    model = NequIPModel.load(args.model, dtype=args.dtype)
    art = fit_artifact(model, logs, args.output, data=args.data, k=args.k, atol=args.atol, rtol=args.rtol,
                       window=parse_window(args.window), index_type=args.index, contact_fraction=args.contact_fraction)
    m = art.meta
    print(f"wrote {args.output}: {m['n_train_atoms']} training atoms ({', '.join(m['species'])}), M={m['n_models']}, "
          f"descriptor d={m['descriptor_dim']}, atol={m['atol']:.4g} eV/Å, k={m['k']}")
    for sp, rec in m["index"]["species"].items():
        extra = f", recall@{rec['params']['recall_k']} {rec['params']['recall_at_k']}" if "recall_at_k" in rec["params"] else ""
        n_sp = int((art.train["species"] == art.species_numbers([sp])[0]).sum())
        p = art.train["p_mean"][art.train["species"] == art.species_numbers([sp])[0]]
        print(f"  {sp}: {n_sp} atoms, index {rec['type']}{extra}, mean p {p.mean():.3f}")
    rule = art.contact
    if rule is not None and rule.enabled:
        pairs = ", ".join(f"{k} {v:.3f}" for k, v in rule.shortest.items())
        print(f"  close contact below {rule.fraction:g} × the shortest training distance (Å): {pairs}")
    print("next: ltau-md calibrate " + json.dumps(str(args.output))[1:-1] + " --data VAL.xyz")
    return 0
