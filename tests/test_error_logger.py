"""The nequip-train callback: every training atom, every epoch, the right atom, the right weights."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nequip")

from ltau_md.error_log import ErrorLog  # noqa: E402
from ltau_md.nequip.model import NequIPModel  # noqa: E402
from ltau_md.nequip.training import default_config, member_config, run_member  # noqa: E402
from ltau_md.training_set import training_frames  # noqa: E402
from ltau_md.user_input import reference_forces  # noqa: E402

TINY = {"r_max": 4.0, "num_layers": 2, "num_features": 8, "l_max": 1}


def run(li_data, run_dir: Path, epochs: int, *, mode="train_step", lr=0.01, batch_size=2, files=("train_a", "train_b"),
        epoch_checkpoints=False, resume=None, max_epochs=None):
    cfg = default_config([li_data[f] for f in files], [li_data["val"]], ["Li"], epochs, batch_size, lr, TINY)
    if epoch_checkpoints:
        cfg["trainer"]["callbacks"].append({
            "_target_": "lightning.pytorch.callbacks.ModelCheckpoint", "dirpath": str(run_dir / "epochs"),
            "filename": "{epoch}", "save_top_k": -1, "every_n_epochs": 1,
        })
    cfg = member_config(cfg, run_dir, seed=0, epochs=max_epochs, log_mode=mode, log_dtype="float32")
    run_member(cfg, run_dir, "test", epochs, resume=resume)
    return ErrorLog(run_dir / "ltau_errors")


def recomputed_errors(model: NequIPModel, log: ErrorLog) -> np.ndarray:
    frames = training_frames(log.atoms)
    res = model.evaluate(frames)
    return np.concatenate([np.linalg.norm(r.forces - reference_forces(a), axis=1) for a, r in zip(frames, res)])


def raw_weights(ckpt: Path) -> NequIPModel:
    """The un-averaged weights a checkpoint holds (what the next training step's forward uses)."""
    import hydra
    import torch
    from nequip.utils.global_state import set_global_state

    set_global_state()
    ck = torch.load(ckpt, map_location="cpu", weights_only=False)
    cls = hydra.utils.get_class(ck["hyper_parameters"]["info_dict"]["training_module"]["_target_"])
    lm = cls.load_from_checkpoint(str(ckpt), map_location="cpu", weights_only=False)
    gm = lm.model["sole_model"].eval()
    for p in gm.parameters():
        p.requires_grad_(False)
    return NequIPModel(gm, ckpt, "float32")


def test_epoch_end_errors_equal_errors_recomputed_from_the_checkpoint_of_the_same_epoch(li_data, tmp_path):
    log = run(li_data, tmp_path / "r", 3, mode="epoch_end", epoch_checkpoints=True)
    assert log.epochs.tolist() == [0, 1, 2]
    errors = np.asarray(log.errors())
    assert not np.isnan(errors).any()
    for t in range(3):
        model = NequIPModel.load(tmp_path / "r" / "epochs" / f"epoch={t}.ckpt")  # EMA weights, as saved
        np.testing.assert_allclose(errors[t], recomputed_errors(model, log), atol=2e-5)


def test_train_step_errors_are_the_forward_of_each_step(li_data, tmp_path):
    """Full batch: epoch t's one step is scored by the raw weights the epoch t−1 checkpoint holds."""
    log = run(li_data, tmp_path / "r", 3, batch_size=64, epoch_checkpoints=True)
    errors = np.asarray(log.errors())
    for t in (1, 2):
        model = raw_weights(tmp_path / "r" / "epochs" / f"epoch={t - 1}.ckpt")
        np.testing.assert_allclose(errors[t], recomputed_errors(model, log), atol=2e-5)


def test_atom_ids_are_stable_across_two_training_files_and_a_shuffled_loader(li_data, tmp_path):
    """lr = 0 keeps the weights fixed, so every shuffled epoch must log the same value per atom id."""
    log = run(li_data, tmp_path / "r", 2, lr=0.0, batch_size=2)
    assert sorted(Path(s).name for s in log.atoms.sources) == ["train_a.xyz", "train_b.xyz"]
    assert len(np.unique(log.atoms.source)) == 2
    errors = np.asarray(log.errors())
    np.testing.assert_allclose(errors[0], errors[1], atol=1e-6)
    model = NequIPModel.load(tmp_path / "r" / "last.ckpt")
    np.testing.assert_allclose(errors[0], recomputed_errors(model, log), atol=2e-5)
    # the atom table names the true file and frame: its |F_ref| match the file
    frames = training_frames(log.atoms)
    np.testing.assert_allclose(np.concatenate([np.linalg.norm(reference_forces(a), axis=1) for a in frames]), log.atoms.fref_norm, rtol=1e-6)


def test_restart_from_a_checkpoint_replaces_the_rerun_epochs(li_data, tmp_path):
    log = run(li_data, tmp_path / "r", 3, epoch_checkpoints=True)
    first = np.asarray(log.errors()).copy()
    log = run(li_data, tmp_path / "r", 3, resume=tmp_path / "r" / "epochs" / "epoch=0.ckpt")
    assert log.epochs.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(np.asarray(log.errors())[0], first[0])
    log = run(li_data, tmp_path / "r", 5, max_epochs=5, resume=tmp_path / "r" / "last.ckpt")
    assert log.epochs.tolist() == [0, 1, 2, 3, 4]
    assert not np.isnan(np.asarray(log.errors())).any()
