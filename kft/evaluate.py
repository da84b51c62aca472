"""Scoring: logits in batches, accuracy, per-class accuracy, confusion matrix."""

from __future__ import annotations

import numpy as np

from kft.model import inference_fn
from kft.progress import progress


def predict_logits(model, images: np.ndarray, batch_size: int = 128, desc: str | None = None,
                   mirror: bool = False) -> np.ndarray:
    """Logits of a Keras classifier for uint8 images, with BatchNorm/dropout in inference mode.

    ``desc``: show progress under that name (for long scoring runs). ``mirror``: of each
    image's horizontal mirror. Reads ``images`` a batch at a time (they may be on disk)."""

    run = inference_fn(model)
    out = []
    with progress(desc, total=len(images), unit="img", enabled=desc is not None) as bar:
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size]
            out.append(run(np.ascontiguousarray(x[:, :, ::-1]) if mirror else x).numpy())
            bar.update(len(out[-1]))
    return np.concatenate(out) if out else np.zeros((0, model.outputs[0].shape[-1]), np.float32)


def scores(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Accuracy, per-class accuracy and the confusion matrix (rows: true class)."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true.astype(int), y_pred.astype(int)), 1)
    per_class = cm.diagonal() / np.maximum(cm.sum(1), 1)
    return {"accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0,
            "per_class_accuracy": [float(a) for a in per_class],
            "confusion_matrix": cm.tolist(),
            "n": int(len(y_true))}


def evaluate_model(model, images, labels, num_classes: int, batch_size: int = 128,
                   desc: str | None = None, tta: bool = False) -> dict:
    """Scores of ``model`` on ``images``. ``tta``: average the softmax of each image and its
    horizontal mirror (flip test-time augmentation; costs 2x, and no exported file does it)."""
    logits = predict_logits(model, images, batch_size, desc)
    if not tta:
        return scores(labels, logits.argmax(1), num_classes)
    mirrored = predict_logits(model, images, batch_size, None if desc is None else f"{desc} (mirrored)",
                              mirror=True)
    probs = softmax(logits) + softmax(mirrored)
    return {**scores(labels, probs.argmax(1), num_classes), "tta": "flip"}


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits, row by row (float64 inside, so large logits do not overflow)."""
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)
