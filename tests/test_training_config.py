"""The nequip config ltau-md trains with: stress in the loss exactly where every frame carries one."""

import json

import pytest
import yaml
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from ltau_md.errors import LtauError
from ltau_md.nequip.training import DEFAULT_STRESS_WEIGHT, FAILED, check_training_files, default_config, train, weighted_loss


def _excluded(cfg) -> list:
    return cfg["data"]["val_dataset"]["datasets"][0]["exclude_keys"]


def test_stress_is_in_the_default_loss_only_where_every_frame_has_one(li_data, tmp_path):
    assert check_training_files([li_data["train_a"], li_data["val"]])  # make-data's MEAM frames carry it
    frames = read(li_data["val"], ":")
    frames[1].calc = SinglePointCalculator(frames[1], energy=frames[1].get_potential_energy(), forces=frames[1].get_forces())
    write(tmp_path / "mixed.xyz", frames)
    assert not check_training_files([li_data["train_a"], tmp_path / "mixed.xyz"])

    with_stress = default_config([li_data["train_a"]], [li_data["val"]], ["Li"], 3, stress_weight=1000.0)
    loss = with_stress["training_module"]["loss"]
    assert loss["_target_"] == "nequip.train.EnergyForceStressLoss" and loss["coeffs"]["stress"] == 1000.0
    assert "stress" not in _excluded(with_stress)
    without = default_config([li_data["train_a"]], [li_data["val"]], ["Li"], 3, stress_weight=0.0)
    assert without["training_module"]["loss"]["_target_"] == "nequip.train.EnergyForceLoss"
    assert "stress" in _excluded(without)  # nequip batches only frames with the same fields


def test_reweighting_keeps_the_stress_term(li_data, tmp_path):
    cfg = default_config([li_data["train_a"]], [li_data["val"]], ["Li"], 3, stress_weight=250.0)
    weighted_loss(cfg, tmp_path / "w.npz")
    metrics = {m["name"]: m for m in cfg["training_module"]["loss"]["metrics"]}
    assert set(metrics) == {"per_atom_energy_mse", "forces_weighted_mse", "stress_mse"}
    assert metrics["stress_mse"]["coeff"] == 250.0 and metrics["forces_weighted_mse"]["coeff"] == 10.0


def test_ltau_md_train_puts_stress_in_the_loss_by_default(trained):
    cfg = yaml.safe_load((trained / "seed0" / "config.yaml").read_text())
    assert cfg["training_module"]["loss"]["coeffs"]["stress"] == DEFAULT_STRESS_WEIGHT


def test_a_retry_after_a_failed_member_says_it_failed_not_interrupted(li_data, tmp_path):
    member = tmp_path / "model" / "seed0"
    member.mkdir(parents=True)
    (member / FAILED).write_text(json.dumps({"exit": 1, "message": "nequip-train failed"}))
    with pytest.raises(LtauError, match=r"an earlier 'ltau-md train' failed \(seed0; see .*train.log\).*--resume"):
        train([li_data["train_a"]], tmp_path / "model", val=[li_data["val"]], epochs=1)
