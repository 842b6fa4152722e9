#!/usr/bin/env bash
# Whole-path check of kmtpe search on the full Fashion-MNIST with small settings (1 thread).
# Ran from results_fmnist/ (cd to the repository root); its result.json, results.csv,
# space.json and best_config.json were copied to benchmarks/results/fashion-mnist/search_check/.
cd "$(dirname "$0")/../../.."
/usr/bin/time -v nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=$PWD /work/main/.venv/bin/python -m optuna_kmtpe.cli \
  search --dataset fashion-mnist --threads 1 --base-epochs 1 --epochs 1 --final-epochs 1 \
  --trials 4 --startup 4 --rescore 0 --no-progress --out results_fmnist/search_check
