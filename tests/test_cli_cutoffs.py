import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from ltau_app.cli import main

LTAU_MD = Path(sys.executable).parent / "ltau-md"  # the console script of this environment


@pytest.fixture
def values(tmp_path):
    rng = np.random.default_rng(0)
    u = np.concatenate([stats.gamma(3.0, scale=0.05).rvs(3000, random_state=rng), stats.gamma(2.0, scale=0.2).rvs(2000, random_state=rng)])
    np.save(tmp_path / "u.npy", u)
    np.save(tmp_path / "sp.npy", np.array(["Li"] * 3000 + ["Mg"] * 2000))
    np.save(tmp_path / "z.npy", np.array([3] * 3000 + [12] * 2000))
    np.save(tmp_path / "err.npy", stats.maxwell(scale=0.1).rvs(4000, random_state=rng))
    return tmp_path


def run(capsys, *argv):
    rc = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_has_family_params_ks_pvalue_cutoff_n(values, capsys):
    rc, out, _ = run(capsys, "cutoffs", values / "err.npy", "--n", 5000, "--kind", "error", "--json")
    assert rc == 0
    d = json.loads(out)
    assert {"family", "params", "ks_pvalue", "cutoff", "n"} <= set(d)
    assert d["family"] == "maxwell" and d["n"] == 5000
    assert stats.maxwell(scale=d["params"]["scale"]).sf(d["cutoff"]) == pytest.approx(1 / 5000, rel=1e-6)


@pytest.mark.parametrize("species_file", ["sp.npy", "z.npy"])
def test_species_gives_one_object_per_species(values, capsys, species_file):
    rc, out, _ = run(capsys, "cutoffs", values / "u.npy", "--n", 100000, "--species", values / species_file, "--json")
    assert rc == 0
    d = json.loads(out)
    assert sorted(d) == ["Li", "Mg"]
    assert d["Li"]["family"] == "gamma" and d["Mg"]["n"] == 100000
    assert d["Mg"]["cutoff"] > d["Li"]["cutoff"]


def test_table_names_the_chosen_family_and_cutoff(values, capsys):
    rc, out, _ = run(capsys, "cutoffs", values / "u.npy", "--n", 1000)
    assert rc == 0
    assert "cutoff" in out and "maxwell" in out and "gengamma" in out and "*" in out


def test_plot_is_written(values, capsys):
    rc, _, _ = run(capsys, "cutoffs", values / "u.npy", "--n", 1000, "--species", values / "sp.npy", "--plot", values / "fit.png")
    assert rc == 0
    assert (values / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_error_vectors_are_reduced_to_magnitudes(values, capsys):
    v = np.random.default_rng(1).normal(scale=0.05, size=(5000, 3))
    np.save(values / "vec.npy", v)
    rc, out, _ = run(capsys, "cutoffs", values / "vec.npy", "--n", 100, "--kind", "error", "--json")
    assert rc == 0 and json.loads(out)["params"]["scale"] == pytest.approx(0.05, rel=0.03)


def _bad_inputs(tmp):
    np.save(tmp / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp / "two_d.npy", np.ones((4, 4)))
    np.save(tmp / "neg.npy", np.array([0.1, -0.5, 0.2]))
    (tmp / "text.npy").write_text("hello")
    np.save(tmp / "short_sp.npy", np.array([3, 3]))
    return [
        (["nothere.npy", "--n", "10"], "no such file"),
        (["obj.npy", "--n", "10"], "pickle"),
        (["two_d.npy", "--n", "10"], "shape"),
        (["neg.npy", "--n", "10"], "neg.npy"),
        (["text.npy", "--n", "10"], "not a .npy"),
        (["u.npy", "--n", "1"], "--n 1"),
        (["u.npy", "--n", "10", "--species", "short_sp.npy"], "short_sp.npy"),
        (["u.npy"], "--n"),
        (["u.npy", "--n", "10", "--kind", "energy"], "--kind"),
    ]


def test_each_bad_input_is_one_error_line_with_status_2(values):
    for argv, needle in _bad_inputs(values):
        argv = [str(values / a) if a.endswith(".npy") else a for a in argv]
        p = subprocess.run([str(LTAU_MD), "cutoffs", *argv], capture_output=True, text=True)
        assert p.returncode == 2, argv
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0] and "error" in lines[0], (argv, p.stderr)
        assert p.stdout == ""


def test_argument_errors_are_one_line_too(values):
    p = subprocess.run([sys.executable, "-m", "ltau_app.cli", "cutoffs", str(values / "u.npy")], capture_output=True, text=True)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "--n" in p.stderr


def test_console_script_is_installed(values):
    p = subprocess.run([str(LTAU_MD), "cutoffs", str(values / "u.npy"), "--n", "100", "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "cutoff" in json.loads(p.stdout)


def test_values_without_spread_are_a_one_line_error(tmp_path, capsys):
    np.save(tmp_path / "c.npy", np.r_[np.ones(49), 1.0000001])  # the Gamma likelihood fit divides by the spread
    for kind in ("uncertainty", "error"):
        rc, out, err = run(capsys, "cutoffs", tmp_path / "c.npy", "--n", 100, "--kind", kind)
        assert rc == 2 and out == "" and "all 50 values are (nearly) the same" in err and len(err.splitlines()) == 1
