"""Does a trial's score rank configurations like the final training does? (issue 21)

A search chooses between configurations by their *proxy* score: a few epochs of
quantisation-aware training from the base model's weights, scored on the validation split.
What the user gets is the *final* model: the same configuration trained ``final_epochs``
epochs, scored on the test split. This script measures how well the proxy ranks, as the
Kendall tau between each configuration's proxy score and its final test accuracy, over
``--configs`` configurations, for several proxies:

* ``plain``: the search's trial (``epochs`` epochs, trial learning rate, seed 0).
* ``plain2``: the same with seed 1; ``plain-mean`` the mean of both (what re-scoring does).
* ``kd``: the trial trained with knowledge distillation from the float base model
  (loss ``(1 - a) CE + a T^2 KL(softmax(t / T) || softmax(s / T))``, ``a = 0.5``, ``T = 4``).
* ``bn``: the ``plain`` model after BatchNorm re-estimation (running statistics recomputed
  over ``--bn-batches`` training batches in train mode, no gradient) before scoring.
* ``long``: the trial trained twice as many epochs.

Configurations: the ILP's and the greedy's (HAWQ-V3 on the Hessian traces), then random
ones drawn per layer from all of ``B`` x ``S`` (not only the Hessian-pruned subsets) that
meet the size limit, rejection-sampled with a seeded generator. Every configuration's final
training uses the same seed, data order and inherited weights (``kmtpe compare``'s recipe).
One JSON per configuration under ``OUT/configs`` (resumable; several processes may share
``OUT`` with ``--shard i/n``); ``OUT/summary.json`` and ``summary.md`` are rebuilt from them.

Example (the committed mnist-5k run)::

    python benchmarks/proxy_rank.py --dataset mnist-5k \
        --checkpoint benchmarks/results/compare-mnist5k-2.5b/base_model.pt \
        --avg-bits 2.5 --configs 24 --epochs 2 --final-epochs 10 --threads 1 \
        --out benchmarks/results/proxy-rank-mnist5k
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import itertools
import json
from pathlib import Path
import time
from typing import Any

import numpy as np
from scipy import stats
import torch
from torch import nn
import torch.nn.functional as F

from optuna_kmtpe import DSPPackingModel
from optuna_kmtpe import HardwareLimits
from optuna_kmtpe import MixedPrecisionSearch
from optuna_kmtpe._compress.inherit import NARROW_RULES
from optuna_kmtpe._compress.search_space import DEFAULT_BITS
from optuna_kmtpe._compress.search_space import DEFAULT_WIDTHS
from optuna_kmtpe._search.checkpoint import atomic_write
from optuna_kmtpe._search.checkpoint import load_checkpoint
from optuna_kmtpe._search.checkpoint import save_checkpoint
from optuna_kmtpe._zoo import train as zoo_train
from optuna_kmtpe._zoo.catalog import DATASETS
from optuna_kmtpe._zoo.data import DataSplits
from optuna_kmtpe._zoo.data import load_dataset
from optuna_kmtpe._zoo.data import train_subset
from optuna_kmtpe._zoo.models import build_model


PROXIES = ("plain", "plain2", "plain-mean", "kd", "bn", "long")
_KD_ALPHA = 0.5
_KD_T = 4.0


def kd_loss(teacher: nn.Module) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Any]:
    """Knowledge-distillation loss from ``teacher`` (Hinton et al. 2015)."""

    def loss(logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            t = teacher(x)
        soft = F.kl_div(
            F.log_softmax(logits / _KD_T, 1), F.softmax(t / _KD_T, 1), reduction="batchmean"
        )
        return (1 - _KD_ALPHA) * F.cross_entropy(logits, y) + _KD_ALPHA * _KD_T**2 * soft

    return loss


@torch.no_grad()
def reestimate_bn(model: nn.Module, data: DataSplits, n_batches: int, batch_size: int) -> None:
    """Recompute every BatchNorm's running statistics over ``n_batches`` training batches."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [(m.momentum, m.training) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    was = model.training
    model.train()
    gen = torch.Generator().manual_seed(0)
    for x, _ in itertools.islice(
        zoo_train.batches(data, "train", batch_size, shuffle=True, generator=gen), n_batches
    ):
        model(x)
    model.train(was)
    for m, (momentum, _) in zip(norms, saved):
        m.momentum = momentum


def train_with_loss(
    model: nn.Module,
    data: DataSplits,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
) -> None:
    """``optuna_kmtpe._zoo.train.train``'s recipe (Adam, OneCycle) with another loss."""
    n = len(data.train[1])
    steps = max(1, -(-n // batch_size))
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, epochs=epochs, steps_per_epoch=steps
    )
    model.train()
    step = 0
    for _ in range(epochs):
        for x, y in zoo_train.batches(data, "train", batch_size, shuffle=True, generator=gen):
            loss = loss_fn(model(x), x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            if step < epochs * steps - 1:
                sched.step()
            step += 1


def configurations(
    search: MixedPrecisionSearch, n: int, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """ILP, greedy, then random feasible configurations (bits / widths per layer)."""
    layers = list(search.layers)
    widths_of = search.space.widths
    out: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(bits: dict[str, int | None], widths: dict[str, float], origin: str) -> None:
        key = json.dumps([bits, widths], sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append({"bits": bits, "widths": widths, "origin": origin})

    for method in ("ilp", "greedy"):
        r = search.baseline(method)
        add(dict(r.bits), {n: float(w) for n, w in r.widths.items()}, method)
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 200_000:
            raise RuntimeError(f"only {len(out)} feasible configurations in {tries} draws")
        bits = {
            la: (int(rng.choice(DEFAULT_BITS)) if la in search.space.layers else None)
            for la in layers
        }
        widths = {
            la: (float(rng.choice(DEFAULT_WIDTHS)) if la in widths_of else 1.0) for la in layers
        }
        report = search.cost_model.evaluate(
            [16 if b is None else b for b in bits.values()], list(widths.values())
        )
        if all(v <= 0 for v in search.limits.violations(report).values()):
            add(bits, widths, "random")
    return out


def _build(search: MixedPrecisionSearch, conf: dict[str, Any]) -> nn.Module:
    job = search.objective()
    widths = [conf["widths"][n] for n in search.layers]
    return job.builder.build(conf["bits"], widths if job.builder.plan is not None else None)


def measure(
    search: MixedPrecisionSearch,
    base: nn.Module,
    data: DataSplits,
    conf: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Every proxy score and the final test accuracy of one configuration.

    The proxies train on ``args.trial_subset`` training images (all when 0), as a
    search's trials do; the final training uses all of them.
    """
    full = data
    data = train_subset(full, args.trial_subset or None, 0)
    t0 = time.perf_counter()
    rec: dict[str, Any] = dict(conf)

    def plain(seed: int, epochs: int) -> nn.Module:
        net = _build(search, conf)
        zoo_train.train(
            net, data, epochs=epochs, max_lr=args.lr, batch_size=args.batch_size, seed=seed
        )
        return net

    net = plain(0, args.epochs)
    rec["plain"] = zoo_train.evaluate(net, data, "val")
    reestimate_bn(net, data, args.bn_batches, args.batch_size)
    rec["bn"] = zoo_train.evaluate(net, data, "val")
    rec["plain2"] = zoo_train.evaluate(plain(1, args.epochs), data, "val")
    rec["plain-mean"] = (rec["plain"] + rec["plain2"]) / 2
    rec["long"] = zoo_train.evaluate(plain(0, 2 * args.epochs), data, "val")
    net = _build(search, conf)
    base.eval()
    train_with_loss(
        net,
        data,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=0,
        loss_fn=kd_loss(base),
    )
    rec["kd"] = zoo_train.evaluate(net, data, "val")
    net = _build(search, conf)
    zoo_train.train(
        net,
        full,
        epochs=args.final_epochs,
        max_lr=args.final_lr,
        batch_size=args.batch_size,
        seed=0,
    )
    rec["final_val"] = zoo_train.evaluate(net, full, "val")
    rec["test"] = zoo_train.evaluate(net, full, "test")
    rec["seconds"] = time.perf_counter() - t0
    return rec


def summarise(out: Path, setting: dict[str, Any]) -> dict[str, Any]:
    """Kendall tau (with a bootstrap 90% interval) of each proxy against the final test."""
    recs = [json.loads(p.read_text()) for p in sorted((out / "configs").glob("*.json"))]
    summary: dict[str, Any] = {"setting": setting, "n_configs": len(recs), "proxies": {}}
    if len(recs) < 3:
        return summary
    test = np.array([r["test"] for r in recs])
    rng = np.random.default_rng(0)
    boots = [rng.integers(0, len(recs), len(recs)) for _ in range(2000)]
    for proxy in (*PROXIES, "final_val"):
        x = np.array([r[proxy] for r in recs])
        tau, p = stats.kendalltau(x, test)
        bs = [stats.kendalltau(x[i], test[i])[0] for i in boots]
        lo, hi = np.nanpercentile(bs, [5, 95])
        summary["proxies"][proxy] = {
            "tau": float(tau),
            "p": float(p),
            "tau_90ci": [float(lo), float(hi)],
        }
    summary["test_range"] = [float(test.min()), float(test.max())]
    summary["seed_agreement_tau"] = float(
        stats.kendalltau([r["plain"] for r in recs], [r["plain2"] for r in recs])[0]
    )
    lines = [
        f"# Proxy ranking: {setting['dataset_label']}",
        "",
        f"{len(recs)} configurations, size <= {setting['limits']}; trial {setting['epochs']} "
        f"epochs, final {setting['final_epochs']} epochs; narrowed layers keep their "
        f"{setting.get('narrow', 'first')} channels; final test accuracy "
        f"{test.min():.4f}-{test.max():.4f}.",
        "",
        "| proxy | Kendall tau vs final test | 90% bootstrap interval | p |",
        "|---|---|---|---|",
    ]
    for proxy, s in summary["proxies"].items():
        lo, hi = s["tau_90ci"]
        lines.append(f"| {proxy} | {s['tau']:.3f} | [{lo:.3f}, {hi:.3f}] | {s['p']:.2g} |")
    lines.append("")
    lines.append(f"Trial seed 0 vs seed 1 (Kendall tau): {summary['seed_agreement_tau']:.3f}")
    lines += _narrowing_lines(recs, summary)
    atomic_write(out / "summary.md", lambda f: f.write("\n".join(lines) + "\n"))
    atomic_write(out / "summary.json", lambda f: json.dump(summary, f, indent=2))
    return summary


def _narrowing_lines(recs: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    """Which configurations does the trial proxy under-rate? (adds to ``summary``)

    Narrowed layers keep only some trained channels (``inherit_weights``) and 2-bit layers
    start far from the float weights, so a short trial may score them lower than their
    final training will. For the number of such layers, Kendall tau against the gain
    (final test minus plain proxy) and against the rank residual (final test rank minus
    plain-proxy rank; positive: the proxy under-rates those configurations).
    """
    features = {
        "narrowed layers (width < 1)": [sum(w < 1 for w in r["widths"].values()) for r in recs],
        "2-bit layers": [sum(b == 2 for b in r["bits"].values()) for r in recs],
    }
    gain = np.array([r["test"] - r["plain"] for r in recs])
    residual = stats.rankdata([r["test"] for r in recs]) - stats.rankdata(
        [r["plain"] for r in recs]
    )
    lines = [
        "",
        "| count of | tau vs gain (test - plain) | p | tau vs rank residual | p |",
        "|---|---|---|---|---|",
    ]
    summary["under_rating"] = {}
    for name, x in features.items():
        tg, pg = stats.kendalltau(x, gain)
        tr, pr = stats.kendalltau(x, residual)
        summary["under_rating"][name] = {
            "tau_gain": tg,
            "p_gain": pg,
            "tau_rank": tr,
            "p_rank": pr,
        }
        lines.append(f"| {name} | {tg:.3f} | {pg:.2g} | {tr:.3f} | {pr:.2g} |")
    lines += [
        "",
        "| config | origin | bits | widths | plain | long | final test | test - plain "
        "| rank residual |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, (r, g, d) in enumerate(zip(recs, gain, residual)):
        bits = list(r["bits"].values())
        widths = [f"{w:g}" for w in r["widths"].values()]
        lines.append(
            f"| {i} | {r['origin']} | {bits} | {', '.join(widths)} | {r['plain']:.4f} "
            f"| {r['long']:.4f} | {r['test']:.4f} | {g:+.4f} | {d:+g} |"
        )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist-5k")
    p.add_argument("--data-dir")
    p.add_argument("--model")
    p.add_argument("--checkpoint", help="base model (else trained for --base-epochs)")
    p.add_argument("--base-epochs", type=int, default=10)
    p.add_argument("--avg-bits", type=float, default=2.5)
    p.add_argument("--configs", type=int, default=24)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--final-epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--final-lr", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--bn-batches", type=int, default=50)
    p.add_argument(
        "--trial-subset",
        type=int,
        default=0,
        help="the proxies train on a fixed subset of N training images (0: all), as "
        "kmtpe compare --trial-subset; the final training uses all",
    )
    p.add_argument(
        "--narrow",
        choices=NARROW_RULES,
        default="magnitude",
        help="the trained channels a narrowed layer keeps (kmtpe search --narrow); the "
        "committed runs before the magnitude default used first",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--shard", default="0/1", help="i/n: measure every n-th configuration")
    p.add_argument("--out", default="kmtpe_runs/proxy-rank")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    shard, n_shards = (int(v) for v in args.shard.split("/"))
    out = Path(args.out)
    (out / "configs").mkdir(parents=True, exist_ok=True)

    data = load_dataset(args.dataset, args.data_dir, seed=0)
    model = args.model or DATASETS[args.dataset]
    torch.manual_seed(0)
    base = build_model(model, data.num_classes)
    ckpt = Path(args.checkpoint) if args.checkpoint else out / "base_model.pt"
    if ckpt.is_file():
        load_checkpoint(base, ckpt)
    else:
        zoo_train.train(base, data, epochs=args.base_epochs, max_lr=args.final_lr, seed=0)
        save_checkpoint(base, ckpt, meta={"model": model, "dataset": args.dataset})
    size = DSPPackingModel(base, data.input_shape).baseline().size_mb * args.avg_bits / 16
    search = MixedPrecisionSearch(
        base,
        train_fn=lambda *a, **k: None,
        eval_fn=lambda m: 0.0,
        input_shape=(1, *data.input_shape),
        limits=HardwareLimits(size_mb=size),
        hessian_data=itertools.islice(
            zoo_train.batches(
                data,
                "train",
                args.batch_size,
                shuffle=True,
                generator=torch.Generator().manual_seed(0),
            ),
            2,
        ),
        seed=0,
        narrow=args.narrow,
    )
    setting = {
        "dataset": args.dataset,
        "dataset_label": data.label,
        "model": model,
        "limits": {"size_mb": size, "avg_bits": args.avg_bits},
        "epochs": args.epochs,
        "final_epochs": args.final_epochs,
        "trial_train_images": len(train_subset(data, args.trial_subset or None, 0).train[1]),
        "final_train_images": len(data.train[1]),
        "lr": args.lr,
        "final_lr": args.final_lr,
        "narrow": args.narrow,
        "base_test": zoo_train.evaluate(base, data, "test"),
    }
    confs = configurations(search, args.configs, np.random.default_rng(0))
    for i, conf in enumerate(confs):
        path = out / "configs" / f"{i:03d}.json"
        if i % n_shards != shard or path.exists():
            continue
        rec = measure(search, base, data, conf, args)
        atomic_write(path, lambda f, r=rec: json.dump(r, f, indent=2))
        print(
            f"[{i + 1}/{len(confs)}] {conf['origin']}: plain {rec['plain']:.4f} "
            f"kd {rec['kd']:.4f} test {rec['test']:.4f} ({rec['seconds']:.0f} s)",
            flush=True,
        )
    s = summarise(out, setting)
    print(json.dumps(s.get("proxies", {}), indent=1))


if __name__ == "__main__":
    main()
