#!/usr/bin/env bash
# The Python API: a model and its artifact from the command line, then ASE MD with LtauCalculator
# and statistical_cutoff on its per-atom errors (md_with_uncertainty.py), with a plot.
#
#   bash examples/02_python_api/run.sh [WORKDIR]        (default ./python_api, ./python_api_tiny with SIZE=tiny)
#   SIZE=tiny bash examples/02_python_api/run.sh        (what CI runs)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="${1:-python_api${SIZE:+_$SIZE}}"  # tiny and default runs in directories of their own
if [ -n "$(ls -A "$work" 2>/dev/null)" ]; then
  echo "run.sh: $work already holds a run of this example; remove it or give another WORKDIR" >&2
  exit 2
fi
if [ "${SIZE:-full}" = tiny ]; then
  frames=8; equilibrate=200; epochs=3; ensemble=1; features=8; steps=60
else
  frames=60; equilibrate=5000; epochs=40; ensemble=2; features=16; steps=600
fi
mkdir -p "$work"
cd "$work"
ltau-md make-data --system Li --atoms 54 --frames "$frames" --every 20 --equilibrate "$equilibrate" --seed 1 -o train.xyz
ltau-md make-data --system Li --atoms 54 --frames $((frames / 4 + 2)) --every 20 --equilibrate "$equilibrate" --seed 2 -o val.xyz
ltau-md train --data train.xyz --val val.xyz --ensemble "$ensemble" --epochs "$epochs" --num-features "$features" -o model
ltau-md fit --model model -o li.ltau
ltau-md calibrate li.ltau --data val.xyz
python "$here/md_with_uncertainty.py" --model model --artifact li.ltau --start val.xyz --steps "$steps" -o md_uncertainty.png
