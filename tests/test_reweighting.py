"""Per-atom loss weights from LTAU confidence (seed 002 §4.2) in nequip training."""

import csv

import numpy as np
import pytest

from ltau_md.errors import LtauError
from ltau_md.reweighting import loss_weights, read_weights


def test_weight_formulas_of_the_paper_normalised_to_mean_one():
    mu, sigma = np.array([0.1, 0.5, 0.9]), np.array([0.0, 0.1, 0.05])
    easy = loss_weights(mu, sigma, "easy")
    hard = loss_weights(mu, sigma, "hard")
    ref_easy = np.exp(2.0 * (mu + sigma))
    ref_hard = np.exp(4.5 * (1 - mu + sigma))
    np.testing.assert_allclose(easy, ref_easy / ref_easy.mean())
    np.testing.assert_allclose(hard, ref_hard / ref_hard.mean())
    assert easy.argmax() == 2 and hard.argmax() == 0
    np.testing.assert_allclose(loss_weights(mu, sigma, "hard", lam=1.0), np.exp(1 - mu + sigma) / np.exp(1 - mu + sigma).mean())
    with pytest.raises(LtauError, match="easy, hard"):
        loss_weights(mu, sigma, "medium")


@pytest.mark.slow
def test_weighted_force_loss_uses_each_atoms_own_weight(li_data, fitted, tmp_path):
    """Full batch: the logged training loss term equals Σ w_i |ΔF_i|² / 3N with the error log's
    |ΔF_i| of the same step and the weights file's w_i for the same atom ids."""
    pytest.importorskip("nequip")
    from conftest import TINY_MODEL, ltau_md

    from ltau_md.error_log import AtomTable, ErrorLog

    out = tmp_path / "rw"
    ltau_md("train", "--data", li_data["train_a"], li_data["train_b"], "--val", li_data["val"], "--epochs", 2,
            "--batch-size", 64, *TINY_MODEL, "--reweight", "hard", "--weights-from", fitted, "-o", out)
    w = read_weights(out / "loss_weights.npz")
    assert np.mean(w["weight"]) == pytest.approx(1.0) and w["weight"].std() > 0
    log = ErrorLog(out / "seed0" / "ltau_errors")
    n = len(w["weight"])
    weight_table = AtomTable(tuple(map(str, w["sources"])), w["source"], w["frame"], w["atom"], np.zeros(n), np.zeros(n))
    rows = log.atoms.columns_of(weight_table)  # for each logged atom, its row in the weights file
    assert np.all(rows >= 0)
    weight_per_column = w["weight"][rows]
    with open(next((out / "seed0").glob("lightning_logs/version_*/metrics.csv"))) as fh:
        logged = [float(r["train_loss_step/forces_weighted_mse"]) for r in csv.DictReader(fh) if r.get("train_loss_step/forces_weighted_mse")]
    assert len(logged) == 2
    for epoch, value in enumerate(logged):
        eps = log.epoch_errors(epoch).astype(np.float64)
        assert value == pytest.approx(np.sum(weight_per_column * eps**2) / (3 * log.n_atoms), rel=1e-4)
