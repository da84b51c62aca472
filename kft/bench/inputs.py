"""The images a benchmark feeds: real photos, real CIFAR-10 test images, or natural-looking synthetics.

Latency barely depends on pixel values for float models, but quantized kernels
and activations (ReLU sparsity, saturation) can, so the benchmark never feeds
zeros. Order of preference: ``--images DIR``; the first CIFAR-10 test images
under ``$KFT_DATA_DIR``; else a fixed, seeded set of synthetic images with a
natural image's 1/f spectrum, smooth colour regions and edges. Images are kept
at their own size here and resized per model as the clients resize them.
No TensorFlow here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kft.errors import KftError
from kft.images import IMAGE_SUFFIXES, load_rgb, resize_like_mediapipe

MAX_IMAGES = 32
SYNTHETIC_SIZE = 96


def bench_images(images_dir: str | os.PathLike | None = None, n: int = MAX_IMAGES) -> tuple[list[np.ndarray], str]:
    """Up to ``n`` uint8 RGB images (H, W, 3) and a short description of where they came from."""
    if images_dir is not None:
        return folder_images(images_dir, n)
    data_dir = os.environ.get("KFT_DATA_DIR")
    if data_dir:
        return cifar_test_images(data_dir, n)
    return list(synthetic_images(n)), f"{n} synthetic 1/f-noise images (seed 0; no KFT_DATA_DIR, no --images)"


def folder_images(folder, n: int = MAX_IMAGES) -> tuple[list[np.ndarray], str]:
    """The first ``n`` image files of ``folder`` (sorted by name); an unreadable image is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KftError(f"`images` {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)[:n]
    if not files:
        raise KftError(f"`images` {folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return [load_rgb(p) for p in files], f"{len(files)} photos from {folder}"


def cifar_test_images(data_dir, n: int = MAX_IMAGES) -> tuple[list[np.ndarray], str]:
    """The first ``n`` CIFAR-10 test images; reads only the test file when it is an .npz."""
    root = Path(data_dir)
    for npz in (root / "cifar10" / "cifar10_test.npz", root / "cifar10_test.npz"):
        if npz.is_file():
            try:
                with np.load(npz, allow_pickle=False) as f:
                    x = np.asarray(f["x_test"][:n], dtype=np.uint8)
            except (OSError, KeyError, ValueError) as e:
                raise KftError(f"{npz}: unreadable CIFAR-10 test file ({e})") from None
            break
    else:  # python batches or another layout: the data layer knows them all
        from kft.data import load_cifar10

        x = load_cifar10(data_dir)[1].x[:n]
    if x.ndim != 4 or x.shape[-1] != 3 or len(x) == 0:
        raise KftError(f"{data_dir}: CIFAR-10 test images have an unexpected shape {x.shape}")
    return list(x), f"{len(x)} CIFAR-10 test images from {data_dir}"


def synthetic_images(n: int, size: int = SYNTHETIC_SIZE, seed: int = 0) -> np.ndarray:
    """``n`` deterministic (n, size, size, 3) uint8 images: 1/f noise with correlated colours,
    plus a few hard-edged shapes; each spans most of 0..255."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    amplitude = np.maximum(np.hypot(fx, fy), 1.0 / size) ** -1.5  # photos: power ~ 1/f^2..1/f^3
    yy, xx = np.mgrid[0:size, 0:size]
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        luminance = _noise(rng, amplitude, size)
        chroma = [_noise(rng, amplitude, size) for _ in range(2)]
        img = np.stack([luminance + 0.4 * chroma[0], luminance - 0.3 * chroma[0] + 0.3 * chroma[1],
                        luminance - 0.4 * chroma[1]], axis=-1)
        for _ in range(3):  # objects: discs with their own colour
            cy, cx, r = rng.uniform(0, size, 2).tolist() + [rng.uniform(size / 10, size / 3)]
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            img[mask] = img[mask] * 0.3 + rng.normal(0, 1.5, 3)
        lo, hi = np.percentile(img, [1, 99])
        out[i] = np.clip((img - lo) / max(hi - lo, 1e-6) * 235 + 10, 0, 255).astype(np.uint8)
    return out


def _noise(rng, amplitude, size) -> np.ndarray:
    spectrum = amplitude * (rng.normal(size=amplitude.shape) + 1j * rng.normal(size=amplitude.shape))
    field = np.fft.irfft2(spectrum, s=(size, size))
    return (field - field.mean()) / (field.std() + 1e-12)


def fit_to(images: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """The images resized (as MediaPipe's ImageClassifier resizes them) to (N, height, width, 3) uint8."""
    return np.stack([resize_like_mediapipe(img, (height, width)) for img in images])
