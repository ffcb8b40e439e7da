"""ASE molecular dynamics with the LTAU calculator: every step gives NequIP forces and each atom's
predicted force error; the MEAM reference gives the true error; statistical cutoffs (seed 003)
from the artifact's validation fits flag atoms and say which are truly wrong, and a plot shows where the run left what the model knows.

    python md_with_uncertainty.py --model MODEL --artifact NAME.ltau [--start FRAMES.xyz] [--steps 400]
                                  [--t-end 2500] [-o md_uncertainty.png]

The run is a Langevin heating ramp of Li from 600 K to --t-end, starting from the last frame of
--start (an equilibrated reference frame with velocities, e.g. from 'ltau-md make-data'; default:
a 54-atom bcc lattice): the model (trained at 600 K) is right at first and wrong later, and LTAU
should say so as it happens.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from ase import units
from ase.constraints import FixCom
from ase.io import read
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, thermalize_momenta

from ltau_md.nequip import LtauCalculator
from ltau_md.plots import plt, save_figure
from ltau_md.relabel import make_calculator
from ltau_md.run_cutoffs import error_cutoffs, run_cutoffs
from ltau_md.systems import MASSES, build_system


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--artifact", required=True)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--t-start", type=float, default=600.0)
    ap.add_argument("--t-end", type=float, default=2500.0)
    ap.add_argument("--start", help="frames file; its last frame (positions, velocities) starts the run")
    ap.add_argument("-o", "--output", default="md_uncertainty.png")
    args = ap.parse_args()

    atoms = read(args.start, index=-1) if args.start else build_system("Li", atoms=54, seed=0)
    atoms.set_masses([MASSES[s] for s in atoms.get_chemical_symbols()])
    calc = LtauCalculator(args.model, args.artifact)  # one forward: energy, forces, stress, ltau_error, ltau_p
    atoms.calc = calc
    reference = make_calculator("meam")  # the truth (cheap here; DFT in real life)
    if not atoms.get_momenta().any():
        thermalize_momenta(atoms, temperature_K=args.t_start, rng=np.random.default_rng(0))
        Stationary(atoms)
    atoms.set_constraint(FixCom())
    dyn = Langevin(atoms, 1.0 * units.fs, temperature_K=args.t_start, friction=0.02, fixcm=False, rng=np.random.default_rng(1))

    steps, temps, predicted, true = [], [], [], []

    def record() -> None:
        forces = atoms.get_forces()  # the model's, from the same forward as the uncertainty
        ref = atoms.copy()
        ref.calc = reference
        true.append(np.linalg.norm(forces - ref.get_forces(), axis=1))
        predicted.append(calc.results["ltau_error"].copy())
        steps.append(dyn.nsteps)
        temps.append(atoms.get_temperature())
        frac = dyn.nsteps / max(1, args.steps)
        dyn.set_temperature(temperature_K=args.t_start + (args.t_end - args.t_start) * frac)

    dyn.attach(record, interval=1)
    t0 = time.perf_counter()
    dyn.run(args.steps)
    wall = time.perf_counter() - t0
    pred, err = np.array(predicted), np.array(true)

    # cutoffs at CDF 1 - 1/N over every atomic environment of the run (seed 003), from the
    # artifact's validation fits, as fix ltau and the loop use them: 'lo auto' of the calibrated
    # predictions flags; the Maxwell fit of the validation atoms' true errors says what is truly
    # high. (Fitting both to this run itself would call its own heated tail "in distribution".)
    n = pred.size
    lo = run_cutoffs(calc.artifact, ["Li"], n).lo["Li"]
    high_cut = error_cutoffs(calc.artifact, ["Li"], n)["Li"]
    flagged, high = pred > lo, err > high_cut
    tp = int(np.sum(flagged & high))
    precision = tp / max(1, int(flagged.sum()))
    recall = tp / max(1, int(high.sum()))
    onset_pred = next((s for s, f in zip(steps, flagged.any(axis=1)) if f), None)
    onset_true = next((s for s, h in zip(steps, high.any(axis=1)) if h), None)
    print(f"{len(steps)} steps in {wall:.1f} s ({1e3 * wall / len(steps):.1f} ms/step with the MEAM check); T {temps[0]:.0f} -> {temps[-1]:.0f} K")
    print(f"lo auto {lo:.3f} eV/Å (the artifact's calibrated fit), true-error cutoff {high_cut:.3f} eV/Å (Maxwell fit of the "
          f"validation errors), N = {n}")
    print(f"first flagged step {onset_pred}, first truly high-error step {onset_true}; atoms flagged {int(flagged.sum())}, "
          f"high-error {int(high.sum())}, precision {precision:.2f}, recall {recall:.2f}")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(steps, pred.max(axis=1), label="max predicted error (ltau_error)")
    ax1.plot(steps, err.max(axis=1), label="max true error (vs MEAM)", alpha=0.7)
    ax1.axhline(lo, color="C0", ls="--", lw=1, label=f"lo auto (calibrated) {lo:.2f}")
    ax1.axhline(high_cut, color="C1", ls=":", lw=1, label=f"true-error cutoff {high_cut:.2f}")
    ax1.set(xlabel="MD step (1 fs)", ylabel="eV/Å", yscale="log", title="heating ramp")
    tw = ax1.twinx()
    tw.plot(steps, temps, color="0.6", lw=0.8)
    tw.set_ylabel("T (K)", color="0.5")
    ax1.legend(fontsize=7, loc="upper left")
    ax2.scatter(err.ravel(), pred.ravel(), s=2, alpha=0.3)
    lim = [min(err.min(), pred.min()), max(err.max(), pred.max())]
    ax2.plot(lim, lim, "k--", lw=0.8)
    ax2.axvline(high_cut, color="C1", ls=":", lw=1)
    ax2.axhline(lo, color="C0", ls="--", lw=1)
    ax2.set(xlabel="true force error (eV/Å)", ylabel="predicted (eV/Å)", xscale="log", yscale="log",
            title=f"per atom and step: P {precision:.2f}, R {recall:.2f}")
    fig.tight_layout()
    save_figure(fig, args.output)
    print(f"plot: {args.output}")


if __name__ == "__main__":
    main()
