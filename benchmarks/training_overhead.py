"""Cost of per-atom error logging during nequip training.

    python benchmarks/training_overhead.py [--frames 40] [--atoms 128] [--epochs 10] [--repeats 2]
                                           [-o benchmarks/results/training_overhead.json]

Trains the same model on the same Li MEAM data three times — without the error logger, with it in
``train_step`` mode (errors from the training step's own forward) and in ``epoch_end`` mode (an
extra pass per epoch), ``--repeats`` rounds interleaved — and reports the median epoch wall time
(first epoch of each run skipped; validation included, the same for all) with its interquartile
range and the overhead relative to no logging. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import results_file  # benchmarks/results_file.py (the script's own directory is on sys.path)
import yaml

from ltau_md.nequip.training import CALLBACK_TARGET, default_config

HERE = Path(__file__).resolve().parent


def run(data: Path, work: Path, mode: str, epochs: int, batch_size: int) -> list[float]:
    run_dir = work / mode
    cfg = default_config([data], None, ["Li"], epochs, batch_size)
    callbacks = cfg["trainer"]["callbacks"]
    if mode != "none":
        callbacks.append({"_target_": CALLBACK_TARGET, "out_dir": str(run_dir / "ltau_errors"), "mode": mode})
    callbacks.append({"_target_": "epoch_timer.EpochTimer", "out_file": str(run_dir / "epoch_times.json")})
    cfg["hydra"] = {"run": {"dir": str(run_dir)}}
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = dict(os.environ, PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    exe = Path(sys.executable).parent / "nequip-train"
    with open(run_dir / "train.log", "wb") as log:
        subprocess.run([str(exe), "-cp", str(run_dir), "-cn", "config.yaml"], stdout=log, stderr=subprocess.STDOUT, env=env, check=True)
    return json.loads((run_dir / "epoch_times.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--atoms", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=10, help="at least 2 (each run's first epoch is warm-up, not timed)")
    ap.add_argument("--repeats", type=int, default=2, help="rounds of the three runs, interleaved against drift")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("-o", "--output", default="benchmarks/results/training_overhead.json")
    args = ap.parse_args()
    if args.epochs < 2:
        ap.error("--epochs must be at least 2: each run's first epoch is warm-up and not timed")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "li.xyz"
        subprocess.run([str(Path(sys.executable).parent / "ltau-md"), "make-data", "--system", "Li", "--atoms", str(args.atoms),
                        "--frames", str(args.frames), "--equilibrate", "1000", "--every", "20", "--seed", "1", "-o", str(data)],
                       check=True, capture_output=True)
        times: dict[str, list[float]] = {m: [] for m in ("none", "train_step", "epoch_end")}
        for r in range(args.repeats):
            for mode in times:
                times[mode] += run(data, work / f"round{r}", mode, args.epochs, args.batch_size)[1:]  # skip warm-up epoch
        rows = {
            mode: {
                "epoch_times_s": [round(t, 4) for t in ts],
                "median_s": float(np.median(ts)),
                "quartiles_s": [float(np.quantile(ts, 0.25)), float(np.quantile(ts, 0.75))],
            }
            for mode, ts in times.items()
        }
    base = rows["none"]["median_s"]
    print(f"{'logging':12s} {'epoch s (median)':>17s} {'IQR':>15s} {'overhead':>9s}")
    for mode, r in rows.items():
        r["overhead"] = r["median_s"] / base - 1.0
        q = r["quartiles_s"]
        print(f"{mode:12s} {r['median_s']:17.3f} {q[0]:7.3f}-{q[1]:.3f} {100 * r['overhead']:8.1f}%")
    out = {
        "benchmark": "training_overhead",
        "data": f"Li MEAM, {args.frames} frames x {args.atoms} atoms, 10% validation",
        "model": "ltau-md train default (NequIP, 2 layers, l_max 1, 32 features, r_max 5.0)",
        "epochs": args.epochs,
        "repeats": args.repeats,
        "batch_size": args.batch_size,
        "threads": os.cpu_count(),
        "rows": rows,
    }
    results_file.save(args.output, out)


if __name__ == "__main__":
    main()
