"""How faithful each exported .tflite is to the Keras model: accuracy, agreement, logit error.

Every variant runs through the TFLite interpreter (kft.runtime.Classifier) on the
file exactly as shipped, several images per invoke (``score_classifiers``: each
image's scores are its batch-1 scores); the first row is the Keras model itself.
"""

from __future__ import annotations

import numpy as np

from kft.progress import progress
from kft.runtime import Classifier

# Probabilities below this are treated as underflowed (float32 softmax flushes
# to 0 once a logit trails the top one by ~87-103); their logs are unusable.
_MIN_PROB = 1e-30


def centred_logits_from_probs(probs: np.ndarray) -> np.ndarray:
    """Logits minus their mean, recovered from softmax probabilities.

    log softmax(z)_i = z_i - logsumexp(z); the logsumexp term is the same for
    every class, so subtracting the per-sample mean of log p removes it and
    leaves z_i - mean(z), exactly the Keras logits centred the same way. The
    exported model outputs probabilities only (that is what clients want), so
    this is how its logits are compared with the Keras model's; the unknown
    constant shift of logits does not change any prediction.
    """
    logp = np.log(np.maximum(probs.astype(np.float64), _MIN_PROB))
    return logp - logp.mean(axis=-1, keepdims=True)


def max_logit_difference(probs: np.ndarray, keras_logits: np.ndarray) -> tuple[float, int]:
    """Max |centred logit difference| over samples whose probabilities did not
    underflow, and how many samples were left out for underflow."""
    ok = (probs >= _MIN_PROB).all(axis=-1)
    if not ok.any():
        return float("nan"), int(len(probs))
    ref = keras_logits.astype(np.float64)
    ref = ref - ref.mean(axis=-1, keepdims=True)
    diff = np.abs(centred_logits_from_probs(probs[ok]) - ref[ok]).max()
    return float(diff), int((~ok).sum())


def keras_row(logits: np.ndarray | None, labels: np.ndarray | None, file: str | None,
              size_bytes: int | None) -> dict:
    """The reference row: the Keras model's own test accuracy."""
    return {"variant": "keras", "file": file, "size_bytes": size_bytes,
            "accuracy": _accuracy(logits, labels), "top1_agreement": None, "max_abs_logit_diff": None,
            "logit_samples_excluded": None, "convert_seconds": None, "input": "float32", "output": "float32 logits"}


def variant_row(name: str, tflite: bytes, file: str, convert_seconds: float, is_float: bool,
                test_images: np.ndarray | None, labels: np.ndarray | None, keras_logits: np.ndarray | None,
                num_threads: int | None = None, prepare=None, batch_size: int = 1) -> dict:
    """Score one exported variant through the TFLite interpreter; ``prepare`` maps a chunk of
    held-out images to the variant's declared input (``convert.to_input_size``).
    ``batch_size``: images per interpreter invoke (the scores do not depend on it)."""

    clf = Classifier(tflite, num_threads=num_threads, batch_size=batch_size)
    row = new_row(name, tflite, file, convert_seconds, clf)
    if test_images is None or len(test_images) == 0:
        return row
    (probs,) = score_classifiers([clf], test_images, f"scoring {file}", prepare=prepare)
    return add_scores(row, probs, labels, keras_logits, is_float)


def new_row(name: str, tflite: bytes, file: str, convert_seconds: float, clf) -> dict:
    """A variant's report row before scoring: its size, conversion time and I/O types."""
    return {"variant": name, "file": file, "size_bytes": len(tflite), "accuracy": None, "top1_agreement": None,
            "max_abs_logit_diff": None, "logit_samples_excluded": None,
            "convert_seconds": round(convert_seconds, 3),
            "input": _io(clf.input_dtype, clf.input_quantization),
            "output": _io(clf.output_dtype, clf.output_quantization) + " probabilities"}


def add_scores(row: dict, probs: np.ndarray, labels: np.ndarray | None, keras_logits: np.ndarray | None,
               is_float: bool) -> dict:
    """Fill ``row``'s accuracy, top-1 agreement and (float variants) logit error from the
    variant's probabilities on the held-out images; returns ``row``."""
    row["accuracy"] = _accuracy(probs, labels)
    if keras_logits is not None:
        row["top1_agreement"] = float((probs.argmax(1) == keras_logits.argmax(1)).mean())
        # Only float activations keep probabilities precise enough to recover logits;
        # int8 outputs come in steps of 1/256 (many exact zeros).
        if is_float:
            row["max_abs_logit_diff"], row["logit_samples_excluded"] = max_logit_difference(probs, keras_logits)
    return row


SCORING_CHUNK = 256  # held-out images upsampled at a time (224 px: 38 MB as uint8, 154 MB as float32)


def score_classifiers(classifiers, images: np.ndarray, desc: str, chunk: int = SCORING_CHUNK, prepare=None,
                      timer=None, names=None) -> list[np.ndarray]:
    """Each classifier's probabilities for ``images``, chunk by chunk with a progress display.

    Every chunk is brought to the declared input (``prepare``, e.g. ``convert.to_input_size``)
    once, and to each input type (float32 pixels, uint8 bytes) once, for all classifiers:
    the 10,000 CIFAR-10 test images at 224 px would take 1.5 GB as uint8, 6 GB as float32.
    ``timer`` (a ``PhaseTimer``), if given, times ``prepare held-out images`` and
    ``score <name>`` for each of ``names``. Example::

        probs_f32, probs_int8 = score_classifiers([clf_f32, clf_int8], x, "scoring", prepare=up)
    """
    import contextlib


    def timed(name):
        return timer(name) if timer is not None else contextlib.nullcontext()

    names = names or [str(k) for k in range(len(classifiers))]
    out: list[list[np.ndarray]] = [[] for _ in classifiers]
    with progress(desc, total=len(images), unit="img") as bar:
        for i in range(0, len(images), chunk):
            with timed("prepare held-out images"):
                batch = images[i:i + chunk]
                batch = prepare(batch) if prepare else np.asarray(batch)
                inputs: dict = {}  # one prepared copy per input type and quantization
                for clf in classifiers:
                    key = (clf.input_dtype, clf.input_quantization)
                    if key not in inputs:
                        inputs[key] = clf.prepare(batch)
            for k, clf in enumerate(classifiers):
                with timed(f"score {names[k]}"):
                    out[k].append(clf.run(inputs[(clf.input_dtype, clf.input_quantization)]))
            bar.update(len(batch))
    return [np.concatenate(o) if o else np.zeros((0, clf.num_classes), np.float32)
            for o, clf in zip(out, classifiers)]


class PhaseTimer:
    """Wall and CPU (this process, all threads) seconds per named phase, added up::

        timer = PhaseTimer()
        with timer("keras scoring"):
            ...
        timer.seconds  # {"keras scoring": {"wall": 41.2, "cpu": 80.3}}
    """

    def __init__(self, into: dict | None = None):
        self.seconds = {} if into is None else into

    def __call__(self, name: str):
        import contextlib
        import time

        @contextlib.contextmanager
        def timed():
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                yield
            finally:
                self.add(name, time.perf_counter() - wall, time.process_time() - cpu)

        return timed()

    def add(self, name: str, wall: float, cpu: float) -> None:
        entry = self.seconds.setdefault(name, {"wall": 0.0, "cpu": 0.0})
        entry["wall"] += wall
        entry["cpu"] += cpu


def classify_with_progress(clf, images: np.ndarray, desc: str, chunk: int = 256, prepare=None) -> np.ndarray:
    """``clf.classify(prepare(images))`` in chunks, with a progress display (10,000 images take minutes)."""
    return score_classifiers([clf], images, desc, chunk, prepare)[0]


def format_markdown(report: dict) -> str:
    """The report as a Markdown page with one table row per variant."""
    lines = [
        f"# Export report: {report['name']}",
        "",
        f"- source: `{report['source']}`",
        f"- classes ({len(report['class_names'])}): {', '.join(report['class_names'])}",
        f"- input: {report['input_size'][0]}x{report['input_size'][1]} RGB, raw pixels 0..255"
        + (f", reduced in the model to the training resolution {report['train_size']}x{report['train_size']} "
           f"by a {report['box_filter']}x{report['box_filter']} box filter" if report.get("box_filter", 1) > 1 else ""),
        f"- scored on: {report.get('scored_on', 'the test set')}",
        f"- the Keras model's scores: {report.get('keras_scores', 'scored by this export')}",
        f"- test images: {report['test_images']}; int8 calibration images: {report['calibration_images']}"
        + ("; int8 model with uint8 input pixels and uint8 probabilities" if report["int8_io"] else ""),
        "",
        "| variant | file | size | accuracy | top-1 agreement | max abs logit diff | convert s | input | output "
        "| guard |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in report["rows"]:
        file = f"`{r['file']}`" if r["file"] else "-"
        if r.get("status") == "FAILED":
            file = f"not written ({r['file']})"
        lines.append("| " + " | ".join([
            r["variant"], file, _size(r["size_bytes"]),
            _num(r["accuracy"], 4), _num(r["top1_agreement"], 4), _sci(r["max_abs_logit_diff"]),
            _num(r["convert_seconds"], 2), r["input"], r["output"], _guard_cell(r)]) + " |")
    lines += ["", "Top-1 agreement: share of held-out images where the variant's top class equals the Keras "
              "model's. Logit difference: centred logits recovered from log-probabilities "
              "(float variants only).",
              f"Guard: a variant more than {report.get('max_accuracy_drop', 1.0):g} points below the Keras model "
              "is retried with its fallback (int8: the layers int8 hurts most kept in float), then marked FAILED and not "
              "written; 'unchecked' means there were no held-out images to score.", ""]
    return "\n".join(lines)


def _guard_cell(row: dict) -> str:
    status = row.get("status")
    if status is None:
        return "-"
    tries = row.get("attempts") or []
    notes = []
    if row.get("selective"):
        notes.append(f"fallback: {len(row.get('float_nodes') or [])} layers in float")
    speed = row.get("island_speed")
    if speed:
        notes.append(f"{speed['int8_ms']:.2f} ms vs float32 {speed['float32_ms']:.2f} ms at 1 thread: "
                     + ("faster than float32" if speed["faster"] else "NOT faster than float32"))
    if len(tries) > 1:
        notes.append("tried " + ", ".join(_num(t["accuracy"], 4) for t in tries))
    return status + (f" ({'; '.join(notes)})" if notes else "")


def _accuracy(scores, labels) -> float | None:
    if scores is None or labels is None or len(labels) == 0:
        return None
    return float((np.asarray(scores).argmax(1) == np.asarray(labels)).mean())


def _io(dtype, quantization) -> str:
    scale, zero = quantization
    return f"{dtype.name} (scale {scale:g}, zero point {zero})" if scale else dtype.name


def _size(n) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _num(v, digits) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _sci(v) -> str:
    return "-" if v is None else f"{v:.2e}"
