#!/usr/bin/env bash
# A long Li-Mg NPT melt under mpiexec: reference data -> NequIP ensemble with error logging ->
# LTAU artifact -> 2-rank LAMMPS melt with fix ltau harvesting into a queue -> diverse selection
# -> MEAM relabelling -> new training frames.
#
#   bash examples/01_limg_npt_melt/run.sh [WORKDIR]        (default ./limg_npt_melt, ./limg_npt_melt_tiny with SIZE=tiny)
#   SIZE=tiny bash examples/01_limg_npt_melt/run.sh        (what CI runs: minutes, not hours)
#   RANKS=4 ...                                            (MPI ranks for the melt, default 2)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="${1:-limg_npt_melt${SIZE:+_$SIZE}}"  # tiny and default runs in directories of their own
if [ -n "$(ls -A "$work" 2>/dev/null)" ]; then
  echo "run.sh: $work already holds a run of this example; remove it or give another WORKDIR" >&2
  exit 2
fi
ranks="${RANKS:-2}"
if [ "${SIZE:-full}" = tiny ]; then
  frames=8; every=20; equilibrate=200; epochs=3; ensemble=1; features=8
  ramp_frames=4; ramp_every=100
  md_equilibrate=100; ramp=300; hold=300
else
  frames=101; every=10; equilibrate=5000; epochs=40; ensemble=2; features=16
  ramp_frames=61; ramp_every=150
  md_equilibrate=2000; ramp=10000; hold=20000
fi
mkdir -p "$work"
cd "$work"

# 600 K frames, and a MEAM NPT heating ramp to the melt's 1400 K: without frames at the densities
# the melt passes through, the model's equation of state is untrained there and the NPT box can
# expand into a gas (forces in a gas are small, so fix ltau cannot see that)
ltau-md make-data --system LiMg --frames "$frames" --every "$every" --equilibrate "$equilibrate" --seed 1 -o train.xyz
ltau-md make-data --system LiMg --temperature 600 --temperature-end 1400 --frames "$ramp_frames" --every "$ramp_every" \
    --equilibrate "$equilibrate" --seed 3 -o train_ramp.xyz
ltau-md make-data --system LiMg --frames $((frames / 4 + 2)) --every "$every" --equilibrate "$equilibrate" --seed 2 -o val.xyz
ltau-md make-data --system LiMg --temperature 600 --temperature-end 1400 --frames $((ramp_frames / 4 + 1)) \
    --every $((ramp_every * 4)) --equilibrate "$equilibrate" --seed 4 -o val_ramp.xyz
ltau-md train --data train.xyz train_ramp.xyz --val val.xyz val_ramp.xyz --ensemble "$ensemble" --epochs "$epochs" \
    --num-features "$features" -o model
ltau-md fit --model model -o limg.ltau
ltau-md calibrate limg.ltau --data val.xyz val_ramp.xyz --plots calibration

mpiexec -n "$ranks" ltau-md run "$here/in.limg_melt" -var model model -var artifact limg.ltau \
    -var equilibrate "$md_equilibrate" -var ramp "$ramp" -var hold "$hold" -log log.melt -screen none
ltau-md trajectory log.melt --queue melt.candidates.db -o melt_trajectory.png

ltau-md candidates list melt.candidates.db | tail -3
ltau-md candidates select melt.candidates.db --max 10
ltau-md relabel melt.candidates.db --calculator meam --selected
ltau-md candidates export melt.candidates.db --selected -o new_frames.xyz
echo "next: ltau-md train --data train.xyz train_ramp.xyz new_frames.xyz --val val.xyz val_ramp.xyz -o model2   (in $work)"
