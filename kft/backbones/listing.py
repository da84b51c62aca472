"""``kft backbones``: a table of the registry (blocks, parameters, local weights)."""

from __future__ import annotations

from kft.backbones import registry
from kft.backbones.weights import local_imagenet_file


def describe(name: str, image_size: int = 64) -> dict:
    """Blocks with their parameter counts (independent of input size: built small), and local weights."""
    from kft.model import block_layers, build_classifier

    spec = registry.get(name)
    model = build_classifier(spec, num_classes=1000, image_size=image_size, weights="none")
    blocks = {b: sum(int(w.numpy().size) for layer in layers for w in layer.weights)
              for b, layers in block_layers(model).items()}
    local = local_imagenet_file(spec)
    return {"name": name, "description": spec.description, "blocks": blocks,
            "backbone_params": sum(v for b, v in blocks.items() if b not in ("preprocess", "head")),
            "imagenet_weights": str(local) if local else None, "block_doc": spec.block_doc}


def format_backbones() -> str:
    lines = []
    for name in registry.names():
        d = describe(name)
        weights = d["imagenet_weights"] or "not local (downloaded on first use)"
        lines.append(f"{name}: {d['description']}; {d['backbone_params']:,} backbone params; ImageNet weights: {weights}")
        for block, params in d["blocks"].items():
            if block in ("preprocess", "head"):
                continue
            lines.append(f"    {block:<7} {params:>11,}  {d['block_doc'].get(block, '')}")
    return "\n".join(lines)
