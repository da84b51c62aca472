"""kft bench: records and fields, thread counts honoured, interpreter reuse, MAC counts, accuracy, errors.

No timing assertions (the machine is shared); latencies are only checked to be
positive and ordered (min <= median <= p90).
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from kft.cli import main
from tests.conftest import require_env

REQUIRED = ("model", "threads", "median_ms", "p90_ms", "min_ms", "size_bytes", "macs", "gmacs_per_s", "accuracy")
HAVE_PROC = Path("/proc/self/task").is_dir()


def _to_tflite(model, int8_images=None) -> bytes:
    """Batch-1 float32 (or full-int8 with int8 input/output) .tflite of a Keras 3 model."""
    import tensorflow as tf

    shape = [1, *model.inputs[0].shape[1:]]
    module = tf.Module()
    module.vars = [v.value for v in model.variables]  # Keras 3 variables wrap the tf.Variables

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def serve(x):
        return model(x, training=False)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], module)
    if int8_images is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([img[None].astype(np.float32)] for img in int8_images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny classifier (upsampling 32 -> 48 inside) as .keras, float32 .tflite and int8 .tflite."""
    from kft.bench.inputs import synthetic_images, fit_to
    from kft.model import build_classifier

    d = tmp_path_factory.mktemp("tiny")
    model = build_classifier("mobilenet_v3_small", 3, image_size=48, input_size=32, weights="none")
    model.save(d / "model.keras")
    (d / "model_float32.tflite").write_bytes(_to_tflite(model))
    calib = fit_to(list(synthetic_images(4)), 32, 32)
    (d / "model_int8.tflite").write_bytes(_to_tflite(model, calib))
    return {"dir": d, "model": model, "keras": d / "model.keras", "tflite": d / "model_float32.tflite",
            "int8": d / "model_int8.tflite"}


def _bench(capsys, *args):
    main(["bench", *map(str, args)])
    return capsys.readouterr()


def _error(capsys, *args) -> str:
    with pytest.raises(SystemExit) as e:
        main(["bench", *map(str, args)])
    assert e.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1
    return err[0]


# --- MACs -----------------------------------------------------------------------------------

def test_macs_of_a_hand_sized_model_keras_and_tflite():
    import keras

    from kft.bench.macs import keras_macs, tflite_macs

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="valid")(inputs)  # 6x6x4 outputs, 3*3*3 each: 3888
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)  # 6x6x4 outputs, 3*3 each: 1296
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(5)(x)  # 5 outputs, 144 each: 720
    model = keras.Model(inputs, outputs)
    expected = 6 * 6 * 4 * 3 * 3 * 3 + 6 * 6 * 4 * 3 * 3 + 5 * 6 * 6 * 4
    assert keras_macs(model) == expected == 5904
    assert tflite_macs(_to_tflite(model)) == expected


def test_nested_model_called_twice_counts_twice():
    import keras

    from kft.bench.macs import keras_macs

    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, keras.layers.Dense(3)(inner_in))
    x = keras.Input((4,))
    model = keras.Model(x, keras.layers.Concatenate()([inner(x), inner(x)]))
    assert keras_macs(model) == 2 * 4 * 3


def test_tflite_macs_equal_keras_macs_for_the_classifier(tiny):
    from kft.bench.macs import keras_macs, tflite_macs

    macs = keras_macs(tiny["model"])
    assert macs > 1_000_000
    assert tflite_macs(tiny["tflite"]) == macs
    assert tflite_macs(tiny["int8"]) == macs  # quantization changes types, not work


# --- records ----------------------------------------------------------------------------------

def test_json_has_every_field_and_one_record_per_thread_count(tiny, tmp_path, capsys):
    from kft.bench.macs import tflite_macs

    out = tmp_path / "bench.json"
    res = _bench(capsys, tiny["tflite"], "--threads", "1,2", "--runs", 4, "--warmup", 1, "--json", out)
    records = json.loads(out.read_text())
    assert [r["threads"] for r in records] == [1, 2]
    for r in records:
        assert set(REQUIRED) <= set(r)
        assert r["model"] == str(tiny["tflite"]) and r["runs"] == 4 and r["warmup"] == 1
        assert r["size_bytes"] == tiny["tflite"].stat().st_size
        assert r["macs"] == tflite_macs(tiny["tflite"])
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"]
        assert r["gmacs_per_s"] == pytest.approx(r["macs"] / r["median_ms"] / 1e6)
        assert r["accuracy"] is None  # no export_report.json beside it
        assert r["xnnpack"] is True and r["xnnpack_partitions"] >= 1 and r["input_shape"] == [1, 32, 32, 3]
        if HAVE_PROC:  # XNNPACK's pool really has threads - 1 workers (+ the caller)
            assert r["threads_observed"] == r["threads"]
    head = res.out.splitlines()[0]
    assert head.startswith("CPU: ") and "cores" in head and "ai_edge_litert" in head
    assert "model_float32.tflite" in res.out


def test_interpreter_built_once_per_thread_count_and_reused(tiny, monkeypatch, capsys):
    from kft.bench import tflite_timing

    built, invokes = [], []
    real = tflite_timing.load_interpreter

    def spy(path, num_threads):
        interp = real(path, num_threads)
        built.append(num_threads)
        original = interp.invoke
        index = len(built) - 1

        def counted():
            invokes.append(index)
            return original()

        interp.invoke = counted
        return interp

    monkeypatch.setattr(tflite_timing, "load_interpreter", spy)
    _bench(capsys, tiny["tflite"], "--threads", "2,1", "--runs", 3, "--warmup", 2)
    assert built == [2, 1]
    assert invokes.count(0) == 5 and invokes.count(1) == 5  # warm-up + runs, same interpreter


def test_keras_model_runs_one_subprocess_per_thread_count(tiny, tmp_path, capsys):
    from kft.bench.macs import tflite_macs

    out = tmp_path / "k.json"
    _bench(capsys, tiny["keras"], "--threads", "1,2", "--runs", 2, "--warmup", 1, "--json", out)
    records = json.loads(out.read_text())
    assert [r["threads"] for r in records] == [1, 2]
    assert [r["threads_observed"] for r in records] == [1, 2]  # tf.config in each worker
    for r in records:
        assert set(REQUIRED) <= set(r) and r["kind"] == "keras"
        assert r["macs"] == tflite_macs(tiny["tflite"])
        assert "tensorflow" in r["runtime"]


def test_int8_model_with_int8_input_runs(tiny, tmp_path, capsys):
    out = tmp_path / "q.json"
    _bench(capsys, tiny["int8"], "--runs", 2, "--warmup", 0, "--json", out)
    (r,) = json.loads(out.read_text())
    assert r["input_dtype"] == "int8" and r["median_ms"] > 0


# --- accuracy and plot ------------------------------------------------------------------------

def test_accuracy_from_export_report_and_plot(tiny, tmp_path, capsys):
    export = tmp_path / "export" / "run1"
    export.mkdir(parents=True)
    for q in ("float32", "int8"):
        (export / f"model_{q}.tflite").write_bytes(tiny[q if q == "int8" else "tflite"].read_bytes())
    report = {"name": "run1", "rows": [
        {"variant": "keras", "file": "runs/x/model.keras", "accuracy": 0.81},
        {"variant": "float32", "file": "model_float32.tflite", "accuracy": 0.8},
        {"variant": "int8", "file": "model_int8.tflite", "accuracy": 0.75}]}
    (export / "export_report.json").write_text(json.dumps(report))
    out, plot = tmp_path / "b.json", tmp_path / "pareto.png"
    _bench(capsys, export / "model_float32.tflite", export / "model_int8.tflite", "--runs", 2, "--warmup", 0,
           "--json", out, "--plot", plot)
    records = json.loads(out.read_text())
    assert [r["accuracy"] for r in records] == [0.8, 0.75]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_keras_accuracy_from_run_metrics(tmp_path):
    from kft.bench.report import accuracy_for

    (tmp_path / "model.keras").write_bytes(b"")
    assert accuracy_for(tmp_path / "model.keras") == (None, None)
    (tmp_path / "metrics.json").write_text(json.dumps({"test_accuracy": 0.625}))
    assert accuracy_for(tmp_path / "model.keras") == (0.625, str(tmp_path / "metrics.json"))


def test_plot_without_accuracy_warns_and_writes_nothing(tiny, tmp_path, capsys):
    plot = tmp_path / "p.png"
    res = _bench(capsys, tiny["tflite"], "--runs", 1, "--warmup", 0, "--plot", plot)
    assert "no model has a known accuracy" in res.err
    assert not plot.exists()


# --- inputs -----------------------------------------------------------------------------------

def test_synthetic_images_are_deterministic_and_natural_looking():
    from kft.bench.inputs import synthetic_images

    a, b = synthetic_images(6), synthetic_images(6)
    assert a.dtype == np.uint8 and a.shape == (6, 96, 96, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a[0], a[1])
    for img in a:
        assert img.std() > 25 and img.min() < 40 and img.max() > 215  # contrast, never flat
        # natural images are smooth: neighbouring pixels correlate strongly
        g = img.astype(float).mean(-1)
        assert np.corrcoef(g[:, :-1].ravel(), g[:, 1:].ravel())[0, 1] > 0.7


def test_images_folder_is_used(tiny, tmp_path, capsys):
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(photos / "a.png")
    out = tmp_path / "i.json"
    _bench(capsys, tiny["tflite"], "--runs", 1, "--warmup", 0, "--images", photos, "--json", out)
    assert json.loads(out.read_text())[0]["images"].startswith("1 photos from")


def test_default_images_are_cifar10_test_images_when_data_dir_is_set():
    data_dir = require_env("KFT_DATA_DIR")
    from kft.bench.inputs import bench_images

    images, source = bench_images()
    assert "CIFAR-10 test" in source and len(images) == 32
    assert images[0].shape == (32, 32, 3) and not np.array_equal(images[0], images[1])
    with np.load(Path(data_dir) / "cifar10" / "cifar10_test.npz") as f:
        assert np.array_equal(images[0], f["x_test"][0])


# --- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["missing", "suffix", "garbage", "empty", "truncated", "threads", "images"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tiny, tmp_path, capsys, case):
    model = tmp_path / "m.tflite"
    extra = []
    if case == "missing":
        expect = "no such file"
    elif case == "suffix":
        model = tmp_path / "m.onnx"
        model.write_bytes(b"x")
        expect = "unsupported model type"
    elif case == "garbage":
        model.write_bytes(os.urandom(3000))
        expect = "not a usable TFLite model"
    elif case == "empty":
        model.write_bytes(b"")
        expect = "not a usable TFLite model"
    elif case == "truncated":
        model.write_bytes(tiny["tflite"].read_bytes()[:4000])
        expect = "not a usable TFLite model"
    elif case == "threads":
        model = tiny["tflite"]
        extra = ["--threads", "1,zero"]
        expect = "--threads"
    else:
        model = tiny["tflite"]
        extra = ["--images", tmp_path]  # a folder without images
        expect = "no image files"
    out = tmp_path / "never.json"
    line = _error(capsys, model, *extra, "--runs", 1, "--json", out)
    assert expect in line
    assert not out.exists() and not list(tmp_path.glob(".never.json*"))


def test_corrupt_keras_model_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "model.keras"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    out = tmp_path / "never.json"
    line = _error(capsys, bad, "--runs", 1, "--json", out)
    assert "cannot load the model" in line and str(bad) in line
    assert not out.exists()
