"""After ``in.relax``: the initial and maximum predicted error along the relaxation (from the
LAMMPS log) against the final structure's true force error (NequIP vs the MEAM reference).

    python report.py --model MODEL --log log.relax --dump relaxed.dump [-o relax_trajectory.png]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from ase.io import read

from ltau_md.nequip.model import NequIPModel
from ltau_md.relabel import make_calculator
from ltau_md.trajectory import plot_trajectory, read_trajectory


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--log", default="log.relax")
    ap.add_argument("--dump", default="relaxed.dump")
    ap.add_argument("-o", "--output", default="relax_trajectory.png")
    args = ap.parse_args()

    traj = read_trajectory(args.log)
    marks = traj.initial_and_maximum()
    final = read(args.dump, format="lammps-dump-text", index=-1)
    final.set_chemical_symbols(np.where(final.get_atomic_numbers() == 1, "Li", "Mg"))  # LAMMPS types 1, 2
    model = NequIPModel.load(args.model)
    (res,) = model.evaluate([final])
    ref = final.copy()
    ref.calc = make_calculator("meam")
    true = np.linalg.norm(res.forces - ref.get_forces(), axis=1)
    report = {**marks, "final_predicted_max": float(traj.max_error[-1]), "final_true_max": float(true.max()),
              "final_true_mean": float(true.mean()), "iterations": int(traj.step[-1])}  # fmt: skip
    plot_trajectory(traj, args.output, title="relaxation: max predicted error per iteration", temperature=False)
    print(f"relaxation of {len(final)} atoms, {report['iterations']} iterations: max predicted error initial "
          f"{marks['initial']:.3f}, maximum {marks['maximum']:.3f} (iteration {marks['maximum_step']}), final "
          f"{report['final_predicted_max']:.3f} eV/Å; final true force error max {report['final_true_max']:.3f}, "
          f"mean {report['final_true_mean']:.3f} eV/Å")
    with open("relax_report.json", "w") as fh:
        json.dump(report, fh, indent=1)
    print(f"plot: {args.output}; relax_report.json")


if __name__ == "__main__":
    main()
