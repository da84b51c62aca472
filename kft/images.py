"""Decode and resize images with Pillow (no TensorFlow), the way every client must.

Every image kft reads (``kft predict``, folder datasets, ``kft bench --images``)
goes through ``load_rgb``, so all of them see a photo the same way:

- EXIF orientation is applied (a phone's sideways JPEG is turned upright);
- 16-bit images are scaled to 8 bits by value (65535 -> 255), not truncated;
- greyscale and bilevel images are repeated into R, G and B; CMYK and YCbCr are converted;
- alpha (RGBA, LA, palette transparency) is composited on black: this is what the
  premultiplied pixels a browser canvas or an Android bitmap hand to a model hold;
- animated GIF/WebP/PNG and multi-page TIFF give their first frame;
- any other mode (32-bit float, LAB, ...) is refused with a one-line error naming the file.

Two resizers, for two jobs:

- ``resize`` (antialiased) makes dataset images: folders of training or unlabelled
  photos shrunk to the training resolution, where aliasing would spoil what is learnt;
- ``resize_like_mediapipe`` is how every deployed client (MediaPipe's ImageClassifier
  in Python, on Android and in the browser page) brings a photo to the model's declared
  input. ``kft predict``, ``kft serve`` and the runtime use it, so what kft reports for a
  photo file is what a client gets for it. Antialiasing instead made their top-1 differ
  on up to 11% of the photo files where neither was a tie, for the 2026-12-05 default
  recipe (docs/benchmarks.md).

Pixels are fed as raw RGB 0..255; normalisation and the box filter live inside the model.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kft.errors import KftError

# Refuse decompression bombs early: a 20000x20000 header would need 1.2 GB.
MAX_PIXELS = 64_000_000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ImageError(KftError):
    """An input file that is not a usable image; the message names the file."""


def load_rgb(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read ``path`` as upright uint8 RGB (H, W, 3); if ``size`` = (height, width) is given,
    resize to it with ``resize`` (antialiased: for datasets, not for a model's input).

    See the module docstring for how orientation, bit depth, alpha and frames are
    handled. Raises ``ImageError`` (naming the file) for a missing, empty,
    truncated, non-image, oversized or unsupported file.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    return _decode(path, str(path), path.stat().st_size, size)


def decode_rgb(data: bytes, name: str, size: tuple[int, int] | None = None,
               max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """``load_rgb`` for image bytes (an upload); errors name ``name``."""
    import io

    return _decode(io.BytesIO(data), name, len(data), size, max_pixels)


def _decode(source, path: str, nbytes: int, size, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if nbytes == 0:
        raise ImageError(f"{path}: empty file")
    try:
        with Image.open(source) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise ImageError(f"{path}: image too large ({w}x{h} pixels; limit {max_pixels:,})")
            im.seek(0)  # first frame of an animation or a multi-page file
            im.load()
            rgb = to_rgb(im, name=str(path))
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image (or an unsupported format)") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: image too large") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # truncated / corrupt data
        raise ImageError(f"{path}: unreadable image ({_first_line(e)})") from None
    if size is not None:
        rgb = resize(rgb, size)
    return rgb


def expand_image_paths(paths) -> list[Path]:
    """Files as given, and for each folder every image file under it, recursively.

    A folder's images (by suffix, case-insensitive, hidden files and folders
    skipped) come sorted by their path relative to it, sub-folders included, so
    ``photos/`` and ``photos/**`` classify the same files in the same order. A
    file named explicitly is kept whatever its suffix (it gets a per-file error
    if it is not an image). A folder with no images is an error.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            out.append(p)
            continue
        found = sorted((f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                        and not any(part.startswith(".") for part in f.relative_to(p).parts)),
                       key=lambda f: f.relative_to(p).as_posix())
        if not found:
            raise ImageError(f"{p}: no image files in this folder ({', '.join(IMAGE_SUFFIXES)})")
        out.extend(found)
    return out


def resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 RGB to (height, width) with antialiasing (Pillow's bilinear filter
    widens its support when shrinking, so it averages instead of aliasing): for datasets."""
    from PIL import Image

    h, w = size
    if rgb.shape[:2] == (h, w):
        return rgb
    im = Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(im, dtype=np.uint8)


def resize_like_mediapipe(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 RGB to (height, width) as MediaPipe's ImageClassifier does (its OpenCV
    image-to-tensor path: a perspective warp of the whole image onto the input, bilinear,
    no antialiasing, edges replicated).

    Output pixel ``x`` samples source position ``x * W / w`` (pixel index coordinates,
    no half-pixel offset), rounded to 1/32 pixel as OpenCV's fixed-point warp does. On
    70 photo files this matches MediaPipe's own classifier to a mean L1 of 0.001 between
    probability vectors (0.08 for an antialiased resize; benchmarks/resizer_agreement.py).
    """
    h, w = size
    if rgb.shape[:2] == (h, w):
        return rgb
    y0, y1, fy = _bilinear_taps(h, rgb.shape[0])
    x0, x1, fx = _bilinear_taps(w, rgb.shape[1])
    fx = fx[None, :, None]

    def row_mix(rows):  # gather in uint8 first: a 20-MP photo is never copied whole as float
        return rows[:, x0].astype(np.float32) * (1 - fx) + rows[:, x1].astype(np.float32) * fx

    out = row_mix(rgb[y0]) * (1 - fy)[:, None, None] + row_mix(rgb[y1]) * fy[:, None, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _bilinear_taps(n_out: int, n_in: int):
    """For each output index: the two source indices (clamped: replicated edge) and the
    weight of the second, from source position ``i * n_in / n_out`` in 1/32 steps."""
    pos = np.rint(np.arange(n_out) * (n_in / n_out) * 32) / 32
    first = np.floor(pos).astype(np.int64)
    weight = (pos - first).astype(np.float32)
    return np.clip(first, 0, n_in - 1), np.clip(first + 1, 0, n_in - 1), weight


# Modes Pillow converts to RGB faithfully with ``convert("RGB")``.
_DIRECT_MODES = {"RGB", "RGBX", "L", "1", "P", "CMYK", "YCbCr"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def to_rgb(im, name: str = "image") -> np.ndarray:
    """A decoded Pillow image as upright uint8 RGB (H, W, 3); see the module docstring."""
    from PIL import Image, ImageOps

    im = ImageOps.exif_transpose(im) or im
    mode = im.mode
    if mode in _SIXTEEN_BIT_MODES:
        grey = np.asarray(im, dtype=np.int64)
        if grey.size and (grey.min() < 0 or grey.max() > 65535):
            raise ImageError(f"{name}: 32-bit integer pixels outside 0..65535 are not supported")
        grey = np.round(grey / 257.0).astype(np.uint8)  # 65535 -> 255
        return np.repeat(grey[..., None], 3, axis=-1)
    if mode in _ALPHA_MODES or (mode == "P" and ("transparency" in im.info or im.palette.mode == "RGBA")):
        rgba = im.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return np.asarray(Image.alpha_composite(black, rgba).convert("RGB"), dtype=np.uint8)
    if mode in _DIRECT_MODES:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
    raise ImageError(f"{name}: unsupported pixel format {mode!r} (use 8- or 16-bit RGB or greyscale)")


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
