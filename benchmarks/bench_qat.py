"""CPU benchmark of quantisation-aware training and of the offline search, side by side.

1. Training step time (forward + backward + Adam step, batch 128, 3x32x32) of ResNet-20 in
   float and fake-quantised (this package's layers: per-channel weights, per-tensor
   activations, torch's fake-quantize ops) at 4 bits and at a mixed 8/6/4/3/2 assignment.
   The variants are timed in interleaved rounds and the median per step is reported.
   Goal: fake-quantised <= 1.5x float.
2. Wall time and peak resident memory of a 40-trial ``kmtpe search`` on the offline default
   (scikit-learn digits, small_cnn) with k-means TPE, TPE and random search, each in its own
   process (peak RSS: ``VmHWM`` on Linux), all starting from one base model.

Run (1 thread, as the numbers in docs/search.md):

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_qat.py --out benchmarks/results

Prints a Markdown table and writes ``bench_qat.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any


def _step_times(rounds: int, steps: int, batch: int) -> dict[str, list[float]]:
    import torch
    import torch.nn.functional as F

    from optuna_kmtpe._compress.quant import quantize_model
    from optuna_kmtpe._zoo.models import build_model
    from optuna_kmtpe._zoo.models import layer_names

    torch.manual_seed(0)
    n = len(layer_names("resnet20", 10))
    mixed = [8] + [6, 4, 3, 2] * ((n - 2) // 4) + [4] * ((n - 2) % 4) + [8]
    models = {
        "float": build_model("resnet20", 10),
        "fake-quant 4-bit": quantize_model(build_model("resnet20", 10), 4),
        "fake-quant mixed 8/6/4/3/2": quantize_model(build_model("resnet20", 10), mixed),
    }
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}

    def step(name: str) -> None:
        model, opt = models[name], opts[name]
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()

    for name in models:  # warm-up
        for _ in range(3):
            step(name)
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(rounds):
        for name in models:
            t0 = time.perf_counter()
            for _ in range(steps):
                step(name)
            times[name].append((time.perf_counter() - t0) / steps)
    return times


def _search_child(sampler: str, checkpoint: str, out: str, trials: int, startup: int) -> None:
    import logging

    from optuna_kmtpe._runs.search_run import run_search
    from optuna_kmtpe._runs.search_run import SearchConfig

    logging.getLogger("optuna_kmtpe").setLevel(logging.WARNING)

    t0 = time.perf_counter()
    result = run_search(
        SearchConfig(
            sampler=sampler,
            checkpoint=checkpoint,
            trials=trials,
            startup=startup,
            final_epochs=0,
            out=out,
            progress=False,
        ),
    )
    wall = time.perf_counter() - t0
    peak_mb = _peak_rss_mb()
    print(
        json.dumps(
            {
                "sampler": sampler,
                "wall_s": wall,
                "peak_rss_mb": peak_mb,
                "best_val_accuracy": result.val_accuracy,
                "best_size_mb": result.size_mb,
                "best_trial": result.trial,
                "n_trials": result.n_trials,
            }
        )
    )


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MB.

    Linux: ``VmHWM`` of ``/proc/self/status``, which starts afresh at ``exec``; the
    ``ru_maxrss`` of ``getrusage`` survives ``exec`` and so would report the parent's peak
    (1.6 GB from the ResNet-20 timing) for every child. Elsewhere: ``ru_maxrss``.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def _train_base(path: str) -> None:
    import torch

    from optuna_kmtpe._search.checkpoint import save_checkpoint
    from optuna_kmtpe._zoo.data import load_dataset
    from optuna_kmtpe._zoo.models import build_model
    from optuna_kmtpe._zoo.train import train

    torch.manual_seed(0)
    data = load_dataset("digits", seed=0)
    model = build_model("small_cnn", 10)
    train(model, data, epochs=20, batch_size=64, seed=0)
    save_checkpoint(model, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--startup", type=int, default=10)
    parser.add_argument("--child", nargs=3, metavar=("SAMPLER", "CHECKPOINT", "OUT"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.child:
        sampler, checkpoint, out = args.child
        _search_child(sampler, checkpoint, out, trials=args.trials, startup=args.startup)
        return

    times = _step_times(args.rounds, args.steps, args.batch)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows: list[dict[str, Any]] = []
    print(f"ResNet-20 training step, batch {args.batch}, {torch.get_num_threads()} thread(s):")
    print("| variant | median s/step | vs float |\n|---|---|---|")
    for name, value in med.items():
        print(f"| {name} | {value:.4f} | {value / med['float']:.2f}x |")
        rows.append({"variant": name, "median_s": value, "ratio": value / med["float"]})

    searches: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = str(Path(tmp) / "base.pt")
        _train_base(ckpt)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        for sampler in ("kmeans-tpe", "tpe", "random"):
            cmd = [sys.executable, __file__, "--trials", str(args.trials)]
            cmd += ["--startup", str(args.startup), "--child", sampler, ckpt, f"{tmp}/{sampler}"]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            searches.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"\n{args.trials}-trial search, scikit-learn digits (offline default), small_cnn:")
    print("| sampler | wall s | peak RSS MB | best val acc | its size MB |\n|---|---|---|---|---|")
    for s in searches:
        print(
            f"| {s['sampler']} | {s['wall_s']:.1f} | {s['peak_rss_mb']:.0f} | "
            f"{s['best_val_accuracy']:.4f} | {s['best_size_mb']:.5f} |"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "step_times": rows,
        "raw_step_times": times,
        "searches": searches,
    }
    (out / "bench_qat.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
