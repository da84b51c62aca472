"""Registry entries for ResNet-18/34 (architecture in ``kft.backbones.resnet``).

Blocks use torchvision's names: ``stem`` (conv1, bn1, relu, maxpool) and
``layer1`` .. ``layer4``; the classifier head (torchvision's ``fc``) is kft's
``head`` block. Each block starts at ``layerN.0.conv1_pad``, the explicit padding
in front of its first conv, which Keras orders before ``layerN.0.conv1`` and
the shortcut (see ``kft.backbones.resnet``); it reads the block's input tensor.
"""

from kft.backbones.registry import IMAGENET_MEAN_STD, TORCHVISION, BackboneSpec, WeightsSource, register

_RESNET_BLOCKS = (
    ("stem", None),
    ("layer1", "layer1.0.conv1_pad"),
    ("layer2", "layer2.0.conv1_pad"),
    ("layer3", "layer3.0.conv1_pad"),
    ("layer4", "layer4.0.conv1_pad"),
)
_RESNET_DOC = {
    "stem": "conv1 7x7/2, bn1, relu, maxpool (stride 4)",
    "layer1": "layer1.* basic blocks (64 ch, stride 4)",
    "layer2": "layer2.* (128 ch, stride 8)",
    "layer3": "layer3.* (256 ch, stride 16)",
    "layer4": "layer4.* (512 ch, stride 32)",
}

for _depth in (18, 34):
    register(BackboneSpec(
        name=f"resnet{_depth}",
        description=f"ResNet-{_depth} (torchvision architecture and names, ported to Keras)",
        builder=f"kft.backbones.resnet:build_resnet{_depth}",
        normalization=IMAGENET_MEAN_STD,
        weights_file=f"resnet{_depth}_imagenet_no_top.weights.h5",
        weights_source=WeightsSource(TORCHVISION, f"resnet{_depth}"),
        blocks=_RESNET_BLOCKS,
        block_doc=_RESNET_DOC,
    ))
