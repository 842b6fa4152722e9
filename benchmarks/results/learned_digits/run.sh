#!/bin/sh
# The learned baseline against uniform and the ILP on scikit-learn digits (small_cnn), two
# settings: size <= 2.5 bits per weight (memory-bound cost model, the default) and
# >= 7.5x faster than FiP16 with size <= 4 bits per weight (compute-bound cost model; 8x is
# outside the Hessian-pruned space of this model, which the search constructor refuses).
# Run from the repository root: sh benchmarks/results/learned_digits/run.sh
set -e
OUT=benchmarks/results/learned_digits
export OMP_NUM_THREADS=1
nice -n 10 python -m optuna_kmtpe.cli compare --dataset digits --methods uniform,ilp,learned \
  --seeds 2 --trials 4 --device cpu --out "$OUT/size-2.5bits"
SIZE4=$(python -c "import json; s=json.load(open('$OUT/size-2.5bits/setting.json')); print(s['baseline_size_mb'] * 4 / 16)")
nice -n 10 python -m optuna_kmtpe.cli compare --dataset digits --methods uniform,ilp,learned \
  --seeds 2 --trials 4 --device cpu --cost-model compute --min-speedup 7.5 --size-limit-mb "$SIZE4" \
  --checkpoint "$OUT/size-2.5bits/base_model.pt" --out "$OUT/speedup-7.5x"
