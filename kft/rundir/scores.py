"""The final model's logits on the held-out test images, kept so ``kft export`` need not score
the Keras model again (about 40 s for CIFAR-10's 10,000 images on 2 cores).

``test_logits.npz`` holds the logits and two SHA-256 fingerprints: of ``model.keras`` as
written, and of the images and labels they were computed on. A reader gets the logits back
only when both still match: a model file replaced or retrained, another test subset
(``--limit-test``) or other images, and the Keras model is scored afresh. Example::

    write_test_logits(run, logits, x_test, y_test)                # after save_model(run, model)
    logits = read_test_logits(run, x_test, y_test)                # None unless everything matches
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from kft.rundir import atomic
from kft.rundir.layout import MODEL, TEST_LOGITS

__all__ = ["read_test_logits", "write_test_logits"]


def write_test_logits(run: Path, logits: np.ndarray, images: np.ndarray, labels: np.ndarray) -> Path:
    """Keep ``logits`` (the model in ``run/model.keras`` on ``images``) with both fingerprints."""
    buf = io.BytesIO()
    np.savez(buf, logits=np.asarray(logits, np.float32), model_sha256=_file_sha256(Path(run) / MODEL),
             images_sha256=_images_sha256(images, labels))
    return atomic.write_bytes(Path(run) / TEST_LOGITS, buf.getvalue())


def read_test_logits(run: Path, images: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
    """The kept logits if ``model.keras`` and the images and labels are those they were computed
    on, else None (no file, an unreadable one, or anything changed)."""
    path, model = Path(run) / TEST_LOGITS, Path(run) / MODEL
    if not path.is_file() or not model.is_file():
        return None
    try:
        with np.load(path) as kept:
            logits, model_sha, images_sha = kept["logits"], str(kept["model_sha256"]), str(kept["images_sha256"])
    except (OSError, ValueError, KeyError):
        return None
    if len(logits) != len(images) or images_sha != _images_sha256(images, labels) or model_sha != _file_sha256(model):
        return None
    return logits


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _images_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in (np.ascontiguousarray(images), np.ascontiguousarray(labels)):
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()
