"""NequIP across MPI ranks: ms/step of ``pair_style nequip`` by mode, ranks and threads, ghost atoms
and edges per rank, parallel efficiency, and a labelled projection to many ranks.

    python benchmarks/scaling.py [--sizes 2000 8000 32000] [--layers 2 4] [--steps 5] [--repeats 3]
                                 [--workdir /tmp/ltau_scaling] [-o benchmarks/results/scaling.json]

Liquid Li at the bcc density (melted with a Lennard-Jones liquid, then NVE with the model from
600 K, 1 fs, ``neighbor 1.0 bin``), the demo's model size (r_max 4.5 Å, 16
features, l_max 1; trained for one epoch: size matters here, not accuracy) with L = 2 and 4
layers. Per system: gathered on 1 rank, domain on 1 rank, domain on 2 ranks (1 torch thread per
rank), and mode auto on 1 rank with 2 torch threads. Every time is the fastest of ``--repeats``
blocks of ``--steps`` MD steps after a warm-up (ranges over the blocks are kept in the JSON).
On 1 rank the bare model — one forward + forces of the same atoms through
``NequIPModel.evaluate`` (its neighbour list included) — is timed too: MD step / bare is the cost
of running inside LAMMPS.

The projection to P = 8 … 1024 ranks (weak scaling, 2k–8k atoms per rank) is on paper: each rank's
compute is measured here (one rank's atoms with the ghost shell a rank of a 3-D decomposition has,
through the exchange evaluation, 1 thread; and without the ghosts, whose ratio is the efficiency
ceiling), plus a communication model per step — (L − 1) layers × (forward + reverse) of ghost
rows × row width × 8 bytes and the positions/forces of LAMMPS's own comm, over 6 swaps, and 3
global reductions — at an assumed 2 µs latency and 10 GB/s per link; the former design (an L·r_max
shell) is projected from the same costs for comparison. Labelled as such in the JSON, table and plot.
Prints a table, writes JSON (atomically) and a plot next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import results_file  # benchmarks/results_file.py (the script's own directory is on sys.path)

BIN = Path(sys.executable).parent
LATTICE = 3.532  # Å, bcc Li
SKIN = 1.0
LATENCY_S, BANDWIDTH_BPS = 2e-6, 10e9  # the projection's assumed network (per message, per link)
CONFIGS = [  # label, mode, ranks, torch threads per rank
    ("gathered 1x1", "gathered", 1, 1),
    ("domain 1x1", "domain", 1, 1),
    ("domain 2x1", "domain", 2, 1),
    ("auto 1x2", "auto", 1, 2),
]

# bcc Li melted first with a cheap Lennard-Jones liquid (Li is liquid at 600 K with the MEAM
# reference, and a liquid fills the ghost shell evenly where a lattice's planes do not), then NVE
# with the model from 600 K velocities
BOX = """
units metal
atom_style atomic
atom_modify map array
lattice bcc {a}
region box block 0 {n} 0 {n} 0 {n}
create_box 1 box
create_atoms 1 box
mass 1 6.94
pair_style lj/cut 6.0
pair_coeff 1 1 0.05 2.75
neighbor {skin} bin
timestep 0.001
velocity all create 3000 4928459 mom yes rot yes dist gaussian loop geom
fix md all nve
thermo 1000
run 300
velocity all create 600 4928459 mom yes rot yes dist gaussian loop geom
pair_style nequip {model} mode {mode} device {device}
pair_coeff * * Li
"""


def worker(args: argparse.Namespace) -> None:
    """One configuration under mpiexec: time MD blocks, collect ghosts/edges per rank (rank 0 writes JSON)."""
    from mpi4py import MPI

    from lammps_plugin.driver import lammps_session

    comm = MPI.COMM_WORLD
    with lammps_session(comm, ["-screen", "none", "-log", "none"], run_name="scaling") as (lmp, _, session):
        lmp.commands_string(BOX.format(a=LATTICE, n=args.cells, model=args.model, mode=args.mode, skin=SKIN, device=args.device))
        lmp.command("run 3")  # warm-up: model load, first (slower) forward passes, neighbour lists
        times = []
        for _ in range(args.repeats):
            comm.Barrier()
            t0 = time.perf_counter()
            lmp.command(f"run {args.steps} pre no post no")  # no setup: one force evaluation per step
            comm.Barrier()
            times.append((time.perf_counter() - t0) / args.steps)
        stats = dict(session.last_graph, nghost=int(lmp.extract_global("nghost")))
        per_rank = comm.gather(stats, root=0)
        bare = None
        if comm.Get_size() == 1 and args.bare:
            bare = bare_model_seconds(lmp, session.pair.model, args.repeats)
    if comm.Get_rank() == 0:
        Path(args.json).write_text(json.dumps({"seconds_per_step": times, "per_rank": per_rank, "bare_seconds": bare}))


def bare_model_seconds(lmp, model, repeats: int) -> list[float]:
    """One forward + forces of the current atoms through NequIPModel.evaluate (neighbour list included)."""
    from ase import Atoms

    n = lmp.get_natoms()
    x = np.array(lmp.numpy.extract_atom("x")[:n])
    boxlo, boxhi, *_ = lmp.extract_box()
    atoms = Atoms(f"Li{n}", positions=x - np.array(boxlo), cell=np.diag(np.array(boxhi) - np.array(boxlo)), pbc=True)
    model.evaluate([atoms])  # warm-up
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.evaluate([atoms])
        out.append(time.perf_counter() - t0)
    return out


def ltau_md(*args, cwd: Path) -> None:
    p = subprocess.run([str(BIN / "ltau-md"), *map(str, args)], cwd=cwd, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"ltau-md {' '.join(map(str, args))} failed:\n{p.stderr[-2000:]}")


def prepare(workdir: Path, layers: list[int]) -> dict[int, Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "li.xyz").is_file():
        ltau_md("make-data", "--system", "Li", "--atoms", 54, "--frames", 4, "--every", 10, "--equilibrate", 100, "-o", "li.xyz", cwd=workdir)
    models = {}
    for L in layers:
        models[L] = workdir / f"model_L{L}"
        if not (models[L] / "ensemble.json").is_file():
            print(f"training the L = {L} model (1 epoch) ...", flush=True)
            ltau_md("train", "--data", "li.xyz", "--epochs", 1, "--num-layers", L, "--num-features", 16, "--r-max", 4.5,
                    "--l-max", 1, "-o", models[L].name, cwd=workdir)  # fmt: skip
    return models


def measure(model: Path, cells: int, mode: str, ranks: int, threads: int, steps: int, repeats: int, workdir: Path, bare: bool,
            device: str = "cpu") -> dict:  # fmt: skip
    out = workdir / f"w_{model.name}_{cells}_{mode}_{ranks}x{threads}.json"
    cmd = [sys.executable, __file__, "--worker", "--model", str(model), "--cells", str(cells), "--mode", mode, "--device", device,
           "--steps", str(steps), "--repeats", str(repeats), "--json", str(out)] + (["--bare"] if bare else [])  # fmt: skip
    if ranks > 1:
        cmd = [str(BIN / "mpiexec"), "-n", str(ranks), *cmd]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    p = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return json.loads(out.read_text())


def shell_atoms(side: float, procgrid: tuple[int, int, int], thickness: float, density: float) -> float:
    """Atoms in a shell of ``thickness`` around one subdomain of a cubic box of ``side`` (uniform density)."""
    sub = [side / p for p in procgrid]
    return density * (np.prod([s + 2 * thickness for s in sub]) - np.prod(sub))


def rank_work(model_dir: Path, per_rank: int, repeats: int) -> dict:
    """Measured compute of one rank holding ``per_rank`` atoms in a 3-D decomposition: a periodic
    cell of that size on one rank has exactly such a rank's ghost shell (all six faces). Times the
    exchange evaluation (local + ghost rows, the exchange done in numpy as LAMMPS does it on one
    rank) and the same edges on the cell's own atoms only (no ghosts), 1 thread."""
    import torch
    from device_check import ImageExchange, rank_graph  # benchmarks/device_check.py

    from ltau_md.nequip.model import NequIPModel

    torch.set_num_threads(1)
    model = NequIPModel.load(model_dir)
    cells = max(2, round((per_rank / 2) ** (1 / 3)))
    nlocal, owner, edges, vectors = rank_graph(cells)
    types = np.zeros(nlocal + len(owner), dtype=np.int64)
    folded = edges.copy()
    folded[1] = np.where(edges[1] < nlocal, edges[1], owner[np.maximum(edges[1] - nlocal, 0)])
    t_ex, t_plain = [], []
    for k in range(repeats + 1):
        t0 = time.perf_counter()
        model.evaluate_graph(types, edges, vectors, energy_nodes=nlocal, exchange=ImageExchange(nlocal, owner))
        t1 = time.perf_counter()
        model.evaluate_graph(types[:nlocal], folded, vectors)
        t2 = time.perf_counter()
        if k:
            t_ex.append(t1 - t0)
            t_plain.append(t2 - t1)
    return {"atoms": nlocal, "ghosts": len(owner), "seconds_exchange": min(t_ex), "seconds_no_ghosts": min(t_plain),
            "widths": model.exchange_widths}  # fmt: skip


def projection(work: dict[tuple[int, int], dict], layers: list[int]) -> dict:
    """Weak scaling on paper: each rank's measured compute (:func:`rank_work`) + a comm model."""
    out = {"assumptions": {"latency_s": LATENCY_S, "bandwidth_bytes_per_s": BANDWIDTH_BPS, "swaps": 6,
                           "note": "per-rank compute measured on this machine (rank_work: a rank's atoms and ghost shell, "
                                   "1 thread); communication modelled; not a multi-node measurement"},
           "rows": [], "rank_work": {f"L{L}_{n}": w for (L, n), w in work.items()}}  # fmt: skip
    density = 2 / LATTICE**3
    for L in layers:
        for per_rank in (2000, 8000):
            w = work[L, per_rank]
            n, ghosts = w["atoms"], w["ghosts"]
            c_local = w["seconds_no_ghosts"] / n
            c_ghost = max(0.0, w["seconds_exchange"] - w["seconds_no_ghosts"]) / ghosts
            side = (n / density) ** (1 / 3)
            # the former design: edges into every atom within (L-1) r_max evaluated, an L r_max shell embedded
            inner = density * ((side + 2 * (L - 1) * 4.5) ** 3 - side**3)
            ghosts_old = density * ((side + 2 * (L * 4.5 + SKIN)) ** 3 - side**3)
            compute_old = c_local * (n + inner) + c_ghost * ghosts_old
            for P in (8, 64, 512, 1024):
                # per step: (L-1) layers x (forward + reverse) of ghost rows and LAMMPS's x and f, over
                # 6 swaps; 3 global reductions (thermo, fix ltau) of log2(P) latency each
                bytes_ = 2 * sum(w["widths"]) * ghosts * 8 + 2 * ghosts * 3 * 8
                messages = 6 * (2 * (L - 1) + 2) + 3 * np.log2(P)
                comm_s = messages * LATENCY_S + bytes_ / BANDWIDTH_BPS
                step = w["seconds_exchange"] + comm_s
                out["rows"].append({"layers": L, "atoms_per_rank": n, "ranks": P, "ghosts_per_rank": ghosts,
                                    "ghosts_per_rank_L_rmax_shell": ghosts_old, "compute_ms": 1e3 * w["seconds_exchange"],
                                    "comm_ms": 1e3 * comm_s, "bytes_per_step": bytes_, "ms_per_step": 1e3 * step,
                                    "weak_efficiency": c_local * n / step,
                                    "weak_efficiency_L_rmax_shell": c_local * n / (compute_old + comm_s)})  # fmt: skip
    return out


def _grid(P: int) -> tuple[int, int, int]:
    best = (P, 1, 1)
    for i in range(1, P + 1):
        for j in range(1, P // i + 1):
            if P % (i * j) == 0:
                k = P // (i * j)
                if max(i, j, k) < max(best):
                    best = (i, j, k)
    return best


def shared_core(model: Path, steps: int, repeats: int, workdir: Path) -> dict:
    """1 rank x 1 thread and 1 rank x 2 threads while another process keeps one core busy (a
    shared node): the case the default of 1 torch thread per rank is chosen for."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        out = {}
        for threads in (1, 2):
            r = measure(model, 16, "domain", 1, threads, steps, repeats, workdir, bare=False)
            out[f"1x{threads}_ms"] = 1e3 * min(r["seconds_per_step"])
    finally:
        busy.kill()
    out["atoms"] = 2 * 16**3
    out["slowdown_2_threads"] = out["1x2_ms"] / out["1x1_ms"]
    print(f"one core busy with another process, 8192 atoms: 1 rank x 1 thread {out['1x1_ms']:.0f} ms/step, "
          f"x 2 threads {out['1x2_ms']:.0f} ms/step ({out['slowdown_2_threads']:.2f}x)")
    return out


def summarize(results: list[dict], L: int, atoms: int) -> None:
    """2 ranks (1 thread each) against the best 1-rank mode at 1 thread (the goal's baseline) and
    against 1 rank with 2 threads (both use the same 2 cores)."""
    rs = [r for r in results if r["layers"] == L and r["atoms"] == atoms]
    best1 = min(r["ms_per_step"] for r in rs if r["ranks"] == 1 and r["threads"] == 1)
    threads2 = next(r["ms_per_step"] for r in rs if r["config"] == "auto 1x2")
    two = next(r for r in rs if r["config"] == "domain 2x1")
    two["speedup_vs_best_1_rank"] = best1 / two["ms_per_step"]
    two["parallel_efficiency"] = best1 / (2 * two["ms_per_step"])
    two["speedup_vs_1_rank_2_threads"] = threads2 / two["ms_per_step"]
    print(f"   2 ranks / best 1 rank (1 thread): {two['speedup_vs_best_1_rank']:.2f}x (efficiency {two['parallel_efficiency']:.2f}); "
          f"2 ranks / 1 rank x 2 threads: {two['speedup_vs_1_rank_2_threads']:.2f}x")


def plot(record: dict, path: Path) -> None:
    from ltau_md.plots import plt, save_figure

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, L in zip(axes[:2], record["layers"]):
        for label in [c[0] for c in CONFIGS]:
            rs = [r for r in record["results"] if r["layers"] == L and r["config"] == label]
            ax.plot([r["atoms"] for r in rs], [r["ms_per_step"] for r in rs], "o-", label=label)
        ax.set(xscale="log", yscale="log", xlabel="atoms", ylabel="ms / MD step", title=f"measured, L = {L}")
        ax.legend(fontsize=7)
    ax = axes[2]
    for L in record["layers"]:
        for per_rank in (2000, 8000):
            rs = [r for r in record["projection"]["rows"] if r["layers"] == L and r["atoms_per_rank"] == per_rank]
            ax.plot([r["ranks"] for r in rs], [r["weak_efficiency"] for r in rs], "o--", label=f"L = {L}, {per_rank} atoms/rank")
            ax.plot([r["ranks"] for r in rs], [r["weak_efficiency_L_rmax_shell"] for r in rs], "x:", color="0.5",
                    label=f"L = {L}, {per_rank}/rank, old L·r_max shell" if per_rank == 2000 else None)
    ax.set(xscale="log", ylim=(0, 1.05), xlabel="ranks", ylabel="weak-scaling efficiency",
           title="PROJECTION: per-rank compute measured, comm modelled")  # fmt: skip
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000, 32000])
    ap.add_argument("--layers", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/ltau_scaling"))
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="pair_style nequip's device (cuda: the GPU machine's check)")
    ap.add_argument("-o", "--output", type=Path, default=Path(__file__).parent / "results" / "scaling.json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--cells", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    ap.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    models = prepare(args.workdir, args.layers)
    from ltau_md.nequip.model import NequIPModel

    widths = {L: max(NequIPModel.load(models[L]).exchange_widths, default=0) for L in args.layers}
    results = []
    print(f"{'L':>2s} {'atoms':>6s} {'config (mode used)':26s} {'ms/step':>9s} {'range':>15s} {'ghosts/rank':>11s} {'shell ratio':>11s} "
          f"{'edges/rank':>10s} {'MD/bare':>7s}")  # fmt: skip
    for L in args.layers:
        for size in args.sizes:
            cells = max(2, round((size / 2) ** (1 / 3)))
            atoms = 2 * cells**3
            side = cells * LATTICE
            for label, mode, ranks, threads in CONFIGS:
                r = measure(models[L], cells, mode, ranks, threads, args.steps, args.repeats, args.workdir,
                            bare=label == "domain 1x1", device=args.device)  # fmt: skip
                t = np.array(r["seconds_per_step"]) * 1e3
                per_rank = r["per_rank"]
                mode_used = {0: "domain", 1: "gathered", 2: "domain (deep shell)"}[per_rank[0]["mode"]]
                ghosts = float(np.mean([p["nghost"] for p in per_rank]))
                grid = (ranks, 1, 1)  # LAMMPS splits a cube on 2 ranks along one axis
                shell = shell_atoms(side, grid, 4.5 + SKIN, 2 / LATTICE**3)
                row = {
                    "layers": L, "atoms": atoms, "config": label, "mode": mode_used, "ranks": ranks, "threads": threads,
                    "ms_per_step": float(t.min()), "ms_per_step_range": [float(t.min()), float(t.max())],
                    "ghosts_per_rank": ghosts, "ghost_shell_rmax_skin": shell, "ghost_ratio_to_shell": ghosts / shell,
                    "edges_per_rank": float(np.mean([p["nedges"] for p in per_rank])),
                    "nodes_per_rank": float(np.mean([p["nrows"] for p in per_rank])),
                    "exchange_width_max": widths[L],
                }  # fmt: skip
                if r["bare_seconds"]:
                    row["bare_ms"] = 1e3 * min(r["bare_seconds"])
                    row["md_over_bare"] = row["ms_per_step"] / row["bare_ms"]
                results.append(row)
                shell_txt = f"{row['ghost_ratio_to_shell']:.2f}" if mode_used != "gathered" else "-"
                shown = label if mode_used == mode else f"{label} ({mode_used})"  # what auto chose
                print(f"{L:2d} {atoms:6d} {shown:26s} {row['ms_per_step']:9.1f} {t.min():7.1f}-{t.max():<7.1f} {ghosts:11.0f} "
                      f"{shell_txt:>11s} {row['edges_per_rank']:10.0f} {row.get('md_over_bare', float('nan')):7.2f}", flush=True)  # fmt: skip
            summarize(results, L, atoms)
    shared = shared_core(models[args.layers[0]], args.steps, args.repeats, args.workdir)
    work = {(L, n): rank_work(models[L], n, args.repeats) for L in args.layers for n in (2000, 8000)}
    proj = projection(work, args.layers)
    print("PROJECTION (per-rank compute measured here, 1 thread; communication modelled: 2 µs, 10 GB/s):")
    for r in proj["rows"]:
        print(f"  L {r['layers']} {r['atoms_per_rank']:5d} atoms/rank P {r['ranks']:5d}: {r['ms_per_step']:8.1f} ms/step "
              f"(comm {r['comm_ms']:.2f} ms), ghosts/rank {r['ghosts_per_rank']:.0f} (L·r_max shell: {r['ghosts_per_rank_L_rmax_shell']:.0f}), "
              f"weak efficiency {r['weak_efficiency']:.2f} (old L·r_max shell: {r['weak_efficiency_L_rmax_shell']:.2f})")  # fmt: skip
    record = {
        "benchmark": "scaling", "machine": platform.node(), "cpus": os.cpu_count(), "steps": args.steps,
        "repeats": args.repeats, "layers": args.layers, "skin": SKIN, "results": results, "projection": proj,
        "shared_core": shared,
    }  # fmt: skip
    results_file.save(args.output, record)
    plot(record, args.output.with_suffix(".png"))
    print(f"plot: {args.output.with_suffix('.png')}")


if __name__ == "__main__":
    main()
