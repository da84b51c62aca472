"""benchmarks/peer_recipes.py: which images the peers train on, its errors, and a --quick run.

Everything runs offline on a tiny fake CIFAR-10 (a few dozen 32 x 32 images written here in
kft's .npz layout) and a fake run folder, with random weights: no KFT_DATA_DIR or
KFT_WEIGHTS_DIR needed. The --quick run takes ~30-50 s on the shared 2-core machine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "peer_recipes.py"
TRAIN_PER_CLASS, TEST_PER_CLASS = 10, 5


def _module():
    spec = importlib.util.spec_from_file_location("peer_recipes", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fake_cifar(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-10 folder with 10 training and 5 test images per class (each class its own colour)."""
    rng = np.random.default_rng(0)

    def images(per_class):
        y = np.repeat(np.arange(10), per_class)
        rng.shuffle(y)
        x = rng.integers(0, 60, (len(y), 32, 32, 3)).astype(np.uint8)
        x[np.arange(len(y)), :, :, y % 3] += (20 * y).astype(np.uint8)[:, None, None]
        return x, y

    (x_tr, y_tr), (x_te, y_te) = images(TRAIN_PER_CLASS), images(TEST_PER_CLASS)
    (root / "cifar10").mkdir(parents=True)
    np.savez(root / "cifar10" / "cifar10_train.npz", x_train=x_tr, y_train=y_tr)
    np.savez(root / "cifar10" / "cifar10_test.npz", x_test=x_te, y_test=y_te)
    return x_tr, y_tr


def _fake_run(run: Path, data: Path, y_train: np.ndarray, *, refit: bool = True) -> dict:
    """A kft run folder: 3 train + 2 val rows per class of the fake training set."""
    train = [int(i) for c in range(10) for i in np.flatnonzero(y_train == c)[:3]]
    val = [int(i) for c in range(10) for i in np.flatnonzero(y_train == c)[3:5]]
    run.mkdir(parents=True)
    split = {"schema_version": 2, "source": {"kind": "cifar10", "layout": "npz", "path": str(data / "cifar10")},
             "data_source": {"samples_per_class": 3, "val_per_class": 2, "seed": 0},
             "class_names": [f"c{i}" for i in range(10)], "seed": 0, "train": train, "val": val,
             "test": list(range(10 * TEST_PER_CLASS))}
    (run / "split.json").write_text(json.dumps(split))
    # today's config.yaml names its protocol; the holdout case keeps an older run's refit/select keys
    (run / "config.yaml").write_text("backbone: mobilenet_v2\nprotocol: fixed\n" if refit
                                     else "backbone: mobilenet_v2\nrefit: false\nselect: false\n")
    protocol = "fixed" if refit else "holdout"
    (run / "metrics.json").write_text(json.dumps({
        "backbone": "mobilenet_v2", "strategy": "lp_ft_top", "seed": 0, "test_accuracy": 0.5, "test_images": 50,
        "seconds": 12.3, "labels": {"protocol": protocol, "per_class": 5.0}}))
    return split


def test_peers_train_on_exactly_the_rows_that_trained_kft(tmp_path):
    pr = _module()
    x_tr, y_tr = _fake_cifar(tmp_path / "data")
    split = _fake_run(tmp_path / "fixed", tmp_path / "data", y_tr)
    run = pr.read_run(tmp_path / "fixed")
    assert run["protocol"] == "fixed"
    assert run["rows"] == split["train"] + split["val"]  # fixed protocol: validation labels train too
    x, y, xt, yt, _ = pr.load_images(tmp_path / "data", run["rows"], None)
    np.testing.assert_array_equal(x, x_tr[run["rows"]])
    np.testing.assert_array_equal(y, y_tr[run["rows"]])
    assert len(yt) == 10 * TEST_PER_CLASS

    _fake_run(tmp_path / "holdout", tmp_path / "data", y_tr, refit=False)
    assert pr.read_run(tmp_path / "holdout")["rows"] == split["train"]  # holdout: validation only selects
    _, _, _, yt, _ = pr.load_images(tmp_path / "data", run["rows"], 20)  # 2 test images per class
    assert np.bincount(yt, minlength=10).tolist() == [2] * 10


@pytest.mark.parametrize("breakage, message", [
    ("no_split", "no split.json"),
    ("not_cifar", "did not train on CIFAR-10"),
    ("row_out_of_range", "training rows up to 999"),
    ("protocol_mismatch", "metrics.json says holdout"),
])
def test_bad_run_folders_get_one_line(tmp_path, capsys, breakage, message):
    pr = _module()
    _, y_tr = _fake_cifar(tmp_path / "data")
    run = tmp_path / "run"
    split = _fake_run(run, tmp_path / "data", y_tr)
    if breakage == "no_split":
        (run / "split.json").unlink()
    elif breakage == "not_cifar":
        split["source"] = {"kind": "folder", "path": "/photos"}
        (run / "split.json").write_text(json.dumps(split))
    elif breakage == "row_out_of_range":
        split["train"][0] = 999
        (run / "split.json").write_text(json.dumps(split))
    else:
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["labels"]["protocol"] = "holdout"
        (run / "metrics.json").write_text(json.dumps(metrics))
    code = pr.main([str(run), "--data-dir", str(tmp_path / "data"), "--weights", "none"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err, err


def test_quick_mode_prints_three_rows(tmp_path):
    _, y_tr = _fake_cifar(tmp_path / "data")
    _fake_run(tmp_path / "run", tmp_path / "data", y_tr)
    env = {k: v for k, v in os.environ.items() if k not in ("KFT_DATA_DIR", "KFT_WEIGHTS_DIR")}
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "run"), "--quick", "--weights", "none",
                           "--data-dir", str(tmp_path / "data"), "--json", str(tmp_path / "out.json")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "the peers train on 20 labelled images (2..2 per class)" in out  # 2 of the run's 5 per class
    results = re.findall(r"^RESULT (\S+) +labels/class=(\S+) test_accuracy=(\S+) test_images=(\d+)", out, re.M)
    assert [r[0] for r in results] == ["tf_tutorial", "keras_guide", "kft"]
    for name, per_class, acc, n in results[:2]:
        assert per_class == "2" and n == "50" and 0.0 <= float(acc) <= 1.0, (name, per_class, acc, n)
    assert results[2][1:] == ("5", "0.5000", "50")  # kft's own numbers, from its metrics.json
    table = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| recipe")]
    assert len(table) == 3 and "`kft`" in table[2] and "50.00%" in table[2]
    rows = json.loads((tmp_path / "out.json").read_text())["rows"]
    assert [r["recipe"] for r in rows] == ["tf_tutorial", "keras_guide", "kft"]
    assert all(r["seconds"] > 0 for r in rows)


def test_inference_mode_keeps_batchnorm_statistics_while_the_base_trains():
    """--bn inference: an unfrozen base keeps BatchNorm's moving statistics, its weights still train."""
    import keras

    pr = _module()
    keras.utils.set_random_seed(0)
    inner_in = keras.Input((4,))
    dense, bn = keras.layers.Dense(4), keras.layers.BatchNormalization()
    base = keras.Model(inner_in, bn(dense(inner_in)))
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(pr.call_base(base, inputs, "inference")))
    base.trainable = True
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    mean, gamma, kernel = (np.array(v) for v in (bn.moving_mean, bn.gamma, dense.kernel))
    x = np.random.default_rng(0).normal(5.0, 3.0, (64, 4)).astype("float32")
    model.fit(x, np.zeros((64, 2), "float32"), epochs=2, batch_size=16, verbose=0)
    np.testing.assert_array_equal(np.array(bn.moving_mean), mean)
    assert not np.allclose(np.array(bn.gamma), gamma) and not np.allclose(np.array(dense.kernel), kernel)
