"""The CUDA path of pair_style nequip's evaluation, on a machine with a GPU: the model on cuda vs
on the CPU, through the same per-layer ghost-exchange interface the LAMMPS plugin drives.

    python benchmarks/device_check.py [--sizes 2000 16000] [--layers 2 4] [--repeats 5] [-o device_check.json]

LAMMPS itself is not needed: one rank's local + ghost atoms are built here (a periodic Li bcc cell
and its images within r_max + skin, exactly what LAMMPS's ghost shell holds on one rank), and the
exchange is LAMMPS's single-rank forward/reverse communication done in numpy (ghost rows ←
owners; owners += ghost rows), which ``LammpsExchange`` does through the plugin. Reports the
largest force difference CPU vs CUDA (float32, eV/Å), energy difference, and ms per forward +
forces on each device. A small model of each depth is trained first on the CPU (one epoch).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

LATTICE, SKIN, R_MAX = 3.532, 1.0, 4.5


class ImageExchange:
    """One rank's ghost exchange, as LAMMPS does it with a single rank: ghost i is an image of ``owner[i]``."""

    def __init__(self, nlocal: int, owner: np.ndarray) -> None:
        import torch

        self.nlocal, self.ntotal = nlocal, nlocal + len(owner)
        self.owner = owner
        self.calls = 0
        self._torch = torch

    def forward_exchange(self, src, dst, width) -> None:
        dst.copy_(src)
        idx = self._torch.as_tensor(self.owner, device=dst.device)
        dst[self.nlocal :] = dst[idx]
        self.calls += 1

    def reverse_exchange(self, src, dst, width) -> None:
        dst.copy_(src)
        idx = self._torch.as_tensor(self.owner, device=dst.device)
        dst.index_add_(0, idx, src[self.nlocal :])
        self.calls += 1


def rank_graph(cells: int, seed: int = 0):
    """Local atoms of a periodic bcc cell, their images within r_max + skin, edges of local centres."""
    rng = np.random.default_rng(seed)
    frac = np.array([[i, j, k] for i in range(cells) for j in range(cells) for k in range(cells)], dtype=float)
    frac = np.concatenate([frac, frac + 0.5])
    L = cells * LATTICE
    pos = frac * LATTICE + rng.uniform(-0.1, 0.1, size=frac.shape)
    shell = R_MAX + SKIN
    ghosts, owner = [], []
    for s in np.array(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1])).T.reshape(-1, 3):
        if not s.any():
            continue
        p = pos + s * L
        keep = np.all((p > -shell) & (p < L + shell), axis=1)
        ghosts.append(p[keep])
        owner.append(np.flatnonzero(keep))
    x = np.vstack([pos, *ghosts])
    owner = np.concatenate(owner)
    import vesin

    i, j = vesin.NeighborList(cutoff=R_MAX, full_list=True).compute(points=x - x.min(0) + 1, box=np.zeros((3, 3)), periodic=False, quantities="ij")
    local = i < len(pos)
    i, j = i[local].astype(np.int64), j[local].astype(np.int64)
    return len(pos), owner, np.vstack([i, j]), x[j] - x[i]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 16000])
    ap.add_argument("--layers", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/ltau_device"))
    ap.add_argument("-o", "--output", type=Path, default=Path("device_check.json"))
    args = ap.parse_args()

    import torch

    from ltau_md.nequip.model import NequIPModel

    if not torch.cuda.is_available():
        sys.exit("device_check: torch sees no CUDA device here; run it on the GPU machine")
    args.workdir.mkdir(parents=True, exist_ok=True)
    bin_ = [sys.executable, "-m", "ltau_app.cli"]
    data = args.workdir / "li.xyz"
    if not data.exists():
        subprocess.run([*bin_, "make-data", "--system", "Li", "--atoms", "54", "--frames", "4", "--every", "10",
                        "--equilibrate", "100", "-o", str(data)], check=True)  # fmt: skip
    rows = []
    for L in args.layers:
        mdir = args.workdir / f"m{L}"
        if not (mdir / "ensemble.json").exists():
            subprocess.run([*bin_, "train", "--data", str(data), "--epochs", "1", "--num-layers", str(L), "--num-features", "16",
                            "--r-max", str(R_MAX), "-o", str(mdir)], check=True)  # fmt: skip
        models = {dev: NequIPModel.load(mdir, device=dev) for dev in ("cpu", "cuda")}
        for size in args.sizes:
            cells = max(2, round((size / 2) ** (1 / 3)))
            nlocal, owner, edges, vectors = rank_graph(cells)
            types = np.zeros(nlocal + len(owner), dtype=np.int64)
            res, ms = {}, {}
            for dev, model in models.items():
                times = []
                for k in range(args.repeats + 1):
                    if dev == "cuda":
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    ex = ImageExchange(nlocal, owner)
                    r = model.evaluate_graph(types, edges, vectors, energy_nodes=nlocal, exchange=ex)
                    if dev == "cuda":
                        torch.cuda.synchronize()
                    if k:
                        times.append(time.perf_counter() - t0)
                assert ex.calls == 2 * (L - 1), ex.calls
                f = r.forces[:nlocal].copy()
                np.add.at(f, owner, r.forces[nlocal:])  # LAMMPS's reverse communication of ghost forces
                res[dev] = (f, float(r.atomic_energy[:nlocal].sum()))
                ms[dev] = 1e3 * min(times)
            row = {"layers": L, "atoms": nlocal, "ghosts": len(owner), "edges": int(edges.shape[1]),
                   "max_force_diff": float(np.abs(res["cpu"][0] - res["cuda"][0]).max()),
                   "energy_diff": abs(res["cpu"][1] - res["cuda"][1]), "ms_cpu": ms["cpu"], "ms_cuda": ms["cuda"],
                   "gpu": torch.cuda.get_device_name(0)}  # fmt: skip
            rows.append(row)
            print(f"L {L} atoms {nlocal:6d} ghosts {len(owner):6d}: |F_cpu - F_cuda| max {row['max_force_diff']:.2e} eV/Å, "
                  f"|dE| {row['energy_diff']:.2e} eV; ms per forward+forces cpu {ms['cpu']:.1f}, cuda {ms['cuda']:.1f}", flush=True)  # fmt: skip
    args.output.write_text(json.dumps({"benchmark": "device_check", "rows": rows}, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
