"""Backbones: the registry (name -> builder + block map), the architectures, their weights.

Like timm's ``models/__init__.py``, this package imports the modules that define backbones, so
``kft.backbones.get("mobilenet_v2")`` works whichever module is imported first; the registry
itself imports nothing back.
"""

from kft.backbones.registry import BackboneSpec, all_block_names, assign_blocks, get, names
from kft.backbones import mobilenet, resnet_specs  # noqa: F401,E402 - each registers its backbones

__all__ = ["BackboneSpec", "all_block_names", "assign_blocks", "get", "names"]
