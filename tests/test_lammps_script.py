"""``ltau-md run`` leaves the script to LAMMPS: include, -var index variables, loops with
label/next/jump, if, several runs, minimize, NPT, write_restart/clear/read_restart (2 ranks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import LI_BOX

BIN = Path(sys.executable).parent

SETUP_INCLUDE = LI_BOX + """displace_atoms all random 0.05 0.05 0.05 31337 units box
pair_style nequip ${model}
pair_coeff * * Li
"""

MAIN = """
include setup.include
run 0
print "INCLUDED $(count(all)) atoms" append features.txt

# minimize: energy goes down, forces get small
variable pe0 equal $(pe)
min_style cg
minimize 0.0 1.0e-3 200 2000
print "MINIMIZE ${pe0} $(pe) $(fnorm)" append features.txt
reset_timestep 0

# a loop of runs with label/next/jump
velocity all create 600 4928459 loop geom
fix md all nvt temp 600 600 0.1
variable i loop 3
label again
  run 5
  print "LOOP $i $(step)" append features.txt
next i
jump SELF again
if "$(step) == 15" then "print 'IF true' append features.txt" else "print 'IF false' append features.txt"

# NPT changes the volume
unfix md
variable v0 equal $(vol)
fix md all npt temp 600 600 0.1 iso 20000 20000 0.5
run 20
print "NPT ${v0} $(vol)" append features.txt

# restart round trip
write_restart features.restart
clear
read_restart features.restart
pair_style nequip ${model}
pair_coeff * * Li
fix md all nvt temp 600 600 0.1
run 5
print "RESTARTED $(step) $(count(all))" append features.txt

# a -var index variable with several values drives an outer loop
label outer
print "TAG ${tag}" append features.txt
next tag
jump SELF outer
"""


def test_script_features_on_two_ranks(tmp_path, trained):
    (tmp_path / "setup.include").write_text(SETUP_INCLUDE)
    script = tmp_path / "in.features"
    script.write_text(MAIN)
    cmd = [str(BIN / "mpiexec"), "-n", "2", str(BIN / "ltau-md"), "run", str(script), "-var", "model", str(trained),
           "-var", "tag", "alpha", "beta", "-log", "features.log", "-screen", "none"]  # fmt: skip
    p = subprocess.run(cmd, cwd=tmp_path, check=False, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and p.stderr == ""  # -screen none
    assert "1 by 1 by 2 MPI processor grid" in (tmp_path / "features.log").read_text()
    lines = [ln.split() for ln in (tmp_path / "features.txt").read_text().splitlines()]
    assert lines[0] == ["INCLUDED", "54", "atoms"]
    _, pe0, pe1, fnorm = lines[1]
    assert float(pe1) < float(pe0) and float(fnorm) < 0.05
    assert lines[2:5] == [["LOOP", "1", "5"], ["LOOP", "2", "10"], ["LOOP", "3", "15"]]
    assert lines[5] == ["IF", "true"]
    _, v0, v1 = lines[6]
    assert float(v1) < float(v0)  # 20 kbar squeezes the cell
    assert lines[7] == ["RESTARTED", "40", "54"]
    assert lines[8:] == [["TAG", "alpha"], ["TAG", "beta"]]
    assert (tmp_path / "features.restart").is_file()
