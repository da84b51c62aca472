"""Prepare a classifier for full-integer (int8) conversion, on a copy of the model.

TFLite's post-training int8 quantization folds BatchNorm into each conv and
rounds the kernel per output channel to steps of ``max|w| / 127``. On a
CIFAR-10 MobileNetV2 run (two_stage; 1000 test images) that rounding in the
depthwise convs is the main loss: with only the depthwise kernels rounded and
everything else float, top-1 agreement with the Keras model is 0.88 (logit RMSE
0.42 at a logit spread of 1.47), about the whole int8 model's loss (0.857,
74.2% vs 78.2%). ImageNet MobileNetV2 has depthwise channels whose 3x3 kernel
sums to ~0 (edge filters) fed by a nearly constant input (e.g. 1.7..2.6):
rounding breaks the zero sum and adds a constant to that channel, larger than
its signal. Correcting that constant through the bias (empirical bias
correction: Nagel et al. 2019, "Data-Free Quantization", sec. 4.2; Finkelstein
et al. 2019) brings the int8 model to 0.944 agreement, 78.0%.

Two edits, both on a copy (the caller's model is untouched):

- ``correct_depthwise_bias``: fold each depthwise conv's BatchNorm into it
  (the BatchNorm layer stays, as an identity that adds the folded bias, which
  the converter folds back exactly), round the kernel to TFLite's int8 grid
  (so the converter's own rounding changes nothing) and subtract the rounding's
  mean effect, ``(W_int8 - W) . E[x]``, from the bias, ``E[x]`` being the
  per-channel mean input over the calibration images. Only depthwise convs:
  correcting the 1x1 convs as well measured slightly worse (logit RMSE 0.29-0.30
  vs 0.26-0.27 on two 1000-image slices).
- ``fold_normalization``: the ``normalize`` layer (x / 127.5 - 1 for
  MobileNetV2) becomes ``x - 128``, exact on int8 pixels, and its scale moves
  into the first conv. Otherwise the converter re-quantizes the normalised
  image in steps of 1.5 grey levels (its MUL output gets the range -1..2).
  The first conv's zero padding then stands for grey 128 instead of 127.5,
  which changes the float function on the padded border only (logits by ~1e-2).

Float variants are converted from the model as it is. MobileNetV3 is not
helped: its int8 loss comes from per-tensor activation ranges (one int8 tensor,
the first conv's output, alone drops agreement to 0.62), not from weights.
"""

from __future__ import annotations

import numpy as np

INT8_MAX = 127  # TFLite quantizes weights symmetrically to -127..127


def prepare_for_int8(model, calibration_images, batch_size: int = 32):
    """A copy of the kft classifier ``model`` ready for int8 conversion (see module doc);
    a model without a nested ``backbone`` (not built by ``kft.model``) is returned as is."""
    import keras

    from kft.model import BACKBONE_LAYER

    if BACKBONE_LAYER not in [layer.name for layer in model.layers]:
        return model
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    pairs = depthwise_batchnorm_pairs(_backbone(copy))
    means = _input_means(copy, [conv for conv, _ in pairs], calibration_images, batch_size)
    for (conv, bn), mean in zip(pairs, means):
        correct_depthwise_bias(conv, bn, mean)
    fold_normalization(copy)
    return copy


def depthwise_batchnorm_pairs(backbone) -> list:
    """``(DepthwiseConv2D, BatchNormalization)`` pairs where the norm is the conv's only consumer."""
    import keras

    pairs = []
    for layer in backbone.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or not (layer.scale and layer.center):
            continue
        source = layer.input._keras_history[0]
        if isinstance(source, keras.layers.DepthwiseConv2D) and len(source._outbound_nodes) == 1:
            pairs.append((source, layer))
    return pairs


def fold_batchnorm(conv, bn) -> tuple[np.ndarray, np.ndarray]:
    """The kernel and bias of ``bn(conv(x))`` as one conv (BatchNorm in inference mode)."""
    kernel = conv.kernel.numpy().astype(np.float64)
    gamma, beta, mean, var = (w.numpy().astype(np.float64) for w in
                              (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance))
    scale = gamma / np.sqrt(var + bn.epsilon)
    bias = conv.bias.numpy().astype(np.float64) if conv.use_bias else 0.0
    # Output channels: the kernel's last axis (Conv2D), or its last two (DepthwiseConv2D: C, M).
    kernel = kernel * (scale.reshape(kernel.shape[2:]) if _is_depthwise(conv) else scale)
    return kernel, (bias - mean) * scale + beta


def snap_to_int8_grid(kernel: np.ndarray, reduce_axes: tuple[int, ...]) -> np.ndarray:
    """``kernel`` rounded as TFLite quantizes it: per channel, steps of ``max|w| / 127``,
    halves away from zero; ``reduce_axes`` are the axes inside one channel."""
    step = np.abs(kernel).max(axis=reduce_axes, keepdims=True) / INT8_MAX
    step = np.where(step > 0, step, 1.0)
    q = kernel / step
    return np.sign(q) * np.floor(np.abs(q) + 0.5) * step


def correct_depthwise_bias(conv, bn, input_mean: np.ndarray) -> None:
    """Fold ``bn`` into depthwise ``conv``, snap the kernel to the int8 grid and
    compensate the rounding's mean effect in the bias (in place)."""
    kernel, bias = fold_batchnorm(conv, bn)
    snapped = snap_to_int8_grid(kernel, (0, 1))
    # Depthwise kernel (kh, kw, C, M): output channel c*M + m reads input channel c only.
    shift = (snapped - kernel).sum(axis=(0, 1)) * np.asarray(input_mean, np.float64)[:, None]
    _set_folded(conv, bn, snapped, bias - shift.reshape(-1))


def fold_normalization(model) -> bool:
    """Turn a uniform ``normalize`` (x * s + o) feeding the backbone's first conv into
    ``x - t`` (t = round(-o / s), an integer pixel value) and move ``s`` into that conv.
    Returns whether it applied (it needs a first Conv2D + BatchNorm and one s and o for
    every channel)."""
    import keras

    names = [layer.name for layer in model.layers]
    if "normalize" not in names:
        return False
    norm = model.get_layer("normalize")
    scales, offsets = np.unique(np.ravel(norm.scale)), np.unique(np.ravel(norm.offset))
    if len(scales) != 1 or len(offsets) != 1 or scales[0] == 0:
        return False
    s, o = float(scales[0]), float(offsets[0])
    t = float(round(-o / s))
    base = _backbone(model)
    if not 0 <= t <= 255 or len(base.layers) < 3 or len(base.layers[0]._outbound_nodes) != 1:
        return False
    conv, bn = base.layers[1], base.layers[2]
    if (type(conv) is not keras.layers.Conv2D or not isinstance(bn, keras.layers.BatchNormalization)
            or not (bn.scale and bn.center) or bn.input._keras_history[0] is not conv
            or len(conv._outbound_nodes) != 1):
        return False
    kernel, bias = fold_batchnorm(conv, bn)
    # conv(s*x + o) = s*conv(x - t) + (o + s*t) * sum(kernel), away from the padded border.
    bias = bias + (o + s * t) * kernel.sum(axis=(0, 1, 2))
    _set_folded(conv, bn, kernel * s, bias)
    n = len(np.ravel(norm.scale))
    norm.scale, norm.offset = [1.0] * n, [-t] * n
    return True


def _set_folded(conv, bn, kernel: np.ndarray, bias: np.ndarray) -> None:
    """Give ``conv`` the folded kernel and make ``bn`` an identity plus ``bias``:
    gamma 1, mean 0 and variance 1 - epsilon, so its multiplier rsqrt(var + eps) is 1."""
    conv.kernel.assign(kernel.astype(np.float32))
    if conv.use_bias:
        conv.bias.assign(np.zeros(conv.bias.shape, np.float32))
    n = bias.size
    bn.gamma.assign(np.ones(n, np.float32))
    bn.moving_mean.assign(np.zeros(n, np.float32))
    bn.moving_variance.assign(np.full(n, 1.0 - bn.epsilon, np.float32))
    bn.beta.assign(bias.astype(np.float32))


def _input_means(model, layers, images, batch_size: int) -> list[np.ndarray]:
    """Per-channel mean of each layer's input (spatial and image mean) over ``images``."""
    import keras
    import tensorflow as tf

    if not layers:
        return []
    base = _backbone(model)
    prefix = [model.get_layer(n) for n in ("upsample", "normalize") if n in [la.name for la in model.layers]]
    probe = keras.Model(base.inputs, [layer.input for layer in layers])

    @tf.function(reduce_retracing=True)
    def batch_sums(x):
        for layer in prefix:
            x = layer(x)
        outs = probe(x, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        return [tf.reduce_mean(o, axis=(1, 2)) for o in outs]

    images = np.asarray(images, np.float32)
    sums = [np.zeros(layer.input.shape[-1], np.float64) for layer in layers]
    for i in range(0, len(images), batch_size):
        for total, m in zip(sums, batch_sums(tf.constant(images[i:i + batch_size]))):
            total += m.numpy().astype(np.float64).sum(axis=0)
    return [total / len(images) for total in sums]


def _backbone(model):
    from kft.model import backbone_of

    return backbone_of(model)


def _is_depthwise(conv) -> bool:
    import keras

    return isinstance(conv, keras.layers.DepthwiseConv2D)
