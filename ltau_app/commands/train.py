"""``ltau-md train``: M nequip models with per-atom error logging."""

from __future__ import annotations

import argparse

from ltau_app.arguments import input_file, nonnegative_float, nonnegative_int, output_dir, positive_float, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train M nequip models, logging every training atom's force error every epoch",
        description="Train an ensemble of M nequip models (different seeds, same data split) with the "
        "ltau-md error-log callback. DIR becomes a MODEL argument for fit/calibrate/predict/run.",
    )
    p.add_argument("--data", nargs="+", type=input_file, metavar="FILE.xyz", help="training frames (extxyz with energy, forces)")
    p.add_argument("--val", nargs="+", type=input_file, metavar="FILE.xyz", help="validation frames (default: 10%% of --data)")
    p.add_argument("--epochs", type=positive_int, help="epochs per model (default 50, or the config's)")
    p.add_argument("--ensemble", type=positive_int, default=1, metavar="M", help="number of models (default 1)")
    p.add_argument("--config", type=input_file, metavar="NEQUIP.yaml", help="your own nequip config; ltau-md adds the callback")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="model seed of the first member (others: +1, +2, ...)")
    p.add_argument("--species", nargs="+", metavar="EL", help="model species (default: those in the data)")
    p.add_argument("--r-max", type=positive_float, default=5.0, help="model cutoff radius, Å (default 5.0)")
    p.add_argument("--num-layers", type=positive_int, default=2, help="message-passing layers (default 2)")
    p.add_argument("--num-features", type=positive_int, default=32, help="features per irrep (default 32; = descriptor size)")
    p.add_argument("--l-max", type=nonnegative_int, default=1, help="maximum rotation order (default 1)")
    p.add_argument("--stress-weight", type=nonnegative_float, metavar="W",
                   help="weight of the stress term of the loss, (eV/Å³)⁻², used where every frame has a stress (default 1000, "
                        "against 10 for forces; 0 leaves stress out: NPT then runs on an untrained equation of state)")
    p.add_argument("--batch-size", type=positive_int, default=4)
    p.add_argument("--lr", type=positive_float, default=0.01)
    p.add_argument("--log-mode", choices=("train_step", "epoch_end"), default="train_step",
                   help="errors from the training step's forward (default, free) or an extra pass at epoch end")
    p.add_argument("--log-dtype", choices=("float32", "float16"), default="float32")
    p.add_argument("--reweight", choices=("easy", "hard"), help="per-atom loss weights from LTAU confidence (seed 002 §4.2)")
    p.add_argument("--weights-from", metavar="NAME.ltau", help="artifact whose p-values give the --reweight weights")
    p.add_argument("--reweight-lambda", type=positive_float, help="λ of the weights (default: 2.0 easy, 4.5 hard)")
    p.add_argument("--resume", action="store_true",
                   help="finish an interrupted train into DIR: keep the models that finished, train the others afresh")
    p.add_argument("-o", "--output", required=True, type=output_dir, metavar="DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ltau_md.errors import LtauError
    from ltau_md.nequip.model import MODEL_DIR_FILE
    from ltau_md.nequip.training import train

    if not args.data and not args.config:
        raise LtauError("--data: give the training frames (or a --config that names them)")
    if (args.weights_from or args.reweight_lambda) and not args.reweight:
        given = "--weights-from" if args.weights_from else "--reweight-lambda"
        raise LtauError(f"{given} does nothing without --reweight; add --reweight easy|hard (or drop {given})")
    if args.resume and (Path(args.output) / MODEL_DIR_FILE).is_file():
        raise LtauError(f"{args.output}: its training finished, nothing to resume; choose another -o to train anew")
    out = train(
        args.data or [],
        args.output,
        val=args.val,
        epochs=args.epochs,
        ensemble=args.ensemble,
        config=args.config,
        seed=args.seed,
        species=args.species,
        batch_size=args.batch_size,
        lr=args.lr,
        model={"r_max": args.r_max, "num_layers": args.num_layers, "num_features": args.num_features, "l_max": args.l_max},
        log_mode=args.log_mode,
        log_dtype=args.log_dtype,
        reweight=args.reweight,
        weights_from=args.weights_from,
        reweight_lambda=args.reweight_lambda,
        reuse_finished=args.resume,
        stress_weight=args.stress_weight,
    )
    print(f"trained {args.ensemble} model(s) into {out}; production model: {out}/seed{args.seed}/best.ckpt")
    return 0
