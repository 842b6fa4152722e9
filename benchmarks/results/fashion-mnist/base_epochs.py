"""Base-model measurement: fmnist_resnet on the full Fashion-MNIST, the paper's recipe (Adam +
OneCycle, max_lr 0.01, batch 64), 1 thread. Usage: base_epochs.py EPOCHS [EPOCHS ...]."""

import sys
import time

import torch

from optuna_kmtpe._zoo import train as T
from optuna_kmtpe._zoo.data import load_dataset
from optuna_kmtpe._zoo.models import build_model


torch.set_num_threads(1)
data = load_dataset("fashion-mnist", seed=0)
print(data.summary(), flush=True)
for epochs in map(int, sys.argv[1:]):
    torch.manual_seed(0)
    m = build_model("fmnist_resnet", 10)
    times: list[float] = []
    cpu: list[float] = []
    t = [time.perf_counter(), time.process_time()]

    def hook(e: int, loss: float) -> None:
        now, c = time.perf_counter(), time.process_time()
        times.append(now - t[0])
        cpu.append(c - t[1])
        t[0], t[1] = now, c
        print(
            f"  epoch {e}: loss {loss:.4f}, wall {times[-1]:.1f} s, CPU {cpu[-1]:.1f} s",
            flush=True,
        )

    r = T.train(
        m, data, epochs=epochs, max_lr=0.01, batch_size=64, seed=0, device="cpu", on_epoch=hook
    )
    val = T.evaluate(m, data, "val", device="cpu")
    test = T.evaluate(m, data, "test", device="cpu")
    print(
        f"epochs={epochs}: val {val:.4f} test {test:.4f}; {r.seconds:.0f} s total, mean wall "
        f"{sum(times) / len(times):.1f} s/epoch, CPU {sum(cpu) / len(cpu):.1f} s/epoch",
        flush=True,
    )
    torch.save(m.state_dict(), f"/tmp/fm/base{epochs}.pt")
