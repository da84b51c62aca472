"""Scoring: logits in batches, accuracy, per-class accuracy, confusion matrix."""

from __future__ import annotations

import numpy as np


def predict_logits(model, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Logits of a Keras classifier for uint8 images, with BatchNorm/dropout in inference mode."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def run(x):
        return model(tf.cast(x, tf.float32), training=False)

    out = [run(images[i:i + batch_size]).numpy() for i in range(0, len(images), batch_size)]
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


def evaluate_model(model, images, labels, num_classes: int, batch_size: int = 128) -> dict:
    logits = predict_logits(model, images, batch_size)
    return scores(labels, logits.argmax(1), num_classes)
