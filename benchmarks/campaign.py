"""Campaign engine: loop wall time on 2 walkers with 1 vs 2 Parsl workers, and queue throughput.

    python benchmarks/campaign.py [--workers 1 2] [--steps 1500] [--epochs 10] [--repeats 1]
                                  [--queue-rows 100] [-o benchmarks/results/campaign.json]

(a) One loop iteration (``ltau-md loop``, local engine): 2 ensemble members trained, 2 walkers of
    54-atom Li (600 → 2500 K and 600 → 1500 K, ``--steps`` each, halt no), harvest and relabel
    with MEAM. The reference data are sampled once and shared by every run, so the runs differ only
    in the engine's workers: 1 worker runs one task at a time on all cores (2 torch threads here),
    2 workers run two at once on one core each. Reports loop wall time per run, per stage (train,
    md, ...) and the ratio 1 worker / 2 workers (> 1: concurrency pays).
(b) Queue throughput, rows/s, SQLite vs PostgreSQL with 1 and 4 concurrent writers
    (``benchmarks/queue_throughput.py``, run as a subprocess; its JSON is embedded).

Prints a table and writes JSON (atomically).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import results_file  # benchmarks/results_file.py (the script's own directory is on sys.path)
import yaml

from ltau_app.engine import cores
from ltau_app.loop import load_config, prepare_data


def load_config_dict(cfg: dict, tmp: Path) -> dict:
    path = tmp / "prepare.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(path)

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent


def campaign_config(steps: int, epochs: int, workers: int) -> dict:
    return {
        "iterations": 1,
        "initial": {"frames": 16, "equilibrate": 1000, "every": 20},
        "validation": {"frames": 4, "equilibrate": 1000, "every": 20},
        "test": {"frames": 2, "temperatures": [600.0], "equilibrate": 300, "every": 20},
        "train": {"ensemble": 2, "epochs": epochs},
        "md": {"check_every": 10, "halt": "no"},
        "harvest": {"max_frames": 4},
        "walkers": [{"name": "hot", "t_start": 600.0, "t_end": 2500.0, "steps": steps},
                    {"name": "warm", "t_start": 600.0, "t_end": 1500.0, "steps": steps, "seed": 1}],
        "engine": {"workers": workers},
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--queue-rows", type=int, default=100, help="rows per writer for (b); 0 skips (b)")
    ap.add_argument("-o", "--output", default="benchmarks/results/campaign.json")
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        prepare_data(load_config_dict(campaign_config(args.steps, args.epochs, 1), tmp), data)  # sampled once, shared by every run
        print(f"{'workers':>7s} {'repeat':>6s} {'loop s':>8s}  stages (s)")
        for rep in range(args.repeats):
            for w in args.workers:
                out = tmp / f"w{w}_r{rep}"
                shutil.copytree(data, out / "data")  # the same reference frames (data/sampled.json says so): only the engine differs
                config = yaml.safe_dump(campaign_config(args.steps, args.epochs, w))
                (tmp / f"loop_w{w}.yaml").write_text(config)
                (out / "config.yaml").write_text(config)  # with its data/: a campaign directory, which the loop starts over
                t0 = time.perf_counter()
                p = subprocess.run([str(BIN / "ltau-md"), "loop", f"../loop_w{w}.yaml", "-o", "."], cwd=out, capture_output=True, text=True)
                wall = time.perf_counter() - t0
                if p.returncode != 0:
                    sys.exit(f"ltau-md loop failed ({p.returncode}): {p.stderr[-2000:]}")
                row = json.loads((out / "report.json").read_text())["rows"][0]
                stages = {k: round(v, 2) for k, v in row["stage_s"].items()}
                runs.append({"workers": w, "repeat": rep, "loop_wall_s": round(wall, 2), "stage_s": stages,
                             "walker_wall_s": {x["name"]: x["wall_s"] for x in row["walkers"]}})  # fmt: skip
                print(f"{w:7d} {rep:6d} {wall:8.1f}  " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
        ratios = {}
        for rep in range(args.repeats):
            by_w = {r["workers"]: r for r in runs if r["repeat"] == rep}
            if 1 in by_w and 2 in by_w:
                ratios.setdefault("loop", []).append(by_w[1]["loop_wall_s"] / by_w[2]["loop_wall_s"])
                for st in ("train", "md"):
                    ratios.setdefault(st, []).append(by_w[1]["stage_s"][st] / by_w[2]["stage_s"][st])
        for k, v in ratios.items():
            print(f"1 worker / 2 workers, {k}: {', '.join(f'{x:.2f}' for x in v)}")
        queue = None
        if args.queue_rows:
            qjson = tmp / "queue.json"
            subprocess.run([sys.executable, str(HERE / "queue_throughput.py"), "--rows", str(args.queue_rows), "-o", str(qjson)], check=True)
            queue = json.loads(qjson.read_text())
    results_file.save(args.output, {
        "benchmark": "campaign",
        "command": "benchmarks/campaign.py " + " ".join(sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cores": cores(), "python": platform.python_version()},
        "campaign": {"iterations": 1, "ensemble": 2, "walkers": 2, "steps_per_walker": args.steps, "epochs": args.epochs, "atoms": 54},
        "runs": runs,
        "ratio_1_over_2_workers": ratios,
        "queue_throughput": queue,
    })  # fmt: skip


if __name__ == "__main__":
    main()
