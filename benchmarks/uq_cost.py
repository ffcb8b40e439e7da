"""Cost of LTAU uncertainty next to the model it annotates, and next to a 10-model ensemble.

    python benchmarks/uq_cost.py [--sizes 1e4 1e5 1e6] [--architectures default paper]
                                 [--test-frames 8] [--threads 1] [-o benchmarks/results/uq_cost.json]

Two NequIP architectures, each trained 2 epochs (cost does not depend on accuracy) on Li MEAM
frames of 250 atoms: ``default`` is ``ltau-md train``'s (2 layers, l_max 1, 32 features), a
deliberately small model whose forward is cheap on a CPU; ``paper`` is seed 002's Carbon GAP 20
architecture (Table A1: 4 layers, l_max 2; 32 features, r_max 5 Å as for Li), the size the LTAU
cost figures were published for. The LTAU query costs the same for both (same descriptor size,
same index); only the forward it is compared with differs. Per test frame: forward+forces
(neighbour list included) vs the UQ of its 250 atoms with the predictor that ships — the search
(k = 10, index chosen by size per species), then the calibrated σ(u, d_env) that ``ltau-md
calibrate`` fits (here on the test frames' own errors: only which form it picks matters for
cost), its d̄ averaged over each atom's neighbours within the model's cutoff (the pairs are
LAMMPS's neighbour list in ``fix ltau``, so they are built outside the timing) — and plain LTAU's
query beside it, timed the same way. Training sets: real descriptors of MD frames (20 steps apart, up to
``--real-atoms``, default 10^5); larger sets tile them with 5 % Gaussian jitter (only the index
cost depends on N). Each frame's forward and UQ are timed back to back, 5 rounds over the test
frames, and UQ/forward is the median of those pairs' ratios (with its 10th–90th percentiles): the
machine's speed drifts within a run, and a ratio of separately timed medians drifts with it; a UQ
right after a forward also finds colder caches than one repeated on its own (as in ``fix ltau``).
The ensemble's UQ needs 10 forward+forces per frame (10 loaded models), timed back to back with
one forward; LTAU/ensemble is UQ/forward over that ratio. Everything on ``--threads``
threads (1 = one MPI rank). Prints a table and writes JSON.
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
import torch
from ase.io import read

from ltau_md.artifact import Artifact
from ltau_md.calibration import ValidationErrors, calibrate_artifact
from ltau_md.error_distribution import DEFAULT_LEVELS, ErrorDistribution
from ltau_md.error_log import AtomTable
from ltau_md.error_model import neighbour_pairs, neighbourhood_distance
from ltau_md.latent_index import exact_neighbors, recall_at_k
from ltau_md.nequip.model import NequIPModel
from ltau_md.pvalues import TrainingStatistics
from ltau_md.species import symbols
from ltau_md.user_input import reference_forces

LTAU_MD = Path(sys.executable).parent / "ltau-md"


def elapsed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def synthetic_stats(descriptors: np.ndarray, n: int, rng: np.random.Generator) -> tuple[TrainingStatistics, np.ndarray]:
    base = descriptors
    reps = int(np.ceil(n / len(base)))
    x = np.tile(base, (reps, 1))[:n]
    if n > len(base):
        x = x + 0.05 * base.std(axis=0) * rng.standard_normal(x.shape).astype(np.float32)
    frames = [("synthetic.xyz", f, np.full(250, 3), np.zeros((250, 3))) for f in range(n // 250)]
    atoms = AtomTable.from_frames(frames)
    q = np.sort(rng.gamma(2.0, 0.05, size=(n, len(DEFAULT_LEVELS))), axis=1).astype(np.float32)
    errors = ErrorDistribution(DEFAULT_LEVELS, q, q.mean(axis=1))
    stats = TrainingStatistics(atoms, rng.uniform(0, 1, n), rng.uniform(0, 0.1, n), errors, 0.1, 0.0, 1, [10])
    return stats, x[: len(atoms)]


# ltau-md train options per architecture (seed 002 Table A1's Carbon GAP 20 row for "paper")
ARCHITECTURES = {
    "default": [],
    "paper": ["--num-layers", "4", "--l-max", "2", "--num-features", "32"],
}


def interleaved(forward, uqs: dict, items: list, rounds: int = 5) -> dict[str, dict[str, float]]:
    """Each item's forward, then one UQ, timed back to back (a forward before every UQ, so each UQ
    finds the caches a forward leaves, as in ``fix ltau``), ``rounds`` times over the items, so
    forward and UQ see the same state of a shared machine (its speed drifts within one run). Per
    UQ in ``uqs``: the medians of its forwards and of its UQs, and the median and 10th/90th
    percentiles of the per-pair ratio UQ / forward."""
    forward(items[0])
    for uq in uqs.values():
        uq(items[0])  # warm-up
    t = {name: ([], []) for name in uqs}
    for _ in range(rounds):
        for item in items:
            for name, uq in uqs.items():
                t0 = time.perf_counter()
                forward(item)
                t1 = time.perf_counter()
                uq(item)
                t[name][0].append(t1 - t0)
                t[name][1].append(time.perf_counter() - t1)
    out = {}
    for name, (t_fwd, t_uq) in t.items():
        ratio = np.array(t_uq) / np.array(t_fwd)
        out[name] = {"forward_s": float(np.median(t_fwd)), "uq_s": float(np.median(t_uq)), "ratio": float(np.median(ratio)),
                     "ratio_p10": float(np.percentile(ratio, 10)), "ratio_p90": float(np.percentile(ratio, 90))}  # fmt: skip
    return out


def calibrate_on(art: Artifact, frames: list, results: list, cutoff: float) -> None:
    """``ltau-md calibrate``'s science on ``frames`` (the model's true errors there), so the
    query runs the calibrated predictor with the form and shape calibration would pick."""
    lat = np.concatenate([r.node_features for r in results])
    numbers = np.concatenate([a.numbers for a in frames])
    q = art.query(lat, numbers, predictor="ltau")
    comp = np.abs(np.concatenate([r.forces for r in results]) - np.concatenate([reference_forces(a) for a in frames]))
    frame = np.concatenate([np.full(len(a), i) for i, a in enumerate(frames)])
    dn = neighbourhood_distance(frames, q.distance[:, 0], cutoff)
    val = ValidationErrors(np.array(symbols(numbers)), q.p, q.mixture, q.distance[:, 0], np.linalg.norm(comp, axis=1), comp,
                           len(frames), frame, dn, cutoff)  # fmt: skip
    calibrate_artifact(art, val)


def measure(model_dir: Path, train_frames: list, test_frames: list, sizes: list[float], rng: np.random.Generator) -> dict:
    """Forward, 10-model ensemble and LTAU query times of one trained architecture."""
    model = NequIPModel.load(model_dir)
    desc = np.concatenate([r.node_features for r in model.evaluate(train_frames)]).astype(np.float32)
    test_res = model.evaluate(test_frames, batch_size=1)
    test_desc = [r.node_features for r in test_res]
    ensemble = [NequIPModel.load(model_dir) for _ in range(10)]
    # the ensemble against one forward, timed back to back (3 pairs on one frame: 10 forwards of the
    # paper architecture take 12 s); LTAU / ensemble below is UQ/forward over this ratio
    a0 = test_frames[0]
    model.evaluate([a0], batch_size=1)
    [m.evaluate([a0], batch_size=1) for m in ensemble]  # warm-up
    pairs = [(elapsed(lambda: model.evaluate([a0], batch_size=1)),
              elapsed(lambda: [m.evaluate([a0], batch_size=1) for m in ensemble])) for _ in range(3)]  # fmt: skip
    t_forward, t_ensemble = (float(np.median(v)) for v in zip(*pairs))
    ensemble_over_forward = float(np.median([e / f for f, e in pairs]))
    rows = []
    print(f"forward+forces per 250-atom frame: {1e3 * t_forward:.1f} ms; 10-model ensemble: {1e3 * t_ensemble:.1f} ms "
          f"({ensemble_over_forward:.1f}× timed back to back)")
    print(f"{'train atoms':>11s} {'index':>6s} {'UQ ms/frame':>12s} {'UQ/forward':>11s} {'p10–p90':>13s} {'plain LTAU ms':>14s} "
          f"{'plain/forward':>13s} {'LTAU/ensemble UQ':>17s} {'recall@10':>9s}")
    numbers = test_frames[0].numbers
    for size in sizes:
        stats, x = synthetic_stats(desc, int(size), rng)
        art = Artifact.create(stats, x, k=10)
        calibrate_on(art, test_frames, test_res, model.r_max)
        items = [(a, d, neighbour_pairs(a, art.neighbourhood_cutoff())) for a, d in zip(test_frames, test_desc)]
        timed = interleaved(lambda it: model.evaluate([it[0]], batch_size=1),
                            {"calibrated": lambda it, art=art: art.query(it[1], numbers, predictor="calibrated", pairs=it[2]),
                             "ltau": lambda it, art=art: art.query(it[1], numbers, predictor="ltau")}, items)  # fmt: skip
        cal, plain = timed["calibrated"], timed["ltau"]
        kind = next(iter(art.index.indices.values())).kind
        queries = np.concatenate(test_desc).astype(np.float32)
        _, truth = exact_neighbors(x, queries, 10)
        _, found = art.index.search(queries, np.full(len(queries), 3), 10)
        recall = recall_at_k(found, truth)
        row = {
            "train_atoms": len(x),
            "index": kind,
            "uq_ms_per_frame": 1e3 * cal["uq_s"],
            "error_model_form": art.error_model.species["Li"].form,
            "forward_ms_per_frame": 1e3 * cal["forward_s"],  # timed with the UQ, frame by frame
            "uq_over_forward": cal["ratio"],
            "uq_over_forward_p10_p90": [cal["ratio_p10"], cal["ratio_p90"]],
            "plain_ltau_ms_per_frame": 1e3 * plain["uq_s"],  # timed the same way, after its own forward
            "plain_ltau_over_forward": plain["ratio"],
            "plain_ltau_over_forward_p10_p90": [plain["ratio_p10"], plain["ratio_p90"]],
            "ltau_uq_over_ensemble10": cal["ratio"] / ensemble_over_forward,
            "ltau_uq_over_ensemble_extra9": cal["ratio"] / (ensemble_over_forward - 1),
            "recall_at_10_real_queries": recall,
        }
        rows.append(row)
        print(f"{len(x):11d} {kind:>6s} {row['uq_ms_per_frame']:12.2f} {row['uq_over_forward']:11.4f} "
              f"{cal['ratio_p10']:.4f}–{cal['ratio_p90']:.4f} {row['plain_ltau_ms_per_frame']:14.2f} {plain['ratio']:13.4f} "
              f"{row['ltau_uq_over_ensemble10']:17.5f} {recall:9.4f}")
    return {"descriptor_dim": int(desc.shape[1]), "forward_ms_per_frame": 1e3 * t_forward, "ensemble10_ms_per_frame": 1e3 * t_ensemble,
            "ensemble10_over_forward": ensemble_over_forward, "rows": rows}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e4, 1e5, 1e6])
    ap.add_argument("--architectures", nargs="+", choices=sorted(ARCHITECTURES), default=list(ARCHITECTURES))
    ap.add_argument("--test-frames", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--real-atoms", type=float, default=1e5, help="training atoms from real MD frames (beyond: tiled)")
    ap.add_argument("-o", "--output", default="benchmarks/results/uq_cost.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mk = [str(LTAU_MD), "make-data", "--system", "Li", "--atoms", "250", "--equilibrate", "2000", "--every", "20"]
        n_frames = max(40, int(np.ceil(min(max(args.sizes), args.real_atoms) / 250)))
        subprocess.run([*mk, "--frames", str(n_frames), "--seed", "1", "-o", str(tmp / "train.xyz")], check=True, capture_output=True)
        subprocess.run([*mk, "--frames", str(args.test_frames), "--seed", "2", "-o", str(tmp / "test.xyz")], check=True, capture_output=True)
        subprocess.run([*mk[:-2], "--every", "50", "--frames", "40", "--seed", "3", "-o", str(tmp / "fit.xyz")], check=True, capture_output=True)
        train_frames = read(tmp / "train.xyz", ":")
        test_frames = read(tmp / "test.xyz", ":")
        for name in args.architectures:
            out_dir = tmp / f"model_{name}"
            subprocess.run([str(LTAU_MD), "train", "--data", str(tmp / "fit.xyz"), "--epochs", "2", *ARCHITECTURES[name], "-o", str(out_dir)],
                           check=True, capture_output=True)
            print(f"-- architecture {name}: ltau-md train {' '.join(ARCHITECTURES[name]) or '(defaults)'}")
            results[name] = {"train_options": ARCHITECTURES[name], **measure(out_dir, train_frames, test_frames, args.sizes, rng)}
    out = {
        "benchmark": "uq_cost",
        "frame": "Li MEAM, 250 atoms",
        "training_descriptors": f"real MD descriptors up to {int(args.real_atoms)} atoms, tiled with 5 % jitter beyond",
        "architectures": {
            "default": "ltau-md train defaults (NequIP, 2 layers, l_max 1, 32 features, r_max 5.0)",
            "paper": "seed 002 Table A1 Carbon GAP 20 (4 layers, l_max 2), 32 features, r_max 5.0",
        },
        "threads": args.threads,
        "k": 10,
        "results": results,
    }
    results_file.save(args.output, out)


if __name__ == "__main__":
    main()
