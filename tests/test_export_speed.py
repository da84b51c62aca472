"""Batched export scoring: the same files, the same report and the same int8 fallback as one image at a time.

``kft export`` scores every variant several images per interpreter invoke on every CPU,
upsamples each chunk of held-out images once for all variants and prepares the int8
model once (``kft.export.ScoringSpeed``); ``ScoringSpeed.one_at_a_time()`` is the path it
replaced. These tests run both on the tiny fixture model and compare.
"""

import dataclasses
import functools
import io
import json
import zipfile

import numpy as np
import pytest

from export_fixtures import CLASS_NAMES, colour_images, decisive, exported, fit_head, trained


def same_file(a: bytes, b: bytes) -> bool:
    """Whether two exported .tflite files are the same but for the time stamp of their packed
    ``labels.txt`` (``metadata.append_files`` zips it with the time of writing, so no two
    exports, old or new, are byte for byte the same): the same flatbuffer bytes, the same
    zip members."""
    def parts(data):
        cut = data.rfind(b"PK\x03\x04")  # the zip's one local header, after the flatbuffer
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return data[:cut], [(i.filename, i.CRC, i.file_size, zf.read(i)) for i in zf.infolist()]

    return len(a) == len(b) and parts(a) == parts(b)


def _rows(report):
    return {r["variant"]: r for r in report["rows"]}


@functools.lru_cache(maxsize=None)
def upsampling():
    """``export_fixtures.trained()``'s recipe on a model built as ``kft train`` builds its
    default runs: 32-px images upsampled inside to 64 px (the default run: 160 px), so its
    last feature maps are larger than 1x1. (At 32 px the converter turns the 1x1 poolings of
    MobileNetV3's squeeze-excite into RESHAPEs to a fixed size, and such a file takes one image
    per invoke: the last test below.) Namespace(model, train_x, test_x, test_y, class_names)."""
    from types import SimpleNamespace

    from kft.model import build_classifier

    model = build_classifier("mobilenet_v3_small", num_classes=3, image_size=64, input_size=32, weights="none",
                             seed=0)
    train_x, train_y = colour_images(24, seed=1)
    test_x, test_y = colour_images(10, seed=2)
    fit_head(model, train_x, train_y, backbone_input=model.get_layer("upsample")(train_x.astype(np.float32)))
    return SimpleNamespace(model=model, train_x=train_x, test_x=test_x, test_y=test_y, class_names=list(CLASS_NAMES))


@functools.lru_cache(maxsize=None)
def _both_exports(tmp_root: str):
    """``export_model`` of the fixture, all four variants, the old way and the new way."""
    from pathlib import Path

    from kft.export import ScoringSpeed, export_model

    t = upsampling()
    out = {}
    for name, speed in (("before", ScoringSpeed.one_at_a_time()), ("after", ScoringSpeed(batch_size=7))):
        timings = {}
        result = export_model(t.model, t.class_names, "all", Path(tmp_root) / name, calibration_samples=48,
                              train_images=t.train_x, test_images=t.test_x, test_labels=t.test_y,
                              source="upsampling", speed=speed, timings=timings)
        out[name] = (result, timings)
    result = export_model(t.model, t.class_names, "int8", Path(tmp_root) / "int8_io", int8_io=True,
                          calibration_samples=48, train_images=t.train_x, test_images=t.test_x,
                          test_labels=t.test_y, speed=ScoringSpeed(batch_size=7))
    out["int8_io"] = (result, {})
    return out


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    return _both_exports(str(tmp_path_factory.mktemp("speed")))


@pytest.mark.parametrize("name,int8_io", [("float32", False), ("float16", False), ("dynamic", False),
                                          ("int8", False), ("int8", True)])
def test_a_batch_gives_each_image_its_batch_one_scores(both, name, int8_io):
    """Every variant, metadata and packed labels included, takes a batch after
    resize_tensor_input; each image's scores are those it gets alone (float kernels may
    round differently, so float variants are compared to float precision), a remainder
    batch included (30 images in batches of 7)."""
    from kft.runtime import Classifier

    t = upsampling()
    path = both["int8_io" if int8_io else "after"][0].out_dir / f"model_{name}.tflite"
    shown = t.test_x.repeat(7, axis=1).repeat(7, axis=2)
    one = Classifier(path, num_threads=1).classify(shown)
    for threads, workers in ((1, 2), (2, 1)):  # two interpreters of 1 thread, or one of 2
        clf = Classifier(path, num_threads=threads, batch_size=7, workers=workers)
        batched = clf.classify(shown)
        assert clf.batch_size == 7 and clf.batch_note is None and clf.workers == workers  # it really ran batched
        assert batched.shape == one.shape == (30, 3)
        if name == "int8":  # integer kernels: exact
            np.testing.assert_array_equal(batched, one)
        else:
            np.testing.assert_allclose(batched, one, rtol=1e-5, atol=1e-6)
        sure = decisive(one, 1e-4)
        assert (batched.argmax(1) == one.argmax(1))[sure].all()
        np.testing.assert_array_equal(clf.classify(shown[3]), batched[3])  # one image after a batch


def test_the_fast_export_writes_the_same_files_and_the_same_report(both):
    (before, _), (after, _) = both["before"], both["after"]
    names = sorted(p.name for p in before.out_dir.iterdir())
    assert names == sorted(p.name for p in after.out_dir.iterdir())
    for name in names:
        if name.endswith(".tflite"):
            assert same_file((before.out_dir / name).read_bytes(), (after.out_dir / name).read_bytes()), name
        elif name == "labels.txt":
            assert (before.out_dir / name).read_bytes() == (after.out_dir / name).read_bytes()
    old, new = (json.loads((r.out_dir / "export_report.json").read_text()) for r in (before, after))
    old.pop("name"), new.pop("name")  # the folder's name
    old_rows, new_rows = old.pop("rows"), new.pop("rows")
    assert old == new
    n = old["test_images"]
    assert [list(r) for r in old_rows] == [list(r) for r in new_rows]  # the same fields, in order
    for a, b in zip(old_rows, new_rows):
        for key in a:
            if key == "convert_seconds":  # a time
                continue
            if key in ("accuracy", "top1_agreement") and a[key] is not None:
                assert abs(a[key] - b[key]) <= 1 / n + 1e-12, (a["variant"], key)  # within one image
            elif key == "max_abs_logit_diff" and a[key] is not None:
                assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-5), a["variant"]
            elif key == "attempts":
                assert [dict(x, accuracy=None) for x in a[key]] == [dict(x, accuracy=None) for x in b[key]]
            else:
                assert a[key] == b[key], (a["variant"], key)


def test_the_fast_export_times_its_phases(both):
    _, timings = both["after"]
    phases = ["keras scoring", "write", "prepare held-out images"]
    phases += [f"{step} {q}" for q in ("float32", "float16", "dynamic", "int8") for step in ("convert", "score")]
    for phase in phases:
        assert timings[phase]["wall"] > 0 and timings[phase]["cpu"] > 0, phase


def test_the_int8_fallback_picks_the_same_float_nodes_batched(tmp_path):
    """The fallback ranks every node by what quantizing it alone costs on the calibration
    images; scored in batches on every CPU it must rank them as one image at a time on one
    thread did (same scores), so it keeps the same nodes in float and writes the same file."""
    from kft.export import quant_debug
    from kft.export.convert import QuantizationConfig, build_converter

    t = upsampling()
    q = QuantizationConfig.for_int8(t.train_x[:24])
    images = build_converter(t.model, q, 32)[1].representative_images
    calibrated = quant_debug.calibrated_model(build_converter(t.model, q, 32)[0])
    for buf in (calibrated, quant_debug._quantize(calibrated)):  # float, and all int8
        one = quant_debug.probabilities(buf, images, batch_size=1, workers=1)
        np.testing.assert_allclose(quant_debug.probabilities(buf, images, batch_size=5, workers=2), one,
                                   rtol=1e-6, atol=1e-9)

    def islands(batch, workers):
        converter, _ = build_converter(t.model, q, 32)
        return quant_debug.selective_int8(converter, images, target=0.99, batch_size=batch, workers=workers)

    buf_one, nodes_one = islands(1, 1)  # the old way
    buf_batched, nodes_batched = islands(8, 2)
    assert nodes_one and nodes_batched == nodes_one
    assert buf_batched == buf_one


def test_the_forced_fallback_writes_the_same_file_both_ways(tmp_path, monkeypatch):
    """The whole export with its int8 fallback forced (as in test_export): the preparation done
    once and the batched scoring give the file and the float nodes of the old path."""
    from kft.export import ScoringSpeed, export_model, guard

    real = guard.verdict
    monkeypatch.setattr(guard, "verdict", lambda row, *a: guard.FAILED if row["variant"] == "int8"
                        and not row["selective"] else real(row, *a))
    t = upsampling()
    results = {}
    for name, speed in (("before", ScoringSpeed.one_at_a_time()), ("after", ScoringSpeed())):
        timings = {}
        results[name] = export_model(t.model, t.class_names, ["int8"], tmp_path / name, calibration_samples=24,
                                     train_images=t.train_x, test_images=t.test_x, test_labels=t.test_y,
                                     speed=speed, timings=timings), timings
    (before, _), (after, timings) = results["before"], results["after"]
    assert timings["convert int8 (fallback)"]["wall"] > 0 and timings["score int8 (fallback)"]["wall"] > 0
    rb, ra = _rows(before.report)["int8"], _rows(after.report)["int8"]
    assert ra["selective"] and ra["float_nodes"] == rb["float_nodes"] and ra["float_nodes"]
    assert ra["accuracy"] == rb["accuracy"] and ra["attempts"] == rb["attempts"]
    assert same_file((before.out_dir / "model_int8.tflite").read_bytes(),
                     (after.out_dir / "model_int8.tflite").read_bytes())


def _batch_one_only_model(tmp_path, reshape: str):
    """A tiny .tflite (a 2x2 "image" -> 12 "classes") whose graph hard-codes batch 1:
    ``"fixed"`` reshapes to [1, 12] (a larger batch fails to prepare), ``"flatten"`` to
    [1, -1] (a batch of n allocates, but gives one row of 12n)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 2, 2, 3], tf.float32)])
    def serve(image):
        return tf.nn.softmax(tf.reshape(image / 255.0, [1, 12] if reshape == "fixed" else [1, -1]))

    buf = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], tf.Module()).convert()
    path = tmp_path / f"{reshape}.tflite"
    path.write_bytes(buf)
    return path


def test_a_32_px_mobilenet_v3_file_runs_one_image_at_a_time():
    """The real case: at 32 px the converter flattens MobileNetV3's 1x1 squeeze-excite poolings
    to a fixed size, XNNPACK refuses a batch, and the classifier says so and runs at batch 1."""
    from kft.runtime import Classifier

    t = trained()
    path = exported().out_dir / "model_float32.tflite"
    shown = t.test_x[:9].repeat(7, axis=1).repeat(7, axis=2)
    clf = Classifier(path, num_threads=1, batch_size=4)
    probs = clf.classify(shown)
    assert clf.batch_size == 1 and "batch 4 refused" in clf.batch_note
    np.testing.assert_array_equal(probs, Classifier(path, num_threads=1).classify(shown))


@pytest.mark.parametrize("reshape", ["fixed", "flatten"])
def test_a_graph_that_refuses_a_batch_runs_one_image_at_a_time(tmp_path, reshape):
    from kft.runtime import Classifier

    path = _batch_one_only_model(tmp_path, reshape)
    images = np.random.default_rng(1).integers(0, 256, (5, 2, 2, 3), dtype=np.uint8)
    one = Classifier(path, num_threads=1).classify(images)
    clf = Classifier(path, num_threads=1, batch_size=4, workers=2)
    probs = clf.classify(images)
    assert clf.batch_size == 1 and "one image at a time" in clf.batch_note
    np.testing.assert_array_equal(probs, one)
    assert probs.shape == (5, 12)


def test_the_speed_settings_are_checked_for_what_they_promise():
    from kft.export import ScoringSpeed

    old = ScoringSpeed.one_at_a_time()
    assert (old.batch_size, old.workers, old.fallback_batch_size, old.fallback_workers) == (1, 1, 1, 1)
    assert not old.shared_chunks and not old.reuse_int8
    new = ScoringSpeed()
    assert new.batch_size > 1 and new.workers is None and new.shared_chunks and new.reuse_int8
    assert dataclasses.replace(new, batch_size=1).batch_size == 1


def test_a_run_export_takes_the_keras_scores_the_run_kept(reference, tmp_path):
    """``kft train`` keeps its final model's test logits (``test_logits.npz``); ``kft export``
    of that run uses them instead of scoring the Keras model again: the same report, no
    ``keras scoring`` phase. A changed model file or other images: scored afresh."""
    import shutil

    from kft import rundir
    from kft.export import ScoringSpeed, export_run

    assert (reference / rundir.TEST_LOGITS).is_file()
    reports, timings = {}, {}
    for name, speed in (("kept", ScoringSpeed()), ("scored", ScoringSpeed(keras_from_run=False))):
        timings[name] = {}
        reports[name] = export_run(reference, "float32", out_dir=tmp_path / name, max_accuracy_drop=100,
                                   speed=speed, timings=timings[name]).report
    assert "keras scoring" not in timings["kept"] and "keras scoring" in timings["scored"]
    kept, scored = reports["kept"], reports["scored"]
    assert kept["keras_scores"].startswith("the run's test_logits.npz")
    assert scored["keras_scores"] == "scored by this export"
    assert kept["test_images"] == scored["test_images"] == 30
    for a, b in zip(kept["rows"], scored["rows"], strict=True):
        assert a["accuracy"] == b["accuracy"] and a.get("top1_agreement") == b.get("top1_agreement")
        if a.get("max_abs_logit_diff") is not None:
            assert a["max_abs_logit_diff"] == pytest.approx(b["max_abs_logit_diff"], rel=1e-3, abs=1e-5)

    run = tmp_path / "copy"
    shutil.copytree(reference, run, ignore=shutil.ignore_patterns("checkpoint", "tensorboard"))
    x, y = rundir.load_run(run).data().test.x, rundir.load_run(run).data().test.y
    assert rundir.read_test_logits(run, x, y) is not None
    other = x.copy()
    other[0, 0, 0, 0] ^= 1
    assert rundir.read_test_logits(run, other, y) is None  # other images
    assert rundir.read_test_logits(run, x, (y + 1) % 10) is None  # other labels
    with open(run / rundir.MODEL, "ab") as f:  # another model file
        f.write(b"\0")
    assert rundir.read_test_logits(run, x, y) is None
    (run / rundir.TEST_LOGITS).write_bytes(b"not an npz")
    assert rundir.read_test_logits(run, x, y) is None
