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


register(BackboneSpec(
    name="mobilenet_v2",
    description="MobileNetV2 1.0 (keras.applications)",
    builder="kft.backbones.mobilenet:build_mobilenet",
    normalization=MINUS_ONE_TO_ONE,
    width=1.0,
    weights_file="mobilenet_v2_1.0_imagenet_no_top.weights.h5",
    weights_source=WeightsSource(KERAS_APPLICATIONS, "MobileNetV2"),
    blocks=(
        ("stem", None),
        ("layer1", "block_1_expand"),
        ("layer2", "block_3_expand"),
        ("layer3", "block_6_expand"),
        ("layer4", "block_13_expand"),
    ),
    block_doc={
        "stem": "Conv1 .. expanded_conv (16 ch, stride 2)",
        "layer1": "block_1 .. block_2 (24 ch, stride 4)",
        "layer2": "block_3 .. block_5 (32 ch, stride 8)",
        "layer3": "block_6 .. block_12 (64 and 96 ch, stride 16)",
        "layer4": "block_13 .. block_16 + Conv_1 (160, 320, 1280 ch, stride 32)",
    },
))

register(BackboneSpec(
    name="mobilenet_v3_small",
    description="MobileNetV3-Small 0.75 (keras.applications)",
    builder="kft.backbones.mobilenet:build_mobilenet",
    normalization=IDENTITY,  # the backbone rescales 0..255 itself
    width=0.75,
    weights_file="mobilenet_v3_small_0.75_imagenet_no_top.weights.h5",
    weights_source=WeightsSource(KERAS_APPLICATIONS, "MobileNetV3Small"),
    blocks=(
        ("stem", None),
        ("layer1", "expanded_conv_depthwise_pad"),
        ("layer2", "expanded_conv_1_expand"),
        ("layer3", "expanded_conv_3_expand"),
        ("layer4", "expanded_conv_8_expand"),
    ),
    block_doc={
        "stem": "rescaling, conv, conv_bn, hard-swish (stride 2)",
        "layer1": "expanded_conv (stride 4)",
        "layer2": "expanded_conv_1 .. _2 (stride 8)",
        "layer3": "expanded_conv_3 .. _7 (stride 16)",
        "layer4": "expanded_conv_8 .. _10 + conv_1 (stride 32)",
    },
))

register(BackboneSpec(
    name="mobilenet_v3_large",
    description="MobileNetV3-Large 1.0 (keras.applications)",
    builder="kft.backbones.mobilenet:build_mobilenet",
    normalization=IDENTITY,
    width=1.0,
    weights_file="mobilenet_v3_large_1.0_imagenet_no_top.weights.h5",
    weights_source=WeightsSource(KERAS_APPLICATIONS, "MobileNetV3Large"),
    blocks=(
        ("stem", None),
        ("layer1", "expanded_conv_1_expand"),
        ("layer2", "expanded_conv_3_expand"),
        ("layer3", "expanded_conv_6_expand"),
        ("layer4", "expanded_conv_12_expand"),
    ),
    block_doc={
        "stem": "rescaling, conv, expanded_conv (stride 2)",
        "layer1": "expanded_conv_1 .. _2 (stride 4)",
        "layer2": "expanded_conv_3 .. _5 (stride 8)",
        "layer3": "expanded_conv_6 .. _11 (stride 16)",
        "layer4": "expanded_conv_12 .. _14 + conv_1 (stride 32)",
    },
))
