#!/bin/bash
# Feasible-trial share and chosen speedup, before (paper space, no warm start, penalty,
# score rule) and after (the defaults). Tiny budgets; CPU, 1 thread. From the repo root:
#   bash benchmarks/results/space-repair/run.sh
set -u
R=benchmarks/results/space-repair
PY="nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=$PWD /work/main/.venv/bin/python -m optuna_kmtpe.cli"
OLD="--space-rule paper --no-warm-start --infeasible penalty --choice-rule score"
COMMON="--methods kmeans-tpe,random --trials 10 --epochs 1 --seeds 2 --rescore 3 --final-epochs 1"
for ds in digits mnist5k; do
  case $ds in
    digits) D="--dataset digits --checkpoint benchmarks/results/compare-digits-2.5b/base_model.pt"; SIZE4=0.01908;;
    mnist5k) D="--dataset mnist-5k --checkpoint benchmarks/results/compare-mnist5k-2.5b/base_model.pt"; SIZE4=0.030344;;
  esac
  for lim in size2.5 speed8; do
    case $lim in
      size2.5) L="--avg-bits 2.5";;
      speed8) L="--min-speedup 8 --size-limit-mb $SIZE4";;
    esac
    for v in after before; do
      X=""; [ $v = before ] && X="$OLD"
      M="--methods kmeans-tpe,random"; [ $v = after ] && M="--methods uniform,kmeans-tpe,random"
      echo "== $ds $lim $v $(date -u +%T)"
      $PY compare $D $L $COMMON $M $X --out $R/$ds-$lim-$v > $R/$ds-$lim-$v.log 2>&1 || echo "FAILED rc=$?"
    done
  done
done
echo "== done $(date -u +%T)"
