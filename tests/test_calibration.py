import numpy as np
import pytest
from scipy import stats

from ltau_md.calibration import (
    calibrate_groups,
    calibration_curve,
    dispersion,
    fit_scale,
    miscalibration_area,
    sharpness,
)


def calibrated_sample(n, atol, s_true, rng, spread=0.6):
    """Atoms with predicted p and errors such that P(error ≤ atol·s_true) = p exactly."""
    p = rng.uniform(0.02, 0.98, n)
    v = rng.uniform(0, 1, n)
    err = atol * s_true * np.exp(spread * (stats.norm.ppf(v) - stats.norm.ppf(p)))
    return p, err


def test_miscalibration_area_by_hand():
    assert miscalibration_area(np.array([0.5]), np.array([0.5])) == pytest.approx(0.0)
    # curve (0,0)→(0.5,0)→(1,1): triangle of base 1, height 0.5 below the diagonal
    assert miscalibration_area(np.array([0.5]), np.array([0.0])) == pytest.approx(0.25)
    # crossing: (0,0)→(0.25,0.5)→(0.75,0.5)→(1,1)
    got = miscalibration_area(np.array([0.25, 0.75]), np.array([0.5, 0.5]))
    assert got == pytest.approx(2 * 0.5 * 0.25 * 0.25 + 2 * 0.5 * 0.25 * 0.25)


def test_calibrated_predictions_lie_on_the_diagonal(rng):
    p, err = calibrated_sample(50_000, 0.1, 1.0, rng)
    curve = calibration_curve(p, err, atol=0.1)
    np.testing.assert_allclose(curve.observed, curve.predicted, atol=0.02)
    assert curve.area < 0.01 and curve.ece < 0.01
    assert curve.counts.sum() == 50_000


@pytest.mark.parametrize("s_true", [0.5, 1.0, 2.0, 4.0])
def test_fitted_scale_recovers_a_known_stretch(rng, s_true):
    p, err = calibrated_sample(20_000, 0.1, s_true, rng)
    assert fit_scale(p, err, 0.1) == pytest.approx(s_true, rel=0.05)


def test_scale_fitted_per_species(rng):
    p1, e1 = calibrated_sample(10_000, 0.1, 1.0, rng)
    p2, e2 = calibrated_sample(10_000, 0.1, 3.0, rng)
    groups = np.array(["Li"] * 10_000 + ["Mg"] * 10_000)
    res = calibrate_groups(np.r_[p1, p2], np.r_[e1, e2], np.r_[e1, e2], 0.1, groups)
    assert res["Li"].scale == pytest.approx(1.0, rel=0.05)
    assert res["Mg"].scale == pytest.approx(3.0, rel=0.05)
    assert res["Mg"].area < res["Mg"].area_unscaled
    assert res["Mg"].n_atoms == 10_000


def test_sharpness_and_dispersion():
    u = np.array([1.0, 2.0, 3.0])
    assert sharpness(u) == pytest.approx(np.sqrt(14 / 3))
    assert dispersion(u) == pytest.approx(1.0 / 2.0)
    assert dispersion(np.full(10, 0.3)) == pytest.approx(0.0)


def test_bins_hold_equal_counts_by_default_and_equal_widths_on_request(rng):
    p = rng.beta(5, 1, 10_000)  # most atoms near p = 1
    e = rng.gamma(2, 0.05, 10_000)
    by_count = calibration_curve(p, e, 0.1)
    assert len(by_count.counts) == 10 and by_count.counts.min() >= 900
    by_width = calibration_curve(p, e, 0.1, binning="width")
    assert by_width.counts.max() > 3000 and by_width.counts.min() < 100
    np.testing.assert_allclose(np.sort(by_width.predicted), by_width.predicted)
    with pytest.raises(Exception, match="binning"):
        calibration_curve(p, e, 0.1, binning="log")
