"""Errors from ``ltau-md run``: one line naming the problem, nonzero exit, no traceback; a failure
on one rank ends every rank (no hang); the plugin in plain ``lmp``; no C++ compiler."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import LI_BOX

BIN = Path(sys.executable).parent

SETUP = LI_BOX


def ltau_run(cwd: Path, script: str, *args: str, ranks: int = 1, env=None, timeout: float = 120):
    path = cwd / "in.case"
    path.write_text(script)
    cmd = [str(BIN / "ltau-md"), "run", str(path), "-screen", "none", "-log", "none", *args]
    if ranks > 1:
        cmd = [str(BIN / "mpiexec"), "-n", str(ranks), *cmd]
    return subprocess.run(cmd, cwd=cwd, check=False, capture_output=True, text=True, timeout=timeout, env=env)


def assert_one_error_line(p: subprocess.CompletedProcess, *expected: str) -> None:
    out = (p.stdout + p.stderr).strip().splitlines()
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert len(out) == 1 and "Traceback" not in p.stderr, out
    assert out[0].startswith("ltau-md run: ERROR: "), out
    for text in expected:
        assert text in out[0], out[0]


CASES = {
    "missing model": ("pair_style nequip {tmp}/nowhere.ckpt\n", ["pair_style nequip", "nowhere.ckpt: no such model"]),
    "unknown species": ("pair_style nequip {model}\npair_coeff * * Mg\n", ["element Mg is not one of the model's species (Li)"]),
    "pair keyword": ("pair_style nequip {model} mode sideways\n", ["mode must be auto, domain or gathered, not 'sideways'"]),
    # fix arguments are parsed before anything else is checked: no model needed for these two
    "fix keyword": ("fix u all ltau 10 {artifact} bogus 1\n",
                    ["fix ltau: unknown keyword 'bogus'", "(in: fix u all ltau 10 ", " bogus 1)"]),
    "fix N": ("fix u all ltau ten {artifact}\n",
              ["fix ltau: N must be a positive number of steps, not 'ten'"]),
    "missing artifact": ("pair_style nequip {model}\npair_coeff * * Li\nfix u all ltau 10 {tmp}/none.ltau\n",
                         ["fix ltau:", "none.ltau: no such artifact directory"]),
    "fix before pair": ("fix u all ltau 10 {artifact}\n", ["fix ltau needs pair_style nequip defined before it"]),
    "lo auto uncalibrated": ("pair_style nequip {model}\npair_coeff * * Li\nfix u all ltau 10 {artifact}\nrun 0\n",
                             ["lo auto:", "no fitted uncertainty distribution for Li", "ltau-md calibrate"]),
    "artifact of another model": ("pair_style nequip {other}\npair_coeff * * Li\nfix u all ltau 10 {artifact} lo 0.5\n",
                                  ["fitted for model", "re-run 'ltau-md fit' for this model"]),
    "no latents at this step": (("pair_style nequip {model}\npair_coeff * * Li\npair_modify compute no\n"
                                 "fix u all ltau 10 {artifact} lo 0.5\nrun 0\n"),
                                ["fix ltau u: no latents for step 0", "pair_style nequip"]),
    "domain needs newton on": ("newton off on\npair_style nequip {model} mode domain\npair_coeff * * Li\nrun 0\n",
                               ["mode domain requires newton_pair on"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_each_error_is_one_line(tmp_path, trained, fitted, case):
    body, expected = CASES[case]
    other = Path(trained) / "seed1" / "best.ckpt"  # the ensemble's second member: same species, other weights
    script = SETUP + body.format(tmp=tmp_path, model=trained, artifact=fitted, other=other)
    assert_one_error_line(ltau_run(tmp_path, script), *expected)


def test_missing_script_and_bad_flags(tmp_path):
    p = subprocess.run([str(BIN / "ltau-md"), "run", str(tmp_path / "in.none")], check=False, capture_output=True, text=True, timeout=120)
    assert_one_error_line(p, "in.none: no such input script")
    p = subprocess.run([str(BIN / "ltau-md"), "run", "in.x", "-var", "T"], check=False, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "-var" in p.stderr


def test_no_compiler_is_one_line(tmp_path):
    env = {**os.environ, "CXX": "/nonexistent/c++", "LTAU_MD_PLUGIN_CACHE": str(tmp_path / "cache")}
    p = ltau_run(tmp_path, SETUP, env=env)
    assert_one_error_line(p, "no C++ compiler found", "CXX")


def test_python_failure_on_one_rank_ends_both(tmp_path, trained, fitted):
    """Only rank 0 writes frames: removing the dump's directory after the fix is defined makes rank
    0's callback fail at the first frame while rank 1 is fine; both ranks must stop."""
    script = SETUP + f"""
velocity all create 600 4928459 loop geom
pair_style nequip {trained}
pair_coeff * * Li
fix nve all nve
shell mkdir gone
fix u all ltau 2 {fitted} lo 1e-6 hi 1e3 dump gone/cand.xyz
shell rmdir gone
run 20
"""
    t0 = time.monotonic()
    p = ltau_run(tmp_path, script, ranks=2, timeout=60)
    assert time.monotonic() - t0 < 60
    assert_one_error_line(p, "fix ltau u: dump gone/cand.xyz: cannot write")


def test_ctrl_c_during_a_run_is_reported_as_interrupted_not_as_an_error(tmp_path, trained):
    script = SETUP + f"""
velocity all create 600 4928459 loop geom
pair_style nequip {trained}
pair_coeff * * Li
fix nve all nve
thermo 1
run 1000000
"""
    (tmp_path / "in.case").write_text(script)
    p = subprocess.Popen([str(BIN / "ltau-md"), "run", "in.case", "-screen", "none"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "Step" not in ((tmp_path / "log.lammps").exists() and (tmp_path / "log.lammps").read_text() or ""):
        time.sleep(0.2)
    time.sleep(0.5)  # inside the MD loop: SIGINT lands in a pair_style nequip callback
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (p.returncode, out, err)
    assert err.strip().splitlines() == ["ltau-md: interrupted"], err


def test_lammps_error_on_one_rank_ends_both(tmp_path, trained):
    """error->one on rank 1 only (an atom-style variable divides by zero for its atoms): LAMMPS
    does not abort in library mode, the driver must, or rank 0 waits forever."""
    script = SETUP + f"""
pair_style nequip {trained}
pair_coeff * * Li
variable inv atom 1.0/(z<5.0)
compute r all reduce max v_inv
thermo_style custom step pe c_r
run 0
"""
    t0 = time.monotonic()
    p = ltau_run(tmp_path, script, ranks=2, timeout=60)
    assert time.monotonic() - t0 < 60
    assert p.returncode != 0
    out = (p.stdout + p.stderr).strip().splitlines()
    assert out == ["ltau-md run: ERROR: Divide by 0 in variable formula"], out  # error->one: LAMMPS gives no command


def test_plugin_in_plain_lmp_says_to_use_the_driver(tmp_path, trained):
    so = subprocess.run([sys.executable, "-m", "lammps_plugin.build"], check=False, capture_output=True, text=True, timeout=300)
    assert so.returncode == 0, so.stderr
    script = tmp_path / "in.plain"
    script.write_text(f'plugin load "{so.stdout.strip()}"\n' + SETUP + f"pair_style nequip {trained}\n")
    p = subprocess.run([str(BIN / "lmp"), "-in", str(script), "-log", "none"], cwd=tmp_path, check=False, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    errors = [ln for ln in (p.stdout + p.stderr).splitlines() if "ERROR" in ln]
    assert len(errors) == 1 and "needs the ltau-md driver: run `ltau-md run SCRIPT`" in errors[0], errors
