"""``kft evaluate MODEL --data FOLDER``: how a model does on labelled photos it never saw.

The model (a ``.tflite``, a ``.keras`` file or a run folder) sees each photo the way a phone
does: the whole file decoded (EXIF orientation applied) and resized by the client's resizer
(``kft.predict``, the same path as ``kft predict``). The folder has one sub-folder per class,
named as the model's labels (a subset is fine). The report: accuracy with its 95% interval,
per class, the confusion matrix, and ``mistakes.png`` (``kft.heldout.mistakes``). A ``.tflite``
is scored without TensorFlow.

    report = evaluate_on_folder("export/run/model_int8.tflite", "new_photos/", out="eval/")
    report["accuracy"], report["ci95"]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kft.errors import KftError
from kft.evaluate import scores
from kft.heldout.mistakes import write_mistakes
from kft.heldout.stats import accuracy_line, per_class, wilson_interval
from kft.images import IMAGE_SUFFIXES, ImageError, load_rgb
from kft.progress import progress
from kft.rundir import atomic

__all__ = ["REPORT_JSON", "REPORT_MD", "evaluate_on_folder", "format_report", "labelled_photos"]

REPORT_JSON, REPORT_MD, SHEET = "evaluation.json", "evaluation.md", "mistakes.png"
THUMB = 128  # pixels: what the mistakes sheet keeps of each photo


def labelled_photos(folder, labels: list[str]) -> list[tuple[Path, int]]:
    """(photo, class index in ``labels``) for every image in ``folder/<class>/``, sorted; a class
    folder the model does not know is an error."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise KftError(f"{root}: no such folder (expected one sub-folder of photos per class)")
    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise KftError(f"{root} has no class sub-folders; expected {root}/<class name>/<photos>")
    unknown = [d.name for d in classes if d.name not in labels]
    if unknown:
        raise KftError(f"{root}: class folder {unknown[0]!r} is not one of the model's classes "
                       f"({', '.join(labels)})")
    photos = [(p, labels.index(d.name)) for d in classes for p in sorted(d.iterdir())
              if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    if not photos:
        raise KftError(f"{root}: no photos in its class folders ({', '.join(IMAGE_SUFFIXES)})")
    return photos


def evaluate_on_folder(target, folder, out=None, num_threads: int | None = None) -> dict:
    """Score ``target`` on every photo of ``folder``; write evaluation.json/.md and mistakes.png
    into ``out`` (default: ``<folder name>-evaluation`` beside the model). Returns the report."""
    from PIL import Image

    from kft.predict import open_model

    clf = open_model(target, num_threads=num_threads)
    photos = labelled_photos(folder, clf.labels)
    probs, y, thumbs, files, skipped = [], [], [], [], []
    with progress(f"classifying {len(photos)} photos of {folder}", total=len(photos), unit="img") as bar:
        for path, label in photos:
            bar.update(1)
            try:
                rgb = load_rgb(path)
            except ImageError as e:
                skipped.append([str(path), str(e)])
                continue
            probs.append(clf.classify(rgb))
            y.append(label)
            small = Image.fromarray(rgb)
            small.thumbnail((THUMB, THUMB))
            canvas = np.zeros((THUMB, THUMB, 3), np.uint8)  # a square tile, the photo centred on black
            oy, ox = (THUMB - small.height) // 2, (THUMB - small.width) // 2
            canvas[oy:oy + small.height, ox:ox + small.width] = np.asarray(small)
            thumbs.append(canvas)
            files.append(path.relative_to(Path(folder).expanduser()).as_posix())
    if not y:
        raise KftError(f"{folder}: none of its photos could be read")
    probs, y = np.stack(probs), np.asarray(y)
    result = scores(y, probs.argmax(1), len(clf.labels))
    right = int(round(result["accuracy"] * result["n"]))
    lo, hi = wilson_interval(right, result["n"])
    out = Path(out) if out else _default_out(target, folder)
    report = {"model": str(target), "data": str(folder), "class_names": clf.labels, "accuracy": result["accuracy"],
              "ci95": [round(lo, 4), round(hi, 4)], "images": result["n"],
              "summary": accuracy_line(right, result["n"], "photos"),
              "per_class": per_class(y, probs.argmax(1), clf.labels), "confusion_matrix": result["confusion_matrix"],
              "skipped": skipped, "resized_as": "the deployed clients resize (kft predict, MediaPipe)"}
    report["mistakes"] = write_mistakes(out / SHEET, np.stack(thumbs), y, probs, clf.labels, names=files)
    atomic.write_json(out / REPORT_JSON, report)
    atomic.write_text(out / REPORT_MD, format_report(report))
    report["out"] = str(out)
    return report


def _default_out(target, folder) -> Path:
    target = Path(target)
    base = target if target.is_dir() else target.parent
    return base / f"{Path(folder).expanduser().resolve().name}-evaluation"


def format_report(report: dict) -> str:
    """The report as Markdown: the accuracy line, then a row per class."""
    lines = [f"# {Path(report['model']).name} on {report['data']}", "",
             f"Accuracy: **{report['summary']}**; photos resized as {report['resized_as']}.", "",
             "| class | photos | correct | accuracy | 95% CI |", "|---|---:|---:|---:|---|"]
    for row in report["per_class"]:
        acc = "-" if row["accuracy"] is None else f"{100 * row['accuracy']:.1f}%"
        lo, hi = row["ci95"]
        lines.append(f"| {row['class']} | {row['images']} | {row['correct']} | {acc} | {100 * lo:.0f}-{100 * hi:.0f}% |")
    lines += ["", f"Mistakes: {report['mistakes']} (mistakes.png, the most confident first)."]
    if report["skipped"]:
        lines.append(f"Unreadable files skipped: {len(report['skipped'])}.")
    return "\n".join(lines) + "\n"

