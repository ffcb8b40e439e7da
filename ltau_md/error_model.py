"""The calibrated error predictor: a force-error distribution per atom from LTAU *and* the latent
distance, fitted per species on validation atoms by Maxwell likelihood.

LTAU (seed 002) predicts an atom's error as the mixture of its k latent neighbours' logged training
errors, u. That mixture cannot exceed the worst training atom's errors however far an atom lies from
the training data, so out of domain it under-predicts; the latent distance d to the nearest training
atom ranks such atoms well but says little in domain (seed 003). Here the true error |ΔF| of an atom
is modelled as Maxwell-distributed (three Gaussian force components, seed 003 §2) with a scale σ
that depends on both, σ = σ(u, d), over the whole range of d:

* ``ltau``      σ = a·u                       (LTAU rescaled by likelihood)
* ``distance``  σ = a + b·d                   (seed 003's latent-distance model)
* ``additive``  σ = a·u + b·d + c             (LTAU in domain, growing linearly with d beyond it)
* ``power``     σ = exp(c0) · u^c1 · (d + δ)^c2
* ``exponential`` σ = (a·u + c) · exp(b·d)      (LTAU in domain, growing geometrically with d)
* ``neighbourhood`` σ = (a·u + c) · exp(b·d + g·d̄)  (and with the neighbourhood's distance d̄)

**Which distance.** d̄ is the mean of d over the atom and its neighbours within the model's
cutoff (``cutoff``, stored with the model). An atom's force is the derivative of its neighbours'
energies too, so an atom in a familiar environment next to unfamiliar ones is wrong more often
than its own d says (on the Li–Mg benchmark, out-of-domain atoms' errors at equal d were ~1.4×
those of validation atoms). By default every form therefore uses the *environment distance*
d_env = (d + d̄)/2 in place of d (``distance = "environment"``; ``"nearest"`` keeps the atom's own
d, and is what artifacts calibrated before this option read as). The weight ½ is fixed on
purpose: the ``neighbourhood`` form, σ = (a·u + c)·exp(b·d + g·d̄), fits the two weights freely,
and on the demo's small Li validation set (324 atoms) it extrapolated so steeply that its heating
ramp flagged 1381 of 3564 atoms against 151 truly high-error ones; it stays opt-in. Measured with
``benchmarks/uq_quality.py`` (2 training seeds) against the nearest d: pooled AUROC 0.813–0.824 →
0.826–0.834, Spearman 0.547–0.565 → 0.571–0.587, out-of-domain mean predicted/true 0.71–0.73 →
0.75–0.83; on three demo ramps re-scored on the same frames (benchmarks/rescore_ramp.py), recall
at the statistical lo 0.55–0.64 → 0.76–0.95 while precision fell from ~0.8 to ~0.5. ``fix ltau``
finds d for every atom (its group or not) and averages over ghost atoms of other ranks too.

Coefficients are positive by construction (fitted on their logarithms) except the power law's
exponents. The form is chosen per species by held-out likelihood on validation atoms, scored two
ways and summed: two folds of whole frames (so neighbouring atoms of one frame never sit on both
sides), and extrapolation — fitted on the atoms nearer than the median distance, scored on the
farther half — because out of domain is where the form matters most and validation data never
reach that far. The chosen form is then refitted on all atoms.

**The error's shape.** Given σ, the error is Maxwell-distributed unless the validation atoms say
otherwise: the standardised errors r = |ΔF|/σ are fitted by a generalised gamma (density ∝
r^(ca−1)·exp(−(r/s)^c); Maxwell is a = 3/2, c = 2, s = √2; a, c, s within ``SHAPE_BOUNDS``), and
that shape is kept only where it beats Maxwell by held-out likelihood over the same two folds of
frames (species with ≥ 100 validation atoms). On the Li–Mg benchmark (~10⁴ Li and 2.5·10³ Mg
validation atoms) it is kept, a ≈ 1.9–2.0, c ≈ 1.6 (heavier-tailed than Maxwell), and the
in-domain miscalibration area falls from 0.036–0.051 to 0.026–0.041 (its sampling floor there is
0.012–0.019); out of domain, where σ itself under-predicts, it rises from 0.069–0.084 to
0.077–0.094. On the demo's 324 Li atoms Maxwell is kept. Flags do not change: the statistical
cutoffs are fitted to the same predictions, so the factor cancels. The predicted error is the
shape's mean (2σ√(2/π) for Maxwell); P(error ≤ a) its CDF.

**Bounded growth.** Beyond the farthest validation atom (``d_max``, stored with the species' model)
σ grows by at most :data:`MAX_GROWTH` (10×) over its value at the same u with d clamped to that
range (d̄ too, for the neighbourhood form). The forms are fitted
inside the validation range; the demo's second iteration (324 validation atoms, d ≤ 0.11) chose
the exponential form with b = 10 per unit d, and its 3000 K test atoms, at d up to 3.2, were
predicted 10⁴–10⁶ eV/Å (mean predicted/true 7·10⁴). On ``benchmarks/uq_quality.py``, whose
out-of-domain atoms reach 6× the validation range, the bound changes no figure (a bound of 3×
would lower out of domain from 0.935 to 0.911 on seed 0). Artifacts calibrated before it have
no ``d_max`` and are not bounded.

**With today's training** (stress in the loss, ``ltau-md train``'s default; the figures below this
paragraph were measured on models trained without it): on ``benchmarks/uq_quality.py`` (2 seeds)
the error model reaches pooled AUROC 0.828–0.835 (ensemble 0.789–0.825, distance
0.789–0.797), Spearman 0.574–0.578, out-of-domain mean predicted/true 0.94–1.03 from the
validation data alone, in-domain area 0.031–0.045; Li 1500 K stays at 0.60–0.65 (with the
close-contact rule on top, ``ltau_md.contact``, as shipped: AUROC 0.829–0.836, out of domain
0.97–1.06; over five seeds 0.820–0.844 and 0.82–1.13, lowest out of domain on the seed where both
species chose the power law, and 0.96–1.01 on every seed with the labelled harvest below).
Tried on those models and not kept (pooled AUROC / out-of-domain predicted/true, seeds 0 / 1):
the power law alone ranks best but extrapolates least (0.843 / 0.838, out of domain 0.74 / 0.76), the
exponential form the reverse (0.826 / 0.830, 1.24 / 1.06), and held-out likelihood picks between
them per species and seed; their mean or geometric mean falls between (0.831–0.835, 0.89–0.99);
exact search with k = 20–80 in place of 10 lifts every form's AUROC by 0.005–0.015 but moves the
choice to the power law on seed 0 (0.851, out of domain 0.72); a log-linear form with a log u ·
log d term, or with the predicted force's magnitude as a third factor, reaches 0.839–0.849 at out
of domain 0.74–0.86 (held-out likelihood does not prefer the first; the second would need the
forces in the error model); σ = u^c1·(d + δ)^c2·e^{b·d} fits worse held out. A factor q^g of the
close-contact ratio q (``ltau_md.contact``: the nearest neighbour's distance over the training
frames' shortest of the pair; validation q ≥ 0.99, Li 1500 K down to 0.83) is fitted with g ≈ −1.4
for Li on both seeds (closer, larger errors) and lifts Li 1500 K from 0.64 to 0.69 and pooled AUROC
by 0.005–0.008 in either form (power 0.850 / 0.844 at out of domain 0.78; exponential 0.831 /
0.835 at 1.44 / 1.11): not the +0.02 over the ensemble on seed 0 either. A Li 1500 K atom predicted 1.3× higher would lift pooled AUROC to 0.845–0.850: that
set is where the ranking is lost. Over five seeds the power law alone beats the better baseline
by +0.017 to +0.048 at out of domain 0.72–0.80, the exponential by +0.000 to +0.040 at 1.03–1.36.
A rank-keeping tail on the power law, σ·max(1, σ/σ_ref)^g, keeps its ranking (with g = 1 and σ_ref
the validation atoms' 90th percentile of σ: +0.020 to +0.052, out of domain 0.96–1.15), but
those two numbers would be set by hand: fitted on the extrapolation split (near half → far half),
g comes out 0–2 and out of domain 0.78–0.88 (0.79 on the seed where g = 0); the validation data do
not say how steep the tail is.

**What does not close the out-of-domain gap** (models trained without stress: out-of-domain mean
predicted/true 0.75–0.83 on ``benchmarks/uq_quality.py``, 2 seeds; ≥ 0.85 wanted). At equal d a
1500 K liquid-Li atom errs ~1.5× more than a 600 K validation atom (0.096 against 0.064 eV/Å at d = 0.03–0.045), and so at
equal d̄, shortest pair distance or force magnitude; Li atoms of the LiMg validation frames sit at
twice the pure-Li d with the same error, so one σ(d) per species cannot serve both. Measured and
not kept (out-of-domain predicted/true, two seeds): d in the first layer's or in all layers'
invariant features, 0.65–0.76; d over the neighbours' own spacing among training atoms,
0.60–0.62; σ fitted per k-means region of a species' training latents (2–4 regions), 0.87–0.90
on one seed but 0.80–0.82 on the other, pooled AUROC 0.01–0.04 lower; u from the neighbours'
worst epochs, 0.74–0.81; u times the predicted force over the neighbours' reference forces,
0.72–0.80 (none beats the shipped form on both seeds). The model's own atomic energy does move
out of domain (its z-score among the training atoms': median −0.2 at 600 K, +1.2 at 1500 K), but
it adds little on the validation atoms (log-linear fit of log e on log d, log u and that z: R²
0.058 → 0.073) and, extrapolated, leaves Li 1500 K at true/predicted 1.58 instead of 1.69 (seed
0). The ``neighbourhood`` form reaches 0.89–0.96, but on the extrapolation split its held-out
likelihood for Li is below the additive, power and exponential forms' on both seeds (−log L −1.98
and −2.04 per atom against the exponential's −2.06 and −2.07), so the validation data do not
support how steeply it extrapolates. Mahalanobis distances (latents whitened by their species'
training covariance; two seeds, against 0.751 / 0.826 for the shipped form on the same atoms):
to the nearest training atom in place of d, 0.73 / 0.82; to the species' training mean (its
Gaussian atypicality, dG), 0.76 / 0.77, and as a second, freely weighted factor exp(g·dG) the fit
sets g ≈ 0; d·dG/median(dG), 0.82 / 0.86, but held-out likelihood prefers it only for Li on seed 0
(−2.1073 against −2.1059 per atom) and rejects it on seed 1 (−2.0949 against −2.1064) and for Mg on
both, so chosen per species as the forms are it gives 0.80 / 0.83, Li 1500 K still 0.73 / 0.68.
The far validation Li atoms are 88–98 % Li of LiMg frames (d_env above the 75th percentile, both
seeds), so a slope that depends on the fraction x of other-species neighbours, exp(b·d_env·(1 − x) +
g·d_env·x), was tried: the pure-Li slope comes out 1.2–1.7× the mixed one, yet Li 1500 K only
reaches 0.71–0.76 (out of domain 0.84 / 0.85, pooled AUROC 0.005–0.007 lower), and held-out
likelihood rejects it for Li on both seeds (−2.1016 / −2.1032 against −2.1059 / −2.1064).

**What did close it** (without stress; with it the validation data alone reach 0.94–1.03 and the
harvest below adds nothing, 0.93–0.97) is labelled out-of-domain frames among the calibration
frames. With every other heating-ramp frame added to the validation frames (what an
active-learning harvest yields), the other out-of-domain sets and the ramp's remaining frames go from mean predicted/true 0.78 /
0.85 to 1.22 / 1.06 (two seeds; Li 1500 K, which no LiMg frame informs, 0.71 → 0.84 / 0.77) — the
ensemble's 1.2–1.3. ``benchmarks/uq_quality.py`` keeps this as its ``harvest`` predictor, with 20
frames of another LiMg ramp added instead: out of domain 0.98–1.08, and 0.94–1.05 without the
ramp test set (pooled AUROC 0.817–0.830, Spearman 0.56–0.58, in-domain area ≤ 0.039). In a
campaign that means labelling a few checked MD frames the harvest did not take and fitting the
next models' error model on them too (``ltau-md loop``'s ``harvest.calibration_frames``), or
holding a share of each harvest out of training for it (``harvest.calibration_share``). Both are
opt-in: on the demo's campaign four such frames bring test-frame predicted/true to 1.03–1.05 on
one seed and leave it at 0.29–0.49 on the other (a few small frames do not pin down the growth),
a share of the harvest over-predicts (1.25–1.61) (README, "Calibrating out of domain").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, special

from ltau_md.errors import LtauError
from ltau_md.species import symbol

# each form's parameters θ, in the order ``_sigma`` reads them (the one list of forms)
PARAMETERS = {
    "ltau": ("log a",),
    "distance": ("log a", "log b"),
    "additive": ("log a", "log b", "log c"),
    "power": ("c0", "c1", "c2"),
    "exponential": ("log a", "log b", "log c"),
    "neighbourhood": ("log a", "log b", "log g", "log c"),
}
FORMS = tuple(PARAMETERS)
MIN_ATOMS = 20  # validation atoms of a species below which no form is fitted
# the distance the forms use: the atom's own d, or its environment's (d + d̄)/2 (module docstring)
DISTANCES = ("environment", "nearest")
NEIGHBOURHOOD_FORMS = ("neighbourhood",)  # forms that need d̄
# the candidates unless the caller asks: the neighbourhood form is opt-in (see the module docstring)
DEFAULT_FORMS = tuple(f for f in FORMS if f not in NEIGHBOURHOOD_FORMS)
MEAN_PER_SIGMA = 2.0 * np.sqrt(2.0 / np.pi)  # Maxwell mean / scale
# the standardised error's generalised gamma (a, c, s) that is Maxwell (module docstring)
MAXWELL_SHAPE = (1.5, 2.0, float(np.sqrt(2.0)))
MIN_ATOMS_FOR_SHAPE = 100  # fewer validation atoms of a species: Maxwell, nothing fitted
# σ grows at most this much beyond its value (at the same u) at the farthest validation atom: the
# forms are fitted inside the validation range and extrapolated (module docstring, "Bounded growth")
MAX_GROWTH = 10.0
# a, c, s are fitted within these (heavy outliers otherwise run off to the lognormal limit, a → ∞)
SHAPE_BOUNDS = ((0.2, 20.0), (0.3, 10.0), (0.01, 100.0))
_TINY = 1e-12


def maxwell_cdf(x: np.ndarray | float, sigma: np.ndarray) -> np.ndarray:
    """P(|ΔF| ≤ x) for Maxwell scale ``sigma``."""
    z = np.asarray(x, dtype=np.float64) / np.asarray(sigma, dtype=np.float64)
    return special.erf(z / np.sqrt(2.0)) - np.sqrt(2.0 / np.pi) * z * np.exp(-0.5 * z * z)


def maxwell_nll(e: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """−log pdf of Maxwell(σ) at e, per atom."""
    return -(0.5 * np.log(2.0 / np.pi) + 2.0 * np.log(np.maximum(e, _TINY)) - 3.0 * np.log(sigma) - e * e / (2.0 * sigma * sigma))


def shape_nll(r: np.ndarray, shape: tuple[float, float, float]) -> np.ndarray:
    """−log density of the standardised error r = |ΔF|/σ under the generalised gamma ``shape``."""
    a, c, s = shape
    z = np.maximum(np.asarray(r, dtype=np.float64), _TINY) / s
    return -(np.log(c) - special.gammaln(a) + (c * a - 1.0) * np.log(z) - z**c - np.log(s))


def shape_cdf(x: np.ndarray | float, sigma: np.ndarray, shape: tuple[float, float, float]) -> np.ndarray:
    """P(|ΔF| ≤ x) for scale ``sigma`` and the standardised error's ``shape``."""
    a, c, s = shape
    z = np.asarray(x, dtype=np.float64) / (s * np.asarray(sigma, dtype=np.float64))
    return special.gammainc(a, z**c)


def shape_mean(shape: tuple[float, float, float]) -> float:
    """Mean of the standardised error: the predicted error per unit σ."""
    a, c, s = shape
    return float(s * np.exp(special.gammaln(a + 1.0 / c) - special.gammaln(a)))


def _fit_shape(r: np.ndarray) -> tuple[float, float, float]:
    def nll(t: np.ndarray) -> float:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            v = float(np.mean(shape_nll(r, tuple(np.exp(t)))))
        return v if np.isfinite(v) else 1e300

    bounds = [(np.log(lo), np.log(hi)) for lo, hi in SHAPE_BOUNDS]
    res = optimize.minimize(nll, np.log(MAXWELL_SHAPE), method="Nelder-Mead", bounds=bounds,
                            options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 4000})  # fmt: skip
    return tuple(float(v) for v in np.exp(res.x))


def fit_error_shape(r: np.ndarray, fold: np.ndarray) -> tuple[tuple[float, float, float], dict[str, float]]:
    """The standardised errors' shape: a fitted generalised gamma where it beats Maxwell by
    held-out likelihood over ``fold`` (0/1 per atom; −log-likelihood summed over both folds, per
    atom), else Maxwell; and both held-out scores."""
    r = np.maximum(np.asarray(r, dtype=np.float64), _TINY)
    fold = np.asarray(fold)
    if len(r) < MIN_ATOMS_FOR_SHAPE or min(np.sum(fold == 0), np.sum(fold == 1)) < 2:
        return MAXWELL_SHAPE, {}
    total = {"maxwell": 0.0, "fitted": 0.0}
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for k in (0, 1):
            tr, te = fold != k, fold == k
            total["maxwell"] += float(np.sum(shape_nll(r[te], MAXWELL_SHAPE)))
            total["fitted"] += float(np.sum(shape_nll(r[te], _fit_shape(r[tr]))))
    scores = {k: v / len(r) for k, v in total.items()}
    if not all(np.isfinite(v) for v in scores.values()) or scores["fitted"] >= scores["maxwell"]:
        return MAXWELL_SHAPE, {k: v for k, v in scores.items() if np.isfinite(v)}
    return _fit_shape(r), scores


def neighbourhood_mean(values: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Per atom, the mean of ``values`` over itself and its neighbours j of the directed pairs
    (i, j); NaN values (unknown) are left out, and an atom whose own value is unknown gets NaN."""
    v = np.asarray(values, dtype=np.float64)
    known = np.isfinite(v)
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    keep = known[j]
    total = np.bincount(i[keep], weights=v[j[keep]], minlength=len(v)) + np.where(known, v, 0.0)
    count = np.bincount(i[keep], minlength=len(v)) + known
    return np.where(known, total / np.maximum(count, 1), np.nan)


def reads_neighbourhood(form: str, distance: str) -> bool:
    """Whether σ of ``form`` reading ``distance`` needs d̄ (and so neighbour pairs and a cutoff)."""
    return form in NEIGHBOURHOOD_FORMS or distance == "environment"


def environment_distance(d: np.ndarray, dn: np.ndarray) -> np.ndarray:
    """d_env = (d + d̄)/2: the atom's own latent distance and its neighbourhood's, weighed equally."""
    return 0.5 * (np.asarray(d, dtype=np.float64) + np.asarray(dn, dtype=np.float64))


def neighbour_pairs(atoms, cutoff: float, distances: bool = False) -> tuple[np.ndarray, ...]:
    """Directed pairs (i, j) of atoms within ``cutoff`` Å (periodic images map to their atom), and
    their distances r with ``distances``."""
    from ase.neighborlist import neighbor_list

    return tuple(neighbor_list("ijd" if distances else "ij", atoms, float(cutoff)))


def frame_pairs(frames, cutoff: float, distances: bool = False) -> tuple[np.ndarray, ...] | None:
    """Neighbour pairs within ``cutoff`` Å of every frame, indexed into the frames' concatenation
    (with their distances where asked; None for cutoff 0: the predictor needs none)."""
    if cutoff <= 0:
        return None
    return concatenate_pairs([neighbour_pairs(atoms, cutoff, distances) for atoms in frames], [len(atoms) for atoms in frames], 3 if distances else 2)


def concatenate_pairs(per_frame: Sequence[tuple[np.ndarray, ...]], sizes: Sequence[int], columns: int = 3) -> tuple[np.ndarray, ...]:
    """Per-frame pairs (i, j[, r]), each indexed into its frame, as one set indexed into the
    frames' concatenation (``sizes``: the frames' atom counts)."""
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if len(sizes) else np.zeros(0, np.int64)
    empty = [np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)]
    return (
        np.concatenate([empty[0], *(p[0] + o for p, o in zip(per_frame, offsets))]),
        np.concatenate([empty[1], *(p[1] + o for p, o in zip(per_frame, offsets))]),
        *([np.concatenate([empty[2], *(p[2] for p in per_frame)])] if columns == 3 else []),
    )


def neighbourhood_distance(frames, nearest: np.ndarray, cutoff: float) -> np.ndarray:
    """d̄ for the atoms of ``frames`` (concatenated, as ``nearest``)."""
    if not cutoff > 0:
        raise LtauError(f"the neighbourhood distance needs a cutoff > 0 Å, not {cutoff:g}")
    n_atoms = sum(len(atoms) for atoms in frames)
    if n_atoms != len(nearest):
        raise LtauError(f"{len(nearest)} distances for {n_atoms} atoms in the frames")
    return neighbourhood_mean(nearest, *frame_pairs(frames, cutoff))


def _sigma(form: str, theta: np.ndarray, u: np.ndarray, d: np.ndarray, delta: float, dn: np.ndarray | None = None) -> np.ndarray:
    if form == "ltau":
        return np.exp(theta[0]) * u
    if form == "distance":
        return np.exp(theta[0]) + np.exp(theta[1]) * d
    if form == "additive":
        return np.exp(theta[0]) * u + np.exp(theta[1]) * d + np.exp(theta[2])
    if form == "power":
        return np.exp(theta[0] + theta[1] * np.log(u) + theta[2] * np.log(d + delta))
    if form == "exponential":
        return (np.exp(theta[0]) * u + np.exp(theta[2])) * np.exp(np.exp(theta[1]) * d)
    if form == "neighbourhood":
        return (np.exp(theta[0]) * u + np.exp(theta[3])) * np.exp(np.exp(theta[1]) * d + np.exp(theta[2]) * dn)
    raise LtauError(f"error model form {form!r} unknown; choose one of {', '.join(FORMS)}")


def _start(form: str, u: np.ndarray, d: np.ndarray, e: np.ndarray, delta: float, dn: np.ndarray | None = None) -> np.ndarray:
    s = np.sqrt(np.mean(e * e) / 3.0)  # one Maxwell σ for everything
    if form == "ltau":
        return np.log([s / np.mean(u)])
    if form == "distance":
        return np.log([s / 2, s / 2 / max(np.mean(d), _TINY)])
    if form == "additive":
        return np.log([s / 2 / np.mean(u), s / 4 / max(np.mean(d), _TINY), s / 4])
    if form == "exponential":
        return np.log([s / 2 / np.mean(u), 0.5 / max(np.mean(d), _TINY), s / 4])
    if form == "neighbourhood":
        return np.log([s / 2 / np.mean(u), 0.25 / max(np.mean(d), _TINY), 0.25 / max(np.mean(dn), _TINY), s / 4])
    return np.array([np.log(s / np.mean(u)), 1.0, 0.0])


def _fit(form: str, u: np.ndarray, d: np.ndarray, e: np.ndarray, delta: float, dn: np.ndarray | None = None) -> np.ndarray:
    def nll(theta: np.ndarray) -> float:
        with np.errstate(over="ignore", invalid="ignore"):  # the search's wild steps are refused just below
            sig = _sigma(form, theta, u, d, delta, dn)
        if not np.all(np.isfinite(sig)) or np.any(sig <= 0):
            return 1e300
        return float(np.mean(maxwell_nll(e, sig)))

    x0 = _start(form, u, d, e, delta, dn)
    res = optimize.minimize(nll, x0, method="L-BFGS-B", bounds=[(-30.0, 30.0)] * len(x0))
    best = res.x
    # Nelder–Mead polishes where the exp-parametrised surface is flat (a coefficient heading to 0).
    res2 = optimize.minimize(nll, best, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 2000})
    return res2.x if res2.fun < res.fun else best


@dataclass(frozen=True)
class SpeciesErrorModel:
    """σ(u, d) for one species."""

    form: str
    theta: np.ndarray
    delta: float  # the power law's distance offset (a tenth of the median validation distance)
    heldout_nll: dict[str, float]  # mean held-out −log-likelihood per atom of every candidate form
    n_atoms: int
    cutoff: float = 0.0  # Å, the neighbourhood of d̄ (where the model uses it)
    distance: str = "nearest"  # what d the form reads: "nearest" (the atom's own) or "environment" ((d + d̄)/2)
    shape: tuple[float, float, float] = MAXWELL_SHAPE  # the standardised error's generalised gamma (a, c, s)
    shape_heldout_nll: dict[str, float] = field(default_factory=dict)  # "maxwell" / "fitted" (fit_error_shape)
    d_max: float = 0.0  # the farthest validation atom's d as the form reads it (0: unbounded, as calibrated before)
    dn_max: float = 0.0  # and its d̄ (neighbourhood forms)

    @property
    def uses_neighbourhood(self) -> bool:
        return reads_neighbourhood(self.form, self.distance)

    def sigma(self, u: np.ndarray, d: np.ndarray, dn: np.ndarray | None = None) -> np.ndarray:
        u = np.maximum(np.asarray(u, dtype=np.float64), _TINY)
        d = np.maximum(np.asarray(d, dtype=np.float64), 0.0)
        if self.uses_neighbourhood:
            if dn is None:
                raise LtauError(f"error model '{self.form}' needs each atom's neighbourhood distance d̄ (neighbour pairs within {self.cutoff:g} Å)")
            dn = np.maximum(np.asarray(dn, dtype=np.float64), 0.0)
            if self.distance == "environment":
                d = environment_distance(d, dn)
        sigma = _sigma(self.form, self.theta, u, d, self.delta, dn)
        if self.d_max > 0:  # bounded growth beyond the validation range (nothing changes inside it)
            beyond = d > self.d_max
            if dn is not None and self.dn_max > 0:
                beyond |= dn > self.dn_max
            if beyond.any():
                b_dn = None if dn is None else np.minimum(dn[beyond], self.dn_max if self.dn_max > 0 else np.inf)
                bound = MAX_GROWTH * _sigma(self.form, self.theta, u[beyond], np.minimum(d[beyond], self.d_max), self.delta, b_dn)
                sigma[beyond] = np.minimum(sigma[beyond], bound)
        return np.maximum(sigma, _TINY)

    @property
    def mean_per_sigma(self) -> float:
        """Predicted error (the distribution's mean) per unit σ."""
        return shape_mean(self.shape)

    def cdf(self, x: np.ndarray | float, sigma: np.ndarray) -> np.ndarray:
        """P(|ΔF| ≤ x) at scale ``sigma``."""
        return shape_cdf(x, sigma, self.shape)

    def predict(self, sigma: np.ndarray, atol: float) -> tuple[np.ndarray, np.ndarray]:
        """At scale ``sigma``: the predicted error (the distribution's mean) and P(error ≤ atol)."""
        return self.mean_per_sigma * sigma, self.cdf(atol, sigma)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "form": self.form,
            "theta": [float(t) for t in self.theta],
            "delta": float(self.delta),
            "heldout_nll": {k: float(v) for k, v in self.heldout_nll.items()},
            "n_atoms": int(self.n_atoms),
            "distance": self.distance,
            "shape": [float(v) for v in self.shape],
            "shape_heldout_nll": {k: float(v) for k, v in self.shape_heldout_nll.items()},
            "d_max": float(self.d_max),
            "dn_max": float(self.dn_max),
        }
        if self.uses_neighbourhood:
            out["cutoff"] = float(self.cutoff)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpeciesErrorModel:
        if not isinstance(d, dict) or d.get("form") not in FORMS:
            raise LtauError(f"error model must name a form among {', '.join(FORMS)}")
        n_theta = len(PARAMETERS[d["form"]])
        theta = d.get("theta")
        if not isinstance(theta, list) or len(theta) != n_theta or not all(isinstance(t, (int, float)) and np.isfinite(t) for t in theta):
            raise LtauError(f"error model '{d['form']}' needs {n_theta} finite parameters in 'theta'")
        delta = d.get("delta", 0.0)
        if not isinstance(delta, (int, float)) or not np.isfinite(delta) or delta < 0:
            raise LtauError("error model 'delta' must be a number ≥ 0")
        distance = d.get("distance", "nearest")  # calibrated before the option existed: the atom's own d
        if distance not in DISTANCES:
            raise LtauError(f"error model 'distance' is {distance!r}; choose one of {', '.join(DISTANCES)}")
        if d["form"] in NEIGHBOURHOOD_FORMS and distance != "nearest":
            raise LtauError(f"error model '{d['form']}' weighs d and d̄ itself; its 'distance' must be nearest")
        cutoff = d.get("cutoff", 0.0)
        if reads_neighbourhood(d["form"], distance) and (not isinstance(cutoff, (int, float)) or not np.isfinite(cutoff) or cutoff <= 0):
            raise LtauError(f"error model '{d['form']}' needs a positive 'cutoff' (Å) for its neighbourhood")
        shape = d.get("shape", list(MAXWELL_SHAPE))  # calibrated before the option existed: Maxwell
        if not isinstance(shape, list) or len(shape) != 3 or not all(isinstance(v, (int, float)) and np.isfinite(v) and v > 0 for v in shape):
            raise LtauError("error model 'shape' must be three positive numbers [a, c, s] (Maxwell: [1.5, 2, 1.4142])")
        shape_nll_rec = d.get("shape_heldout_nll") or {}
        if not isinstance(shape_nll_rec, dict) or not all(isinstance(v, (int, float)) for v in shape_nll_rec.values()):
            raise LtauError("error model 'shape_heldout_nll' must map 'maxwell' / 'fitted' to numbers")
        reach = {k: d.get(k, 0.0) for k in ("d_max", "dn_max")}  # calibrated before the bound: 0, unbounded
        if not all(isinstance(v, (int, float)) and np.isfinite(v) and v >= 0 for v in reach.values()):
            raise LtauError("error model 'd_max' and 'dn_max' must be numbers ≥ 0")
        return cls(d["form"], np.asarray(theta, dtype=np.float64), float(delta), dict(d.get("heldout_nll") or {}), int(d.get("n_atoms", 0)),
                   float(cutoff), distance, tuple(float(v) for v in shape), {str(k): float(v) for k, v in shape_nll_rec.items()},
                   float(reach["d_max"]), float(reach["dn_max"]))  # fmt: skip


def _folds(frame: np.ndarray | None, n: int) -> np.ndarray:
    """Fold (0/1) per atom: alternate whole frames; without frame ids, alternate blocks of atoms."""
    if frame is not None and len(np.unique(frame)) >= 2:
        _, inv = np.unique(frame, return_inverse=True)
        return inv % 2
    return (np.arange(n) * 2 // max(n, 1)).astype(np.int64)


def fit_species_error_model(
    u: np.ndarray,
    d: np.ndarray,
    true_error: np.ndarray,
    frame: np.ndarray | None = None,
    forms: tuple[str, ...] = DEFAULT_FORMS,
    neighbourhood: np.ndarray | None = None,
    cutoff: float = 0.0,
    distance: str | None = None,
) -> SpeciesErrorModel:
    """Choose σ(u, d[, d̄]) among ``forms`` by held-out Maxwell likelihood; refit on all atoms.
    ``distance``: what d the forms read (:data:`DISTANCES`); default ``environment`` where
    ``neighbourhood`` (d̄ per atom, over ``cutoff`` Å) is given, else ``nearest``. Without
    ``neighbourhood`` the neighbourhood forms are left out."""
    u = np.maximum(np.asarray(u, dtype=np.float64), _TINY)
    d = np.maximum(np.asarray(d, dtype=np.float64), 0.0)
    e = np.asarray(true_error, dtype=np.float64)
    dn = None if neighbourhood is None else np.maximum(np.asarray(neighbourhood, dtype=np.float64), 0.0)
    unknown = sorted(set(forms) - set(FORMS))
    if unknown:
        raise LtauError(f"error model form(s) {unknown} unknown; choose among {', '.join(FORMS)}")
    if dn is None:
        forms = tuple(f for f in forms if f not in NEIGHBOURHOOD_FORMS)
        if not forms:
            raise LtauError("the neighbourhood error model needs each validation atom's neighbourhood distance")
    if not (len(u) == len(d) == len(e)) or (dn is not None and len(dn) != len(e)):
        raise LtauError("u, d and true errors need one value per atom each")
    if len(e) < MIN_ATOMS:
        raise LtauError(f"{len(e)} validation atoms of a species are too few to fit an error model (need ≥ {MIN_ATOMS})")
    distance = distance or ("environment" if dn is not None else "nearest")
    if distance not in DISTANCES:
        raise LtauError(f"error model distance {distance!r} unknown; choose one of {', '.join(DISTANCES)}")
    if distance == "environment" and dn is None:
        raise LtauError("the environment distance needs each validation atom's neighbourhood distance d̄")
    # what the forms read as d (the neighbourhood form always takes the atom's own d, and d̄ apart)
    d_form = environment_distance(d, dn) if distance == "environment" else d
    delta = 0.1 * float(np.median(d_form)) + _TINY
    fold = _folds(frame, len(e))
    far = d_form > np.median(d_form)
    splits = [(fold != 0, fold == 0), (fold != 1, fold == 1), (~far, far)]
    scores = {}
    for form in forms:
        x = d if form in NEIGHBOURHOOD_FORMS else d_form
        total = 0.0
        for tr, te in splits:  # interpolation (two folds of frames) + extrapolation (near → far)
            sub = lambda m: None if dn is None else dn[m]
            theta = _fit(form, u[tr], x[tr], e[tr], delta, sub(tr))
            total += float(np.mean(maxwell_nll(e[te], np.maximum(_sigma(form, theta, u[te], x[te], delta, sub(te)), _TINY))))
        scores[form] = total / len(splits)
    best = min(scores, key=scores.get)
    best_distance = "nearest" if best in NEIGHBOURHOOD_FORMS else distance
    uses_neighbourhood = reads_neighbourhood(best, best_distance)
    if uses_neighbourhood and not cutoff > 0:
        raise LtauError(f"error model '{best}' uses the neighbourhood: give its cutoff (Å, the model's r_max)")
    x = d if best in NEIGHBOURHOOD_FORMS else d_form
    theta = _fit(best, u, x, e, delta, dn)
    # the shape of e/σ, σ from the chosen form on all atoms; kept only where held out it beats Maxwell
    shape, shape_scores = fit_error_shape(e / np.maximum(_sigma(best, theta, u, x, delta, dn), _TINY), fold)
    return SpeciesErrorModel(best, theta, delta, scores, len(e), float(cutoff) if uses_neighbourhood else 0.0, best_distance, shape, shape_scores,
                             float(np.max(x)), 0.0 if dn is None else float(np.max(dn)))  # fmt: skip


class ErrorModel:
    """σ(u, d) per species (symbols), as stored in the artifact's ``meta.json``."""

    def __init__(self, species: dict[str, SpeciesErrorModel]) -> None:
        self.species = species

    @property
    def neighbourhood_cutoff(self) -> float:
        """Å of the neighbourhood d̄ needs (0: no species' form uses it)."""
        return max((m.cutoff for m in self.species.values() if m.uses_neighbourhood), default=0.0)

    def sigma(self, u: np.ndarray, d: np.ndarray, numbers: np.ndarray, neighbourhood: np.ndarray | None = None) -> np.ndarray:
        """Maxwell scale per atom; ``numbers`` are atomic numbers (mapped to symbols once per
        species, not per atom: this runs at every fix ltau check); ``neighbourhood`` is d̄."""
        out = np.empty(len(u), dtype=np.float64)
        numbers = np.asarray(numbers)
        for z in np.unique(numbers):
            sp = symbol(int(z))
            if sp not in self.species:
                raise LtauError(f"no error model for {sp}; run 'ltau-md calibrate' with {sp} in the validation data")
            sel = numbers == z
            out[sel] = self.species[sp].sigma(u[sel], d[sel], None if neighbourhood is None else neighbourhood[sel])
        return out

    def predict(self, sigma: np.ndarray, numbers: np.ndarray, atol: float) -> tuple[np.ndarray, np.ndarray]:
        """Per atom at scale ``sigma``: the predicted error (its species' mean) and P(error ≤ atol)."""
        error, p = np.empty(len(sigma), dtype=np.float64), np.empty(len(sigma), dtype=np.float64)
        numbers = np.asarray(numbers)
        for z in np.unique(numbers):
            sel = numbers == z
            error[sel], p[sel] = self.species[symbol(int(z))].predict(sigma[sel], atol)
        return error, p

    def to_dict(self) -> dict[str, Any]:
        return {sp: m.to_dict() for sp, m in self.species.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ErrorModel:
        return cls({sp: SpeciesErrorModel.from_dict(rec) for sp, rec in d.items()})
