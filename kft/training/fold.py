"""Run a functional model with each inference-mode BatchNorm folded into the convolution before it.

kft runs BatchNorm in inference mode everywhere (kft.model), where it is a fixed per-channel
affine map of the convolution's output: ``y = conv(x) * s + b`` with
``s = gamma / sqrt(moving_variance + eps)`` and ``b = beta - moving_mean * s``. Keras still
computes it as a multiply and an add over every activation, and in training their gradients
as more passes over the activations plus a reduction per channel. :func:`call` runs the same
graph with each such pair computed as one convolution with the kernel scaled per output
channel (``kernel * s``) plus a bias add, which oneDNN fuses into the convolution.

Only the kernel-sized product ``kernel * s`` is new, so the variables, their gradients and
every optimizer are the model's own: training and scoring through :func:`call` equal
``model(x, training=False)`` up to float rounding (tests/test_fold.py), and the saved model
is untouched. ``python benchmarks/fold_speed.py`` measures what it saves.

It reads the functional graph through Keras' ``_run_through_graph`` (what
``Functional.call`` itself runs), a private API: tests/test_fold.py checks on every
backbone that each BatchNorm still folds and the outputs still match. Anything that is
not a plain conv -> BatchNorm pair, and any model that is not functional, runs as Keras
runs it.
"""

from __future__ import annotations


def _foldable_conv(op) -> bool:
    import keras

    return (type(op) in (keras.layers.Conv2D, keras.layers.DepthwiseConv2D) and not op.use_bias
            and op.data_format == "channels_last" and getattr(op, "groups", 1) == 1
            and getattr(op.activation, "__name__", "") == "linear"
            and op.dtype_policy.compute_dtype == "float32")


def _foldable_bn(op) -> bool:
    import keras

    return (type(op) is keras.layers.BatchNormalization and op.axis in (-1, 3)
            and not getattr(op, "renorm", False) and op.dtype_policy.compute_dtype == "float32")


def pairs(functional) -> dict[int, object]:
    """``id(conv layer) -> its BatchNormalization`` for every foldable pair in ``functional``:
    a bias-free, linear Conv2D/DepthwiseConv2D called once in the graph whose output only
    that BatchNormalization (over the channel axis, no renorm) reads, and which is not an
    output of the model."""
    nodes = [n for level in functional._nodes_by_depth.values() for n in level
             if n.operation is not None and not n.is_input]
    calls: dict[int, int] = {}
    readers: dict[int, int] = {id(t): 1 for t in functional.outputs}  # a model output is read too
    for node in nodes:
        calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
        for t in node.input_tensors:
            readers[id(t)] = readers.get(id(t), 0) + 1
    found = {}
    for node in nodes:
        bn = node.operation
        if not _foldable_bn(bn) or len(node.input_tensors) != 1 or calls[id(bn)] != 1:
            continue
        t = node.input_tensors[0]
        conv = t._keras_history.operation
        if _foldable_conv(conv) and calls.get(id(conv)) == 1 and readers[id(t)] == 1:
            found[id(conv)] = bn
    return found


def _conv_bn(conv, bn, x):
    """``bn(conv(x))`` in inference mode, as one scaled convolution plus a bias add."""
    import keras
    import tensorflow as tf

    scale = tf.math.rsqrt(bn.moving_variance + bn.epsilon)
    if bn.scale:
        scale = scale * bn.gamma
    bias = -bn.moving_mean * scale
    if bn.center:
        bias = bias + bn.beta
    args = dict(strides=conv.strides, padding=conv.padding, data_format=conv.data_format,
                dilation_rate=conv.dilation_rate)
    if type(conv) is keras.layers.DepthwiseConv2D:  # kernel (h, w, in, multiplier): output c*multiplier + j
        kernel = conv.kernel * tf.reshape(scale, conv.kernel.shape[2:])
        y = keras.ops.depthwise_conv(x, kernel, **args)
    else:  # kernel (h, w, in, out)
        y = keras.ops.conv(x, conv.kernel * scale, **args)
    return tf.nn.bias_add(y, bias)


def call(model, x):
    """``model(x, training=False)``, with every foldable conv -> BatchNorm pair folded
    (nested functional models too)."""
    import keras

    if not (isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth")
            and hasattr(model, "_run_through_graph")):  # not functional, or a Keras without them
        return model(x, training=False)
    folded = pairs(model)
    skipped = {id(bn) for bn in folded.values()}

    def operation_fn(op):
        if id(op) in folded:
            return lambda h, *a, **k: _conv_bn(op, folded[id(op)], h)
        if id(op) in skipped:  # its conv returned the normalised output already
            return lambda h, *a, **k: h
        if isinstance(op, keras.Model):
            return lambda h, *a, **k: call(op, h)
        if getattr(op, "_call_has_training_arg", False):
            return lambda *a, **k: op(*a, **{**k, "training": False})
        return op

    out = model._run_through_graph(model._standardize_inputs(x), operation_fn=operation_fn)
    return out[0] if isinstance(out, (list, tuple)) and len(out) == 1 else out
