"""Convert a trained kft classifier (Keras 3) to a .tflite flatbuffer.

Conversion path (measured with TF 2.21 / Keras 3.15, no tf_keras): a
``tf.function`` calling ``model(image, training=False)`` and a softmax, with a
fixed ``[1, S, S, 3]`` signature, given to
``TFLiteConverter.from_concrete_functions`` together with a ``tf.Module`` that
tracks the model's underlying ``tf.Variable``s. About 1.7 s for
MobileNetV3-Small at 32x32, versus 4-5 s for ``from_keras_model`` or
``model.export()`` + ``from_saved_model`` (both write a SavedModel to disk
first) and identical outputs. Passing the Keras model itself as the trackable
object does not work: Keras 3 variables are not tf trackables, the converter
finds no values and the model outputs NaN.

The converter folds BatchNorm into the convs on this path (the int8
MobileNetV2 graph has 35 CONV_2D, 17 DEPTHWISE_CONV_2D and no BatchNorm MUL/ADD).
An int8 model is converted from ``kft.export.int8_prep.prepare_for_int8(model)``,
which corrects the depthwise kernels' int8 rounding bias (MobileNetV2 on
CIFAR-10: 74.2% -> 78.0% against 78.2% in Keras).

The exported graph takes raw RGB 0..255 (float32, or uint8 with ``int8_io``)
and outputs class PROBABILITIES named ``probabilities``.

Input contract: the graph declares an ``input_size`` x ``input_size`` image that
clients naturally feed (default: the smallest multiple of the training
resolution that is >= 224, e.g. 224 for CIFAR-10's 32 px; see
``default_input_size``) and reduces it to the training resolution *inside* the
graph with a k x k box filter (AVERAGE_POOL_2D, stride k; a bilinear resize to
the nearest multiple first when the size is not one). Clients (MediaPipe's
ImageClassifier, Android bitmap scaling, a browser canvas) shrink photos and
camera frames without antialiasing; shrinking only to ~224 aliases little, and
the box filter then averages k^2 samples per training pixel, so the model sees
nearly what an antialiased resize would give it (``kft predict`` resizes as the
clients do, so it sees exactly what they see). Both ops run on XNNPACK and the GPU
delegates. An image shown at k times its size (nearest-neighbour) comes out of
the box filter exactly as it went in, which is how the export report scores
CIFAR-10's 32-px test images.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from kft.errors import KftError, one_of
from kft.export import tflite_model
from kft.images import resize

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
CLIENT_SIZE = 224  # what mobile image classifiers conventionally take


def default_input_size(train_size: int) -> int:
    """The smallest multiple of ``train_size`` that is at least ``CLIENT_SIZE`` (224 for 32 px)."""
    return train_size * max(1, -(-CLIENT_SIZE // train_size))


def box_factor(input_size: int, train_size: int) -> int:
    """k of the k x k box filter from the declared input down to the training resolution."""
    return max(1, round(input_size / train_size))


def check_input_size(input_size: int, train_size: int) -> int:
    if isinstance(input_size, bool) or not isinstance(input_size, (int, np.integer)) or input_size < train_size:
        raise KftError(f"`input_size` must be a whole number of pixels >= the training resolution "
                       f"({train_size}), got {input_size!r}")
    if input_size > 4096:
        raise KftError(f"`input_size` {input_size} is larger than any camera frame needs (max 4096)")
    return int(input_size)


def to_input_size(images: np.ndarray, input_size: int) -> np.ndarray:
    """Training-resolution images as the declared input sees them: each pixel repeated k x k
    (exact through the box filter) when ``input_size`` is a multiple, else an antialiased resize."""
    images = np.asarray(images)
    train_size = images.shape[1]
    if input_size == train_size:
        return images
    if input_size % train_size == 0:
        k = input_size // train_size
        return images.repeat(k, axis=1).repeat(k, axis=2)

    return np.stack([resize(np.asarray(img, np.uint8), (input_size, input_size)) for img in images])


@dataclass(frozen=True)
class QuantizationConfig:
    """How to quantize at conversion (after MediaPipe Model Maker's QuantizationConfig).

    ``representative_images``: float32/uint8 (N, S, S, 3) raw RGB 0..255 used to
    calibrate activation ranges (int8 only). ``int8_io``: uint8 input pixels and
    uint8 output probabilities instead of float32. ``prepare``: convert an int8 model
    from ``kft.export.int8_prep.prepare_for_int8`` (depthwise bias correction,
    normalisation folded into the first conv); False gives the converter's plain
    output, for comparison.
    """

    name: str
    optimize: bool = False
    float16_weights: bool = False
    representative_images: np.ndarray | None = None
    int8_io: bool = False
    prepare: bool = True
    selective: bool = False  # int8 only: leave the layers int8 hurts most in float (kft.export.quant_debug)
    island_agreement: float = 0.99  # selective: float islands grow until top-1 agrees with float this often

    @classmethod
    def for_float32(cls) -> "QuantizationConfig":
        return cls("float32")

    @classmethod
    def for_float16(cls) -> "QuantizationConfig":
        """Float16 weights (half the size); computation stays float32 on CPU."""
        return cls("float16", optimize=True, float16_weights=True)

    @classmethod
    def for_dynamic(cls) -> "QuantizationConfig":
        """Int8 weights, float activations quantized on the fly (no calibration data)."""
        return cls("dynamic", optimize=True)

    @classmethod
    def for_int8(cls, representative_images, int8_io: bool = False, prepare: bool = True) -> "QuantizationConfig":
        """Full-integer model: int8 weights and activations, calibrated on ``representative_images``."""
        images = np.asarray(representative_images)
        if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
            raise KftError("int8 quantization needs calibration images shaped (N, H, W, 3), N > 0")
        return cls("int8", optimize=True, representative_images=images, int8_io=int8_io, prepare=prepare)

    @classmethod
    def named(cls, name: str, representative_images=None, int8_io: bool = False) -> "QuantizationConfig":
        """The config for one of ``QUANTIZATIONS``."""
        if name == "int8":
            if representative_images is None:
                raise KftError("int8 quantization needs calibration images (export a run directory)")
            return cls.for_int8(representative_images, int8_io)
        makers = {"float32": cls.for_float32, "float16": cls.for_float16, "dynamic": cls.for_dynamic}
        if name not in makers:
            raise one_of("quantization", name, QUANTIZATIONS)
        return makers[name]()

    @property
    def is_float(self) -> bool:
        """Whether activations (and so the recovered logits) stay floating point."""
        return self.name != "int8"

    def representative_dataset(self):
        """The calibration images as the converter wants them: a generator of [image[None]]."""
        images = self.representative_images

        def gen():
            for img in images:
                yield [np.asarray(img, np.float32)[None]]

        return gen

    def apply(self, converter) -> None:
        """Set the converter's optimisation options for this quantization."""
        import tensorflow as tf

        if self.optimize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if self.float16_weights:
            converter.target_spec.supported_types = [tf.float16]
        if self.representative_images is not None:
            converter.representative_dataset = self.representative_dataset()
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if self.selective:  # float kernels for the islands
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                                       tf.lite.OpsSet.TFLITE_BUILTINS]
            if self.int8_io:
                converter.inference_input_type = tf.uint8
                converter.inference_output_type = tf.uint8




def convert(model, quant: QuantizationConfig, input_size: int | None = None, details: dict | None = None,
            probe_batch: int | None = None, probe_workers: int | None = None) -> bytes:
    """Convert a kft classifier (logits out) to .tflite bytes (probabilities out).

    ``model`` takes one float32 (None, S, S, 3) raw-RGB input at its training
    resolution S. The result has a ``[1, N, N, 3]`` input named ``image``
    (N = ``input_size``, default ``default_input_size(S)``; N = S gives the bare
    model) reduced to S in the graph (module docstring), and a ``[1, C]`` output
    named ``probabilities``; with ``quant.int8_io`` both are uint8 and the input
    byte is the pixel value (scale 1, zero point 0). ``quant.representative_images``
    are at S (they are brought to N here). ``details``, if given, receives
    ``float_nodes``: the layers a selective int8 conversion left in float.
    ``probe_batch`` / ``probe_workers``: how a selective conversion scores its candidate
    models (``quant_debug.selective_int8``; the result does not depend on them).
    """

    converter, quant_n = build_converter(model, quant, input_size)
    float_nodes: list[str] = []
    if quant.selective:
        from kft.export.quant_debug import selective_int8

        buf, float_nodes = selective_int8(converter, quant_n.representative_images, quant.island_agreement,
                                          batch_size=probe_batch, workers=probe_workers)
    else:
        buf = converter.convert()
    quant = quant_n
    if details is not None:
        details["float_nodes"] = float_nodes
    tree = tflite_model.load(buf)
    tflite_model.rename_io(tree, [INPUT_NAME], [OUTPUT_NAME])
    if quant.int8_io:
        tflite_model.set_uint8_input_identity(tree)
    return tflite_model.dump(tree)


def build_converter(model, quant: QuantizationConfig, input_size: int | None = None):
    """The configured ``TFLiteConverter`` for ``convert`` (also used by the quantization report),
    and ``quant`` with its calibration images at the declared input size."""
    import tensorflow as tf

    size = _input_size(model)
    if size[0] != size[1]:
        raise KftError(f"expected a square image input, the model has {size}")
    train_size = size[0]
    n = check_input_size(default_input_size(train_size) if input_size is None else input_size, train_size)
    if quant.name == "int8" and quant.prepare:
        from kft.export.int8_prep import prepare_for_int8

        model = prepare_for_int8(model, quant.representative_images)
    module = tf.Module()
    # Keras 3 variables wrap tf.Variables (``.value``); the converter needs the latter tracked.
    module.variables_ = [v.value for v in model.variables]
    k = box_factor(n, train_size)

    @tf.function(input_signature=[tf.TensorSpec([1, n, n, 3], tf.float32, name=INPUT_NAME)])
    def serve(image):
        x = image
        if n != k * train_size:
            x = tf.image.resize(x, (k * train_size, k * train_size), method="bilinear")
        if k > 1:
            x = tf.nn.avg_pool2d(x, ksize=k, strides=k, padding="VALID")
        logits = model(x, training=False)
        return {OUTPUT_NAME: tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)}

    if quant.representative_images is not None and n != train_size:
        quant = replace(quant, representative_images=to_input_size(quant.representative_images, n))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], module)
    quant.apply(converter)
    converter._kft_keepalive = (serve, module, model)  # the concrete function's owners
    return converter, quant


def _input_size(model) -> tuple[int, int]:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise KftError(f"expected a classifier with one input and one output, got {model.name!r}")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3 or shape[1] is None or shape[2] is None:
        raise KftError(f"expected a (None, H, W, 3) image input, the model has {shape}")
    return int(shape[1]), int(shape[2])
