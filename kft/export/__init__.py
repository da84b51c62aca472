"""Export a trained classifier to TFLite variants with metadata and a fidelity report.

``export_model`` works on a loaded Keras model and arrays; ``export_run``
resolves a run folder (or a ``.keras`` file) into those, loading calibration
and test images through ``kft.rundir``. Nothing is written until every variant
has converted and been scored; then each file is written atomically, so a
failure never leaves a half-written model behind. TensorFlow is imported
lazily, inside the functions.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kft.errors import KftError, one_of
from kft.evaluate import predict_logits
from kft.export import guard
from kft.export.convert import (
    QUANTIZATIONS,
    QuantizationConfig,
    box_factor,
    check_input_size,
    convert,
    default_input_size,
    to_input_size,
)
from kft.export.guard import DEFAULT_MAX_ACCURACY_DROP
from kft.export.speed import ScoringSpeed
from kft.lists import parse_list
from kft.plan.validate import legacy_protocol
from kft import rundir
from kft.rundir import atomic
from kft.rundir.artifacts import KERAS, RUN, open_artifact
from kft.runtime import Classifier

_log = logging.getLogger(__name__)

DEFAULT_CALIBRATION_SAMPLES = 300
EXPORT_ROOT = Path("export")


@dataclass
class ExportResult:
    out_dir: Path
    files: list[Path]
    report: dict


def parse_quantizations(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"float32,int8"`` / ``"all"`` / a list -> validated names, in canonical order."""

    if not (spec.strip(" ,") if isinstance(spec, str) else spec):
        raise KftError("no quantization given; choose from: all, " + ", ".join(QUANTIZATIONS))
    names = parse_list(spec, "quantize")
    if "all" in names:
        return list(QUANTIZATIONS)
    for n in names:
        if n not in QUANTIZATIONS:
            raise one_of("quantization", n, (*QUANTIZATIONS, "all"))
    return [q for q in QUANTIZATIONS if q in names]


def default_out_dir(source: str | Path) -> Path:
    """``export/<run-name>`` (relative to the current folder) for a run folder or model file."""
    path = Path(source).resolve()
    if path.is_dir():
        name = path.name
    else:
        from kft.rundir import MODEL

        name = path.parent.name if path.name == MODEL else path.stem
    return EXPORT_ROOT / name


def export_run(run_or_model_path, quantizations=QUANTIZATIONS, int8_io: bool = False,
               calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES, out_dir=None, test_images=None,
               test_labels=None, train_images=None, *, limit_test: int | None = None, data_dir=None,
               num_threads: int | None = None, input_size: int | None = None,
               max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP, quantization_report: bool = False,
               speed: "ScoringSpeed | None" = None, timings: dict | None = None) -> ExportResult:
    """Export a run folder or ``.keras`` file. Arrays given here win; otherwise a run
    folder supplies training images (int8 calibration) and its held-out images via
    ``kft.rundir``: the test set, or for a folder-dataset run (no test set) its
    validation split, which the report names; the Keras model's logits on them come from
    the run's ``test_logits.npz`` when its model file and images are those they were
    computed on (``kft.rundir.scores``). A bare ``.keras`` file uses
    ``labels.txt`` beside it if present. ``speed`` and ``timings``: as ``export_model``'s."""

    quants = parse_quantizations(quantizations)
    scored_on = "the test set"
    if calibration_samples is None or calibration_samples <= 0:
        raise KftError(f"`calibration_samples` must be positive, got {calibration_samples}")
    art = open_artifact(run_or_model_path, (RUN, KERAS), data_dir=data_dir)
    path, run, model_path, class_names = art.path, art.run, art.model_path, art.labels
    if "int8" in quants and train_images is None and run is None:
        raise KftError(f"{path}: int8 needs calibration images, which only a run folder provides; "
                       "choose `quantize` float32,float16,dynamic")

    model = art.load_keras()
    keras_logits = None
    if run is not None:
        if train_images is None and "int8" in quants:
            _log.info("loading training images for int8 calibration")
            train_images = run.train_images()
        if test_images is None:
            test_images, test_labels, scored_on = held_out_images(run, limit_test)
            if (speed or ScoringSpeed()).keras_from_run:
                keras_logits = rundir.read_test_logits(run.path, test_images, test_labels)
    elif test_images is not None and limit_test is not None:
        test_images, test_labels = test_images[:limit_test], test_labels[:limit_test]
    num_classes = int(model.outputs[0].shape[-1])
    if not class_names:
        class_names = [str(i) for i in range(num_classes)]
    return export_model(model, class_names, quants, out_dir or default_out_dir(path), int8_io=int8_io,
                        calibration_samples=calibration_samples, train_images=train_images,
                        test_images=test_images, test_labels=test_labels, source=str(path),
                        model_file=model_path, num_threads=num_threads, input_size=input_size,
                        scored_on=scored_on, max_accuracy_drop=max_accuracy_drop,
                        quantization_report=quantization_report, speed=speed, timings=timings,
                        keras_logits=keras_logits)


def held_out_images(run, limit_test: int | None = None):
    """The images a run's export is scored on, and how the report names them: the test set (CIFAR-10's,
    or a photo folder's test split, which the model never saw unless it was retrained on every photo);
    for a folder run without a test split, its validation split, which every-label protocols trained on."""

    data = run.data(limit_test)
    if data.test is not None:
        n = len(data.test.y)
        if "files" not in data.split:
            _log.info("loading the test set")
            return data.test.x, data.test.y, f"the CIFAR-10 test set ({n} images)"
        if run.config.get("retrain_on_all"):
            _log.info("the shipped model was retrained on every photo, its test split included: the guard measures "
                      "how far each variant moves from Keras on seen photos, not accuracy")
            return data.test.x, data.test.y, (f"the folder's test split ({n} photos; the shipped model was retrained "
                                               f"on them too: read the drop, not the accuracy)")
        return data.test.x, data.test.y, f"the folder's test split ({n} photos the model never saw)"
    n = len(data.val.y)
    _log.info("the run was trained on an image folder without a test split: scoring on its validation split")
    if legacy_protocol(dict(run.config), "config").get("protocol", "holdout") != "holdout":
        return data.val.x, data.val.y, (f"the run's validation split ({n} images; no test split, and every label "
                                         f"also trained the model: read the drop, not the accuracy)")
    return data.val.x, data.val.y, f"the run's validation split ({n} images; the run has no test split)"


def export_model(model, class_names, quantizations, out_dir, *, int8_io: bool = False,
                 calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES, train_images=None, test_images=None,
                 test_labels=None, source: str | None = None, model_file=None, num_threads=None,
                 seed: int = 0, input_size: int | None = None,
                 scored_on: str = "the test set", max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP,
                 quantization_report: bool = False, speed: "ScoringSpeed | None" = None,
                 timings: dict | None = None, keras_logits=None) -> ExportResult:
    """Convert ``model`` to each quantization, add metadata, score, then write
    ``model_<q>.tflite``, ``labels.txt``, ``export_report.json`` and ``.md`` into ``out_dir``.

    ``input_size``: the square input the .tflite declares (default
    ``convert.default_input_size``: 224 for 32-px training images); the model
    box-filters it down to its training resolution (see ``kft.export.convert``).
    ``scored_on`` names the held-out images in the report. A variant more than
    ``max_accuracy_drop`` points below Keras is retried with its fallback, then, if
    still short, marked FAILED and not written (``kft.export.guard``); the other
    files are written and ``ExportFailed`` is raised. ``quantization_report``:
    also write the per-layer int8 error table (``kft.export.quant_debug``).

    ``speed`` (``ScoringSpeed``): batch sizes and threads of the scoring; the files and the
    report do not depend on it. ``timings``, if given, receives the wall and CPU seconds of
    each phase (``keras scoring``, ``convert <q>``, ``prepare held-out images``, ``score <q>``,
    ``convert int8 (fallback)``, ``score int8 (fallback)``, ``write``, ...) as
    ``{phase: {"wall": s, "cpu": s}}`` (``report.PhaseTimer``), for ``benchmarks/export_speed.py``.
    ``keras_logits``: ``model``'s logits on ``test_images`` if already known (a run's
    ``test_logits.npz``); the Keras model is not scored again, and the report says so."""
    from functools import partial

    from kft.export import metadata, report

    speed = speed or ScoringSpeed()

    quants = parse_quantizations(quantizations)
    if quantization_report and "int8" not in quants:
        raise KftError("`quantization_report` describes the int8 model: add int8 to `quantize`")
    class_names = [str(c) for c in class_names]
    num_classes = int(model.outputs[0].shape[-1])
    if len(class_names) != num_classes:
        raise KftError(f"{len(class_names)} class names for a model with {num_classes} outputs")
    if test_images is not None:
        test_images = np.asarray(test_images)
        if test_labels is None or len(test_labels) != len(test_images):
            raise KftError("test images need one label each")
        test_labels = np.asarray(test_labels)
    calibration = None
    if "int8" in quants:
        if train_images is None or len(train_images) == 0:
            raise KftError("int8 quantization needs training images for calibration")
        calibration = calibration_subset(np.asarray(train_images), calibration_samples, seed)
    train_size = int(model.inputs[0].shape[1])
    n = check_input_size(default_input_size(train_size) if input_size is None else input_size, train_size)
    size = (n, n)
    meta = metadata.ClassifierMetadata(labels=tuple(class_names), image_size=size,
                                       name=model.name, version=source and Path(source).name or "")

    if num_threads is None:
        num_threads = os.cpu_count() or 1
    workers = max(1, min(speed.workers or num_threads, num_threads))
    clock = report.PhaseTimer(timings)
    keras_scores = "none (no held-out images)" if test_images is None else "scored by this export"
    if keras_logits is not None and test_images is not None:
        keras_logits = np.asarray(keras_logits, np.float32)
        if keras_logits.shape != (len(test_images), num_classes):
            raise KftError(f"keras_logits has shape {keras_logits.shape}; expected {(len(test_images), num_classes)}")
        keras_scores = "the run's test_logits.npz (the same model file and images, scored when the run ended)"
        _log.info("the Keras model's scores: from the run's test_logits.npz (same model file, same images)")
    else:
        with clock("keras scoring"):
            keras_logits = predict_logits(model, test_images, batch_size=speed.keras_batch_size,
                                          desc="scoring the Keras model") if test_images is not None else None
    model_file = Path(model_file) if model_file else None
    rows = [report.keras_row(keras_logits, test_labels, str(model_file) if model_file else None,
                             model_file.stat().st_size if model_file and model_file.is_file() else None)]
    int8_model = _Int8Source(model, calibration, speed.reuse_int8)
    prepare = partial(to_input_size, input_size=n)

    def attempt(name: str, quant) -> tuple[bytes, dict]:
        """Convert one variant (its row unscored): what ``convert_seconds`` times."""
        _log.info(f"converting {name}" + (" (fallback: the worst layers in float)" if quant.selective else ""))
        t0 = time.perf_counter()
        details: dict = {}
        with clock(f"convert {name}" + (" (fallback)" if quant.selective else "")):
            source, quant_used = int8_model.for_conversion(quant)
            extra = {"probe_batch": speed.fallback_batch_size,
                     "probe_workers": speed.fallback_workers or num_threads} if quant.selective else {}
            tflite = metadata.attach(convert(source, quant_used, n, details, **extra), meta)
        seconds = time.perf_counter() - t0
        clf = Classifier(tflite, num_threads=max(1, num_threads // workers), batch_size=speed.batch_size,
                         workers=workers)
        row = report.new_row(name, tflite, file_of(name), seconds, clf)
        row["_clf"], row["_quant"], row["_tflite"] = clf, quant, tflite
        row["float_nodes"] = details.get("float_nodes", [])
        row["selective"] = quant.selective
        return tflite, row

    def score(batch: list[dict], label: str) -> None:
        """Score ``batch``'s rows on the held-out images (all of them in one pass over the
        images, or one pass each when ``speed.shared_chunks`` is off) and give their verdicts."""
        if test_images is not None and len(test_images):
            groups = [batch] if speed.shared_chunks else [[r] for r in batch]
            for group in groups:
                probs = report.score_classifiers(
                    [r["_clf"] for r in group], test_images,
                    label if len(group) > 1 else f"scoring {group[0]['file']}", prepare=prepare, timer=clock,
                    names=[r["variant"] + (" (fallback)" if r["selective"] else "") for r in group])
                for r, p in zip(group, probs):
                    report.add_scores(r, p, test_labels, keras_logits, r["_quant"].is_float)
        for r in batch:
            clf = r.pop("_clf")  # its interpreter's batch-sized buffers go now
            if clf.batch_note:
                _log.info(f"{r['file']}: {clf.batch_note}")
            r["status"] = guard.verdict(r, rows[0], max_accuracy_drop,
                                        0 if test_labels is None else len(test_labels))

    first = []
    for name in quants:
        tflite, row = attempt(name, QuantizationConfig.named(name, calibration, int8_io))
        first.append(row)
    score(first, f"scoring {len(first)} file(s)" if len(first) > 1 else f"scoring {first[0]['file']}")
    outputs: dict[str, bytes] = {}
    failed: list[dict] = []
    for row in first:
        name, tried = row["variant"], [row]
        while row["status"] == guard.FAILED:
            _log.info(f"{row['file']}: {guard.drop_points(row, rows[0]):.2f} points below Keras "
                      f"(allowed {max_accuracy_drop:g})")
            quant = guard.fallback_for(row["_quant"], max_accuracy_drop)
            if quant is None:
                break
            _, row = attempt(name, quant)
            score([row], f"scoring {row['file']} (fallback)")
            tried.append(row)
        row["attempts"] = [{"selective": r["selective"], "float_nodes": len(r["float_nodes"]),
                            "accuracy": r["accuracy"]} for r in tried]
        tflite = row["_tflite"]
        for r in tried:
            for key in ("_quant", "_tflite"):
                r.pop(key)
        rows.append(row)
        if row["status"] == guard.FAILED:
            failed.append(row)
        else:
            outputs[row["file"]] = tflite

    islands = [r for r in rows[1:] if r["variant"] == "int8" and r["float_nodes"] and r["status"] != guard.FAILED]
    if islands and test_images is not None:
        _log.info("timing the int8 file with float islands against float32 (1 thread)")
        with clock("island timing"):
            float32 = outputs.get("model_float32.tflite") or convert(model, QuantizationConfig.named(
                "float32", None, False), n)
            islands[0]["island_speed"] = guard.island_speed(outputs["model_int8.tflite"], float32,
                                                            list(to_input_size(test_images[:8], n)))

    out_dir = Path(out_dir)
    result = {
        "name": out_dir.name, "source": source or model.name, "class_names": class_names,
        "input_size": list(size), "train_size": train_size, "box_filter": box_factor(n, train_size),
        "int8_io": bool(int8_io), "scored_on": scored_on if test_images is not None else "nothing (no held-out data)",
        "max_accuracy_drop": max_accuracy_drop, "keras_scores": keras_scores,
        "test_images": 0 if test_images is None else int(len(test_images)),
        "calibration_images": 0 if calibration is None else int(len(calibration)),
        "rows": rows,
    }
    # Everything is in memory now: a failure above has written nothing.
    outputs["labels.txt"] = metadata.labels_text(class_names).encode("utf-8")
    outputs["export_report.json"] = (json.dumps(result, indent=2) + "\n").encode()
    outputs["export_report.md"] = report.format_markdown(result).encode("utf-8")
    with clock("write"):
        files = [atomic.write_bytes(out_dir / f, data) for f, data in outputs.items()]
    if quantization_report:
        from kft.export import quant_debug
        from kft.export.convert import build_converter

        _log.info("measuring the int8 error of every layer (quantization report)")
        (int8_row,) = [r for r in rows if r["variant"] == "int8"]
        with clock("quantization report"):
            converter, q = build_converter(*int8_model.for_conversion(
                QuantizationConfig.named("int8", calibration, int8_io)), n)
            files += quant_debug.write_report(quant_debug.layer_statistics(converter, q.representative_dataset()),
                                              out_dir, int8_row.get("float_nodes", []), title=out_dir.name)
    for row in failed:  # an earlier export's file of that name would pass for this one
        (out_dir / row["file"]).unlink(missing_ok=True)
    export = ExportResult(out_dir, files, result)
    if failed:
        raise ExportFailed(export, ", ".join(
            f"{r['variant']} ({100 * r['accuracy']:.2f}% vs Keras {100 * rows[0]['accuracy']:.2f}%)"
            for r in failed) + f" fell more than {max_accuracy_drop:g} points below the Keras model even with "
            f"its fallback; not written (see {out_dir / 'export_report.md'}); the other variants were written")
    return export


class _Int8Source:
    """The model an int8 conversion starts from: ``prepare_for_int8(model)`` computed once and
    handed over with ``prepare=False`` (the same conversion), or, with ``reuse`` off, the model
    itself for ``convert`` to prepare each time."""

    def __init__(self, model, calibration, reuse: bool):
        self.model, self.calibration, self.reuse, self._prepared = model, calibration, reuse, None

    def for_conversion(self, quant):
        from dataclasses import replace

        if quant.name != "int8" or not quant.prepare or not self.reuse:
            return self.model, quant
        if self._prepared is None:
            from kft.export.int8_prep import prepare_for_int8

            self._prepared = prepare_for_int8(self.model, quant.representative_images)
        return self._prepared, replace(quant, prepare=False)


def file_of(name: str) -> str:
    """The file a quantization is written to: ``model_<name>.tflite``."""
    return f"model_{name}.tflite"


class ExportFailed(KftError):
    """Some variants failed the accuracy guard; ``result`` holds what was written."""

    def __init__(self, result: ExportResult, message: str):
        super().__init__(message)
        self.result = result


def calibration_subset(images: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A fixed random subset of ``n`` training images, as float32 0..255."""
    if n < len(images):
        idx = np.sort(np.random.default_rng(seed).choice(len(images), n, replace=False))
        images = images[idx]
    return images.astype(np.float32)

