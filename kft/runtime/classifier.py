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

    def __init__(self, model: str | os.PathLike | bytes, num_threads: int | None = None, labels=None,
                 batch_size: int = 1, workers: int = 1):
        """``model``: a .tflite path or its bytes; ``labels`` overrides the packed ones.

        For classifying many images (each image's scores are its batch-1 scores; float
        kernels may round differently):

        - ``batch_size``: images per ``invoke()`` (the input's batch dimension is resized to
          it). A graph that refuses a larger batch (e.g. a RESHAPE to a fixed size) runs at 1
          instead, and ``batch_note`` says why.
        - ``workers``: interpreters (``num_threads`` each) that classify parts of a batch at
          the same time, in Python threads (``invoke()`` releases the GIL). On a 2-core CPU,
          2 workers of 1 thread beat 1 interpreter of 2 threads: no synchronisation inside
          every op, and TFLite's built-in kernels (dynamic-range files) scale poorly with threads.

        Example::

            Classifier("model_int8.tflite", num_threads=1, batch_size=8, workers=2).classify(images)
        """
        if isinstance(model, (bytes, bytearray)):
            self.path = Path("<model bytes>")
        else:
            self.path = Path(model)
            if not self.path.is_file():
                raise KftError(f"{self.path}: no such model file")
        source = model if isinstance(model, (bytes, bytearray)) else self.path
        self._interp = load_interpreter(source, num_threads=num_threads)
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
        self.batch_size = max(1, int(batch_size))
        self.batch_note: str | None = None  # why a larger batch_size fell back to 1, if it did
        self._slots = [_Slot(self._interp, self._in["index"], self._out["index"], shape[0])]
        self._slots += [_Slot(i, self._in["index"], self._out["index"], shape[0])
                        for i in (load_interpreter(source, num_threads=num_threads) for _ in range(workers - 1))]
        self._pool = None
        self._batch_checked = False
        for slot in self._slots:
            if slot.batch != 1:
                self._resize(slot, 1)
        self.labels = list(labels) if labels is not None else read_labels(model)
        if self.labels is None:
            self.labels = [str(i) for i in range(self.num_classes)]
        if len(self.labels) != self.num_classes:
            raise KftError(f"{self.path}: {len(self.labels)} labels for {self.num_classes} model outputs")

    @property
    def workers(self) -> int:
        return len(self._slots)

    def classify(self, images) -> np.ndarray:
        """Probabilities (float32) for uint8 RGB ``images``: one (H, W, 3) image gives
        (C,), a batch (N, H, W, 3) gives (N, C). Images of another size are resized as
        MediaPipe's ImageClassifier resizes them (``kft.images.resize_like_mediapipe``)."""
        images = np.asarray(images)
        single = images.ndim == 3
        batch = images[None] if single else images
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(f"expected RGB images (H, W, 3) or (N, H, W, 3), got shape {images.shape}")
        if batch.shape[1:3] != self.input_size:
            from kft.images import resize_like_mediapipe

            batch = np.stack([resize_like_mediapipe(np.asarray(img, np.uint8), self.input_size) for img in batch]) \
                if len(batch) else np.zeros((0, *self.input_size, 3), np.uint8)
        probs = self.run(self.prepare(batch))
        return probs[0] if single else probs

    def run(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (float32, (N, C)) for ``x``, a batch already in the input tensor's type
        and size (``prepare``): ``batch_size`` images per invoke, split over the workers."""
        if len(x) == 0:
            return np.zeros((0, self.num_classes), np.float32)
        if self.batch_size > 1 and len(x) > 1:
            self._check_batch(min(self.batch_size, len(x)))
        per = -(-len(x) // self.batch_size)  # invokes in all, shared out in whole batches
        per = -(-per // len(self._slots)) * self.batch_size
        parts = [(slot, x[i:i + per]) for slot, i in zip(self._slots, range(0, len(x), per))]
        if len(parts) == 1:
            return self._run_on(*parts[0])
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(len(self._slots), thread_name_prefix="kft-classifier")
        return np.concatenate(list(self._pool.map(lambda part: self._run_on(*part), parts)))

    def _run_on(self, slot: "_Slot", x: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(x), self.batch_size):
            chunk = x[i:i + self.batch_size]
            if slot.batch != len(chunk):
                self._resize(slot, len(chunk))
            out.append(self._invoke(slot, chunk))
        return np.concatenate(out)

    def _invoke(self, slot: "_Slot", x: np.ndarray) -> np.ndarray:
        interp = slot.interp
        interp.set_tensor(slot.input, np.ascontiguousarray(x))
        interp.invoke()
        y = interp.get_tensor(slot.output)
        if y.shape != (len(x), self.num_classes):
            raise KftError(f"{self.path}: {len(x)} images gave outputs shaped {y.shape}")
        scale, zero = self.output_quantization
        if scale:
            return ((y.astype(np.float32) - zero) * scale).astype(np.float32)
        return y.astype(np.float32)

    def _resize(self, slot: "_Slot", n: int) -> None:
        slot.interp.resize_tensor_input(slot.input, [n, *self.input_size, 3])
        slot.interp.allocate_tensors()
        slot.batch = n

    def _check_batch(self, n: int) -> None:
        """Whether the graph takes a batch of ``n``: tried once on the first interpreter; if it
        refuses (or gives outputs of the wrong shape), ``batch_size`` becomes 1 from now on."""
        if self._batch_checked:
            return
        self._batch_checked = True
        slot = self._slots[0]
        try:
            self._resize(slot, n)
            shape = tuple(slot.interp.get_output_details()[0]["shape"])
            if shape != (n, self.num_classes):
                raise ValueError(f"a batch of {n} gives outputs shaped {shape}")
        except (RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            self.batch_note = f"runs one image at a time: batch {n} refused ({first})"
            self.batch_size = 1
            self._resize(slot, 1)

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Pixels (0..255, any numeric dtype, (N, H, W, 3)) to the input tensor's type and
        quantization: float32 as they are for a float input, bytes for a uint8 pixel input."""
        x = np.asarray(x)
        dtype = self.input_dtype
        if dtype.kind == "f":
            return x.astype(dtype, copy=False)
        scale, zero = self.input_quantization
        if x.dtype == dtype and (scale, zero) == (1.0, 0):
            return x  # pixel bytes are the input bytes (kft's --int8-io files)
        x = x.astype(np.float32)
        if scale:
            x = np.round(x / scale + zero)
        info = np.iinfo(dtype)
        return np.clip(x, info.min, info.max).astype(dtype)


class _Slot:
    """One interpreter of a Classifier and the batch its input tensor is allocated for."""

    def __init__(self, interp, input_index: int, output_index: int, batch: int):
        self.interp, self.input, self.output, self.batch = interp, input_index, output_index, int(batch)


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
