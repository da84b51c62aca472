"""The Python API (``from kft import api``): the notebook path through train, export and predict."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from export_fixtures import colour_images


def test_importing_the_api_does_not_import_tensorflow():
    code = ("import sys; from kft import api; assert callable(api.train) and callable(api.predict); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_train_export_predict_on_a_folder(tmp_path):
    from kft import api as kft
    from kft.errors import KftError

    x, y = colour_images(6, seed=3)
    for i, (img, label) in enumerate(zip(x, y)):
        if label == 2 and i % 2:  # an imbalanced folder: 3 blue photos, 6 red, 6 green
            continue
        d = tmp_path / "photos" / ["red", "green", "blue"][label]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i}.png")
    import csv

    import keras

    from kft.training.callbacks import Callback

    class KerasRecorder(keras.callbacks.Callback):  # a user's own Keras callback
        calls = []

        def on_train_begin(self, logs=None):
            self.calls.append(("begin", self.model.name))

        def on_epoch_end(self, epoch, logs=None):
            self.calls.append((epoch, round(logs["val_accuracy"], 5), round(logs["loss"], 5)))

    class StageNames(Callback):  # or a kft one, which sees the stage
        names = []

        def on_stage_end(self, trainer, record):
            self.names.append((record.name, record.epochs))

    run = kft.train("mobilenet_v3_small", strategy="two_stage", refit=False, data=tmp_path / "photos",
                    weights="none", seed=0, image_size=32,
                    max_epochs=1, val_per_class=2, test_split=0, out=tmp_path / "run",
                    callbacks=[KerasRecorder(), StageNames()], class_weight="balanced")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["class_weight"] == "balanced" and metrics["class_names"] == ["blue", "green", "red"]
    assert metrics["class_counts"] == {"train": [1, 4, 4], "val": [2, 2, 2]}
    assert len(metrics["val_per_class_accuracy"]) == 3  # no test set: per-class figures from validation
    rows = list(csv.DictReader(open(run / "history.csv")))
    assert StageNames.names == [("stage1", 1), ("stage2", 1)]
    assert [c for c in KerasRecorder.calls if c[0] == "begin"] == [("begin", "kft_mobilenet_v3_small")] * 2
    assert [c for c in KerasRecorder.calls if c[0] != "begin"] == [
        (int(r["epoch"]) - 1, float(r["val_accuracy"]), float(r["loss"])) for r in rows]
    with pytest.raises(KftError):
        kft.train("mobilenet_v3_small", strategy="two_stage", config=tmp_path / "plan.yaml")

    result = kft.export(run, quantize="float32", out=tmp_path / "export")
    model = result.out_dir / "model_float32.tflite"
    assert model.is_file()
    results = kft.predict(model, tmp_path / "photos" / "red", top_k=2)
    assert len(results) == 6 and all(len(r["top_k"]) == 2 for r in results)
    assert {c["label"] for r in results for c in r["top_k"]} <= {"red", "green", "blue"}
    probs = [sum(c["probability"] for c in r["top_k"]) for r in results]
    assert all(0.0 < p <= 1.0 + 1e-5 for p in probs) and np.isfinite(probs).all()
