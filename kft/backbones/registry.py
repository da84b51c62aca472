"""Backbone registry: a name maps to a builder, its input normalisation and its block map.

Like timm's ``group_matcher``, every backbone names its blocks in order, from the
input to the output (``stem``, ``layer1`` ... ``layer4``), and every layer of the
backbone belongs to exactly one block. A stage plan says which blocks train.

A block is given by the name of its *first* layer (the stem starts at the input):
walking ``model.layers``, which Keras keeps in topological order, a layer belongs
to the last block whose first layer has been seen. Keras names auto-generated
layers (``activation_17``) by a per-process counter, so only stable, explicit
names serve as boundaries. Each boundary is where the whole network state is
one tensor (the first layer's single input), so the network can be cut there and
the frozen part cached (see ``kft.training.cache``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from kft.errors import one_of

# Blocks of the classifier that are not part of the backbone.
PREPROCESS_BLOCK = "preprocess"
HEAD_BLOCK = "head"


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``x * scale + offset`` applied to raw RGB 0..255 pixels."""

    scale: tuple[float, float, float]
    offset: tuple[float, float, float]

    @classmethod
    def mean_std(cls, mean, std) -> "Normalization":
        """torchvision convention: ``(x/255 - mean) / std``."""
        return cls(tuple(1.0 / (255.0 * s) for s in std), tuple(-m / s for m, s in zip(mean, std)))

    @property
    def is_identity(self) -> bool:
        return self.scale == (1.0, 1.0, 1.0) and self.offset == (0.0, 0.0, 0.0)


IDENTITY = Normalization((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
MINUS_ONE_TO_ONE = Normalization((1 / 127.5,) * 3, (-1.0,) * 3)
IMAGENET_MEAN_STD = Normalization.mean_std((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


KERAS_APPLICATIONS = "keras.applications"
TORCHVISION = "torchvision"


@dataclass(frozen=True)
class WeightsSource:
    """Where a backbone's ImageNet weights come from when they are not on disk (timm's
    ``pretrained_cfg``, in short): ``keras.applications`` (``model`` is the class name, e.g.
    ``MobileNetV2``) or ``torchvision`` (``model`` is the checkpoint, e.g. ``resnet18``).
    A torchvision backbone also reads torchvision/timm state-dict files."""

    kind: str
    model: str

    def __post_init__(self):
        if self.kind not in (KERAS_APPLICATIONS, TORCHVISION):
            raise ValueError(f"unknown weights source {self.kind!r}")


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    description: str
    builder: str  # "module:function", imported lazily so listing needs no TensorFlow
    normalization: Normalization
    blocks: tuple[tuple[str, str | None], ...]  # (block name, its first layer; None: the input), in order
    width: float | None = None  # width multiplier, where the architecture has one
    weights_file: str | None = None  # file name looked up in KFT_WEIGHTS_DIR
    weights_source: WeightsSource | None = None  # where ``--weights imagenet`` downloads from
    block_doc: dict[str, str] = field(default_factory=dict)  # what each block holds, for humans

    @property
    def reads_state_dicts(self) -> bool:
        """Whether ``--weights FILE`` may be a torchvision/timm state dict (.safetensors/.npz/.pth)."""
        return self.weights_source is not None and self.weights_source.kind == TORCHVISION

    @property
    def block_names(self) -> tuple[str, ...]:
        return tuple(b for b, _ in self.blocks)

    def build(self, image_size: int):
        """Build the feature extractor (no weights) for square ``image_size`` inputs."""
        module, fn = self.builder.split(":")
        return getattr(importlib.import_module(module), fn)(self, image_size)


_REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add ``spec`` under its name; a name that is taken is an error, never a silent overwrite."""
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> BackboneSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise one_of("backbone", name, _REGISTRY) from None


def names() -> list[str]:
    return list(_REGISTRY)


def all_block_names(spec: BackboneSpec) -> tuple[str, ...]:
    """Every block a plan may name for this backbone, input to output."""
    return (PREPROCESS_BLOCK, *spec.block_names, HEAD_BLOCK)


def assign_blocks(spec: BackboneSpec, backbone) -> dict[str, str]:
    """Map every layer name of the built backbone to its block name.

    Raises if a boundary layer is missing or the last block does not end at the
    backbone's last layer, so a changed Keras architecture cannot go unnoticed.
    """
    layers = [layer.name for layer in backbone.layers]
    firsts = {first: block for block, first in spec.blocks if first is not None}
    missing = [first for first in firsts if first not in layers]
    if missing:
        raise ValueError(f"{spec.name}: block boundary layers not in the model: {missing}")
    order = [firsts[name] for name in layers if name in firsts]
    if order != [b for b, first in spec.blocks if first is not None]:
        raise ValueError(f"{spec.name}: block boundaries out of order: {order}")
    mapping: dict[str, str] = {}
    block = spec.blocks[0][0]
    for name in layers:
        block = firsts.get(name, block)
        mapping[name] = block
    return mapping


def block_input(spec: BackboneSpec, backbone, block: str):
    """The single tensor that enters ``block``: cutting the network there splits it in two."""
    first = dict(spec.blocks)[block]
    return backbone.input if first is None else backbone.get_layer(first).input
