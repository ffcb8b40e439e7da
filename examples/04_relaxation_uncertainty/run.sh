#!/usr/bin/env bash
# Uncertainty along a relaxation: a Li-Mg model and its calibrated LTAU artifact, a LAMMPS
# minimization of a vacancy-cluster LiMg cell started far from its minimum with fix ltau checking
# every iteration, then the initial and maximum uncertainty against the final true force error.
#
#   bash examples/04_relaxation_uncertainty/run.sh [WORKDIR]     (default ./relaxation, ./relaxation_tiny with SIZE=tiny)
#   SIZE=tiny bash examples/04_relaxation_uncertainty/run.sh     (what CI runs)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="${1:-relaxation${SIZE:+_$SIZE}}"  # tiny and default runs in directories of their own
if [ -n "$(ls -A "$work" 2>/dev/null)" ]; then
  echo "run.sh: $work already holds a run of this example; remove it or give another WORKDIR" >&2
  exit 2
fi
if [ "${SIZE:-full}" = tiny ]; then
  frames=8; every=20; equilibrate=200; epochs=3; features=8
else
  frames=60; every=20; equilibrate=3000; epochs=40; features=16
fi
mkdir -p "$work"
cd "$work"

ltau-md make-data --system LiMg --frames "$frames" --every "$every" --equilibrate "$equilibrate" --seed 1 -o train.xyz
ltau-md make-data --system LiMg --frames $((frames / 4 + 2)) --every "$every" --equilibrate "$equilibrate" --seed 2 -o val.xyz
ltau-md train --data train.xyz --val val.xyz --epochs "$epochs" --num-features "$features" -o model
ltau-md fit --model model -o limg.ltau
ltau-md calibrate limg.ltau --data val.xyz

ltau-md run "$here/in.relax" -var model model -var artifact limg.ltau -log log.relax -screen none
python "$here/report.py" --model model --log log.relax --dump relaxed.dump -o relax_trajectory.png
