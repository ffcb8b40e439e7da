import numpy as np
import pytest
from conftest import atom_table, write_log

from ltau_md.error_distribution import column_quantiles
from ltau_md.error_log import AtomTable
from ltau_md.errors import ErrorLogError
from ltau_md.pvalues import p_values, training_statistics


def brute_force_p(errors, threshold):
    """Plain loops: the definition, not the implementation."""
    e, n = errors.shape
    out = np.empty(n)
    for i in range(n):
        vals = [errors[t, i] for t in range(e) if not np.isnan(errors[t, i])]
        out[i] = sum(v <= threshold[i] for v in vals) / len(vals)
    return out


def test_p_values_equal_a_brute_force_count(tmp_path, rng):
    atoms = atom_table(n_frames=6)
    errs = rng.gamma(2.0, 0.05, size=(30, len(atoms))).astype(np.float32)
    errs[rng.random(errs.shape) < 0.1] = np.nan  # atoms missed in some epochs
    log = write_log(tmp_path / "log", errs, atoms)
    for atol, rtol, window in [(0.1, 0.0, None), (0.07, 0.02, slice(5, 25)), (0.2, 0.0, slice(-10, None))]:
        thr = atol + rtol * atoms.fref_norm.astype(np.float64)
        expect = brute_force_p(errs[window or slice(None)], thr)
        np.testing.assert_allclose(p_values(log, atol, rtol, window), expect, rtol=0, atol=1e-12)


def test_ensemble_mean_and_std_align_atoms_by_id_not_by_column(tmp_path, rng):
    atoms = atom_table()
    n = len(atoms)
    errs = [rng.gamma(2.0, 0.05, size=(20, n)).astype(np.float32) for _ in range(3)]
    logs = [write_log(tmp_path / "m0", errs[0], atoms), write_log(tmp_path / "m1", errs[1], atoms)]
    # the third model saw its training atoms in another order (another loader)
    perm = rng.permutation(n)
    shuffled = AtomTable(atoms.sources, atoms.source[perm], atoms.frame[perm], atoms.atom[perm], atoms.species[perm], atoms.fref_norm[perm])
    logs.append(write_log(tmp_path / "m2", errs[2][:, perm], shuffled))
    stats = training_statistics(logs, atol=0.1)
    per_model = np.stack([brute_force_p(e, np.full(n, 0.1)) for e in errs])
    np.testing.assert_allclose(stats.p_mean, per_model.mean(0), atol=1e-12)
    np.testing.assert_allclose(stats.p_std, per_model.std(0), atol=1e-12)
    pooled = np.concatenate(errs, axis=0)
    np.testing.assert_allclose(stats.errors.mean, pooled.mean(0), rtol=1e-5)
    assert stats.n_models == 3 and stats.n_epochs == [20, 20, 20]


def test_default_atol_is_the_final_training_error(tmp_path, rng):
    atoms = atom_table()
    errs = [rng.gamma(2.0, 0.05, size=(8, len(atoms))).astype(np.float32) for _ in range(2)]
    logs = [write_log(tmp_path / f"m{i}", e, atoms) for i, e in enumerate(errs)]
    stats = training_statistics(logs)
    assert stats.atol == pytest.approx(np.mean([e[-1].mean() for e in errs]), rel=1e-6)


def test_logs_of_different_training_sets_are_refused(tmp_path, rng):
    a, b = atom_table(), atom_table(n_frames=3)
    logs = [write_log(tmp_path / "a", np.ones((2, len(a)), np.float32), a), write_log(tmp_path / "b", np.ones((2, len(b)), np.float32), b)]
    with pytest.raises(ErrorLogError, match="same training frames"):
        training_statistics(logs, atol=0.1)


def test_empty_window_is_refused(tmp_path):
    a = atom_table()
    log = write_log(tmp_path / "a", np.ones((4, len(a)), np.float32), a)
    with pytest.raises(ErrorLogError, match="selects no logged epoch"):
        training_statistics([log], atol=0.1, window=slice(10, None))


def test_column_quantiles_equal_numpy_nanquantile(rng):
    x = rng.random((37, 50))
    x[rng.random(x.shape) < 0.2] = np.nan
    levels = np.linspace(0, 1, 11)
    q, n = column_quantiles(x, levels)
    np.testing.assert_allclose(q, np.nanquantile(x, levels, axis=0).T, rtol=1e-6)
    np.testing.assert_array_equal(n, np.sum(~np.isnan(x), axis=0))


def test_error_summary_gives_p_at_any_threshold_and_quantiles(tmp_path, rng):
    atoms = atom_table(n_frames=10)
    errs = rng.gamma(3.0, 0.03, size=(200, len(atoms))).astype(np.float32)
    log = write_log(tmp_path / "log", errs, atoms)
    stats = training_statistics([log], atol=0.09)
    levels = stats.errors.levels
    for a in (0.03, 0.06, 0.09, 0.15, 0.3):
        exact = brute_force_p(errs, np.full(len(atoms), a))
        approx = stats.errors.cdf(a)
        assert np.max(np.abs(approx - exact)) <= 1.0 / (len(levels) - 1) + 1.0 / len(errs)
    np.testing.assert_allclose(stats.errors.quantile(0.5), np.quantile(errs, 0.5, axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats.errors.quantile(0.25), np.quantile(errs, 0.25, axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats.errors.mean, errs.mean(0), rtol=1e-5)
    # p at atol itself is kept exactly
    np.testing.assert_allclose(stats.p_mean, brute_force_p(errs, np.full(len(atoms), 0.09)), atol=1e-12)


def test_mixture_of_neighbours_scales_with_s(tmp_path, rng):
    atoms = atom_table()
    errs = rng.gamma(3.0, 0.03, size=(50, len(atoms))).astype(np.float32)
    stats = training_statistics([write_log(tmp_path / "log", errs, atoms)], atol=0.09)
    ids = rng.integers(0, len(atoms), size=(7, 4))
    d = stats.errors
    np.testing.assert_allclose(d.mixture_mean(ids, 2.0), 2.0 * errs.mean(0)[ids].mean(1), rtol=1e-5)
    # P(err <= x) of the s-stretched mixture = mixture CDF at x / s
    x = 0.1
    np.testing.assert_allclose(d.mixture_cdf(ids, x, 2.0), np.mean([d.cdf(x / 2.0, rows=ids[:, j]) for j in range(4)], axis=0))
    med = d.mixture_quantile(ids, 0.5, 2.0)
    np.testing.assert_allclose(d.mixture_cdf(ids, med, 2.0), 0.5, atol=1e-6)
