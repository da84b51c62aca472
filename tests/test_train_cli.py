"""`kft train` end to end from the shipped data and weights: a complete run directory."""

import csv
import json
import subprocess
import sys

from conftest import require_env


def test_smoke_train_leaves_a_complete_run_directory(tmp_path):
    require_env("KFT_DATA_DIR")
    require_env("KFT_WEIGHTS_DIR")
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, "-m", "kft", "train", "mobilenet_v2", "--max-epochs", "1",
                          "--set", "samples_per_class=10", "--set", "val_per_class=20", "--limit-test", "200", "--out", str(run)],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "[probe] epoch 1/1" in out.stdout and "[top] epoch 1/1" in out.stdout
    # the images go through the frozen prefix once; the top stage reuses those features
    assert out.stdout.count("(kept for every stage)") == 1, out.stdout
    assert "fixed epochs: training on all 300 labelled images (100 train + 200 validation), no selection run" \
        in out.stdout

    for name in ("config.yaml", "split.json", "labels.txt", "model.keras", "history.csv", "metrics.json",
                 "curves.png", "confusion.png"):
        assert (run / name).stat().st_size > 0, name
    assert any((run / "tensorboard").iterdir())

    m = json.loads((run / "metrics.json").read_text())
    for key in ("backbone", "strategy", "seed", "image_size", "samples_per_class", "test_accuracy",
                "per_class_accuracy", "confusion_matrix", "stages", "versions", "git_revision"):
        assert key in m, key
    assert (m["backbone"], m["strategy"], m["samples_per_class"], m["test_images"]) == ("mobilenet_v2", "lp_ft_top", 10, 200)
    assert m["labels"]["protocol"] == "fixed" and m["labels"]["final_model_trained_on"] == 300
    assert [s["name"] for s in m["stages"]] == ["probe", "top"]
    assert all(s["epochs"] == 1 and s["trainable_params"] > 0 and s["cached"] for s in m["stages"][:2])
    assert m["stages"][1]["trainable_params"] > m["stages"][0]["trainable_params"]
    assert sum(map(sum, m["confusion_matrix"])) == 200
    assert 0.0 <= m["test_accuracy"] <= 1.0

    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [r["stage"] for r in rows][:2] == ["probe", "top"]
    assert set(rows[0]) >= {"epoch", "stage", "loss", "accuracy", "val_loss", "val_accuracy", "lr"}

    split = json.loads((run / "split.json").read_text())
    assert len(split["train"]) == 100 and len(split["val"]) == 200 and len(split["test"]) == 200
    assert not set(split["train"]) & set(split["val"])
    assert m["git_revision"] == split["git_revision"]  # the code the run started with
    assert (run / "labels.txt").read_text().split() == split["class_names"]

    # the saved model is the whole classifier: evaluate reproduces the run's test accuracy
    ev = subprocess.run([sys.executable, "-m", "kft", "evaluate", str(run), "--limit-test", "200",
                         "--json", str(tmp_path / "ev.json")], capture_output=True, text=True, timeout=600)
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert json.loads((tmp_path / "ev.json").read_text())["test_accuracy"] == m["test_accuracy"]
