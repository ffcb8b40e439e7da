import json
import shutil

import numpy as np
import pytest
from conftest import synthetic_training

from ltau_md.artifact import Artifact, index_file
from ltau_md.cutoffs import fit_maxwell
from ltau_md.errors import ArtifactError, LtauError
from ltau_md.run_cutoffs import run_cutoffs


@pytest.fixture
def built(tmp_path):
    stats, desc, errs = synthetic_training(tmp_path)
    art = Artifact.create(stats, desc, model_path="model.ckpt", model_fingerprint="ab" * 32, k=3)
    art.save(tmp_path / "m.ltau")
    return art, stats, desc, tmp_path / "m.ltau"


def one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_round_trip_is_exact(built):
    art, stats, desc, path = built
    again = Artifact.load(path)
    assert again.meta == json.loads((path / "meta.json").read_text())
    assert set(again.train) == set(art.train)
    for name, arr in art.train.items():
        np.testing.assert_array_equal(again.train[name], arr, err_msg=name)
    q = desc[::7] + 0.01
    a, b = art.query(q, stats.atoms.species[::7]), again.query(q, stats.atoms.species[::7])
    for field in ("p", "p_std", "error", "distance", "neighbors"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_training_atoms_queried_with_k1_get_their_own_p(built):
    art, stats, desc, _ = built
    u = art.query(desc, stats.atoms.species, k=1)
    np.testing.assert_array_equal(u.neighbors[:, 0], np.arange(len(desc)))
    np.testing.assert_array_equal(u.p, stats.p_mean)
    np.testing.assert_allclose(u.error, stats.errors.mean, rtol=1e-6)
    assert np.all(u.distance == 0)


def test_neighbours_come_from_the_atoms_own_species(built):
    art, stats, desc, _ = built
    u = art.query(desc, stats.atoms.species, k=3)
    assert np.all(stats.atoms.species[u.neighbors] == stats.atoms.species[:, None])


def test_prediction_is_mean_over_k_neighbours_scaled_by_species_s(built):
    art, stats, desc, _ = built
    art.set_calibration(scale={"Li": 2.0, "Mg": 0.5})
    sp = stats.atoms.species
    u = art.query(desc + 0.05, sp, k=3)
    s = np.where(sp == 3, 2.0, 0.5)
    np.testing.assert_allclose(u.p, stats.p_mean[u.neighbors].mean(1))
    np.testing.assert_allclose(u.error, s * stats.errors.mean[u.neighbors].mean(1), rtol=1e-6)
    np.testing.assert_array_equal(u.scale, s)


def test_unknown_species_is_a_one_line_error(built):
    art, _, desc, _ = built
    with pytest.raises(ArtifactError) as exc:
        art.query(desc[:2], ["Li", "Na"])
    assert "Na" in one_line(exc) and "training species" in one_line(exc)


def test_calibration_is_stored_in_meta_json(built):
    art, stats, _, path = built
    art = Artifact.load(path)
    fit = fit_maxwell(np.random.default_rng(0).rayleigh(size=500) + 0.01)
    art.set_calibration(scale={"Li": 1.3}, distributions={"Li": {"uncertainty": fit}})
    art.save_meta()
    again = Artifact.load(path)
    assert again.scale("Li") == 1.3 and again.distribution("Li", "uncertainty") == fit
    with pytest.raises(ArtifactError, match="calibrate"):
        run_cutoffs(again, again.species, 1000)  # Mg has no fit yet


def test_model_mismatch_is_a_one_line_error(built):
    art = Artifact.load(built[3])
    art.check_model("model.ckpt", "ab" * 32)
    with pytest.raises(ArtifactError) as exc:
        art.check_model("other.ckpt", "cd" * 32)
    assert "other.ckpt" in one_line(exc) and "ltau-md fit" in one_line(exc)


def test_saving_over_an_artifact_replaces_it_whole_or_not_at_all(built, monkeypatch):
    art, stats, desc, path = built
    before = (path / "train.npz").read_bytes()
    import ltau_md.artifact as mod

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(mod.atomic_write, "save_npz", boom)
    with pytest.raises(OSError):
        art.save(path)
    assert (path / "train.npz").read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".m.ltau")) == []
    Artifact.load(path)


def _rewrite_meta(path, edit):
    meta = json.loads((path / "meta.json").read_text())
    edit(meta)
    (path / "meta.json").write_text(json.dumps(meta))


def _restamp(path, name):
    """Update meta.json's checksum for a file edited on purpose (to reach the check behind it)."""
    from ltau_md.artifact import sha256_of

    _rewrite_meta(path, lambda m: m["files"].__setitem__(name, {"sha256": sha256_of(path / name), "bytes": (path / name).stat().st_size}))


def _replace_train_array(path, name, value):
    with np.load(path / "train.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays[name] = value
    np.savez(path / "train.npz", **arrays)
    _restamp(path, "train.npz")


CORRUPTIONS = {
    "missing meta.json": (lambda p, o: (p / "meta.json").unlink(), "meta.json", "missing"),
    "meta.json not JSON": (lambda p, o: (p / "meta.json").write_text("{oops"), "meta.json", "not valid JSON"),
    "meta.json newer version": (lambda p, o: _rewrite_meta(p, lambda m: m.update(format_version=2)), "meta.json", "not supported"),
    "meta.json key missing": (lambda p, o: _rewrite_meta(p, lambda m: m.pop("atol")), "meta.json", "'atol' is missing"),
    "meta.json bad atol": (lambda p, o: _rewrite_meta(p, lambda m: m.update(atol=-1.0)), "meta.json", "'atol' must be a positive"),
    "meta.json scale species": (lambda p, o: _rewrite_meta(p, lambda m: m["scale"].pop("Mg")), "meta.json", "'scale' species"),
    "meta.json bad distribution": (
        lambda p, o: _rewrite_meta(p, lambda m: m["distributions"]["Li"].update(uncertainty={"family": "weibull", "params": {}})),
        "meta.json",
        "weibull",
    ),
    "missing train.npz": (lambda p, o: (p / "train.npz").unlink(), "train.npz", "missing"),
    "train.npz from another artifact": (lambda p, o: shutil.copy(o / "train.npz", p / "train.npz"), "train.npz", "checksum differs"),
    "truncated index": (
        lambda p, o: (p / index_file("Li")).write_bytes((p / index_file("Li")).read_bytes()[:100]),
        index_file("Li"),
        "checksum differs",
    ),
    "index from another artifact": (lambda p, o: shutil.copy(o / index_file("Mg"), p / index_file("Mg")), index_file("Mg"), "checksum differs"),
    "garbage index, checksum restamped": (
        lambda p, o: ((p / index_file("Li")).write_bytes(b"\0" * 64), _restamp(p, index_file("Li"))),
        index_file("Li"),
        "not a readable FAISS index",
    ),
    "foreign index, checksum restamped": (
        lambda p, o: (shutil.copy(o / index_file("Mg"), p / index_file("Mg")), _restamp(p, index_file("Mg"))),
        index_file("Mg"),
        "atoms",
    ),
    "pickled array": (
        lambda p, o: _replace_train_array(p, "p_mean", np.array([{"x": 1}] * 3, dtype=object)),
        "train.npz",
        "pickle",
    ),
    "short p_mean": (lambda p, o: _replace_train_array(p, "p_mean", np.zeros(5)), "train.npz", "'p_mean' has 5 rows"),
    "p outside [0,1]": (
        lambda p, o: _replace_train_array(p, "p_mean", np.full(600, 1.5)),
        "train.npz",
        "outside [0, 1]",
    ),
    "array missing": (
        lambda p, o: (np.savez(p / "train.npz", p_mean=np.zeros(3)), _restamp(p, "train.npz")),
        "train.npz",
        "'p_std' is missing",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_each_corrupted_or_mismatched_file_gives_a_one_line_error(tmp_path, built, case):
    _, _, _, path = built
    other_stats, other_desc, _ = synthetic_training(tmp_path / "other", n_frames=20, seed=9)
    other = Artifact.create(other_stats, other_desc, k=3).save(tmp_path / "other.ltau")
    corrupt, filename, message = CORRUPTIONS[case]
    corrupt(path, other)
    with pytest.raises(ArtifactError) as exc:
        Artifact.load(path)
    msg = one_line(exc)
    assert filename in msg and message in msg, msg


def test_k_beyond_the_smallest_species_is_refused(tmp_path):
    stats, desc, _ = synthetic_training(tmp_path, n_frames=2, n_atoms=3)
    with pytest.raises(LtauError, match=r"--k 1000: must be between 1 and the \d+ (Li|Mg) training atoms; give --k at most"):
        Artifact.create(stats, desc, k=1000)


def test_the_calibrated_predictor_grows_with_latent_distance_where_plain_ltau_cannot(built):
    from scipy import stats as sps

    from ltau_md.error_model import MEAN_PER_SIGMA, ErrorModel, SpeciesErrorModel, maxwell_cdf, shape_mean

    art, stats, desc, path = built
    sp = stats.atoms.species
    with pytest.raises(ArtifactError, match="no calibrated error model; run 'ltau-md calibrate"):
        art.query(desc, sp, k=3, predictor="calibrated")
    assert art.resolve_predictor(None) == "ltau"
    additive = SpeciesErrorModel("additive", np.log([1.2, 0.5, 0.01]), 0.0, {}, 100)
    art.set_calibration(error_model=ErrorModel({"Li": additive, "Mg": additive}))
    art.save_meta()
    art = Artifact.load(path)
    assert art.resolve_predictor(None) == "calibrated"
    near, far = art.query(desc + 1e-3, sp, k=3), art.query(desc + 10.0, sp, k=3)
    plain_far = art.query(desc + 10.0, sp, k=3, predictor="ltau")
    for u in (near, far):
        sigma = 1.2 * u.mixture + 0.5 * u.distance[:, 0] + 0.01
        np.testing.assert_allclose(u.error, MEAN_PER_SIGMA * sigma)
        np.testing.assert_allclose(u.p, maxwell_cdf(art.atol, sigma))
    assert far.error.min() > near.error.max()  # out of domain the error grows with d ...
    assert plain_far.error.max() <= art.errors.mean.max() * art.scales_for(art.species_numbers(sp)).max() + 1e-9  # ... LTAU's cannot
    np.testing.assert_allclose(art.query(desc + 10.0, sp, k=3, scale=2.0).error, 2 * far.error)
    # a fitted error shape (Li only): its mean and CDF give Li's error and p, Mg keeps Maxwell's
    shape = (2.0, 1.6, 1.1)
    heavy = SpeciesErrorModel("additive", additive.theta, 0.0, {}, 100, shape=shape)
    art.set_calibration(error_model=ErrorModel({"Li": heavy, "Mg": additive}))
    u = art.query(desc + 1e-3, sp, k=3)
    sigma = 1.2 * u.mixture + 0.5 * u.distance[:, 0] + 0.01
    li = art.species_numbers(sp) == 3
    assert li.any() and (~li).any()
    np.testing.assert_allclose(u.error[li], shape_mean(shape) * sigma[li])
    np.testing.assert_allclose(u.p[li], sps.gengamma.cdf(art.atol / sigma[li], shape[0], shape[1], scale=shape[2]))
    np.testing.assert_allclose(u.error[~li], MEAN_PER_SIGMA * sigma[~li])
    np.testing.assert_allclose(u.p[~li], maxwell_cdf(art.atol, sigma[~li]))


def test_an_error_model_with_a_bad_form_is_a_one_line_artifact_error(built):
    import json

    _, _, _, path = built

    meta = json.loads((path / "meta.json").read_text())
    meta["error_model"] = {"Li": {"form": "cubic", "theta": [0.0]}}
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match=r"meta.json: error_model.Li: error model must name a form among"):
        Artifact.load(path)
