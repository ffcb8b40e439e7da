"""Candidate-queue write throughput: SQLite (WAL) vs PostgreSQL, with 1 and 4 writer processes.

    python benchmarks/queue_throughput.py [--backends sqlite postgresql] [--writers 1 4]
                                          [--rows 150] [--atoms 250] [--latent-dim 32] [--repeats 3]
                                          [-o benchmarks/results/queue_throughput.json]

Each writer is a separate process (an MD walker with ``fix ltau``) that opens the queue, waits for
a common start signal, then adds ``--rows`` rows through ``CandidateQueue.add``: a bcc Li frame of
``--atoms`` atoms with velocities, per-atom ``ltau_error`` / ``ltau_p`` / flagged arrays, per-atom
latents (``--latent-dim``, float32) and the fingerprints and keys a fix writes. Each run starts on
a new, empty queue. rows/s = all rows of all writers / wall time from the start signal to the last
commit (median of ``--repeats`` runs); add ms = per-row latency seen by one writer (median and 95th
percentile over all writers' rows of the median run). SQLite: a file in a temporary directory
(synchronous=FULL, ASE's default). PostgreSQL: a throwaway server started by tests/postgres_server.py
(fsync and synchronous_commit on, the defaults), reached over TCP on 127.0.0.1; ASE opens one
connection per call. Prints a table and writes JSON (atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from importlib.metadata import version
from pathlib import Path

import numpy as np
import results_file  # benchmarks/results_file.py (the script's own directory is on sys.path)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from postgres_server import find_bin_dir, postgres_server  # noqa: E402  (tests/postgres_server.py: shared with the tests)

WRITER = r"""
import json, sys, time
from pathlib import Path
import numpy as np
from ase.build import bulk
from ltau_md.queue import CandidateQueue
url, name, n_rows, go, n_atoms, dim = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
reps = max(1, round((n_atoms / 2) ** (1 / 3)))
base = bulk("Li", "bcc", a=3.51, cubic=True).repeat((reps, reps, reps))[:n_atoms]
rng = np.random.default_rng(int(name[1:]))
q = CandidateQueue(url, writable=True)
(go.parent / f"ready-{name}").touch()
while not go.exists():
    time.sleep(0.0005)
lat = []
for i in range(n_rows):
    a = base.copy()
    a.positions += rng.normal(scale=0.05, size=a.positions.shape)
    a.set_velocities(rng.normal(scale=0.01, size=(len(a), 3)))
    err = rng.gamma(2.0, 0.05, size=len(a))
    t = time.perf_counter()
    q.add(a, error=err, p=np.exp(-err), run=name, step=10 * i, reason="lo", model_fingerprint="m" * 64,
          artifact_fingerprint="a" * 64, lo=0.2, latent=rng.normal(size=(len(a), dim)).astype(np.float32),
          source="benchmark", dump=f"/scratch/{name}.candidates.xyz", fix="uq", phase="md")
    lat.append(time.perf_counter() - t)
print(json.dumps({"end": time.time(), "add_s": lat}))
"""


def one_run(url: str, work: Path, writers: int, args) -> dict:
    """``writers`` processes adding ``args.rows`` rows each to the new queue ``url``."""
    go = work / "go"
    names = [f"w{k}" for k in range(writers)]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, n, str(args.rows), str(go), str(args.atoms), str(args.latent_dim)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in names]  # fmt: skip
    while not all((work / f"ready-{n}").exists() for n in names):
        if any(p.poll() is not None for p in procs):
            raise SystemExit("a writer died before starting: " + " | ".join(p.communicate()[1][-800:] for p in procs))
        time.sleep(0.01)
    t0 = time.time()
    go.touch()
    ends, lat = [], []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a writer failed ({p.returncode}): {err[-2000:]}")
        rec = json.loads(out.strip().splitlines()[-1])
        ends.append(rec["end"])
        lat += rec["add_s"]
    wall = max(ends) - t0
    return {"wall_s": wall, "rows_per_s": writers * args.rows / wall, "add_s": lat}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"])
    ap.add_argument("--writers", nargs="+", type=int, default=[1, 4])
    ap.add_argument("--rows", type=int, default=150, help="rows per writer and run")
    ap.add_argument("--atoms", type=int, default=250)
    ap.add_argument("--latent-dim", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("-o", "--output", default="benchmarks/results/queue_throughput.json")
    args = ap.parse_args()

    bin_dir = find_bin_dir()
    if "postgresql" in args.backends and bin_dir is None:
        raise SystemExit("no PostgreSQL server programs (initdb, pg_ctl) in PATH or /usr/lib/postgresql/*/bin; run with --backends sqlite")
    rows, versions = [], {"sqlite": sqlite3.sqlite_version}
    print(f"{'backend':10s} {'writers':>7s} {'rows':>5s} {'rows/s':>8s} {'runs rows/s':>20s} {'add ms p50':>10s} {'add ms p95':>10s} {'kB/row':>7s}")
    with tempfile.TemporaryDirectory(prefix="ltau-queue-bench-") as tmp, ExitStack() as stack:
        server = stack.enter_context(postgres_server(bin_dir)) if "postgresql" in args.backends else None
        if server:
            versions["postgresql"] = server.sql("SHOW server_version").strip()
            versions["psycopg2"] = version("psycopg2-binary")
            versions["ase_db_backends"] = version("ase-db-backends")
        for backend in args.backends:
            for writers in args.writers:
                runs = []
                for rep in range(args.repeats):
                    work = Path(tmp) / f"{backend}-{writers}-{rep}"
                    work.mkdir()
                    if backend == "sqlite":
                        url = str(work / "q.db")
                    else:
                        url = server.create_database(f"bench_{writers}_{rep}")
                        empty = int(server.sql("SELECT pg_database_size(current_database())", f"bench_{writers}_{rep}"))
                    run = one_run(url, work, writers, args)
                    n = writers * args.rows
                    if backend == "sqlite":
                        run["bytes"] = sum(f.stat().st_size for f in work.glob("q.db*"))
                        shutil.rmtree(work)
                    else:
                        run["bytes"] = int(server.sql("SELECT pg_database_size(current_database())", f"bench_{writers}_{rep}")) - empty
                    run["kb_per_row"] = run["bytes"] / n / 1024
                    runs.append(run)
                mid = sorted(runs, key=lambda r: r["rows_per_s"])[len(runs) // 2]
                lat_ms = 1e3 * np.asarray(mid["add_s"])
                row = {
                    "backend": backend,
                    "writers": writers,
                    "rows_per_writer": args.rows,
                    "rows_per_s": round(mid["rows_per_s"], 1),
                    "rows_per_s_runs": [round(r["rows_per_s"], 1) for r in runs],
                    "add_ms_p50": round(float(np.percentile(lat_ms, 50)), 2),
                    "add_ms_p95": round(float(np.percentile(lat_ms, 95)), 2),
                    "kb_per_row": round(mid["kb_per_row"], 1),
                }
                rows.append(row)
                runs_txt = " ".join(f"{r:.0f}" for r in row["rows_per_s_runs"])
                print(f"{backend:10s} {writers:7d} {writers * args.rows:5d} {row['rows_per_s']:8.1f} {runs_txt:>20s} "
                      f"{row['add_ms_p50']:10.2f} {row['add_ms_p95']:10.2f} {row['kb_per_row']:7.1f}", flush=True)  # fmt: skip
    out = {
        "benchmark": "queue_throughput",
        "frame": f"bcc Li, {args.atoms} atoms, velocities, ltau_error/ltau_p/flagged per atom, {args.latent_dim}-dim float32 latents",
        "rows_per_writer": args.rows,
        "repeats": args.repeats,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "python": platform.python_version(),
        "ase": version("ase"),
        "versions": versions,
        "rows": rows,
    }
    results_file.save(args.output, out)


if __name__ == "__main__":
    main()
