"""Does a real client see what kft measures? MediaPipe's ImageClassifier vs ``kft predict`` on photo files.

A deployed model is fed by its client's own decoder and resizer (MediaPipe
Tasks, Android bitmap scaling, a browser canvas), not by kft. This module makes
a set of real photographs as files — full size, and copies resized by nearest
and by bilinear to other sizes, the way apps hand over camera frames and
thumbnails — and compares the top-1 of MediaPipe's ``ImageClassifier`` given
those files with ``kft predict``'s on the same files.

The photos are scikit-image's bundled sample images (``skimage/data``; public
domain or CC0 per their docstrings: astronaut and hubble_deep_field by NASA,
chelsea, coffee, camera, retina, brick, gravel and cell CC0, coins and
motorcycle with no known restrictions), so nothing is downloaded.
Needs the test extra (scikit-image, mediapipe); imported only by tests and
``benchmarks/client_agreement.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Natural photographs of at least 300 px in scikit-image's wheel (no download needed).
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
          "motorcycle_right.png", "hubble_deep_field.jpg", "retina.jpg", "camera.png", "coins.png",
          "ihc.png", "brick.png", "gravel.png", "cell.png")
# (name, longest side or (width, height), resampling): how clients resize before handing frames over.
COPIES = (("nearest-1000", 1000, "nearest"), ("nearest-300", 300, "nearest"),
          ("bilinear-720p", (1280, 720), "bilinear"), ("bilinear-150", 150, "bilinear"))


def photo_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent


def write_photo_set(out: Path, names=PHOTOS, copies=COPIES) -> list[Path]:
    """Every photo as it ships, plus its resized copies, as PNG/JPEG files under ``out``."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    files = []
    methods = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR}
    for name in names:
        src = photo_dir() / name
        with Image.open(src) as im:
            if im.mode == "RGB":
                files.append(src)
            else:  # greyscale: apps hand MediaPipe RGB(A) bitmaps, never GRAY8 (which its classifier refuses)
                im = im.convert("RGB")
                files.append(out / f"{Path(name).stem}-full.png")
                im.save(files[-1])
            im = im.convert("RGB")
            for label, size, method in copies:
                if isinstance(size, tuple):
                    w, h = size
                else:
                    scale = size / max(im.size)
                    w, h = max(1, round(im.width * scale)), max(1, round(im.height * scale))
                # reducing_gap=None: Pillow's plain filter, no antialiasing pre-shrink, as a phone's scaler
                copy = im.resize((w, h), methods[method], reducing_gap=None) if method == "bilinear" \
                    else im.resize((w, h), methods[method])
                path = out / f"{Path(name).stem}-{label}.png"
                copy.save(path)
                files.append(path)
    return files


def mediapipe_scores(model: Path, files: list[Path], labels: list[str]) -> np.ndarray:
    """Class scores from MediaPipe Tasks' ImageClassifier given each file (its own decoder and resizer)."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(model)),
                                            max_results=len(labels))
    out = np.zeros((len(files), len(labels)), np.float32)
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for i, f in enumerate(files):
            result = classifier.classify(mp.Image.create_from_file(str(f)))
            for c in result.classifications[0].categories:
                out[i, c.index] = c.score
    return out


def kft_scores(model: Path, files: list[Path]) -> np.ndarray:
    """Class probabilities from ``kft predict``'s path (kft.images decoding, MediaPipe's resize)."""
    return _scores(model, files, antialiased=False)


def antialiased_scores(model: Path, files: list[Path]) -> np.ndarray:
    """Class probabilities for each file resized with antialiasing (a careful resizer, not the
    client's): how far this differs from ``kft_scores`` is how much the model's answer depends
    on the client's aliasing resize, which the export's box filter exists to keep small."""
    return _scores(model, files, antialiased=True)


def _scores(model: Path, files: list[Path], antialiased: bool) -> np.ndarray:
    from kft.images import load_rgb
    from kft.predict import open_model

    clf = open_model(model, num_threads=1)
    # Given full size, classify resizes as MediaPipe does; load_rgb's size resizes with antialiasing.
    size = clf.input_size if antialiased else None
    return np.stack([clf.classify(load_rgb(f, size=size)) for f in files])


@dataclass
class Agreement:
    images: int
    decided: int  # images where each side's top-1 beats its runner-up by more than the tie tolerance
    agree: int  # of those, how many get the same top-1 from both

    @property
    def rate(self) -> float:
        return self.agree / self.decided if self.decided else float("nan")


def agreement(ours: np.ndarray, theirs: np.ndarray, tie: float) -> Agreement:
    """Top-1 agreement over the images that neither side scores as a tie (margin > ``tie``).

    Symmetric on purpose: where either runtime is within ``tie`` of its runner-up, which
    class wins depends on the last bits of its kernels (another CPU may break it the other
    way), so that image says nothing about whether the two runtimes see the same input."""
    def margin(p):
        s = np.sort(p, axis=1)
        return s[:, -1] - s[:, -2]

    decided = (margin(ours) > tie) & (margin(theirs) > tie)
    same = ours.argmax(1) == theirs.argmax(1)
    return Agreement(len(ours), int(decided.sum()), int((same & decided).sum()))
