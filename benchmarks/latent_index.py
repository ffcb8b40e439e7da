"""Latent-index cost: build time, memory and per-atom query time at 10^4, 10^5, 10^6 atoms.

    python benchmarks/latent_index.py [--sizes 1e4 1e5 1e6] [--types flat hnsw ivfpq]
                                      [--dim 32] [--k 10] [--queries 4000] [--data manifold|isotropic]
                                      [--query-threads 1] [-o benchmarks/results/latent_index.json]

Queries are answered in one batch (like one `fix ltau` check of a 4000-atom MD frame) on
``--query-threads`` threads (1 = one MPI rank). Memory is the serialised index size and the
growth of the process's resident set during the build. Recall@k is against exact search.
Prints a table and writes JSON (atomically).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import faiss
import results_file  # benchmarks/results_file.py (the script's own directory is on sys.path)

from ltau_md.latent_index import LatentIndex, exact_neighbors, recall_at_k

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synthetic import descriptor_like, isotropic  # noqa: E402  (tests/synthetic.py: point sets shared with the tests)


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e4, 1e5, 1e6])
    ap.add_argument("--types", nargs="+", default=["flat", "hnsw", "ivfpq"])
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--queries", type=int, default=4000)
    ap.add_argument("--data", choices=("manifold", "isotropic"), default="manifold")
    ap.add_argument("--query-threads", type=int, default=1)
    ap.add_argument("-o", "--output", default="benchmarks/results/latent_index.json")
    args = ap.parse_args()

    rows = []
    build_threads = faiss.omp_get_max_threads()
    print(f"{'atoms':>9s} {'index':6s} {'build s':>8s} {'index MB':>9s} {'RSS +MB':>8s} {'query us/atom':>14s} {'recall@k':>9s}  params")
    for size in args.sizes:
        n = int(size)
        gen = descriptor_like if args.data == "manifold" else isotropic
        kwargs = {"n_species": 1} if args.data == "manifold" else {}
        data = gen(n + args.queries, d=args.dim, seed=0, **kwargs)
        base, queries = data[:n], data[n:]
        _, truth = exact_neighbors(base, queries[:1000], args.k)
        for kind in args.types:
            faiss.omp_set_num_threads(build_threads)
            rss0 = rss_bytes()
            t0 = time.perf_counter()
            index = LatentIndex.build(base, kind, recall_k=args.k)
            build_s = time.perf_counter() - t0
            rss_mb = (rss_bytes() - rss0) / 2**20
            size_mb = len(faiss.serialize_index(index.index)) / 2**20
            faiss.omp_set_num_threads(args.query_threads)
            index.search(queries[:100], args.k)  # warm-up
            t0 = time.perf_counter()
            _, found = index.search(queries, args.k)
            query_us = (time.perf_counter() - t0) / len(queries) * 1e6
            recall = recall_at_k(found[:1000], truth)
            row = {
                "n_atoms": n,
                "index": kind,
                "dim": args.dim,
                "k": args.k,
                "build_s": round(build_s, 3),
                "index_mb": round(size_mb, 2),
                "rss_growth_mb": round(rss_mb, 1),
                "query_us_per_atom": round(query_us, 2),
                "recall_at_k": round(recall, 4),
                "params": {k: v for k, v in index.params.items()},
            }
            rows.append(row)
            params = " ".join(f"{k}={v}" for k, v in index.params.items() if k not in ("recall_k",))
            print(f"{n:9d} {kind:6s} {build_s:8.2f} {size_mb:9.1f} {rss_mb:8.1f} {query_us:14.2f} {recall:9.4f}  {params}", flush=True)
            del index
    out = {
        "benchmark": "latent_index",
        "data": args.data,
        "queries_per_batch": args.queries,
        "query_threads": args.query_threads,
        "build_threads": build_threads,
        "faiss": faiss.__version__,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "rows": rows,
    }
    results_file.save(args.output, out)


if __name__ == "__main__":
    main()
