#!/bin/bash
# mnist-5k, reduced for time (CPU shared by several jobs): k-means TPE, seed 0 only.
#   bash benchmarks/results/space-repair/run_mnist.sh
set -u
R=benchmarks/results/space-repair
PY="nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=$PWD /work/main/.venv/bin/python"
D="--dataset mnist-5k --checkpoint benchmarks/results/compare-mnist5k-2.5b/base_model.pt"
OLD="--space-rule paper --no-warm-start --infeasible penalty --choice-rule score"
COMMON="--trials 10 --epochs 1 --seeds 1 --rescore 3 --final-epochs 1"
echo "== mnist5k size2.5 before $(date -u +%T)"
$PY -m optuna_kmtpe.cli compare $D --avg-bits 2.5 $COMMON --methods kmeans-tpe $OLD \
  --out $R/mnist5k-size2.5-before > $R/mnist5k-size2.5-before.log 2>&1 || echo "FAILED rc=$?"
echo "== mnist5k speed8 after $(date -u +%T)"
$PY -m optuna_kmtpe.cli compare $D --min-speedup 8 --size-limit-mb 0.030344 $COMMON \
  --methods uniform,kmeans-tpe --out $R/mnist5k-speed8-after > $R/mnist5k-speed8-after.log 2>&1 \
  || echo "FAILED rc=$?"
echo "== mnist5k speed8 before (trial shares only) $(date -u +%T)"
$PY $R/before_share.py mnist-5k benchmarks/results/compare-mnist5k-2.5b/base_model.pt 0.030344 8 \
  kmeans-tpe 1 > $R/before_share_mnist5k_speed8.txt 2>&1
echo "== done $(date -u +%T)"
