#!/usr/bin/env bash
# The Fashion-MNIST comparison of issue 21 (docs/results.md), one setting per call:
#   bash benchmarks/compare_fashion_mnist.sh size OUT     # size <= 2.5 bits per weight
#   bash benchmarks/compare_fashion_mnist.sh size2 OUT    # size <= 2.0 bits per weight
#   bash benchmarks/compare_fashion_mnist.sh latency OUT  # >= 8x faster than FiP16, <= 4 bits
# METHODS="a,b c" runs only those groups (default: all three groups below); NARROW=first
# selects the narrowing rule of runs made before magnitude became the default.
# Each call runs the methods in three groups (baselines + k-means TPE first, so a run cut
# short still compares the default with the baselines); rerunning resumes (finished run
# files are skipped). The base model is benchmarks/results/fashion-mnist/base_model8.pt
# (8 float epochs, 92.37% val / 92.14% test; base_epochs.py in that folder).
set -euo pipefail
cd "$(dirname "$0")/.."
setting=${1:?size, size2 or latency}
out=${2:?output folder}
kmtpe=${KMTPE:-kmtpe}
common=(--dataset fashion-mnist --checkpoint benchmarks/results/fashion-mnist/base_model8.pt
  --trials 30 --startup 8 --epochs 1 --trial-subset 5000 --final-epochs 2 --rescore 4
  --rescore-repeats 2 --pruner none --seeds "${SEEDS:-5}" --threads 1
  --narrow "${NARROW:-magnitude}")
case "$setting" in
  size) limits=(--avg-bits 2.5) ;;
  size2) limits=(--avg-bits 2.0) ;;
  # 0.034952 MB = fmnist_resnet's 69,904 weights at 4 bits (its FiP16 size / 4)
  latency) limits=(--size-limit-mb 0.034952 --min-speedup 8) ;;
  *) echo "setting must be size, size2 or latency, got $setting" >&2; exit 2 ;;
esac
for methods in ${METHODS:-uniform,ilp,kmeans-tpe greedy,learned,tpe random}; do
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 5 "$kmtpe" compare "${common[@]}" "${limits[@]}" \
    --methods "$methods" --out "$out"
done
