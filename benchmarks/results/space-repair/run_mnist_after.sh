#!/bin/bash
# mnist-5k, size <= 2.5 bits, defaults (after the speed reference was added to the re-scores);
# uniform-seed0.json copied from mnist5k-size2.5-afternoref (same uniform code and command).
#   bash benchmarks/results/space-repair/run_mnist_after.sh
R=benchmarks/results/space-repair
nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=$PWD /work/main/.venv/bin/python -m optuna_kmtpe.cli \
  compare --dataset mnist-5k --checkpoint benchmarks/results/compare-mnist5k-2.5b/base_model.pt \
  --avg-bits 2.5 --trials 10 --epochs 1 --seeds 1 --rescore 3 --final-epochs 1 \
  --methods uniform,kmeans-tpe --out $R/mnist5k-size2.5-after > $R/mnist5k-size2.5-after.log 2>&1
