"""Wall time of ``kmtpe search``'s first two phases under four thread settings.

Phases (as ``kmtpe search`` on its offline default, scikit-learn digits, ``small_cnn``):
the base model's training (20 epochs, batch 64) and the Hessian traces (2 batches of 64,
up to 50 Hutchinson samples per layer). Each setting runs in a fresh process, the settings
alternate ``--repeats`` times; the 1-minute load average is printed before each run.

Settings:

* ``default``: nothing set (torch's default: one thread per core).
* ``set1``: ``torch.set_num_threads(1)`` right after importing torch.
* ``env1``: ``OMP_NUM_THREADS=1`` in the environment before torch loads, plus ``set1``.
* ``set2``: ``torch.set_num_threads(2)``.

Run::

    PYTHONPATH=. python benchmarks/threads_measure.py --repeats 3 --out docs/results/threads.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any


SETTINGS = ("default", "set1", "env1", "set2")

_CHILD = r"""
import json, os, sys, time
import torch
setting = sys.argv[1]
if setting in ("set1", "env1"):
    torch.set_num_threads(1)
elif setting == "set2":
    torch.set_num_threads(2)
import itertools
from optuna_kmtpe import hessian_traces
from optuna_kmtpe._zoo import train as T
from optuna_kmtpe._zoo.data import load_dataset
from optuna_kmtpe._zoo.models import build_model
data = load_dataset("digits", None, seed=0)
torch.manual_seed(0)
net = build_model("small_cnn", data.num_classes)
t0 = time.perf_counter()
T.train(net, data, epochs=20, max_lr=0.01, batch_size=64, seed=0, device="cpu")
t1 = time.perf_counter()
batches = list(itertools.islice(
    T.batches(data, "train", 64, shuffle=True, generator=torch.Generator().manual_seed(0),
              device=torch.device("cpu")), 2))
import torch.nn.functional as F
hessian_traces(net, F.cross_entropy, batches, max_samples=50, seed=0, progress=False)
t2 = time.perf_counter()
print(json.dumps({"setting": setting, "threads": torch.get_num_threads(),
                  "base_s": t1 - t0, "traces_s": t2 - t1}))
"""


def _run(setting: str) -> dict[str, Any]:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
    if setting == "env1":
        env["OMP_NUM_THREADS"] = "1"
    load = os.getloadavg()[0]
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, setting],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    row: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    row["load1"] = load
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args()
    rows = []
    for _ in range(args.repeats):
        for setting in SETTINGS:
            row = _run(setting)
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"cpus": os.cpu_count(), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
