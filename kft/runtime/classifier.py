"""Classify RGB images with an exported .tflite classifier (no TensorFlow).

Handles every kft export variant: float32 input (raw 0..255 pixels), uint8 or
int8 quantized input, and float or quantized probability outputs, which are
dequantized. Labels come from the ``labels.txt`` packed inside the .tflite
(its zip part) or, failing that, a ``labels.txt`` beside the file.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

from kft.errors import KftError
from kft.runtime.interpreter import load_interpreter

LABELS_FILE = "labels.txt"


class Classifier:
    """A loaded .tflite image classifier: ``classify(images) -> probabilities``."""

    def __init__(self, model: str | os.PathLike | bytes, num_threads: int | None = None, labels=None):
        """``model``: a .tflite path or its bytes; ``labels`` overrides the packed ones."""
        if isinstance(model, (bytes, bytearray)):
            self.path = Path("<model bytes>")
        else:
            self.path = Path(model)
            if not self.path.is_file():
                raise KftError(f"{self.path}: no such model file")
        self._interp = load_interpreter(model if isinstance(model, (bytes, bytearray)) else self.path,
                                        num_threads=num_threads)
        inputs, outputs = self._interp.get_input_details(), self._interp.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise KftError(f"{self.path}: expected one input and one output tensor")
        self._in, self._out = inputs[0], outputs[0]
        shape = tuple(int(d) for d in self._in["shape"])
        if len(shape) != 4 or shape[-1] != 3:
            raise KftError(f"{self.path}: expected an image input (1, H, W, 3), got {shape}")
        self.input_size: tuple[int, int] = (shape[1], shape[2])
        self.input_dtype = np.dtype(self._in["dtype"])
        self.output_dtype = np.dtype(self._out["dtype"])
        self.num_classes = int(self._out["shape"][-1])
        self.input_quantization = _quant(self._in)
        self.output_quantization = _quant(self._out)
        if self._in["shape"][0] != 1:
            self._interp.resize_tensor_input(self._in["index"], [1, *shape[1:]])
            self._interp.allocate_tensors()
        self.labels = list(labels) if labels is not None else read_labels(model)
        if self.labels is None:
            self.labels = [str(i) for i in range(self.num_classes)]
        if len(self.labels) != self.num_classes:
            raise KftError(f"{self.path}: {len(self.labels)} labels for {self.num_classes} model outputs")

    def classify(self, images) -> np.ndarray:
        """Probabilities (float32) for uint8 RGB ``images``: one (H, W, 3) image gives
        (C,), a batch (N, H, W, 3) gives (N, C). Images of another size are resized as
        MediaPipe's ImageClassifier resizes them (``kft.images.resize_like_mediapipe``)."""
        images = np.asarray(images)
        single = images.ndim == 3
        batch = images[None] if single else images
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(f"expected RGB images (H, W, 3) or (N, H, W, 3), got shape {images.shape}")
        probs = np.stack([self._classify_one(img) for img in batch]) if len(batch) else \
            np.zeros((0, self.num_classes), np.float32)
        return probs[0] if single else probs

    def _classify_one(self, image: np.ndarray) -> np.ndarray:
        if image.shape[:2] != self.input_size:
            from kft.images import resize_like_mediapipe

            image = resize_like_mediapipe(np.asarray(image, np.uint8), self.input_size)
        x = self._prepare(image[None])
        self._interp.set_tensor(self._in["index"], x)
        self._interp.invoke()
        y = self._interp.get_tensor(self._out["index"])[0]
        scale, zero = self.output_quantization
        if scale:
            return ((y.astype(np.float32) - zero) * scale).astype(np.float32)
        return y.astype(np.float32)

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        """Pixels (0..255) to the input tensor's type and quantization."""
        dtype = self.input_dtype
        if dtype.kind == "f":
            return x.astype(dtype)
        scale, zero = self.input_quantization
        x = x.astype(np.float32)
        if scale:
            x = np.round(x / scale + zero)
        info = np.iinfo(dtype)
        return np.clip(x, info.min, info.max).astype(dtype)


def read_labels(model: str | os.PathLike | bytes) -> list[str] | None:
    """Labels packed in the .tflite's zip part, else ``labels.txt`` beside the file, else None."""
    in_memory = isinstance(model, (bytes, bytearray))
    path = None if in_memory else Path(model)
    text = None
    try:
        with zipfile.ZipFile(io.BytesIO(model) if in_memory else path) as zf:
            names = zf.namelist()
            txt = [n for n in names if n.endswith(".txt")]
            name = LABELS_FILE if LABELS_FILE in names else (txt[0] if len(txt) == 1 else None)
            if name:
                text = zf.read(name).decode("utf-8")
    except (zipfile.BadZipFile, OSError):
        pass
    if text is None:
        return labels_beside(path) if path is not None else None
    return _lines(text)


def labels_beside(model_path: str | os.PathLike) -> list[str] | None:
    """The class names in a ``labels.txt`` next to ``model_path`` (one per line), or None."""
    labels = Path(model_path).parent / LABELS_FILE
    if not labels.is_file():
        return None
    return _lines(labels.read_text(encoding="utf-8"))


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _quant(details) -> tuple[float, int]:
    scale, zero = details.get("quantization", (0.0, 0))
    return float(scale), int(zero)
