"""Cost of running NequIP + LTAU inside LAMMPS (``ltau-md run``), on this machine's CPU.

    python benchmarks/lammps_bridge.py [--model MODEL --artifact NAME.ltau] [--workdir DIR]
                                       [--steps 200] [--big-cells 13 13 12] [--big-steps 5]
                                       [-o benchmarks/results/lammps_bridge.json]

(a) MD step time of ``ltau-md run`` (Li bcc, 250 atoms, NVE, 1 rank) / one bare model forward +
    forces (``NequIPModel.evaluate``, neighbour list included) on the same atoms;
(b) the same MD with ``fix ltau`` every 10 steps / without, and the fix's own time per check
    (LAMMPS's Modify section with the fix minus without);
(c) ``ltau-md run`` / ASE VelocityVerlet with nequip's own ``NequIPCalculator`` (same model
    checkpoint, atoms, time step and number of steps);
(e) the ASE calculators on the same atoms, per call after the atoms moved: ltau-md's
    ``LtauCalculator`` (energy, forces, stress and LTAU's uncertainty from one forward) / nequip's
    ``NequIPCalculator`` (energy, forces, stress), the two called alternately;
(d) domain mode on 2 ranks / 1 rank at >= 4000 atoms (13x13x12 bcc cells = 4056 atoms), with the
    gathered mode on 1 rank and mode auto on 2 ranks for reference.

MD times are LAMMPS's "Loop time" of runs after a warm-up run (start-up, model loading and the
first, slower forward passes are excluded); every time is the fastest of 5 timed blocks (2 at the
large size). torch threads: ``ltau-md run``'s rule (OMP_NUM_THREADS, else 1), the same for the
bare model and ASE. Without --model/--artifact, a
default-size model (r_max 5, 2 layers, 32 features, l_max 1) is trained for 10 epochs on 30
MEAM frames of 250-atom Li at 600 K (``ltau-md make-data``), fitted and calibrated in --workdir;
size matters here, not accuracy. Prints a table and writes JSON (atomically).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import results_file  # benchmarks/results_file.py (the script's own directory is on sys.path)

BIN = Path(sys.executable).parent
LATTICE = 3.532  # Å, bcc Li
REPEATS = 5  # timed blocks per measurement; the fastest is reported (a shared 2-core VM is noisy)
BIG_REPEATS = 2

MD_SCRIPT = """
units metal
atom_style atomic
atom_modify map array
lattice bcc {a}
region box block 0 {nx} 0 {ny} 0 {nz}
create_box 1 box
create_atoms 1 box
mass 1 6.941
velocity all create 600 4928459 mom yes rot yes dist gaussian loop geom
pair_style nequip {model} mode {mode}
pair_coeff * * Li
neighbor 1.0 bin
timestep 0.001
fix md all nve
thermo 100
run {warmup}
{timed}
"""


def ltau_md(*args: str, cwd: Path) -> None:
    p = subprocess.run([str(BIN / "ltau-md"), *map(str, args)], cwd=cwd, check=False, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"ltau-md {' '.join(map(str, args))} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")


def prepare(workdir: Path) -> tuple[Path, Path]:
    """A default-size Li model and its calibrated artifact (made once, then reused)."""
    workdir.mkdir(parents=True, exist_ok=True)
    model, art = workdir / "model", workdir / "li.ltau"
    if not (model / "ensemble.json").is_file():
        for name, seed, frames in (("train", 1, 30), ("val", 2, 6)):
            if not (workdir / f"{name}.xyz").is_file():
                print(f"make-data {name} ...", flush=True)
                ltau_md("make-data", "--system", "Li", "--atoms", 250, "--frames", frames, "--every", 20,
                        "--equilibrate", 1000, "--seed", seed, "-o", f"{name}.xyz", cwd=workdir)  # fmt: skip
        print("train (2 models, 10 epochs) ...", flush=True)
        ltau_md("train", "--data", "train.xyz", "--val", "val.xyz", "--epochs", 10, "--ensemble", 2, "-o", "model", cwd=workdir)
    if not (art / "meta.json").is_file():
        print("fit + calibrate ...", flush=True)
        ltau_md("fit", "--model", "model", "-o", "li.ltau", cwd=workdir)
        ltau_md("calibrate", "li.ltau", "--data", "val.xyz", cwd=workdir)
    return model, art


def md_runs(workdir: Path, tag: str, blocks: list[tuple[str, str]], *, model: Path, cells=(5, 5, 5), mode="auto",
            ranks=1, steps=200, warmup=10) -> dict[str, tuple[float, float]]:  # fmt: skip
    """Run ``blocks`` (commands, label) in order in one ``ltau-md run``, each followed by ``run
    steps``; per label, the fastest block's seconds per step (Loop time / steps) and the seconds
    per step LAMMPS booked under Modify (the fixes: integrator, fix ltau) in that block."""
    script = workdir / f"in.bench_{tag}"
    nx, ny, nz = cells
    timed = "\n".join(f"{commands}\nrun {steps}" for commands, _ in blocks)
    script.write_text(MD_SCRIPT.format(a=LATTICE, nx=nx, ny=ny, nz=nz, model=model, mode=mode, warmup=warmup, timed=timed))
    cmd = [str(BIN / "ltau-md"), "run", str(script), "-screen", "none", "-log", f"log.bench_{tag}"]
    if ranks > 1:
        cmd = [str(BIN / "mpiexec"), "-n", str(ranks), *cmd]
    p = subprocess.run(cmd, cwd=workdir, check=False, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    log = (workdir / f"log.bench_{tag}").read_text()
    loops = re.findall(r"Loop time of ([0-9.eE+-]+) on (\d+) procs for (\d+) steps", log)[-len(blocks) :]
    modify = re.findall(r"^Modify\s*\|\s*[0-9.eE+-]+\s*\|\s*([0-9.eE+-]+)", log, flags=re.MULTILINE)[-len(blocks) :]
    assert len(modify) == len(blocks) and all(int(procs) == ranks and int(n) == steps for _, procs, n in loops)
    out: dict[str, tuple[float, float]] = {}
    for (_, label), (seconds, _, _), mod in zip(blocks, loops, modify):
        t = (float(seconds) / steps, float(mod) / steps)
        if label not in out or t[0] < out[label][0]:
            out[label] = t
    return out


def _ghosts(log: Path) -> float:
    return float(re.findall(r"Nghost:\s*([0-9.eE+-]+) ave", log.read_text())[-1])


def li_atoms(cells=(5, 5, 5), seed: int = 0):
    from ase import units
    from ase.build import bulk

    atoms = bulk("Li", "bcc", a=LATTICE, cubic=True).repeat(cells)
    rng = np.random.default_rng(seed)
    # Maxwell-Boltzmann velocities at 600 K, as LAMMPS's velocity create
    sigma = np.sqrt(units.kB * 600 / atoms.get_masses())[:, None]
    atoms.set_velocities(rng.normal(size=(len(atoms), 3)) * sigma)
    atoms.rattle(0.05, seed=seed)  # thermal disorder, as in the MD (the perfect lattice has a shell at 4.995 Å)
    return atoms


def _timed(fn, repeats: int) -> float:
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def bare_model_time(model_path: Path, atoms, repeats: int = 20) -> dict[str, float]:
    """Seconds per NequIPModel.evaluate (neighbour list + forward + forces) and per
    evaluate_graph alone (graph given) on ``atoms``."""
    from lammps_plugin.session import count_layers
    from ltau_md.nequip.model import NequIPModel

    model = NequIPModel.load(model_path)
    for _ in range(3):
        model.evaluate([atoms])
    full = min(_timed(lambda: model.evaluate([atoms]), repeats) for _ in range(REPEATS))
    edges, vectors = model.neighbor_graph(atoms)
    types = model.types_of(atoms.numbers)
    graph = min(_timed(lambda: model.evaluate_graph(types, edges, vectors), repeats) for _ in range(REPEATS))
    info = {
        "path": str(model.path), "fingerprint": model.fingerprint, "r_max": model.r_max, "num_layers": count_layers(model),
        "descriptor_dim": model.descriptor_dim, "parameters": int(sum(p.numel() for p in model.graph_model.parameters())),
        "dtype": model.dtype, "species": model.type_names, "edges_250_atoms": int(edges.shape[1]),
    }  # fmt: skip
    return {"evaluate_s": full, "evaluate_graph_s": graph, "model": info}


def ase_md_time(model_path: Path, atoms, steps: int, warmup: int = 10) -> float:
    """Seconds per step of ASE VelocityVerlet with nequip's NequIPCalculator (eager, same checkpoint)."""
    from ase import units
    from ase.md.verlet import VelocityVerlet
    from nequip.integrations.ase import NequIPCalculator

    from ltau_md.nequip.model import resolve_model_path

    atoms = atoms.copy()
    atoms.calc = NequIPCalculator._from_saved_model(str(resolve_model_path(model_path)), device="cpu")
    md = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    md.run(warmup)
    return min(_timed(lambda: md.run(steps), 1) for _ in range(REPEATS)) / steps


def ase_calculator_times(model_path: Path, artifact: Path, atoms, repeats: int = 20) -> dict[str, float]:
    """Seconds per call of LtauCalculator and of NequIPCalculator (fastest of REPEATS blocks of
    ``repeats`` calls each, the two alternating), the atoms moved before every call."""
    from nequip.integrations.ase import NequIPCalculator

    from ltau_md.nequip.calculator import LtauCalculator
    from ltau_md.nequip.model import resolve_model_path

    calcs = {"ltau": LtauCalculator(model_path, artifact),
             "nequip": NequIPCalculator._from_saved_model(str(resolve_model_path(model_path)), device="cpu")}  # fmt: skip
    moving = atoms.copy()
    rng = np.random.default_rng(0)

    def call(calc) -> None:
        moving.positions += rng.normal(scale=1e-3, size=moving.positions.shape)
        calc.calculate(moving, ["energy", "forces", "stress"])

    for calc in calcs.values():
        for _ in range(3):
            call(calc)
    best = {name: np.inf for name in calcs}
    for _ in range(REPEATS):
        for name, calc in calcs.items():
            best[name] = min(best[name], _timed(lambda calc=calc: call(calc), repeats))
    return {"predictor": calcs["ltau"].predictor, "ltau_calculator_s": best["ltau"], "nequip_calculator_s": best["nequip"],
            "ratio": best["ltau"] / best["nequip"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="MODEL (default: train one in --workdir)")
    ap.add_argument("--artifact", type=Path, help="its calibrated NAME.ltau (default: made in --workdir)")
    ap.add_argument("--workdir", type=Path, default=Path.home() / ".cache" / "ltau-md" / "bench-lammps")
    ap.add_argument("--steps", type=int, default=200, help="MD steps timed at 250 atoms")
    ap.add_argument("--big-cells", type=int, nargs=3, default=[13, 13, 12], metavar=("NX", "NY", "NZ"))
    ap.add_argument("--big-steps", type=int, default=5, help="MD steps timed at the large size")
    ap.add_argument("-o", "--output", default="benchmarks/results/lammps_bridge.json")
    args = ap.parse_args()

    import torch

    from lammps_plugin.driver import torch_threads

    if (args.model is None) != (args.artifact is None):
        sys.exit("give both --model and --artifact, or neither")
    model, art = (args.model.resolve(), args.artifact.resolve()) if args.model else prepare(args.workdir)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    threads = torch_threads()[0]
    torch.set_num_threads(threads)
    n_big = 2 * int(np.prod(args.big_cells))
    print(f"model {model}, artifact {art}; torch threads on 1 rank: {threads}", flush=True)

    res: dict[str, dict] = {}
    atoms = li_atoms()
    bare = bare_model_time(model, atoms)
    md, _ = md_runs(work, "plain", [("", "plain")] * REPEATS, model=model, steps=args.steps)["plain"]
    res["a_md_vs_bare_model"] = {
        "atoms": 250, "ranks": 1, "md_step_s": md, "bare_evaluate_s": bare["evaluate_s"],
        "bare_evaluate_graph_s": bare["evaluate_graph_s"], "ratio": md / bare["evaluate_s"],
    }  # fmt: skip
    print(f"(a) 250 atoms, 1 rank: MD step {md * 1e3:.1f} ms, bare forward+forces {bare['evaluate_s'] * 1e3:.1f} ms "
          f"(graph given: {bare['evaluate_graph_s'] * 1e3:.1f} ms), ratio {md / bare['evaluate_s']:.2f}", flush=True)  # fmt: skip

    # with and without the fix alternate in one process, so that drifts of a shared machine cancel
    blocks = [(f"fix uq all ltau 10 {art} halt no", "fix"), ("unfix uq", "plain")] * REPEATS
    both = md_runs(work, "fix", blocks, model=model, steps=args.steps)
    (md_plain, modify), (md_fix, modify_fix) = both["plain"], both["fix"]
    per_check = (modify_fix - modify) * 10  # Modify time per step difference x steps per check
    res["b_fix_ltau_every_10"] = {
        "atoms": 250, "ranks": 1, "md_step_s": md_plain, "md_step_with_fix_s": md_fix, "ratio": md_fix / md_plain,
        "fix_ltau_per_check_s": per_check, "fix_ltau_share_of_step": per_check / 10 / md_plain,
    }  # fmt: skip
    print(f"(b) fix ltau every 10 steps: {md_fix * 1e3:.1f} ms/step vs {md_plain * 1e3:.1f} ms/step, ratio {md_fix / md_plain:.3f}; "
          f"LAMMPS books {per_check * 1e3:.2f} ms per check under Modify ({100 * per_check / 10 / md_plain:.1f}% of a step)", flush=True)  # fmt: skip

    ase_step = ase_md_time(model, atoms, args.steps)
    res["c_ltau_md_run_vs_ase"] = {"atoms": 250, "steps": args.steps, "ltau_md_run_step_s": md, "ase_step_s": ase_step, "ratio": md / ase_step}
    print(f"(c) ltau-md run {md * 1e3:.1f} ms/step vs ASE VelocityVerlet + NequIPCalculator {ase_step * 1e3:.1f} ms/step, "
          f"ratio {md / ase_step:.2f}", flush=True)  # fmt: skip

    calc = ase_calculator_times(model, art, atoms)
    res["e_ltau_calculator_vs_nequip_calculator"] = {"atoms": 250, **calc}
    print(f"(e) LtauCalculator ({calc['predictor']}) {calc['ltau_calculator_s'] * 1e3:.1f} ms/call vs NequIPCalculator "
          f"{calc['nequip_calculator_s'] * 1e3:.1f} ms/call, ratio {calc['ratio']:.2f}", flush=True)  # fmt: skip

    big = {}
    for tag, mode, ranks in (("domain1", "domain", 1), ("domain2", "domain", 2), ("gathered1", "gathered", 1), ("auto2", "auto", 2)):
        big[tag] = md_runs(work, tag, [("", tag)] * BIG_REPEATS, model=model, cells=args.big_cells, mode=mode, ranks=ranks,
                           steps=args.big_steps, warmup=1)[tag][0]  # fmt: skip
        print(f"(d) {n_big} atoms, {mode}, {ranks} rank(s): {big[tag]:.3f} s/step", flush=True)
    res["d_two_ranks_vs_one"] = {
        "atoms": n_big, "steps": args.big_steps, "domain_1_rank_s": big["domain1"], "domain_2_ranks_s": big["domain2"],
        "gathered_1_rank_s": big["gathered1"], "auto_2_ranks_s": big["auto2"],
        "speedup_2_vs_1_domain": big["domain1"] / big["domain2"],
        "ghost_atoms_per_rank": {t: _ghosts(work / f"log.bench_{t}") for t in ("domain1", "domain2", "gathered1", "auto2")},
        "threads_per_rank": torch_threads()[0],
    }  # fmt: skip

    out = {
        "benchmark": "lammps_bridge",
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "model": bare["model"],
        "artifact": str(art),
        "results": res,
    }  # fmt: skip
    print()
    print(f"{'measure':44s} {'value':>12s}")
    print(f"{'(a) MD step / bare forward+forces, 250 at.':44s} {res['a_md_vs_bare_model']['ratio']:12.2f}")
    print(f"{'(b) MD with fix ltau every 10 / without':44s} {res['b_fix_ltau_every_10']['ratio']:12.3f}")
    print(f"{'(c) ltau-md run / ASE + NequIPCalculator':44s} {res['c_ltau_md_run_vs_ase']['ratio']:12.2f}")
    print(f"{'(e) LtauCalculator / NequIPCalculator':44s} {res['e_ltau_calculator_vs_nequip_calculator']['ratio']:12.2f}")
    print(f"{f'(d) speed-up 2 vs 1 rank, domain, {n_big} at.':44s} {res['d_two_ranks_vs_one']['speedup_2_vs_1_domain']:12.2f}")
    results_file.save(args.output, out)


if __name__ == "__main__":
    main()
