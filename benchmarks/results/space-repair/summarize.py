"""Table of the space-repair runs (run.sh): per dataset, limit and variant, the share of
trials that trained a feasible configuration and the chosen speedup against uniform's.

    cd benchmarks/results/space-repair && python summarize.py > summary.md
"""

from __future__ import annotations

import json
from pathlib import Path


ROOT = Path(__file__).parent
print(
    "| data | limit | variant | method | runs | trained feasible / trials | repaired | "
    "reused | warm start | val (chosen) | speedup (chosen) | uniform speedup |"
)
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for out in sorted(p for p in ROOT.iterdir() if p.is_dir()):
    data, limit, variant = out.name.split("-")
    runs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    uniform = [r for r in runs if r["method"] == "uniform"]
    u_speed = f"{uniform[0]['speedup']:.2f}" if uniform else "-"
    for method in ("kmeans-tpe", "random"):
        rs = [r for r in runs if r["method"] == method]
        if not rs:
            continue
        feas = sum(r["n_trained_feasible"] for r in rs) if "n_trained_feasible" in rs[0] else None
        trials = sum(r.get("n_trials", 0) for r in rs)
        speed = ", ".join(f"{r['speedup']:.2f}" for r in rs)
        val = ", ".join(f"{r['val_accuracy']:.3f}" for r in rs)
        print(
            f"| {data} | {limit} | {variant} | {method} | {len(rs)} | "
            f"{feas}/{trials} ({100 * feas / trials:.0f}%) | "
            f"{sum(r.get('n_repaired', 0) for r in rs)} | "
            f"{sum(r.get('n_reused', 0) for r in rs)} | "
            f"{sum(r.get('n_warm_start', 0) for r in rs)} | {val} | {speed} | {u_speed} |"
        )
