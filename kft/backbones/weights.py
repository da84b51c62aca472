"""Where ImageNet weights come from, and loading them with clear errors.

``weights`` is ``imagenet``, ``none`` or a file path. ``imagenet`` looks in
``KFT_WEIGHTS_DIR`` for the backbone's file, named
``<backbone>[_<width>]_imagenet_no_top.weights.h5`` (a Keras ``save_weights``
file of the feature extractor built with ``include_top=False``; e.g.
``mobilenet_v2_1.0_imagenet_no_top.weights.h5``,
``resnet18_imagenet_no_top.weights.h5``), then in kft's cache
(``~/.cache/kft/weights``), and only then downloads: keras.applications for
MobileNets, the public torchvision checkpoint (converted once) for ResNets.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

from kft.backbones.mobilenet import build_mobilenet
from kft.backbones.registry import TORCHVISION, BackboneSpec
from kft.errors import KftError

CACHE_DIR = Path(os.environ.get("KFT_CACHE_DIR", Path.home() / ".cache" / "kft")) / "weights"
STATE_DICT_SUFFIXES = (".safetensors", ".npz", ".pth", ".pt")


def weights_dir() -> Path | None:
    d = os.environ.get("KFT_WEIGHTS_DIR")
    return Path(d) if d else None


def local_imagenet_file(spec: BackboneSpec) -> Path | None:
    """The ImageNet weights file for ``spec`` if it is on disk (no download)."""
    if not spec.weights_file:
        return None
    for folder in (weights_dir(), CACHE_DIR):
        if folder is not None and (folder / spec.weights_file).is_file():
            return folder / spec.weights_file
    return None


def load_backbone_weights(spec: BackboneSpec, backbone, weights: str | None, image_size: int) -> None:
    """Load ``weights`` (``imagenet`` | ``none`` | path) into a freshly built backbone."""
    if weights in (None, "none"):
        return
    if weights == "imagenet":
        path = local_imagenet_file(spec) or _download(spec, image_size)
    else:
        path = Path(weights)
        if not path.is_file():
            raise KftError(f"weights file not found: {path}")
    load_weights_file(spec, backbone, path)


def load_weights_file(spec: BackboneSpec, backbone, path: Path) -> None:
    """Load a Keras ``.weights.h5`` or (ResNets) a torchvision/timm state dict."""
    path = Path(path)
    if path.suffix in STATE_DICT_SUFFIXES:
        if not spec.reads_state_dicts:
            raise KftError(f"{path}: state-dict files are supported for torchvision backbones only, not {spec.name}")
        from kft.backbones.torch_weights import assign_state_dict, read_state_dict

        assign_state_dict(backbone, read_state_dict(path))
        return
    if not path.name.endswith(".h5"):
        raise KftError(f"{path}: unsupported weights file; use a Keras .weights.h5 file"
                       + (" or a .safetensors/.npz/.pth state dict" if spec.reads_state_dicts else ""))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            backbone.load_weights(path)
    except ValueError as e:
        raise KftError(f"{path} does not fit {spec.name}: {_first_mismatch(str(e))}") from None
    except OSError as e:
        raise KftError(f"{path}: not a readable weights file ({str(e).splitlines()[0]})") from None


def _first_mismatch(message: str) -> str:
    layer = re.search(r"object <\w+ name=([^,>]+)", message)
    shapes = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))", message)
    if layer and shapes:
        return f"layer {layer.group(1)!r} expects shape {shapes.group(1)}, the file has {shapes.group(2)}"
    if layer:
        return f"first mismatch at layer {layer.group(1)!r}"
    return message.strip().splitlines()[0]


def _download(spec: BackboneSpec, image_size: int) -> Path:
    """Fetch ImageNet weights into the cache; a clear error when offline."""
    source = spec.weights_source
    if source is None or not spec.weights_file:
        raise KftError(f"{spec.name} has no ImageNet weights source; give `weights` FILE or `weights` none")
    dest = CACHE_DIR / spec.weights_file
    try:
        if source.kind == TORCHVISION:
            from kft.backbones.torch_weights import download_imagenet

            return download_imagenet(source.model, CACHE_DIR)
        from kft.rundir.atomic import atomic_path

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = _keras_imagenet(spec, image_size)
        with atomic_path(dest) as tmp:
            model.save_weights(tmp)
        return dest
    except KftError:
        raise
    except Exception as e:  # network failures surface as many exception types
        where = f"KFT_WEIGHTS_DIR={weights_dir()}" if weights_dir() else "KFT_WEIGHTS_DIR (unset)"
        raise KftError(
            f"no ImageNet weights for {spec.name}: looked for {spec.weights_file} in {where} and {CACHE_DIR}, "
            f"and the download failed ({type(e).__name__}); put the file in KFT_WEIGHTS_DIR or use `weights` none"
        ) from None


def _keras_imagenet(spec: BackboneSpec, image_size: int):
    # keras.applications has ImageNet files for these sizes only; the weights fit any size
    size = image_size if image_size in (96, 128, 160, 192, 224) else 224
    return build_mobilenet(spec, size, weights="imagenet")
