"""Decode and resize images with Pillow (no TensorFlow), the way every client must.

Training images are stored at the model's input size; photos given to
``kft predict``, to the exported model's checks and to the Android demo are
resized to that same size with an antialiasing filter, then fed as raw RGB
0..255. Normalisation and upsampling live inside the model.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kft.errors import KftError

# Refuse decompression bombs early: a 20000x20000 header would need 1.2 GB.
MAX_PIXELS = 64_000_000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


class ImageError(KftError):
    """An input file that is not a usable image; the message names the file."""


def load_rgb(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read ``path`` as uint8 RGB (H, W, 3); resize to ``size`` = (height, width) if given.

    RGBA, greyscale, palette and CMYK images are converted to RGB (alpha is
    composited on black, as a camera frame has none). Raises ``ImageError``
    for a missing, empty, truncated, non-image or oversized file.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file")
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ImageError(f"{path}: image too large ({w}x{h} pixels; limit {MAX_PIXELS:,})")
            im.load()
            rgb = _to_rgb(im)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image (or an unsupported format)") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated / corrupt data
        raise ImageError(f"{path}: unreadable image ({_first_line(e)})") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: image too large") from None
    if size is not None:
        rgb = resize(rgb, size)
    return rgb


def resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 RGB to (height, width) with antialiasing (Pillow's bilinear filter
    widens its support when shrinking, so it averages instead of aliasing)."""
    from PIL import Image

    h, w = size
    if rgb.shape[:2] == (h, w):
        return rgb
    im = Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(im, dtype=np.uint8)


def _to_rgb(im):
    from PIL import Image

    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (0, 0, 0, 255))
        im = Image.alpha_composite(background, im)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
