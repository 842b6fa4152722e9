"""FINN's own check of our QONNX exports (runs in the finn-plus environment, not ours).

For each ``<name>.onnx`` / ``<name>.npz`` pair written by ``benchmarks/toolchain_models.py``:
FINN's tidy-up, ``ConvertQONNXtoFINN`` (Quant -> MultiThreshold / integer weights) and
``Streamline``, then FINN's Python execution (``finn.core.onnx_exec.execute_onnx``,
``--batch`` images per call, the batch size set with qonnx's ``ChangeBatchSize``) of the last
graph that FINN produced (the streamlined one, or the converted one when streamlining fails)
on the test split, compared with PyTorch's logits (argmax agreement, max |logit difference|).
Per stage it records the graph input's datatype and any tensor that a node reads but no node
writes. A stage that raises is recorded with its error. Prints and writes one JSON.

Usage (see benchmarks/finn_check.sh)::

    /work/venvs/finn/bin/python benchmarks/finn_check.py DIR small_cnn resnet20 --json out.json
"""

from __future__ import annotations

import argparse
from collections import Counter
import json
from pathlib import Path
import time
import traceback
from typing import Any

import numpy as np


def _tidy(model: Any) -> Any:
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import GiveReadableTensorNames
    from qonnx.transformation.general import GiveUniqueNodeNames
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    for t in (InferShapes(), FoldConstants(), GiveUniqueNodeNames(), GiveReadableTensorNames()):
        model = model.transform(t)
    return model.transform(InferDataTypes())


def _run(model: Any, x: np.ndarray, batch: int) -> np.ndarray:
    from finn.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    outs = []
    for i in range(0, len(x), batch):
        chunk = np.ascontiguousarray(x[i : i + batch], dtype=np.float32)
        batched = model.transform(ChangeBatchSize(len(chunk))).transform(InferShapes())
        name_in, name_out = batched.graph.input[0].name, batched.graph.output[0].name
        outs.append(np.asarray(execute_onnx(batched, {name_in: chunk})[name_out]))
    return np.concatenate([o.reshape(len(o), -1) for o in outs])


def _dangling(model: Any) -> list[str]:
    """Tensors a node reads that no node writes (neither graph inputs nor initializers)."""
    written = {t for n in model.graph.node for t in n.output}
    written |= {t.name for t in model.graph.input} | {t.name for t in model.graph.initializer}
    return sorted({t for n in model.graph.node for t in n.input if t and t not in written})


def _compare(got: np.ndarray, ref: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    diff = np.abs(got - ref).max(axis=1)
    return {
        "n": int(len(ref)),
        "argmax_agree": int((got.argmax(1) == ref.argmax(1)).sum()),
        "argmax_agree_frac": float((got.argmax(1) == ref.argmax(1)).mean()),
        "max_abs_diff": float(diff.max()),
        "median_abs_diff": float(np.median(diff)),
        "accuracy_torch": float((ref.argmax(1) == y).mean()),
        "accuracy_finn": float((got.argmax(1) == y).mean()),
    }


def check(folder: Path, name: str, limit: int | None, batch: int) -> dict[str, Any]:
    from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN
    from finn.transformation.streamline import Streamline
    from qonnx.core.modelwrapper import ModelWrapper

    data = np.load(folder / f"{name}.npz")
    x, y, ref = data["x"], data["y"], data["logits"]
    if limit is not None:
        x, y, ref = x[:limit], y[:limit], ref[:limit]
    out: dict[str, Any] = {"model": name, "file": f"{name}.onnx"}
    model = _tidy(ModelWrapper(str(folder / f"{name}.onnx")))
    out["ops_qonnx"] = dict(Counter(n.op_type for n in model.graph.node))
    zps = [
        float(np.max(np.abs(model.get_initializer(n.input[2]))))
        for n in model.graph.node
        if n.op_type == "Quant"
    ]
    out["quant_nonzero_zero_points"] = int(sum(z != 0 for z in zps))
    stages: list[tuple[str, Any]] = [
        ("convert", ConvertQONNXtoFINN()),
        ("streamline", Streamline()),
    ]
    last = None
    for stage, transform in stages:
        t0 = time.perf_counter()
        try:
            model = _tidy(model.transform(transform))
        except Exception as e:  # noqa: BLE001 - the error is the result
            out[stage] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            out[stage]["traceback"] = traceback.format_exc().splitlines()[-8:]
            break
        ops = Counter(n.op_type for n in model.graph.node)
        out[stage] = {"ok": True, "ops": dict(ops), "quant_nodes_left": int(ops.get("Quant", 0))}
        out[stage]["input_datatype"] = str(model.get_tensor_datatype(model.graph.input[0].name))
        out[stage]["dangling_tensors"] = _dangling(model)
        out[stage]["seconds"] = round(time.perf_counter() - t0, 1)
        model.save(str(folder / f"{name}.finn_{stage}.onnx"))
        last = (stage, model)
    if last is not None:
        t0 = time.perf_counter()
        result: dict[str, Any] = {"graph": last[0]}
        try:
            result.update(_compare(_run(last[1], x, batch), ref, y))
        except Exception as e:  # noqa: BLE001
            result["error"] = f"{type(e).__name__}: {e}"
        result["seconds"] = round(time.perf_counter() - t0, 1)
        out["execute"] = result
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder")
    p.add_argument("names", nargs="+")
    p.add_argument("--limit", type=int, default=None, help="first N test images only")
    p.add_argument("--batch", type=int, default=60, help="images per execute_onnx call")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    from importlib.metadata import version

    results = {
        "finn-plus": version("finn-plus"),
        "qonnx": version("qonnx"),
        "models": [check(Path(args.folder), n, args.limit, args.batch) for n in args.names],
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
