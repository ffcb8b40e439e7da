"""Can another FAISS index make the LTAU search of one frame cheaper than HNSW at equal recall?

    python benchmarks/ann_alternatives.py [--train-atoms 1e5] [--test-frames 8] [--k 10]
                                          [-o benchmarks/results/ann_alternatives.json]

Real latent descriptors (the ``uq_cost.py`` setting): 250-atom Li MEAM frames 20 MD steps apart
(``ltau-md make-data``), embedded by a default-size NequIP model (``ltau-md train`` defaults, 2
epochs: the index cost does not depend on accuracy); queries are the atoms of new-seed frames, one
250-atom frame per search call, on 1 thread (one MPI rank). Per index: the median ms per frame
and recall@k against exact search. Candidates: HNSW over M × efSearch (what ltau-md tunes), NSG,
IVF-Flat, IVF-PQ fast-scan with exact re-ranking, and PCA to p dimensions + HNSW with exact
re-ranking (the descriptors' variance sits in a few directions). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import results_file  # benchmarks/results_file.py (the script's own directory is on sys.path)
from ase.io import read

from ltau_md.latent_index import exact_neighbors, recall_at_k
from ltau_md.nequip.model import NequIPModel

LTAU_MD = Path(sys.executable).parent / "ltau-md"


def descriptors(n_atoms: int, test_frames: int, tmp: Path) -> tuple[np.ndarray, np.ndarray]:
    mk = [str(LTAU_MD), "make-data", "--system", "Li", "--atoms", "250", "--equilibrate", "2000", "--every", "20"]
    subprocess.run([*mk, "--frames", str(int(np.ceil(n_atoms / 250))), "--seed", "1", "-o", str(tmp / "train.xyz")], check=True, capture_output=True)
    subprocess.run([*mk, "--frames", str(test_frames), "--seed", "2", "-o", str(tmp / "test.xyz")], check=True, capture_output=True)
    subprocess.run([*mk[:-2], "--every", "50", "--frames", "40", "--seed", "3", "-o", str(tmp / "fit.xyz")], check=True, capture_output=True)
    subprocess.run([str(LTAU_MD), "train", "--data", str(tmp / "fit.xyz"), "--epochs", "2", "-o", str(tmp / "model")], check=True, capture_output=True)
    model = NequIPModel.load(tmp / "model")
    x = np.concatenate([r.node_features for r in model.evaluate(read(tmp / "train.xyz", ":"))]).astype(np.float32)
    q = np.concatenate([r.node_features for r in model.evaluate(read(tmp / "test.xyz", ":"))]).astype(np.float32)
    return x[:n_atoms], q


def candidates(x: np.ndarray):
    """(name, params, index) of every candidate, built on ``x``."""
    d = x.shape[1]
    for m in (8, 16, 32):
        idx = faiss.IndexHNSWFlat(d, m)
        idx.hnsw.efConstruction = 40
        idx.add(x)
        for ef in (4, 8, 16):
            idx.hnsw.efSearch = ef
            yield "hnsw", {"M": m, "ef_search": ef}, idx
    for r in (16, 32):
        nsg = faiss.IndexNSGFlat(d, r)
        nsg.add(x)
        for ell in (10, 16):
            nsg.nsg.search_L = ell
            yield "nsg", {"R": r, "search_L": ell}, nsg
    for nlist in (256, 1024):
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist)
        ivf.train(x)
        ivf.add(x)
        for nprobe in (1, 2, 4):
            ivf.nprobe = nprobe
            yield "ivf_flat", {"nlist": nlist, "nprobe": nprobe}, ivf
    fs = faiss.IndexIVFPQFastScan(faiss.IndexFlatL2(d), d, 256, 16, 4)
    fs.train(x)
    fs.add(x)
    refine = faiss.IndexRefineFlat(fs, faiss.swig_ptr(x))
    for nprobe in (2, 8):
        fs.nprobe = nprobe
        refine.k_factor = 8
        yield "ivfpq_fastscan_refine", {"nlist": 256, "m": 16, "nprobe": nprobe, "k_factor": 8}, refine
    for p in (6, 12):
        sub = faiss.IndexHNSWFlat(p, 8)
        sub.hnsw.efConstruction = 40
        pre = faiss.IndexPreTransform(faiss.PCAMatrix(d, p), sub)
        pre.train(x)
        pre.add(x)
        ref = faiss.IndexRefineFlat(pre, faiss.swig_ptr(x))
        ref.k_factor = 2
        for ef in (8, 16):
            sub.hnsw.efSearch = ef
            yield "pca_hnsw_refine", {"p": p, "M": 8, "ef_search": ef, "k_factor": 2}, ref


def ms_per_frame(index, frames: list[np.ndarray], k: int, repeats: int = 15) -> float:
    times = []
    for q in frames:
        index.search(q, k)  # warm-up
        t = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            index.search(q, k)
            t.append(time.perf_counter() - t0)
        times.append(np.median(t))
    return 1e3 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-atoms", type=float, default=1e5)
    ap.add_argument("--test-frames", type=int, default=8)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("-o", "--output", default="benchmarks/results/ann_alternatives.json")
    args = ap.parse_args()
    if args.train_atoms < 1024:
        ap.error("--train-atoms must be at least 1024: the IVF indices train 1024 lists")
    faiss.omp_set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        x, q = descriptors(int(args.train_atoms), args.test_frames, Path(tmp))
    var = np.linalg.svd(x[::10] - x.mean(axis=0), compute_uv=False) ** 2
    frames = [q[i : i + 250] for i in range(0, len(q), 250)]
    _, truth = exact_neighbors(x, q, args.k)
    rows = []
    print(f"{len(x)} training atoms, {x.shape[1]} dims; variance in the first 4 / 8 principal directions: "
          f"{var[:4].sum() / var.sum():.4f} / {var[:8].sum() / var.sum():.4f}")  # fmt: skip
    print(f"{'index':>22s} {'params':>44s} {'ms/frame':>9s} {'recall@k':>9s}")
    for kind, params, index in candidates(x):
        t = ms_per_frame(index, frames, args.k)
        recall = recall_at_k(index.search(q, args.k)[1], truth)
        rows.append({"index": kind, "params": params, "ms_per_frame": t, "recall_at_k": recall})
        print(f"{kind:>22s} {str(params):>44s} {t:9.3f} {recall:9.3f}", flush=True)
    results_file.save(args.output, {
        "benchmark": "ann_alternatives", "train_atoms": len(x), "dim": int(x.shape[1]), "k": args.k, "threads": 1,
        "frame_atoms": 250, "variance_first_4_8": [float(var[:4].sum() / var.sum()), float(var[:8].sum() / var.sum())], "rows": rows,
    })  # fmt: skip


if __name__ == "__main__":
    main()
