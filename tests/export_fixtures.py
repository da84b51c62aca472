"""A tiny trained classifier shared by the export, runtime and predict tests.

MobileNetV3-Small (random init, 32x32) on generated images whose class is
their dominant colour (``kft.testing``: BatchNorm statistics set from one
batch, then the head trained): ~98% train / ~75% test accuracy, logits
within +-30, i.e. predictions that are mostly confident but not all. Built
once per test session, saved as ``model.keras`` with ``labels.txt`` beside it.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from kft.testing import CLASS_NAMES, SIZE, colour_images, fit_head  # noqa: F401  (re-exported to the tests)


@functools.lru_cache(maxsize=None)
def trained(backbone: str = "mobilenet_v3_small"):
    """Namespace(dir, model_path, model, train_x, train_y, test_x, test_y, class_names)."""
    from kft.model import build_classifier

    model = build_classifier(backbone, num_classes=3, image_size=SIZE, weights="none", seed=0)
    train_x, train_y = colour_images(24, seed=1)
    test_x, test_y = colour_images(10, seed=2)
    fit_head(model, train_x, train_y)
    d = Path(tempfile.mkdtemp(prefix="kft-export-test-"))
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    model.save(d / "model.keras")
    (d / "labels.txt").write_text("".join(f"{c}\n" for c in CLASS_NAMES))
    return SimpleNamespace(dir=d, model_path=d / "model.keras", model=model, train_x=train_x, train_y=train_y,
                           test_x=test_x, test_y=test_y, class_names=list(CLASS_NAMES))


def exported(int8_io: bool = False):
    """``export_model`` of ``trained()``: all four variants (int8 with uint8 I/O if
    ``int8_io``, then int8 only) into a temporary folder, with the accuracy guard off
    (``GUARD_OFF``). Returns the ExportResult."""
    return _exported(bool(int8_io))


# The shared export is a source of files for the predict, runtime, serve, bench and client tests,
# not a test of the accuracy guard, so the guard cannot trip here: on 30 test images the tiny
# model's int8 file may miss an image or two more than Keras on one CPU and not on another (it
# did on an AVX2-only machine, failing every test that used this fixture). The guard's own tests
# build their passing and failing cases deliberately (tests/test_export.py).
GUARD_OFF = 100.0  # max_accuracy_drop in points: no variant can fall further


@functools.lru_cache(maxsize=None)
def _exported(int8_io: bool):
    from kft.export import export_model

    t = trained()
    out = Path(tempfile.mkdtemp(prefix="kft-export-out-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    quants = ["int8"] if int8_io else ["float32", "float16", "dynamic", "int8"]
    return export_model(t.model, t.class_names, quants, out, int8_io=int8_io, calibration_samples=48,
                        train_images=t.train_x, test_images=t.test_x, test_labels=t.test_y,
                        source=str(t.dir), model_file=t.model_path, max_accuracy_drop=GUARD_OFF)


def decisive(scores, tol: float) -> np.ndarray:
    """Mask of the rows whose top-1 beats the runner-up by more than ``tol``.

    Runtimes (and one runtime on two CPUs) differ by rounding, and int8 outputs
    move in steps of 1/256, so an argmax is only comparable across runtimes where
    the margin is larger than what those differences can flip.
    """
    s = np.sort(np.asarray(scores, np.float64), axis=-1)
    return (s[..., -1] - s[..., -2]) > tol


def keras_logits(images):
    from kft.evaluate import predict_logits

    return predict_logits(trained().model, images)


def run_tflite(path, images):
    """Outputs of a .tflite for uint8 images, fed straight to the interpreter (batch 1),
    independently of kft.runtime: float inputs get the pixel values, uint8 inputs the bytes.
    Images smaller than the declared input are shown k times larger (each pixel k x k),
    which the model's box filter maps back exactly."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    n = int(inp["shape"][1])
    ys = []
    for img in images:
        k = n // img.shape[0]
        img = img.repeat(k, axis=0).repeat(k, axis=1)
        interp.set_tensor(inp["index"], img[None].astype(inp["dtype"]))
        interp.invoke()
        ys.append(interp.get_tensor(out["index"])[0].copy())
    return np.stack(ys), inp, out


@functools.lru_cache(maxsize=None)
def plain_float32() -> bytes:
    """The exported float32 model without its metadata and packed labels, as ``convert()``
    returns it (derived from ``exported()`` rather than converting again, to save time)."""
    from kft.export import tflite_model
    from kft.export.metadata import METADATA_NAME

    tree = tflite_model.load((exported().out_dir / "model_float32.tflite").read_bytes())
    tree.metadata = [m for m in tree.metadata if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    return tflite_model.dump(tree)
