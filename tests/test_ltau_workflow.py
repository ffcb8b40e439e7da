"""train → fit → calibrate → predict, and the calculator, on tiny Li models."""

import json

import numpy as np
import pytest

pytest.importorskip("nequip")

from ase.io import read  # noqa: E402
from conftest import ltau_md  # noqa: E402

from ltau_md.artifact import Artifact  # noqa: E402
from ltau_md.error_log import ErrorLog  # noqa: E402
from ltau_md.error_model import FORMS, MAXWELL_SHAPE  # noqa: E402
from ltau_md.nequip.calculator import LtauCalculator  # noqa: E402
from ltau_md.nequip.model import NequIPModel  # noqa: E402
from ltau_md.nequip.predict import predict  # noqa: E402
from ltau_md.nequip.training import member_error_logs  # noqa: E402
from ltau_md.run_cutoffs import run_cutoffs  # noqa: E402
from ltau_md.training_set import training_frames  # noqa: E402


def test_train_dir_holds_m_members_with_error_logs(trained):
    manifest = json.loads((trained / "ensemble.json").read_text())
    assert [m["name"] for m in manifest["members"]] == ["seed0", "seed1"]
    for log_dir in member_error_logs(trained):
        log = ErrorLog(log_dir)
        assert log.epochs.tolist() == [0, 1, 2] and not np.isnan(np.asarray(log.errors())).any()


def test_artifact_p_values_equal_a_count_over_the_logs(trained, fitted):
    art = Artifact.load(fitted)
    logs = [ErrorLog(p) for p in member_error_logs(trained)]
    atol = np.mean([np.asarray(log.errors())[-1].astype(np.float64).mean() for log in logs])
    assert art.atol == pytest.approx(atol, rel=1e-6)
    per_model = np.stack([(np.asarray(log.errors()) <= art.atol).mean(axis=0) for log in logs])
    np.testing.assert_allclose(art.train["p_mean"], per_model.mean(0), atol=1e-12)
    np.testing.assert_allclose(art.train["p_std"], per_model.std(0), atol=1e-12)
    assert art.meta["n_models"] == 2 and art.meta["model"]["fingerprint"] == NequIPModel.load(trained).fingerprint


def test_predicting_the_training_frames_with_k1_returns_each_atoms_own_p(trained, fitted, tmp_path):
    from ase.io import write

    art = Artifact.load(fitted)
    frames = training_frames(ErrorLog(member_error_logs(trained)[0]).atoms)
    write(tmp_path / "train_frames.xyz", frames)
    ltau_md("predict", fitted, tmp_path / "train_frames.xyz", "--k", 1, "-o", tmp_path / "out.xyz")
    out = read(tmp_path / "out.xyz", ":")
    p = np.concatenate([a.arrays["ltau_p"] for a in out])
    np.testing.assert_allclose(p, art.train["p_mean"], atol=1e-8)  # extxyz keeps 8 decimals
    np.testing.assert_allclose(np.concatenate([a.arrays["ltau_distance"] for a in out]), 0.0, atol=1e-3)
    # in memory: exactly the stored p of each atom
    preds = predict(NequIPModel.load(trained), art, frames, k=1)
    np.testing.assert_array_equal(np.concatenate([x.p for x in preds]), art.train["p_mean"])


def test_calculator_equals_predict(trained, fitted, li_data, tmp_path):
    frames = read(li_data["val"], ":")
    calc = LtauCalculator(trained, fitted)
    preds = predict(calc.model, calc.artifact, frames, batch_size=1)
    ltau_md("predict", fitted, li_data["val"], "-o", tmp_path / "val_pred.xyz")
    written = read(tmp_path / "val_pred.xyz", ":")
    for atoms, pred, out in zip(frames, preds, written):
        atoms.calc = calc
        np.testing.assert_array_equal(atoms.get_forces(), pred.model.forces)
        assert atoms.get_potential_energy() == pred.model.energy
        np.testing.assert_array_equal(calc.results["ltau_error"], pred.error)
        np.testing.assert_array_equal(calc.results["ltau_p"], pred.p)
        # the CLI file: same numbers to the 8 decimals extxyz keeps (and float32 batching noise)
        np.testing.assert_allclose(out.get_forces(), pred.model.forces, atol=1e-5)
        np.testing.assert_allclose(out.arrays["ltau_error"], pred.error, atol=1e-6)
        np.testing.assert_allclose(out.arrays["force_error"], np.linalg.norm(out.get_forces() - out.arrays["ref_forces"], axis=1), atol=1e-6)


def test_calibrate_stores_scale_and_distributions_and_prints_the_table(fitted, li_data, tmp_path):
    art_dir = tmp_path / "cal.ltau"
    import shutil

    shutil.copytree(fitted, art_dir)
    p = ltau_md("calibrate", art_dir, "--data", li_data["val"], "--n", 10000, "--plots", tmp_path / "plots")
    assert "Spearman" in p.stdout and "N = 10000" in p.stdout and "Li" in p.stdout
    art = Artifact.load(art_dir)
    assert art.scale("Li") > 0
    assert art.distribution("Li", "error").family == "maxwell"
    assert art.distribution("Li", "uncertainty").family in ("maxwell", "gamma", "gengamma")
    assert art.distribution("Li", "uncertainty_calibrated").family in ("maxwell", "gamma", "gengamma")
    rep = art.meta["calibration"]["species"]["Li"]
    assert rep["error_model"]["form"] in FORMS and art.resolve_predictor(None) == "calibrated"
    fitted_shape = rep["error_model"]["shape"] != list(MAXWELL_SHAPE)  # Maxwell unless held out a fit beats it
    assert ("Li: error shape generalised gamma" in p.stdout) == fitted_shape
    for predictor in ("ltau", "calibrated"):
        r = rep[predictor]
        assert -1 <= r["spearman_rho"] <= 1 and 0 <= r["miscalibration_area"] <= 0.5
        assert run_cutoffs(art, ["Li"], 10000, predictor=predictor).lo["Li"] == pytest.approx(r["uncertainty_cutoff"])
    assert rep["ltau"]["miscalibration_area"] <= rep["miscalibration_area_unscaled"] + 1e-12
    assert "calibrated" in p.stdout and "ltau" in p.stdout
    for name in ("calibration_Li.png", "distributions_Li.png", "f1_map_Li.png", "parity_Li.png", "f1_map_Li_ltau.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 1000


def test_predict_output_keeps_the_reference_as_the_reference_and_is_never_trained_on(fitted, li_data, tmp_path, capsys):
    from ltau_app.cli import main
    from ltau_md.errors import LtauError
    from ltau_md.nequip.training import check_training_files
    from ltau_md.user_input import read_frames, reference_forces

    out = tmp_path / "val_pred.xyz"
    assert main(["predict", str(fitted), str(li_data["val"]), "-o", str(out)]) == 0
    # calibrate (and predict again) read predict's output: its reference is ref_forces, not the model's forces
    for orig, pred in zip(read(li_data["val"], ":"), read_frames(out)):
        np.testing.assert_allclose(reference_forces(pred), orig.get_forces(), atol=1e-7)
        assert np.abs(pred.get_forces() - orig.get_forces()).max() > 1e-3
    with pytest.raises(LtauError, match="'ltau-md predict' output"):  # nequip-train would read the model's forces
        check_training_files([out])
    capsys.readouterr()
    assert main(["predict", str(fitted), str(out), "-o", str(out)]) == 2
    assert "that is the input file" in capsys.readouterr().err


def test_an_artifact_used_with_another_model_is_a_one_line_error(trained, fitted, li_data, tmp_path):
    p = ltau_md("predict", fitted, li_data["val"], "--model", trained / "seed1" / "best.ckpt", "-o", tmp_path / "x.xyz", check=False)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "ltau-md fit" in lines[0] and "fitted for model" in lines[0]
    assert not (tmp_path / "x.xyz").exists()


def test_fit_refuses_data_that_are_not_the_training_frames(trained, li_data, tmp_path):
    p = ltau_md("fit", "--model", trained, "--data", li_data["val"], "-o", tmp_path / "bad.ltau", check=False)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "--data" in p.stderr


def test_an_interrupted_train_is_refused_until_resumed_which_keeps_the_finished_models(li_data, tmp_path, capsys):
    from conftest import TINY_MODEL

    from ltau_app.cli import main

    out = tmp_path / "m"
    argv = ["train", "--data", str(li_data["train_a"]), "--val", str(li_data["val"]), "--epochs", "1", "--batch-size", "2",
            *TINY_MODEL, "-o", str(out)]
    assert main([*argv, "--ensemble", "1"]) == 0
    # what Ctrl-C during the second of two models leaves: the first finished, the second part-way, no manifest
    (out / "ensemble.json").unlink()
    (out / "seed1").mkdir()
    (out / "seed1" / "train.log").write_text("epoch 0 ...\n")
    first = (out / "seed0" / "best.ckpt").read_bytes()
    capsys.readouterr()
    assert main([*argv, "--ensemble", "2"]) == 2
    assert "repeat its command with --resume" in capsys.readouterr().err
    assert main(["fit", "--model", str(out), "--data", str(li_data["train_a"]), "-o", str(tmp_path / "x.ltau")]) == 2
    assert "did not finish" in capsys.readouterr().err and not (tmp_path / "x.ltau").exists()
    assert main([*argv, "--ensemble", "2", "--lr", "0.05", "--resume"]) == 2  # not what seed0 was trained with
    assert "trained with other data or settings" in capsys.readouterr().err
    assert main([*argv, "--ensemble", "2", "--resume"]) == 0
    assert (out / "seed0" / "best.ckpt").read_bytes() == first and (out / "seed1" / "best.ckpt").is_file()
    assert [m["name"] for m in json.loads((out / "ensemble.json").read_text())["members"]] == ["seed0", "seed1"]
    assert main([*argv, "--ensemble", "2", "--resume"]) == 2 and "nothing to resume" in capsys.readouterr().err
