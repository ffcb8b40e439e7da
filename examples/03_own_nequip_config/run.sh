#!/usr/bin/env bash
# Your own nequip config with ltau-md's error-log callback: nequip-train as usual, then
# ltau-md fit / calibrate on its checkpoint and error log, and a LAMMPS run with fix ltau.
#
#   bash examples/03_own_nequip_config/run.sh [WORKDIR]   (default ./own_nequip_config, ./own_nequip_config_tiny with SIZE=tiny)
#   SIZE=tiny bash examples/03_own_nequip_config/run.sh   (what CI runs)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="${1:-own_nequip_config${SIZE:+_$SIZE}}"  # tiny and default runs in directories of their own
if [ -n "$(ls -A "$work" 2>/dev/null)" ]; then
  echo "run.sh: $work already holds a run of this example; remove it or give another WORKDIR" >&2
  exit 2
fi
if [ "${SIZE:-full}" = tiny ]; then
  frames=8; equilibrate=200; epochs=3; steps=100
else
  frames=60; equilibrate=5000; epochs=40; steps=5000
fi
mkdir -p "$work"
cd "$work"
cp "$here/li_nequip.yaml" .
ltau-md make-data --system Li --atoms 54 --frames "$frames" --every 20 --equilibrate "$equilibrate" --seed 1 -o train.xyz
ltau-md make-data --system Li --atoms 54 --frames $((frames / 4 + 2)) --every 20 --equilibrate "$equilibrate" --seed 2 -o val.xyz

# plain nequip: the config (absolute directory, as hydra wants) with the callback in it
nequip-train -cp "$PWD" -cn li_nequip.yaml ++trainer.max_epochs="$epochs" > nequip_train.log 2>&1
ls nequip_run/best.ckpt nequip_run/ltau_errors/meta.json

# the artifact from the checkpoint and the callback's error log (training files: as logged)
ltau-md fit --model nequip_run/best.ckpt --logs nequip_run/ltau_errors -o own.ltau
ltau-md calibrate own.ltau --data val.xyz

# LAMMPS with the shipped Li NVT input (copied out of the package to run and edit)
ltau-md inputs -o inputs --force
ltau-md run inputs/in.li_nvt -var model nequip_run/best.ckpt -var artifact own.ltau -var steps "$steps" -log log.li_nvt -screen none
# a soft halt ends the run early: show it (and LAMMPS's timing line) rather than hide it
grep -E "^fix ltau .*(halt|WARNING)|^Loop time" log.li_nvt || true
tail -1 log.li_nvt
