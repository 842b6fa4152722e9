"""Trial-epoch cost: fmnist_resnet fake-quantised (4 and 2 bits, random weights: the time does
not depend on them), 1 epoch on the 10,000-image trial subset, then val scoring; 1 thread."""

import time

import torch

from optuna_kmtpe._compress.quant import quantize_model
from optuna_kmtpe._zoo import train as T
from optuna_kmtpe._zoo.data import load_dataset
from optuna_kmtpe._zoo.data import train_subset
from optuna_kmtpe._zoo.models import build_model


torch.set_num_threads(1)
data = load_dataset("fashion-mnist", seed=0)
sub = train_subset(data, 10_000, 0)
for bits in (4, 2):
    q = quantize_model(build_model("fmnist_resnet", 10), [bits] * 6)
    w, c = time.perf_counter(), time.process_time()
    T.train(q, sub, epochs=1, max_lr=0.001, batch_size=64, seed=0, device="cpu")
    w1, c1 = time.perf_counter(), time.process_time()
    T.evaluate(q, data, "val", device="cpu")
    w2, c2 = time.perf_counter(), time.process_time()
    print(
        f"{bits} bits: train epoch on 10,000 images: CPU {c1 - c:.1f} s (wall {w1 - w:.1f} s); "
        f"val scoring 10,000 images: CPU {c2 - c1:.1f} s (wall {w2 - w1:.1f} s)",
        flush=True,
    )
