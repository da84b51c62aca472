"""Backbones: registry (name -> builder + block map), architectures, weights."""

from kft.backbones.registry import BackboneSpec, all_block_names, assign_blocks, get, names

__all__ = ["BackboneSpec", "all_block_names", "assign_blocks", "get", "names"]
