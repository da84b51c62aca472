"""MobileNetV2 / V3 feature extractors from ``keras.applications``, with block maps.

Blocks follow the output stride, like ResNet's: ``stem`` (stride 2), ``layer1``
(4), ``layer2`` (8), ``layer3`` (16), ``layer4`` (32, including the final 1x1
conv). So "the last block" means the same thing for every backbone.
"""

from __future__ import annotations

from kft.backbones.registry import (IDENTITY, KERAS_APPLICATIONS, MINUS_ONE_TO_ONE, BackboneSpec, WeightsSource,
                                    register)


def build_mobilenet(spec: BackboneSpec, image_size: int, weights: str | None = None):
    """The ``keras.applications`` feature extractor for ``spec`` (``weights="imagenet"`` downloads).

    MobileNetV3 keeps Keras' own Rescaling layer (include_preprocessing), so it takes 0..255.
    """
    import keras

    application = spec.weights_source.model
    extra = {} if application == "MobileNetV2" else {"include_preprocessing": True}
    return getattr(keras.applications, application)(
        alpha=spec.width, include_top=False, weights=weights, input_shape=(image_size, image_size, 3), **extra)


def _keras_application(name: str, description: str, application: str, width: float, normalization,
                       blocks: list[tuple[str, str | None, str]]) -> None:
    """Register a ``keras.applications`` MobileNet; ``blocks``: (block, its first layer, what it holds)."""
    register(BackboneSpec(
        name=name, description=description, builder="kft.backbones.mobilenet:build_mobilenet",
        normalization=normalization, width=width, weights_file=f"{name}_{width}_imagenet_no_top.weights.h5",
        weights_source=WeightsSource(KERAS_APPLICATIONS, application),
        blocks=tuple((block, first) for block, first, _ in blocks),
        block_doc={block: doc for block, _, doc in blocks}))


_keras_application("mobilenet_v2", "MobileNetV2 1.0 (keras.applications)", "MobileNetV2", 1.0, MINUS_ONE_TO_ONE, [
    ("stem", None, "Conv1 .. expanded_conv (16 ch, stride 2)"),
    ("layer1", "block_1_expand", "block_1 .. block_2 (24 ch, stride 4)"),
    ("layer2", "block_3_expand", "block_3 .. block_5 (32 ch, stride 8)"),
    ("layer3", "block_6_expand", "block_6 .. block_12 (64 and 96 ch, stride 16)"),
    ("layer4", "block_13_expand", "block_13 .. block_16 + Conv_1 (160, 320, 1280 ch, stride 32)"),
])
# MobileNetV3 rescales 0..255 itself (IDENTITY normalization).
_keras_application("mobilenet_v3_small", "MobileNetV3-Small 0.75 (keras.applications)", "MobileNetV3Small", 0.75,
                   IDENTITY, [
    ("stem", None, "rescaling, conv, conv_bn, hard-swish (stride 2)"),
    ("layer1", "expanded_conv_depthwise_pad", "expanded_conv (stride 4)"),
    ("layer2", "expanded_conv_1_expand", "expanded_conv_1 .. _2 (stride 8)"),
    ("layer3", "expanded_conv_3_expand", "expanded_conv_3 .. _7 (stride 16)"),
    ("layer4", "expanded_conv_8_expand", "expanded_conv_8 .. _10 + conv_1 (stride 32)"),
])
_keras_application("mobilenet_v3_large", "MobileNetV3-Large 1.0 (keras.applications)", "MobileNetV3Large", 1.0,
                   IDENTITY, [
    ("stem", None, "rescaling, conv, expanded_conv (stride 2)"),
    ("layer1", "expanded_conv_1_expand", "expanded_conv_1 .. _2 (stride 4)"),
    ("layer2", "expanded_conv_3_expand", "expanded_conv_3 .. _5 (stride 8)"),
    ("layer3", "expanded_conv_6_expand", "expanded_conv_6 .. _11 (stride 16)"),
    ("layer4", "expanded_conv_12_expand", "expanded_conv_12 .. _14 + conv_1 (stride 32)"),
])
