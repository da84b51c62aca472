"""ResNet-18/34 feature extractors: torchvision's architecture, in Keras, with torchvision's names.

Every layer holding weights is named by its torchvision state-dict prefix
(``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0`` ...), so a
torchvision/timm checkpoint maps onto the model by name alone
(``kft.backbones.torch_weights``). Weightless helpers get derived names
(``conv1_pad``, ``layer1.0.relu1``, ``layer1.0.add``, ``layer1.0.relu2``).

torchvision pads symmetrically; Keras' ``same`` pads (0, 1) for stride 2 on even
sizes, so every padded op is an explicit ``ZeroPadding2D`` followed by a
``valid`` op, which matches torch for odd and even sizes alike. The max-pool
pads with zeros instead of torch's -inf: its input is a ReLU output (>= 0) and
every window holds at least one real pixel, so the result is the same.

Because each block starts with its ``conv1_pad`` (the only layer besides the
shortcut that reads the block input, and the deeper of the two), that pad is
the block boundary in ``resnet_specs``.
"""

from __future__ import annotations

from kft.backbones.registry import BackboneSpec

# torch.nn.BatchNorm2d defaults: eps 1e-5, momentum 0.1 (Keras counts the other way).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

# torchvision's init: kaiming_normal_(mode="fan_out", nonlinearity="relu"), for weights="none".
_TORCH_CONV_INIT = {"class_name": "VarianceScaling",
                    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"}}

STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
WIDTHS = (64, 128, 256, 512)


def build_resnet18(spec: BackboneSpec, image_size: int):
    """ResNet-18 without fc: (None, S, S, 3) -> layer4 map (None, ceil(S/32), ceil(S/32), 512)."""
    return build_resnet(18, image_size, name=spec.name)


def build_resnet34(spec: BackboneSpec, image_size: int):
    """ResNet-34 without fc: (None, S, S, 3) -> layer4 map (None, ceil(S/32), ceil(S/32), 512)."""
    return build_resnet(34, image_size, name=spec.name)


def build_resnet(depth: int, image_size: int | None, name: str | None = None):
    """Channels-last torchvision ResNet (basic blocks) up to layer4; ``image_size`` None: any size."""
    import keras

    layers = keras.layers
    inputs = keras.Input((image_size, image_size, 3), name="input")
    x = _conv(inputs, 64, 7, 2, "conv1")
    x = _bn(x, "bn1")
    x = layers.ReLU(name="relu")(x)
    x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="valid", name="maxpool")(x)
    for stage, (blocks, width) in enumerate(zip(STAGES[depth], WIDTHS), start=1):
        for i in range(blocks):
            stride = 2 if stage > 1 and i == 0 else 1
            x = _basic_block(x, width, stride, f"layer{stage}.{i}")
    return keras.Model(inputs, x, name=name or f"resnet{depth}")


def _basic_block(x, width: int, stride: int, prefix: str):
    """torchvision ``BasicBlock``: conv3x3(stride)-bn-relu-conv3x3-bn, + shortcut, relu."""
    import keras

    layers = keras.layers
    shortcut = x
    y = _conv(x, width, 3, stride, f"{prefix}.conv1")
    y = _bn(y, f"{prefix}.bn1")
    y = layers.ReLU(name=f"{prefix}.relu1")(y)
    y = _conv(y, width, 3, 1, f"{prefix}.conv2")
    y = _bn(y, f"{prefix}.bn2")
    if stride != 1 or x.shape[-1] != width:
        shortcut = _conv(x, width, 1, stride, f"{prefix}.downsample.0")
        shortcut = _bn(shortcut, f"{prefix}.downsample.1")
    y = layers.Add(name=f"{prefix}.add")([y, shortcut])
    return layers.ReLU(name=f"{prefix}.relu2")(y)


def _conv(x, filters: int, kernel: int, stride: int, name: str):
    """Bias-free conv with torch's symmetric padding ``kernel // 2``."""
    import keras

    pad = kernel // 2
    if pad:
        x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding="valid", use_bias=False,
                               kernel_initializer=_TORCH_CONV_INIT, name=name)(x)


def _bn(x, name: str):
    import keras

    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)
