"""Multiply-accumulate counts (MACs) of one forward pass at batch 1, from the model itself.

Two independent readers that must agree for the same network (tested):
``tflite_macs`` walks the ops of the .tflite flatbuffer's main subgraph and
``keras_macs`` walks a Keras model's layers (nested models included). Counted:
convolutions (CONV_2D / ``Conv2D`` incl. groups), depthwise convolutions
(DEPTHWISE_CONV_2D / ``DepthwiseConv2D``; ``SeparableConv2D`` as depthwise +
pointwise), fully connected layers (FULLY_CONNECTED, BATCH_MATMUL / ``Dense``).
Element-wise ADD/MUL, pooling, activations and resizing are ignored: they are
a fraction of a percent of a CNN's work. Every count is
``output elements x reduction length``, so BatchNorm folding, fused activations
or quantization do not change it. No TensorFlow import here.
"""

from __future__ import annotations

import os
from math import prod

from kft.errors import KftError


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # pragma: no cover - ai-edge-litert is a dependency
        from tensorflow.lite.python import schema_py_generated as schema
    return schema


def tflite_macs(model: bytes | str | os.PathLike) -> int:
    """MACs of a .tflite model (path or bytes) at the tensor shapes stored in it (batch 1 for kft)."""
    buf = model if isinstance(model, (bytes, bytearray)) else open(model, "rb").read()
    schema = _schema()
    name = "model bytes" if isinstance(model, (bytes, bytearray)) else os.fspath(model)
    if len(buf) < 8 or not schema.Model.ModelBufferHasIdentifier(buf, 0):
        raise KftError(f"{name}: not a TFLite flatbuffer (file identifier is not TFL3)")
    try:
        return _count_tflite(schema, schema.Model.GetRootAsModel(buf, 0))
    except KftError:
        raise
    except Exception as e:  # a flatbuffer whose offsets point nowhere
        raise KftError(f"{name}: unreadable TFLite flatbuffer ({type(e).__name__})") from None


def _count_tflite(schema, model) -> int:
    ops = schema.BuiltinOperator
    codes = []
    for i in range(model.OperatorCodesLength()):
        c = model.OperatorCodes(i)
        codes.append(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()))
    graph = model.Subgraphs(0)

    def shape(t: int) -> list[int]:
        return [int(d) for d in graph.Tensors(t).ShapeAsNumpy()] if t >= 0 else []

    total = 0
    for j in range(graph.OperatorsLength()):
        op = graph.Operators(j)
        code = codes[op.OpcodeIndex()]
        ins, outs = list(op.InputsAsNumpy()), list(op.OutputsAsNumpy())
        out = prod(shape(outs[0])) if outs else 0
        if code == ops.CONV_2D:  # filter [Cout, kh, kw, Cin/groups]
            _, kh, kw, cin = shape(ins[1])
            total += out * kh * kw * cin
        elif code == ops.DEPTHWISE_CONV_2D:  # filter [1, kh, kw, Cout]
            _, kh, kw, _ = shape(ins[1])
            total += out * kh * kw
        elif code == ops.FULLY_CONNECTED:  # weights [units, in]
            total += out * shape(ins[1])[-1]
        elif code == ops.BATCH_MATMUL:
            a = shape(ins[0])
            total += out * (a[-2] if _adj_x(schema, op) else a[-1])
    return total


def _adj_x(schema, op) -> bool:
    table = op.BuiltinOptions()
    if table is None:
        return False
    options = schema.BatchMatMulOptions()
    options.Init(table.Bytes, table.Pos)
    return bool(options.AdjX())


def keras_macs(model) -> int:
    """MACs of a Keras model's Conv2D / DepthwiseConv2D / SeparableConv2D / Dense layers,
    summed over every call of each layer (nested models are walked, times their calls)."""
    total = 0
    for layer, calls in _all_layers(model):
        for node in getattr(layer, "_inbound_nodes", []):
            if node.outputs:
                total += calls * _layer_macs(layer, _elements(node.outputs[0].shape))
    return int(total)


def _layer_macs(layer, out: int) -> int:
    """MACs of one call of ``layer`` producing ``out`` elements (0 for uncounted layer types)."""
    import keras

    if isinstance(layer, keras.layers.Conv2D):  # kernel (kh, kw, Cin/groups, Cout)
        kh, kw, cin_per_group, _ = layer.kernel.shape
        return out * kh * kw * cin_per_group
    if isinstance(layer, keras.layers.DepthwiseConv2D):  # kernel (kh, kw, Cin, multiplier)
        kh, kw, _, _ = layer.kernel.shape
        return out * kh * kw
    if isinstance(layer, keras.layers.SeparableConv2D):
        kh, kw, cin, mult = layer.depthwise_kernel.shape
        spatial = out // layer.filters
        return spatial * cin * mult * kh * kw + out * cin * mult
    if isinstance(layer, keras.layers.Dense):  # kernel (in, units)
        return out * layer.kernel.shape[0]
    return 0


def _all_layers(model, calls: int = 1):
    """(leaf layer, how many times its enclosing models are called) for every leaf layer."""
    for layer in model.layers:
        if getattr(layer, "layers", None):
            yield from _all_layers(layer, calls * max(1, len(getattr(layer, "_inbound_nodes", []))))
        else:
            yield layer, calls


def _elements(shape) -> int:
    """Elements per example (the batch axis dropped); a model with unknown spatial size cannot be counted."""
    dims = tuple(shape)[1:]
    if any(d is None for d in dims):
        raise KftError(f"cannot count MACs: a layer output has an unknown size {tuple(shape)}")
    return prod(int(d) for d in dims)
