"""``kmtpe export``: the final model of a search run as QONNX, QCDQ ONNX or an hls4ml project.

Example::

    kmtpe search --out runs/digits
    kmtpe export runs/digits --format qonnx --out runs/digits/model.qonnx.onnx
    kmtpe export runs/digits --format qcdq --out runs/digits/model.qcdq.onnx
    kmtpe export runs/digits --format hls4ml --out runs/digits/hls4ml

Each export also writes ``<out>.summary.json`` / ``.summary.md`` (for hls4ml:
``<out>/summary.json`` / ``.md``): per-layer bits, scales, zero points, the cost model's MACs,
weight bits and EBOPs (compute-bound reading), qonnx's inference cost, and the execution check
on the dataset's test split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
from typing import Any
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    import torch

    from optuna_kmtpe._export import ExportSummary


_FORMATS = ("qonnx", "qcdq", "hls4ml")


def register(subparsers: Any) -> None:
    """Add the ``export`` subcommand to ``kmtpe``'s subparsers."""
    parser = subparsers.add_parser(
        "export",
        help="Export a search run's final model to QONNX, QCDQ ONNX or hls4ml, and check it.",
        description=(
            "Rebuild RUN_DIR/final_model.pt (written by `kmtpe search --out RUN_DIR`), export "
            "it, run the export on the dataset's test split and compare it with the PyTorch "
            "fake-quantised model. See the README's 'To hardware' section."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="output folder of `kmtpe search`")
    parser.add_argument("--format", required=True, choices=_FORMATS)
    parser.add_argument(
        "--out", required=True, help="output .onnx file (qonnx, qcdq) or folder (hls4ml)"
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="the search's --data-dir (CIFAR, Fashion-MNIST), for the check's inputs",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the search's --seed (default 0): it fixes the data split and the normalisation",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="check on the first N test images only"
    )
    parser.add_argument("--no-check", action="store_true", help="skip the execution check")
    parser.add_argument(
        "--zero-points",
        choices=("extract", "keep"),
        default="extract",
        help="qonnx: extract (default; every Quant zero point 0, offsets as Add/Sub, what FINN "
        "accepts) or keep them in the Quant nodes",
    )
    parser.add_argument(
        "--weight-scales",
        choices=("quant", "mul"),
        default="quant",
        help="qonnx: per-channel weight scales in the Quant nodes (default) or as a Mul after "
        "each Conv/Gemm on integer weights (for hls4ml's QONNX frontend)",
    )
    parser.add_argument(
        "--input",
        choices=("normalised", "pixels"),
        default="normalised",
        help="qonnx: the graph input is the normalised image (default) or the raw pixels "
        "behind an unsigned 8-bit Quant, normalised in the graph (what FINN's hardware flow "
        "reads; needs the dataset's normalisation, so --data-dir for CIFAR / Fashion-MNIST)",
    )
    parser.add_argument(
        "--no-compile", action="store_true", help="hls4ml: write the project, skip the C sim"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``kmtpe export``; returns the exit status (2 on bad input, 1 on a failed
    check)."""
    from optuna_kmtpe._export import export
    from optuna_kmtpe._export import ExportError
    from optuna_kmtpe._export._pixels import PixelInput
    from optuna_kmtpe._search.checkpoint import CheckpointError
    from optuna_kmtpe._zoo.data import DataError

    try:
        import torch

        torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
        qmodel, meta, shape = load_run(args.run_dir)
        inputs = labels = pixels = None
        label = ""
        if args.input == "pixels" and args.format != "qonnx":
            raise ExportError(f"--input pixels is a qonnx option (got --format {args.format}).")
        if not args.no_check or args.input == "pixels":
            from optuna_kmtpe._zoo.data import load_dataset

            data = load_dataset(str(meta.get("dataset", "digits")), args.data_dir, seed=args.seed)
            pixels = PixelInput.of(data) if args.input == "pixels" else None
        if not args.no_check:
            images, labels = data.test
            if args.limit is not None:
                images, labels = images[: args.limit], labels[: args.limit]
            inputs = data.prepare(images) if pixels is None else images.float()
            label = f"{data.label}, test split, {len(labels)} images, seed {args.seed}"
        out = Path(args.out)
        reading = run_cost_model(args.run_dir, meta)
        summary = export(
            qmodel,
            shape,
            format=args.format,
            path=out,
            cost_model=_reading_model(qmodel, shape, reading),
            inputs=inputs,
            labels=labels,
            inputs_label=label,
            hls4ml_compile=not args.no_compile,
            zero_points=args.zero_points,
            weight_scales=args.weight_scales,
            pixels=pixels,
        )
    except (ExportError, CheckpointError, DataError) as e:
        print(f"kmtpe export: error: {e}", file=sys.stderr)
        return 2
    summary.notes.append(
        f"Run {args.run_dir}: model {meta['model']}, bits {meta['bits']}, "
        f"widths {meta['widths']}; priced with the run's cost-model reading "
        f"(--cost-model {reading})."
    )
    if inputs is not None and pixels is None:
        summary.notes.append(
            "The graph's input is the normalised image (pixels * scale - mean) / std with "
            f"scale {data.scale:g}, mean {list(data.mean)}, std {list(data.std)}."
        )
    target = out / "summary.json" if args.format == "hls4ml" else out.with_suffix(".summary.json")
    write_summary(summary, target)
    summary.files["summary"] = str(target)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2, default=str))
    else:
        print(summary.markdown())
        print(f"wrote {out} and {target}")
    return 0 if not summary.check or summary.check["passed"] else 1


def load_run(
    run_dir: str | Path, *, device: str = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any], tuple[int, int, int]]:
    """Rebuild the final model of a ``kmtpe search`` run from ``RUN_DIR/final_model.pt``.

    Returns:
        ``(qmodel, meta, input_shape)``: the fake-quantised, width-scaled, trained model in
        eval mode, the checkpoint's meta (``model``, ``dataset``, ``num_classes``, ``bits``,
        ``widths``) and one input's shape.

    Raises:
        ExportError: No ``final_model.pt`` (the search was run with ``--final-epochs 0``,
            ``--no-final``, or has not finished), or a checkpoint without the meta.
    """
    import torch

    from optuna_kmtpe._compress.quant import quantize_model
    from optuna_kmtpe._export import ExportError
    from optuna_kmtpe._search.checkpoint import load_checkpoint
    from optuna_kmtpe._zoo.models import build_model
    from optuna_kmtpe._zoo.models import input_shape as zoo_input_shape

    run_dir = Path(run_dir)
    ckpt = run_dir / "final_model.pt"
    if not ckpt.is_file():
        have = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else None
        raise ExportError(
            f"{ckpt} does not exist ({'no such folder' if have is None else f'found {have}'}); "
            "export needs the final model of a finished `kmtpe search --out RUN_DIR` run "
            "(not --final-epochs 0 / --no-final)."
        )
    meta = dict(torch.load(ckpt, map_location="cpu", weights_only=True).get("meta") or {})
    missing = [k for k in ("model", "num_classes", "bits", "widths") if k not in meta]
    if missing:
        raise ExportError(f"{ckpt} has no {missing} in its meta; was it written by kmtpe search?")
    net = build_model(meta["model"], int(meta["num_classes"]), widths=meta["widths"])
    qmodel = quantize_model(net, list(meta["bits"]), inplace=True)
    load_checkpoint(qmodel, ckpt)
    qmodel.to(device).eval()
    return qmodel, meta, zoo_input_shape(meta["model"])


def run_cost_model(run_dir: str | Path, meta: dict[str, Any]) -> str:
    """The cost-model reading (``memory`` / ``compute``) a search run was priced with: from
    the final model's meta, else its ``result.json``, else ``memory`` (runs from before
    ``--cost-model`` existed)."""
    if "cost_model" in meta:
        return str(meta["cost_model"])
    result = Path(run_dir) / "result.json"
    if result.is_file():
        return str(json.loads(result.read_text()).get("cost_model", "memory"))
    return "memory"


def _reading_model(qmodel: torch.nn.Module, shape: tuple[int, ...], reading: str) -> Any:
    import copy

    from optuna_kmtpe._compress.cost import DSPPackingModel
    from optuna_kmtpe._runs.zoo import COST_MODELS

    return DSPPackingModel(copy.deepcopy(qmodel).cpu(), shape, **COST_MODELS[reading])


def write_summary(summary: ExportSummary, path: str | Path) -> None:
    """Write ``summary`` as JSON at ``path`` and as markdown next to it (``.md``)."""
    from optuna_kmtpe._export import summary_json
    from optuna_kmtpe._search.checkpoint import atomic_write

    path = Path(path)
    atomic_write(path, lambda f: json.dump(summary.to_dict(), f, indent=2, default=summary_json))
    atomic_write(path.with_suffix(".md"), lambda f: f.write(summary.markdown()))
