import numpy as np
import pytest
from scipy import stats

from ltau_md.cutoffs import (
    FittedDistribution,
    classification_scores,
    f1_map,
    fit_maxwell,
    fit_uncertainty,
    statistical_cutoff,
    statistical_cutoffs_by_species,
)
from ltau_md.errors import LtauError


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("sigma", [0.02, 0.1, 1.3])
def test_maxwell_sigma_recovered_within_2_percent_from_1e4_samples(seed, sigma):
    x = stats.maxwell(scale=sigma).rvs(10_000, random_state=seed)
    fit = fit_maxwell(x)
    assert fit.family == "maxwell"
    assert abs(fit.params["scale"] / sigma - 1) < 0.02
    assert fit.ks_pvalue > 1e-3


def test_maxwell_fit_of_norms_of_gaussian_vectors():
    """seed 003: error components Gaussian ⇒ magnitudes Maxwell with the same σ."""
    v = np.random.default_rng(0).normal(scale=0.05, size=(10_000, 3))
    assert fit_maxwell(np.linalg.norm(v, axis=1)).params["scale"] == pytest.approx(0.05, rel=0.02)


GENERATORS = {
    "maxwell": [stats.maxwell(scale=0.1), stats.maxwell(scale=2.0)],
    "gamma": [stats.gamma(3.0, scale=0.05), stats.gamma(1.2, scale=0.3), stats.gamma(8.0, scale=0.01)],
    "gengamma": [stats.gengamma(2.0, 0.5, scale=0.02), stats.gengamma(4.0, 3.0, scale=0.1), stats.gengamma(0.8, 2.5, scale=1.0)],
}


@pytest.mark.parametrize("family", sorted(GENERATORS))
@pytest.mark.parametrize("seed", range(3))
def test_ks_choice_returns_the_generating_family(family, seed):
    for dist in GENERATORS[family]:
        x = dist.rvs(10_000, random_state=seed)
        chosen, fits = fit_uncertainty(x)
        assert [f.family for f in fits] == ["maxwell", "gamma", "gengamma"]
        assert chosen.family == family, (dist.args, [(f.family, f.ks_pvalue) for f in fits])


def test_when_no_family_passes_the_smallest_ks_statistic_wins():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.gamma(2, 0.1, 20_000), rng.gamma(50, 0.1, 20_000)])  # bimodal
    chosen, fits = fit_uncertainty(x)
    assert all(f.ks_pvalue < 0.05 for f in fits)
    assert chosen.ks_statistic == min(f.ks_statistic for f in fits)


@pytest.mark.parametrize("n", [10, 1000, 10**6, 10**9])
def test_cutoff_is_where_the_cdf_reaches_1_minus_1_over_n(n):
    x = stats.gamma(3.0, scale=0.05).rvs(5000, random_state=1)
    res = statistical_cutoff(x, n)
    assert res.fit.frozen().sf(res.cutoff) == pytest.approx(1.0 / n, rel=1e-6)
    err = statistical_cutoff(x, n, kind="error")
    assert err.fit.family == "maxwell"
    assert stats.maxwell(scale=err.fit.params["scale"]).sf(err.cutoff) == pytest.approx(1.0 / n, rel=1e-6)


def test_one_false_alarm_expected_in_n_in_distribution_samples():
    rng = np.random.default_rng(3)
    dist = stats.maxwell(scale=0.1)
    cutoff = statistical_cutoff(dist.rvs(20_000, random_state=rng), 10_000, kind="error").cutoff
    alarms = [np.sum(dist.rvs(10_000, random_state=rng) > cutoff) for _ in range(200)]
    assert 0.7 < np.mean(alarms) < 1.4


def test_species_are_fitted_separately():
    rng = np.random.default_rng(0)
    li = stats.maxwell(scale=0.05).rvs(4000, random_state=rng)
    mg = stats.maxwell(scale=0.2).rvs(3000, random_state=rng)
    res = statistical_cutoffs_by_species(np.concatenate([li, mg]), np.array([3] * 4000 + [12] * 3000), 1000, kind="error")
    assert list(res) == ["Li", "Mg"]
    assert res["Li"].fit.params["scale"] == pytest.approx(0.05, rel=0.03)
    assert res["Mg"].fit.params["scale"] == pytest.approx(0.2, rel=0.03)
    with pytest.raises(LtauError, match="must match"):
        statistical_cutoffs_by_species(li, [3, 3], 10)


@pytest.mark.parametrize("bad, message", [([0.1, np.nan, 0.2], "NaN"), ([0.1, -0.2, 0.3], ">"), ([1.0], "at least 2")])
def test_bad_values_are_refused(bad, message):
    with pytest.raises(LtauError, match=message):
        statistical_cutoff(np.array(bad), 100)


def test_fitted_distribution_round_trips_through_json_dict():
    fit = fit_uncertainty(stats.gamma(2.0, scale=0.1).rvs(2000, random_state=0))[0]
    again = FittedDistribution.from_dict(fit.to_dict())
    assert again == fit and again.cutoff(1000) == fit.cutoff(1000)
    with pytest.raises(LtauError):
        FittedDistribution.from_dict({"family": "gamma", "params": {"a": 1.0}})


def test_classification_scores_by_hand():
    errors = np.array([0.1, 0.2, 1.5, 2.0, 0.3, 1.2])
    unc = np.array([0.1, 0.9, 0.8, 0.7, 0.2, 0.1])
    s = classification_scores(errors, unc, error_cutoff=1.0, uncertainty_cutoff=0.5)
    # flagged: 1, 2, 3; high: 2, 3, 5 → tp 2, fp 1, fn 1
    assert (s["tp"], s["fp"], s["fn"], s["tn"]) == (2, 1, 1, 2)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3) and s["f1"] == pytest.approx(2 / 3)
    none = classification_scores(errors, unc, error_cutoff=10.0, uncertainty_cutoff=10.0)
    assert none["precision"] == 0 and none["recall"] == 0 and none["f1"] == 0


def test_f1_map_equals_direct_scores_at_every_grid_point():
    rng = np.random.default_rng(0)
    e = rng.gamma(2.0, 0.1, 3000)
    u = e * rng.lognormal(0, 0.5, 3000)
    fmap = f1_map(e, u, 12, 15)
    for r, ec in enumerate(fmap.error_cutoffs):
        for c, uc in enumerate(fmap.uncertainty_cutoffs):
            s = classification_scores(e, u, ec, uc)
            assert fmap.precision[r, c] == pytest.approx(s["precision"])
            assert fmap.recall[r, c] == pytest.approx(s["recall"])
            assert fmap.f1[r, c] == pytest.approx(s["f1"])


def test_best_recall_at_precision_is_the_highest_recall_any_lo_reaches_at_that_precision():
    from ltau_md.cutoffs import best_recall_at_precision

    # 4 high-error atoms (error ratio > 1) predicted 2.0, 1.5, 0.6, 0.3 × lo; 4 others predicted 1.2, 0.5, 0.4, 0.2
    e = np.array([2.0, 2.0, 2.0, 2.0, 0.5, 0.5, 0.5, 0.5])
    u = np.array([2.0, 1.5, 0.6, 0.3, 1.2, 0.5, 0.4, 0.2])
    assert best_recall_at_precision(e, u, 0.5) == (1.0, pytest.approx(0.05))  # everything flagged: 4/8 = 0.5, the lowest lo
    # at precision 0.55, all four high atoms first come in with the low atom at 0.2 left out (4/7): lo 0.2
    recall, lo = best_recall_at_precision(e, u, 0.55)
    assert recall == 1.0 and lo == pytest.approx(0.2)
    recall, lo = best_recall_at_precision(e, u, 0.8)
    assert recall == 0.5 and 1.2 <= lo < 1.5  # only 2.0 and 1.5 flagged: precision 1
    assert best_recall_at_precision(e, np.zeros(8) + 0.01, 0.9) == (0.0, pytest.approx(float("nan"), nan_ok=True))
