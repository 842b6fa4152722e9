"""What low bit-widths cost fmnist_resnet on Fashion-MNIST: from the 8-epoch float base model,
uniform fake-quantisation at B bits (width 1), 2 epochs of candidate QAT (the search's trial
recipe: Adam + OneCycle, max_lr 1e-3, batch 64) on the 10,000-image trial subset, val accuracy
on the 10,000-image validation split; 1 thread. Usage: quant_cost.py BASE_CHECKPOINT."""

import sys
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
base = build_model("fmnist_resnet", 10)
base.load_state_dict(torch.load(sys.argv[1]))
print(f"float: val {T.evaluate(base, data, 'val', device='cpu'):.4f}", flush=True)
for bits in (8, 4, 3, 2):
    q = quantize_model(base, [bits] * 6)
    c = time.process_time()
    T.train(q, sub, epochs=2, max_lr=0.001, batch_size=64, seed=0, device="cpu")
    val = T.evaluate(q, data, "val", device="cpu")
    print(
        f"{bits} bits uniform, 2 QAT epochs on 10,000 images: val {val:.4f} "
        f"(CPU {time.process_time() - c:.0f} s)",
        flush=True,
    )
