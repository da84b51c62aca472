"""Edit a converted .tflite flatbuffer: tensor names, input quantization, metadata entries.

The converter names tensors after its graph (``serving_default_image:0``,
``StatefulPartitionedCall:0``) and calibrates the input scale of a uint8-input
model from the data; both are fixed here on the unpacked object tree, the
way MediaPipe's metadata populator edits models. Uses the schema classes that
ship with ai-edge-litert (a kft dependency), so no TensorFlow is needed.
"""

from __future__ import annotations

import numpy as np

TFLITE_FILE_IDENTIFIER = b"TFL3"


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # pragma: no cover - ai-edge-litert is a dependency
        from tensorflow.lite.python import schema_py_generated as schema
    return schema


def load(buf: bytes):
    """Unpack a .tflite flatbuffer (associated files after it are ignored) into a ``ModelT``."""
    schema = _schema()
    if not schema.Model.ModelBufferHasIdentifier(buf, 0):
        raise ValueError("not a TFLite flatbuffer (file identifier is not TFL3)")
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))


def dump(model) -> bytes:
    """Pack a ``ModelT`` back into .tflite bytes."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), TFLITE_FILE_IDENTIFIER)
    return bytes(builder.Output())


def op_name(model, op) -> str:
    """The builtin operator name (``CONV_2D``, ``HARD_SWISH``, ...) of ``op`` in ``model``."""
    code = model.operatorCodes[op.opcodeIndex]
    number = max(code.builtinCode, code.deprecatedBuiltinCode)
    ops = _schema().BuiltinOperator
    return next(k for k, v in vars(ops).items() if v == number and not k.startswith("_"))


def rename_io(model, inputs: list[str], outputs: list[str]) -> None:
    """Give the main subgraph's input and output tensors readable names.

    Signature defs refer to tensors by index, so they are unaffected.
    """
    graph = model.subgraphs[0]
    for indices, names in ((graph.inputs, inputs), (graph.outputs, outputs)):
        if len(indices) != len(names):
            raise ValueError(f"expected {len(names)} tensors, the model has {len(indices)}")
        for i, name in zip(indices, names):
            graph.tensors[i].name = name


def set_uint8_input_identity(model) -> None:
    """Make the uint8 input mean raw pixels: scale 1, zero point 0.

    With ``inference_input_type=uint8`` the converter gives the input the scale
    calibrated from the representative images (e.g. 240/255 when no sample
    reaches 255) and adds a QUANTIZE op that re-quantizes it to the int8 scale
    of the first layer. Changing only the input's parameters keeps that
    internal scale and makes the QUANTIZE op map byte ``q`` to pixel value ``q``
    exactly, which is what a camera frame holds. Only valid when every consumer
    of the input is such a QUANTIZE op; anything else is refused.
    """
    schema = _schema()
    graph = model.subgraphs[0]
    (index,) = graph.inputs
    tensor = graph.tensors[index]
    if tensor.type != schema.TensorType.UINT8:
        raise ValueError("the model input is not uint8")
    consumers = [op for op in graph.operators if index in list(op.inputs)]
    quantize = schema.BuiltinOperator.QUANTIZE
    for op in consumers:
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) != quantize:
            raise ValueError("the uint8 input feeds an op other than QUANTIZE; cannot rescale it")
    q = schema.QuantizationParametersT()
    q.scale = np.array([1.0], np.float32)
    q.zeroPoint = np.array([0], np.int64)
    q.quantizedDimension = 0
    tensor.quantization = q


def set_metadata(model, name: str, data: bytes) -> None:
    """Store ``data`` in a buffer referenced from the model's ``metadata`` table
    under ``name``, replacing an entry of the same name."""
    schema = _schema()
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, dtype=np.uint8)
    model.buffers = model.buffers or []
    model.metadata = model.metadata or []
    for entry in model.metadata:
        if _text(entry.name) == name:
            model.buffers[entry.buffer] = buffer
            return
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)


def get_metadata(buf: bytes, name: str) -> bytes | None:
    """The bytes stored under ``name`` in the model's metadata table, or None."""
    schema = _schema()
    model = schema.Model.GetRootAsModel(buf, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if _text(entry.Name()) == name:
            buffer = model.Buffers(entry.Buffer())
            if buffer.DataLength():
                return buffer.DataAsNumpy().tobytes()
    return None


def _text(s) -> str:
    return s.decode("utf-8") if isinstance(s, bytes) else str(s)
