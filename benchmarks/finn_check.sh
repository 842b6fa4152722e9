#!/usr/bin/env bash
# FINN's own check of `kmtpe export --format qonnx` (see benchmarks/finn_check.py).
#
#   bash benchmarks/finn_check.sh [OUT_DIR] [EPOCHS]
#
# 1. FINN_VENV (default /work/venvs/finn): a virtual environment with finn-plus from PyPI, made
#    here when missing (its pins conflict with this package's, so it is separate).
# 2. This package's environment (KMTPE_PYTHON, default: python3 on PATH) trains and exports the
#    default search run's configuration and a residual model (benchmarks/toolchain_models.py).
# 3. The FINN environment converts, streamlines and executes them (benchmarks/finn_check.py);
#    the JSON lands in OUT_DIR/finn_check.json.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-/tmp/kmtpe_finn_check}"
epochs="${2:-10}"
finn_venv="${FINN_VENV:-/work/venvs/finn}"
kmtpe_python="${KMTPE_PYTHON:-python3}"
if [ ! -x "$finn_venv/bin/python" ]; then
  python3 -m venv "$finn_venv"
  "$finn_venv/bin/pip" install finn-plus
fi
mkdir -p "$out"
OMP_NUM_THREADS=1 PYTHONPATH="$here/..${PYTHONPATH:+:$PYTHONPATH}" \
  "$kmtpe_python" "$here/toolchain_models.py" --out "$out" --epochs "$epochs"
OMP_NUM_THREADS=1 "$finn_venv/bin/python" "$here/finn_check.py" "$out" small_cnn small_cnn_keep small_cnn_pixels \
  resnet20 resnet20_pixels \
  --json "$out/finn_check.json"
