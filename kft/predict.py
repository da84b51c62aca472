"""``kft predict``: classify image files with an exported .tflite or a Keras model.

A ``.tflite`` runs through kft.runtime and never imports TensorFlow; a
``.keras`` file or run folder is loaded with Keras (safe mode). Every image is
decoded and resized (antialiased) to the model's declared input size by
kft.images, exactly as on a device. A bad image is reported on one stderr line
and skipped; the others are still classified.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from kft.errors import KftError


class KerasClassifier:
    """A Keras classifier with the runtime Classifier's interface (probabilities out).

    It takes images the way the exported .tflite does (``kft.export.convert``): at
    the declared input size, box-filtered down to the training resolution, so
    ``kft predict`` gives the same answer for a run folder and its export.
    """

    def __init__(self, model, labels: list[str] | None):
        from kft.export.convert import box_factor, default_input_size

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
    def load(cls, path: Path) -> "KerasClassifier":
        from kft import runs
        from kft.runtime.classifier import labels_beside

        if path.is_dir():
            if not (path / runs.MODEL).is_file():
                raise KftError(f"{path}: no {runs.MODEL} in this folder")
            path, labels = path / runs.MODEL, (runs.load_run(path).class_names if runs.is_run_dir(path)
                                               else labels_beside(path / runs.MODEL))
        else:
            labels = labels_beside(path)
        return cls(runs.load_model(path), labels)

    def classify(self, images: np.ndarray) -> np.ndarray:
        from kft.evaluate import predict_logits

        images = np.asarray(images)
        single = images.ndim == 3
        batch = images[None] if single else images
        if batch.shape[1:3] != self.input_size:
            from kft.images import resize

            batch = np.stack([resize(np.asarray(img, np.uint8), self.input_size) for img in batch])
        r, k = self.train_size, self._k  # the .tflite's box filter, in numpy
        x = batch.astype(np.float32).reshape(len(batch), r, k, r, k, 3).mean(axis=(2, 4))
        logits = predict_logits(self.model, x).astype(np.float64)
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs = (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
        return probs[0] if single else probs


def open_model(path: str | os.PathLike, num_threads: int | None = None):
    """A classifier for a ``.tflite`` (TensorFlow-free), a ``.keras`` file or a run folder."""
    path = Path(path)
    if not path.exists():
        raise KftError(f"{path}: no such model file or run folder")
    if path.suffix == ".tflite":
        from kft.runtime import Classifier

        return Classifier(path, num_threads=num_threads)
    if path.is_dir() or path.suffix == ".keras":
        return KerasClassifier.load(path)
    raise KftError(f"{path}: expected a .tflite or .keras model, or a run folder")


def top_k(probs: np.ndarray, labels: list[str], k: int) -> list[dict]:
    """The ``k`` most likely classes, most likely first."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"label": labels[i], "probability": float(probs[i])} for i in order]


def classify_files(model, paths, k: int, on_result=None) -> list[dict]:
    """Classify each file; a bad one gives ``{"image", "error"}`` instead of ``{"image", "top_k"}``.

    ``on_result`` is called with each result as soon as it is known.
    """
    from kft.images import load_rgb

    results = []
    for p in paths:
        try:
            rgb = load_rgb(p, size=model.input_size)
            result = {"image": str(p), "top_k": top_k(model.classify(rgb), model.labels, k)}
        except KftError as e:  # ImageError names the file already
            msg = str(e)
            result = {"image": str(p), "error": msg if msg.startswith(str(p)) else f"{p}: {msg}"}
        results.append(result)
        if on_result:
            on_result(result)
    return results


def run_predict(model_path, images, top_k_count: int = 3, as_json: bool = False, num_threads=None,
                out=None, err=None) -> int:
    """The ``kft predict`` command: prints results, returns the exit code (1 if any image failed)."""
    out = out or sys.stdout
    err = err or sys.stderr
    if top_k_count < 1:
        raise KftError(f"--top-k must be at least 1, got {top_k_count}")
    if not images:
        raise KftError("no images given")
    from kft.images import expand_image_paths

    images = expand_image_paths(images)
    model = open_model(model_path, num_threads=num_threads)
    k = min(top_k_count, len(model.labels))

    def report(result):
        if "error" in result:
            print(f"error: {result['error']}", file=err, flush=True)
        elif not as_json:
            print(result["image"], file=out)
            for c in result["top_k"]:
                print(f"  {c['label']}: {c['probability']:.4f}", file=out)
            out.flush()

    results = classify_files(model, images, k, on_result=report)
    if as_json:
        print(json.dumps({"model": str(model_path), "results": results}, indent=2), file=out, flush=True)
    return 1 if any("error" in r for r in results) else 0
