"""A run's cutoffs, decided in one place for ``fix ltau`` and for the loop alike (seed 003 §2–3).

* N, the number of atomic environments a run examines: atoms checked × checks
  (``steps // every + 1``), unless given (``nsamples``).
* ``lo auto``: per species, the value at CDF 1 − 1/N of the fitted distribution of the run's
  predictor's predicted errors on validation data (the calibrated σ(u, d), or plain LTAU), so an
  in-distribution run expects about one false alarm in total. A ``scale S`` override replaces the
  artifact's s (plain LTAU: the calibrated s; calibrated predictor: 1); predicted errors scale
  linearly with s, and so does their distribution.
* ``hi auto``: max(1 eV/Å, lo) — seed 003's stability limit: predicted force errors above ~1 eV/Å
  went with trajectories that left the physical region (overlapping, exploding atoms).
* The true-error cutoff at the same N (the Maxwell fit of validation errors), which is what a
  flagged atom is scored against when the truth is known (the loop, benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ltau_md.errors import ArtifactError

if TYPE_CHECKING:
    from ltau_md.artifact import Artifact

HI_AUTO_FLOOR = 1.0  # eV/Å


def environments_examined(n_atoms: int, steps: int, every: int) -> int:
    """N = atoms × checks of a run of ``steps`` steps checked every ``every`` (the first step too)."""
    return max(2, int(n_atoms) * (int(steps) // max(1, int(every)) + 1))


@dataclass(frozen=True)
class RunCutoffs:
    n: int  # atomic environments examined
    lo: dict[str, float]  # per species, eV/Å
    hi: dict[str, float]
    lo_auto: bool
    hi_auto: bool
    predictor: str = "ltau"

    def describe(self) -> str:
        cut = ", ".join(f"{sp} {self.lo[sp]:.4g}/{self.hi[sp]:.4g}" for sp in self.lo)
        return f"predictor {self.predictor}, lo/hi (eV/Å) {cut}; " + (f"lo auto at N = {self.n}" if self.lo_auto else "lo given")


def run_cutoffs(
    artifact: Artifact,
    species: list[str],
    n: int,
    lo: float | None = None,
    hi: float | None = None,
    scale: float | None = None,
    predictor: str | None = None,
) -> RunCutoffs:
    """lo and hi per species for a run examining ``n`` environments (None: auto)."""
    predictor = artifact.resolve_predictor(predictor)
    kind = artifact.uncertainty_kind(predictor)
    lo_sp, hi_sp = {}, {}
    for sp in species:
        own_s = 1.0 if predictor == "calibrated" else artifact.scale(sp)
        if lo is None:
            fit = artifact.distribution(sp, kind)
            if fit is None:
                raise ArtifactError(
                    f"lo auto: {artifact.path or 'the artifact'} has no fitted uncertainty distribution for {sp}; "
                    f"run 'ltau-md calibrate {artifact.path or 'NAME.ltau'} --data VAL.xyz' or give lo VALUE"
                )
            lo_sp[sp] = fit.cutoff(int(n)) * (scale / own_s if scale else 1.0)
        else:
            lo_sp[sp] = float(lo)
        hi_sp[sp] = max(HI_AUTO_FLOOR, lo_sp[sp]) if hi is None else float(hi)
    return RunCutoffs(n=int(n), lo=lo_sp, hi=hi_sp, lo_auto=lo is None, hi_auto=hi is None, predictor=predictor)


def error_cutoffs(artifact: Artifact, species: list[str], n: int) -> dict[str, float]:
    """Per species, the true force error whose fitted (Maxwell) CDF is 1 − 1/n: 'high error'."""
    out = {}
    for sp in species:
        fit = artifact.distribution(sp, "error")
        if fit is None:
            raise ArtifactError(f"{artifact.path or 'artifact'}: no fitted error distribution for {sp}; run 'ltau-md calibrate'")
        out[sp] = fit.cutoff(int(n))
    return out
