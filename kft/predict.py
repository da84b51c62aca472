"""``kft predict``: classify image files with an exported .tflite or a Keras model.

A ``.tflite`` runs through kft.runtime and never imports TensorFlow; a
``.keras`` file or run folder is loaded with Keras (safe mode). Every image is
decoded by kft.images and resized to the model's declared input size the way
MediaPipe's ImageClassifier resizes it on a device, so a file gets the answer a
client gets. A bad image is reported on one stderr line and skipped; the others
are still classified.
"""

from __future__ import annotations

import os

import numpy as np

from kft.errors import KftError
from kft.evaluate import predict_logits
from kft.export.convert import box_factor, default_input_size
from kft.images import load_rgb
from kft.rundir.artifacts import KERAS, RUN, TFLITE, open_artifact


class KerasClassifier:
    """A Keras classifier with the runtime Classifier's interface (probabilities out).

    It takes images the way the exported .tflite does (``kft.export.convert``): at
    the declared input size, box-filtered down to the training resolution, so
    ``kft predict`` gives the same answer for a run folder and its export.
    """

    def __init__(self, model, labels: list[str] | None):
        self.model = model
        self.train_size = int(model.inputs[0].shape[1])
        n = default_input_size(self.train_size)
        self.input_size = (n, n)
        self._k = box_factor(n, self.train_size)
        n = int(model.outputs[0].shape[-1])
        self.labels = list(labels) if labels else [str(i) for i in range(n)]
        if len(self.labels) != n:
            raise KftError(f"{len(self.labels)} labels for a model with {n} outputs")

    @classmethod
    def load(cls, path) -> "KerasClassifier":
        """From a ``.keras`` file or a run folder (see ``kft.rundir.artifacts``)."""

        art = open_artifact(path, (RUN, KERAS))
        return cls(art.load_keras(), art.labels)

    def classify(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        single = images.ndim == 3
        batch = images[None] if single else images
        if batch.shape[1:3] != self.input_size:
            from kft.images import resize_like_mediapipe

            batch = np.stack([resize_like_mediapipe(np.asarray(img, np.uint8), self.input_size) for img in batch])
        r, k = self.train_size, self._k  # the .tflite's box filter, in numpy
        x = batch.astype(np.float32).reshape(len(batch), r, k, r, k, 3).mean(axis=(2, 4))
        logits = predict_logits(self.model, x).astype(np.float64)
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs = (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
        return probs[0] if single else probs


def open_model(path: str | os.PathLike, num_threads: int | None = None):
    """A classifier for a ``.tflite`` (TensorFlow-free), a ``.keras`` file or a run folder."""

    art = open_artifact(path)
    if art.kind == TFLITE:
        from kft.runtime import Classifier

        return Classifier(art.model_path, num_threads=num_threads)
    return KerasClassifier(art.load_keras(), art.labels)


def top_k(probs: np.ndarray, labels: list[str], k: int) -> list[dict]:
    """The ``k`` most likely classes, most likely first."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"label": labels[i], "probability": float(probs[i])} for i in order]


def classify_files(model, paths, k: int, on_result=None) -> list[dict]:
    """Classify each file; a bad one gives ``{"image", "error"}`` instead of ``{"image", "top_k"}``.

    ``on_result`` is called with each result as soon as it is known.
    """

    results = []
    for p in paths:
        try:
            rgb = load_rgb(p)  # full size: classify resizes it as the deployed clients do
            result = {"image": str(p), "top_k": top_k(model.classify(rgb), model.labels, k)}
        except KftError as e:  # ImageError names the file already
            msg = str(e)
            result = {"image": str(p), "error": msg if msg.startswith(str(p)) else f"{p}: {msg}"}
        results.append(result)
        if on_result:
            on_result(result)
    return results
