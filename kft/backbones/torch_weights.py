"""torchvision/timm ResNet checkpoints -> the Keras ResNet of ``kft.backbones.resnet``.

The Keras layers carry torchvision's state-dict prefixes, so the mapping is by
name: a conv's ``<name>.weight`` (OIHW) becomes its kernel (HWIO); a
BatchNorm's ``weight``, ``bias``, ``running_mean``, ``running_var`` become
gamma, beta, moving_mean, moving_variance. The classifier (``fc.*``) and the
``num_batches_tracked`` counters are not part of the backbone and are dropped.
Nothing is assigned unless every tensor of every layer is present with the
right shape and no backbone key is left over.

Reads ``.safetensors`` (needs the ``safetensors`` package), ``.npz`` (numpy
only) and ``.pth``/``.pt`` (only if torch is installed; loaded with
``weights_only=True``, never unpickling arbitrary objects).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from kft.rundir.atomic import atomic_path
from kft.errors import KftError, one_of

# timm's copies of torchvision's original ImageNet weights (IMAGENET1K_V1), as safetensors.
IMAGENET_URLS = {
    "resnet18": "https://huggingface.co/timm/resnet18.tv_in1k/resolve/main/model.safetensors",
    "resnet34": "https://huggingface.co/timm/resnet34.tv_in1k/resolve/main/model.safetensors",
}
STRIP_PREFIXES = ("module.", "model.")
IGNORED_PREFIXES = ("fc.",)
IGNORED_SUFFIXES = (".num_batches_tracked",)
BN_KEYS = ("weight", "bias", "running_mean", "running_var")  # Keras order: gamma, beta, mean, var
SUFFIXES = (".safetensors", ".npz", ".pth", ".pt")


def read_state_dict(path) -> dict[str, np.ndarray]:
    """Read a checkpoint into ``{torch key: array}``, backbone keys only (see module doc)."""
    path = Path(path)
    if not path.is_file():
        raise KftError(f"checkpoint not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        raw = _read_safetensors(path)
    elif suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:
                raw = {k: f[k] for k in f.files}
        except (OSError, ValueError) as e:
            raise KftError(f"cannot read {path} as .npz: {e}") from None
    elif suffix in (".pth", ".pt"):
        raw = _read_torch(path)
    else:
        raise KftError(f"unsupported checkpoint type {path.name!r}; use one of: {', '.join(SUFFIXES)}")
    return clean_state_dict(raw)


def clean_state_dict(state_dict) -> dict[str, np.ndarray]:
    """Strip ``module.``/``model.`` prefixes, drop ``fc.*`` and ``num_batches_tracked``."""
    out: dict[str, np.ndarray] = {}
    for key, value in state_dict.items():
        name = key
        while name.startswith(STRIP_PREFIXES):
            name = name.split(".", 1)[1]
        if name.startswith(IGNORED_PREFIXES) or name.endswith(IGNORED_SUFFIXES):
            continue
        if name in out:
            raise KftError(f"checkpoint holds {name!r} twice (with and without a prefix)")
        out[name] = np.asarray(value)
    return out


def assign_state_dict(model, state_dict) -> None:
    """Set every weight of ``model`` from a torchvision-named state dict, all or nothing."""
    import keras

    state = clean_state_dict(state_dict)
    used: set[str] = set()
    updates = []  # (layer, [arrays in Keras order])
    for layer in model.layers:
        if not layer.weights:
            continue
        if isinstance(layer, keras.layers.Conv2D):
            keys = [("weight", _oihw_to_hwio)] + ([("bias", None)] if layer.use_bias else [])
        elif isinstance(layer, keras.layers.BatchNormalization):
            if not (layer.scale and layer.center):
                raise TypeError(f"{layer.name}: BatchNormalization without scale/center is not supported")
            keys = [(k, None) for k in BN_KEYS]
        else:
            raise TypeError(f"no torch mapping for layer {layer.name!r} ({type(layer).__name__})")
        arrays = []
        for (suffix, convert), var in zip(keys, layer.weights, strict=True):
            key = f"{layer.name}.{suffix}"
            if key not in state:
                raise KftError(f"checkpoint has no {key!r} for layer {layer.name!r} "
                               f"(expected shape {_torch_shape(var.shape, convert)})")
            value = state[key]
            expected = _torch_shape(var.shape, convert)
            if tuple(value.shape) != expected:
                raise KftError(f"layer {layer.name!r}: checkpoint {key!r} has shape {tuple(value.shape)}, "
                               f"the model needs {expected} (a different architecture?)")
            arrays.append((convert(value) if convert else value).astype(var.dtype))
            used.add(key)
        updates.append((layer, arrays))
    extra = sorted(set(state) - used)
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise KftError(f"checkpoint key {extra[0]!r}{more} matches no layer of {model.name!r} "
                       f"(a different architecture?)")
    for layer, arrays in updates:
        layer.set_weights(arrays)


def convert_checkpoint(checkpoint: str, src, dest) -> Path:
    """Read a torchvision-style checkpoint (``resnet18``/``resnet34``) and save it as Keras
    ``.weights.h5`` (atomically)."""
    from kft.backbones import registry

    if checkpoint not in IMAGENET_URLS:
        raise one_of("torchvision checkpoint", checkpoint, IMAGENET_URLS)
    model = registry.get(checkpoint).build(64)  # weights do not depend on the image size
    assign_state_dict(model, read_state_dict(src))
    with atomic_path(dest) as tmp:
        model.save_weights(tmp)
    return Path(dest)


def download_imagenet(checkpoint: str, dest) -> Path:
    """Download torchvision's ImageNet weights for ``checkpoint`` (``resnet18``/``resnet34``);
    save ``<checkpoint>_imagenet_no_top.weights.h5``.

    Fetches timm's safetensors copy (needs only ``safetensors``, no torch) into
    ``dest`` and converts it; returns the path of the saved Keras weights.
    """
    if checkpoint not in IMAGENET_URLS:
        raise one_of("torchvision checkpoint", checkpoint, IMAGENET_URLS)
    url = IMAGENET_URLS[checkpoint]
    dest = Path(dest)
    out = dest / f"{checkpoint}_imagenet_no_top.weights.h5"
    dest.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{checkpoint}.", suffix=".safetensors", dir=dest)
    os.close(fd)
    try:
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
                shutil.copyfileobj(response, f, length=1 << 20)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            raise KftError(
                f"could not download {url} ({getattr(e, 'reason', e)}); to work offline, put "
                f"{out.name} (saved by kft on a machine with internet) in the folder named by "
                f"KFT_WEIGHTS_DIR, or give that model.safetensors file as the weights path") from None
        return convert_checkpoint(checkpoint, tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _oihw_to_hwio(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 3, 1, 0))


def _torch_shape(keras_shape, convert) -> tuple[int, ...]:
    shape = tuple(int(d) for d in keras_shape)
    if convert is _oihw_to_hwio:  # HWIO -> OIHW
        return (shape[3], shape[2], shape[0], shape[1])
    return shape


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise KftError(f"reading {path.name} needs the safetensors package: pip install safetensors") from None
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types (header, dtype such as bf16)
        raise KftError(f"cannot read {path} as safetensors: {e}") from None


def _read_torch(path: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise KftError(f"reading {path.name} needs PyTorch; install torch, or convert the checkpoint "
                       f"to .safetensors or .npz (state-dict keys unchanged)") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError ... for bad files
        raise KftError(f"cannot read {path} as a PyTorch state dict: {e}") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict):
        raise KftError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy()
            for k, v in obj.items() if isinstance(v, torch.Tensor)}
