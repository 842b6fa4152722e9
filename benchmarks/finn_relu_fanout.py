"""Minimal reproduction: FINN's ConvertQONNXtoFINN deletes a ``Relu`` that has two consumers.

Runs in the finn-plus environment (``/work/venvs/finn/bin/python benchmarks/finn_relu_fanout.py``).
The graph is what a residual block exports to: ``r = Relu(x)`` feeds a ``Quant`` (the next
layer's input quantiser) and, unquantised, an ``Add`` (the shortcut)::

    y = Quant(Relu(x), scale 0.25, zero point 0, 4 bits, unsigned) + Relu(x)

``QuantReluHandler`` (finn/transformation/qonnx/qonnx_activation_handlers.py,
``_remove_activation_node``) rewires the ``Quant``'s replacement ``MultiThreshold`` to ``x`` and
removes the ``Relu`` without looking at its other consumers: the ``Add`` is left reading a
tensor that no node writes, FINN's ``execute_onnx`` gives it zeros, and ``Streamline``'s
``CollapseRepeatedAdd`` asserts on it ("Initializer for parameters for op1 is not set"). With
``--own-relu`` the graph gets a second ``Relu`` for the ``Quant`` (what our export writes,
``optuna_kmtpe._export.qonnx.own_relu_per_quant``) and the conversion is exact.
"""

from __future__ import annotations

import argparse

import numpy as np


def build(own_relu: bool) -> object:
    from onnx import helper
    from onnx import TensorProto
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    shape = [1, 4]
    nodes = [helper.make_node("Relu", ["x"], ["r"])]
    quant_in = "r"
    if own_relu:
        nodes.append(helper.make_node("Relu", ["x"], ["r_own"]))
        quant_in = "r_own"
    nodes += [
        helper.make_node(
            "Quant",
            [quant_in, "s", "z", "b"],
            ["q"],
            domain="qonnx.custom_op.general",
            signed=0,
            narrow=0,
            rounding_mode="ROUND",
        ),
        helper.make_node("Add", ["q", "r"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "relu_fanout",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )
    model = ModelWrapper(helper.make_model(graph))
    for name, value in (("s", 0.25), ("z", 0.0), ("b", 4.0)):
        model.set_initializer(name, np.asarray(value, dtype=np.float32))
    return cleanup_model(model)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--own-relu", action="store_true", help="one Relu per consumer (our fix)")
    args = p.parse_args()
    from finn.core.onnx_exec import execute_onnx
    from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN

    x = np.asarray([[-1.0, 0.3, 1.1, 2.6]], dtype=np.float32)
    model = build(args.own_relu)
    name_in, name_out = model.graph.input[0].name, model.graph.output[0].name
    ref = execute_onnx(model, {name_in: x})[name_out]
    finn = model.transform(ConvertQONNXtoFINN())
    got = execute_onnx(finn, {name_in: x})[name_out]
    written = {t for n in finn.graph.node for t in n.output} | {name_in}
    written |= {t.name for t in finn.graph.initializer}
    print("nodes after ConvertQONNXtoFINN:", [n.op_type for n in finn.graph.node])
    print(
        "read but never written:", sorted({t for n in finn.graph.node for t in n.input} - written)
    )
    print("QONNX execution:", ref.tolist())
    print("FINN execution: ", got.tolist())
    print("equal:", bool(np.allclose(ref, got)))


if __name__ == "__main__":
    main()
