"""TFLite export: numeric agreement of every quantization, uint8 I/O, metadata, MediaPipe, atomicity."""

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from export_fixtures import decisive, exported, keras_logits, plain_float32, run_tflite, trained
from kft.errors import KftError


# Quantized files of the tiny fixture model must agree with Keras well above chance (1/3) on its 30
# test images; the exact rate depends on the CPU's kernels, so this is a floor, not a score.
INT8_FLOOR = 0.6

def _centred(z):
    z = np.asarray(z, np.float64)
    return z - z.mean(axis=1, keepdims=True)


def _variant(result, name):
    (row,) = [r for r in result.report["rows"] if r["variant"] == name]
    return row, result.out_dir / f"model_{name}.tflite"


def test_export_writes_every_variant_labels_and_report():
    result = exported()
    names = sorted(p.name for p in result.out_dir.iterdir())
    assert names == sorted(["model_float32.tflite", "model_float16.tflite", "model_dynamic.tflite",
                            "model_int8.tflite", "labels.txt", "export_report.json", "export_report.md"])
    assert (result.out_dir / "labels.txt").read_text().split() == trained().class_names
    report = json.loads((result.out_dir / "export_report.json").read_text())
    assert [r["variant"] for r in report["rows"]] == ["keras", "float32", "float16", "dynamic", "int8"]
    t = trained()
    keras_acc = float((keras_logits(t.test_x).argmax(1) == t.test_y).mean())
    assert report["rows"][0]["accuracy"] == pytest.approx(keras_acc)
    assert keras_acc > 0.5  # the tiny model really learned something (chance is 1/3)
    for r in report["rows"][1:]:
        assert r["size_bytes"] == (result.out_dir / r["file"]).stat().st_size
        assert r["convert_seconds"] > 0
    md = (result.out_dir / "export_report.md").read_text()
    assert "| float16 |" in md and "| keras |" in md


def test_float32_matches_keras_to_float_precision():
    t = trained()
    row, path = _variant(exported(), "float32")
    probs, inp, out = run_tflite(path, t.test_x)
    assert inp["name"] == "image" and out["name"] == "probabilities"
    assert inp["dtype"] == np.float32 and tuple(inp["shape"]) == (1, 224, 224, 3)  # 32 px x 7, box-filtered
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    ref = keras_logits(t.test_x)
    diff = np.abs(_centred(np.log(probs.astype(np.float64))) - _centred(ref)).max()
    assert diff <= 1e-5 * max(1.0, np.abs(_centred(ref)).max())
    assert row["max_abs_logit_diff"] == pytest.approx(diff, rel=1e-3, abs=1e-7)
    assert row["top1_agreement"] == 1.0
    undecided = int((~decisive(ref, 1e-3)).sum())  # only a near-tie could flip between runtimes
    assert abs(row["accuracy"] - float((ref.argmax(1) == t.test_y).mean())) <= undecided / len(ref) + 1e-9


def test_float16_is_half_size_and_close():
    t = trained()
    row, path = _variant(exported(), "float16")
    _, path32 = _variant(exported(), "float32")
    assert path.stat().st_size < 0.6 * path32.stat().st_size
    probs, _, _ = run_tflite(path, t.test_x)
    ref = _centred(keras_logits(t.test_x))
    diff = np.abs(_centred(np.log(probs.astype(np.float64))) - ref).max()
    assert diff < 0.02 * np.abs(ref).max()
    # Each logit moves by less than that bound, so a top-1 decided by more than twice it cannot flip;
    # how many images sit closer than that depends on the CPU that trained the tiny model.
    sure = decisive(ref, 2 * 0.02 * np.abs(ref).max())
    agree = probs.argmax(1) == ref.argmax(1)
    assert agree[sure].all() and row["top1_agreement"] == pytest.approx(agree.mean())


@pytest.mark.parametrize("name", ["dynamic", "int8"])
def test_quantized_variants_are_small_and_agree_on_top1(name):
    t = trained()
    row, path = _variant(exported(), name)
    _, path32 = _variant(exported(), "float32")
    assert path.stat().st_size < 0.4 * path32.stat().st_size
    probs, inp, out = run_tflite(path, t.test_x)
    agreement = float((probs.argmax(1) == keras_logits(t.test_x).argmax(1)).mean())
    # A broken file agrees at chance (1/3); how close a working one gets on this tiny random-backbone
    # model depends on the CPU that trained it and runs it (0.87 here and on an emulated AVX2-only
    # CPU, less on a real one): a floor well above chance, not a score.
    assert agreement >= INT8_FLOOR
    assert row["top1_agreement"] == pytest.approx(agreement)
    if name == "int8":
        assert inp["dtype"] == np.float32 and row["max_abs_logit_diff"] is None
    else:
        assert row["max_abs_logit_diff"] is not None


def test_int8_io_takes_raw_uint8_pixels_and_gives_uint8_probabilities():
    t = trained()
    result = exported(int8_io=True)
    row, path = _variant(result, "int8")
    probs_u8, inp, out = run_tflite(path, t.test_x)  # the image bytes go in as they are
    assert inp["dtype"] == np.uint8 and out["dtype"] == np.uint8
    assert inp["quantization"] == (1.0, 0)  # byte q means pixel value q exactly
    assert out["quantization"] == pytest.approx((1 / 256, 0))
    probs = probs_u8.astype(np.float32) / 256
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=0.03)
    # Same network as the float-I/O int8 model: same calibration, so the same decisions.
    float_io, _, _ = run_tflite(_variant(exported(), "int8")[1], t.test_x)
    assert np.abs(probs - float_io).max() <= 2 / 256
    assert float((probs.argmax(1) == keras_logits(t.test_x).argmax(1)).mean()) >= INT8_FLOOR
    assert row["input"].startswith("uint8") and row["output"].startswith("uint8")


def test_the_float_island_fallback_keeps_uint8_io(tmp_path):
    """TFLite's selective quantization gives float I/O by default; with --int8-io the fallback
    must still give raw uint8 pixels in and uint8 probabilities out, like the plain int8 file."""
    from kft.export.convert import QuantizationConfig, convert

    t = trained()
    q = dataclasses.replace(QuantizationConfig.for_int8(t.train_x[:24], int8_io=True), selective=True)
    details = {}
    (tmp_path / "islands.tflite").write_bytes(convert(t.model, q, details=details))
    assert details["float_nodes"]
    probs_u8, inp, out = run_tflite(tmp_path / "islands.tflite", t.test_x)
    assert inp["dtype"] == np.uint8 and out["dtype"] == np.uint8 and inp["quantization"] == (1.0, 0)
    probs = probs_u8.astype(np.float32) / 256
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=0.03)
    logits = keras_logits(t.test_x)
    sure = decisive(logits, 1.0)  # decisions the float model makes by a clear margin
    assert sure.sum() >= 10
    assert float((probs.argmax(1) == logits.argmax(1))[sure].mean()) >= INT8_FLOOR


def test_the_int8_fallback_floats_the_costliest_nodes_until_it_agrees_with_float():
    """selective_int8 ranks nodes by what quantizing each alone costs the output, then puts the
    fewest costliest nodes in float that bring top-1 agreement with float to the target."""
    import tensorflow as tf

    from kft.export import quant_debug
    from kft.export.convert import QuantizationConfig, build_converter

    t = trained()
    q = QuantizationConfig.for_int8(t.train_x[:24])
    images = build_converter(t.model, q, 32)[1].representative_images

    def islands(target):
        converter, _ = build_converter(t.model, q, 32)
        return quant_debug.selective_int8(converter, images, target=target)

    buf, one = islands(0.0)  # any agreement will do: the single costliest node
    assert len(one) == 1
    buf_all, every = islands(1.01)  # never reached: as many nodes in float as allowed
    candidates = [name for op, name in quant_debug.graph_nodes(buf_all) if op not in ("QUANTIZE", "DEQUANTIZE")]
    assert one[0] in every and set(every) <= set(candidates)
    assert len(every) == int(len(candidates) * quant_debug.MAX_ISLAND_SHARE) > 4
    for data, floated in ((buf, one), (buf_all, every)):  # the islands really compute in float
        interpreter = tf.lite.Interpreter(model_content=data)
        types = {d["name"]: d["dtype"] for d in interpreter.get_tensor_details()}
        assert all(types[name] == np.float32 for name in floated)
        assert sum(dtype == np.int8 for dtype in types.values()) > 0  # and the rest is int8


@pytest.mark.parametrize("first", [1, 2, 3, 17, 23, 32, 33, 40])
def test_the_fallback_search_finds_the_fewest_float_nodes_that_pass(first):
    from kft.export.quant_debug import fewest_passing

    tried = []

    def passes(k):
        tried.append(k)
        return k >= first

    assert fewest_passing(passes, 40) == first
    assert len(tried) <= 2 * 6 + 1  # doubling, then bisection: logarithmic, not one probe per k
    tried.clear()
    assert fewest_passing(lambda k: tried.append(k) or k >= 41, 40) == 40  # never passes: the cap
    assert tried == [1, 2, 4, 8, 16, 32, 40]
    assert fewest_passing(lambda k: k in (4, 5, 6, 7, 8), 40) == 4  # not monotone: still one that passed


@pytest.mark.parametrize("name", ["float32", "int8"])
def test_metadata_and_labels_read_back(name):
    from kft.export.metadata import read_metadata

    _, path = _variant(exported(), name)
    data = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == ["labels.txt"]
        assert zf.read("labels.txt").decode().split() == trained().class_names
    buf = read_metadata(data)
    assert buf is not None and buf[4:8] == b"M001"
    schema = pytest.importorskip("mediapipe.tasks.metadata.metadata_schema_py_generated",
                                 reason="mediapipe not installed: cannot parse the metadata independently")
    md = schema.ModelMetadataT.InitFromObj(schema.ModelMetadata.GetRootAsModelMetadata(buf, 0))
    assert md.minParserVersion == b"1.0.0"
    (sub,) = md.subgraphMetadata
    (image,), (prob,) = sub.inputTensorMetadata, sub.outputTensorMetadata
    assert image.name == b"image"
    assert image.content.contentPropertiesType == schema.ContentProperties.ImageProperties
    assert image.content.contentProperties.colorSpace == schema.ColorSpaceType.RGB
    (norm,) = image.processUnits
    assert norm.optionsType == schema.ProcessUnitOptions.NormalizationOptions
    assert list(norm.options.mean) == [0.0] and list(norm.options.std) == [1.0]
    assert list(image.stats.min) == [0.0] and list(image.stats.max) == [255.0]
    (labels,) = prob.associatedFiles
    assert labels.name == b"labels.txt" and labels.type == schema.AssociatedFileType.TENSOR_AXIS_LABELS


@pytest.mark.parametrize("name,int8_io", [("float32", False), ("int8", False), ("int8", True)])
def test_mediapipe_image_classifier_loads_the_file_alone(name, int8_io):
    """MediaPipe reads the model, its labels and its input contract from the file alone.

    Scores must match LiteRT's within rounding (one int8 output step); top-1 is
    compared only where LiteRT's margin exceeds that, since MediaPipe and LiteRT
    break exact ties differently (seen on int8: 0.4844 / 0.0312 / 0.4844).
    """
    vision = pytest.importorskip("mediapipe.tasks.python.vision", reason="mediapipe is not installed")
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions

    t = trained()
    path = _variant(exported(int8_io), name)[1]
    ours, _, out = run_tflite(path, t.test_x)
    scale = out["quantization"][0] or (1 / 256 if name == "int8" else 0.0)
    ours = ours.astype(np.float32) * (out["quantization"][0] or 1.0)
    tol = 1.01 * scale if name == "int8" else 1e-4
    clear = decisive(ours, 2 * tol)
    assert clear.sum() >= 0.7 * len(clear)  # the comparison below is not vacuous
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)), max_results=3)
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for img, probs, is_clear in zip(t.test_x, ours, clear):
            big = img.repeat(7, axis=0).repeat(7, axis=1)  # as run_tflite shows it: no resampling by either
            result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(big)))
            categories = result.classifications[0].categories
            assert sorted(c.index for c in categories) == [0, 1, 2]
            for c in categories:
                assert c.category_name == t.class_names[c.index]
                assert c.score == pytest.approx(probs[c.index], abs=tol)
            if is_clear:
                assert categories[0].index == int(probs.argmax())


def test_export_run_of_a_folder_without_model_is_a_user_error(tmp_path):
    from kft.export import export_run

    (tmp_path / "labels.txt").write_text("a\nb\n")
    with pytest.raises(KftError, match="no model.keras"):
        export_run(tmp_path, "float32", False, 10, tmp_path / "out")
    with pytest.raises(KftError, match="no such"):
        export_run(tmp_path / "missing", "float32", False, 10, tmp_path / "out")
    with pytest.raises(KftError, match="unknown quantization 'int4'"):
        export_run(trained().dir, "float32,int4", False, 10, tmp_path / "out")
    with pytest.raises(KftError, match="calibration"):  # a bare model has no training images
        export_run(trained().model_path, "int8", False, 10, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_failed_export_leaves_no_model_files(tmp_path, monkeypatch):
    import kft.export as export_package  # export_model calls the package's name `convert`
    from kft.export import export_model

    tflite = plain_float32()

    def failing(model, quant, input_size=None, details=None, **kw):
        if quant.name == "dynamic":
            raise RuntimeError("converter crashed")
        return tflite

    monkeypatch.setattr(export_package, "convert", failing)
    t = trained()
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="converter crashed"):
        export_model(t.model, t.class_names, ["float32", "dynamic"], out, test_images=t.test_x[:4],
                     test_labels=t.test_y[:4])
    assert not out.exists() or list(out.iterdir()) == []


def test_failed_write_leaves_no_temporary_files(tmp_path, monkeypatch):
    from kft.rundir import atomic
    import kft.export as export_package  # export_model calls the package's name `convert`
    from kft.export import export_model

    tflite = plain_float32()
    monkeypatch.setattr(export_package, "convert", lambda model, quant, input_size=None, details=None, **kw: tflite)
    real_fsync, calls = atomic._fsync, []

    def disk_full(path):  # the second file written (folders are fsynced too, after each rename)
        if Path(path).is_file():
            calls.append(path)
        if len(calls) == 2 and Path(path).is_file():
            raise OSError(28, "No space left on device")
        real_fsync(path)

    monkeypatch.setattr(atomic, "_fsync", disk_full)
    t = trained()
    out = tmp_path / "out"
    with pytest.raises(KftError, match="no space left on device while writing .*model_float16.tflite"):
        export_model(t.model, t.class_names, ["float32", "float16"], out)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["model_float32.tflite"]  # complete; the one being written is gone, temp included


def _fake_run(tmp_path, load_args, class_names, model_path):
    """A run folder as kft train leaves it (only what export reads)."""
    import shutil

    run = tmp_path / "runs" / "mobilenet_v3_small-two_stage-test"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("backbone: mobilenet_v3_small\n")
    (run / "split.json").write_text(json.dumps({"load_args": load_args, "class_names": class_names}))
    (run / "labels.txt").write_text("".join(f"{c}\n" for c in class_names))
    shutil.copy(model_path, run / "model.keras")
    return run


def test_kft_export_of_a_run_folder_via_the_cli(tmp_path, monkeypatch, capsys):
    """Folder-dataset run: calibration images come from kft.rundir; such a run has no test set."""
    from PIL import Image

    from kft.cli import main

    t = trained()
    data = tmp_path / "photos"
    for c, name in enumerate(t.class_names):
        (data / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(t.train_x[t.train_y == c][i]).save(data / name / f"{i}.png")
    load_args = dict(data_dir=None, folder=str(data), samples_per_class=None, val_per_class=None, seed=0,
                     limit_test=None, image_size=32)
    run = _fake_run(tmp_path, load_args, t.class_names, t.model_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["export", str(run), "--tflite", "--quantize", "int8,float32", "--calibration-samples", "5"])
        raise SystemExit(0)
    assert e.value.code == 0, capsys.readouterr().err
    out = tmp_path / "export" / run.name  # default: ./export/<run-name>
    assert sorted(p.name for p in out.iterdir()) == ["export_report.json", "export_report.md", "labels.txt",
                                                    "model_float32.tflite", "model_int8.tflite"]
    report = json.loads((out / "export_report.json").read_text())
    # A folder dataset has no test set: the variants are scored on the run's validation split.
    assert report["calibration_images"] == 5 and report["test_images"] == 3  # 4 per class, ~20% each held out
    assert report["scored_on"].startswith("the run's validation split (3 images")
    assert [r["variant"] for r in report["rows"]] == ["keras", "float32", "int8"]
    assert all(r["accuracy"] is not None for r in report["rows"])
    assert report["rows"][1]["top1_agreement"] == 1.0 or report["rows"][1]["max_abs_logit_diff"] < 1e-3
    printed = capsys.readouterr().out
    assert f"exported to export/{run.name}" in printed and "validation split" in printed


def test_export_without_a_format_flag_exports_tflite(tmp_path, capsys):
    """--tflite is the default format: `kft export MODEL` alone writes the TFLite files."""
    from kft.cli import main

    with pytest.raises(SystemExit) as e:
        main(["export", str(trained().model_path), "--quantize", "float32", "--out", str(tmp_path / "e")])
        raise SystemExit(0)
    assert (e.value.code or 0) == 0, capsys.readouterr().err
    assert (tmp_path / "e" / "model_float32.tflite").is_file() and not (tmp_path / "e" / "web").exists()


def test_export_run_on_cifar10(tmp_path):
    """A CIFAR-10 run: calibration from its training split, a limited test set; needs the real data."""
    import os

    data_dir = os.environ.get("KFT_DATA_DIR")
    if not data_dir:
        pytest.skip("KFT_DATA_DIR is not set: this test needs the real CIFAR-10 files")
    from kft.data import CIFAR10_CLASSES
    from kft.export import export_run
    from kft.model import build_classifier

    model = build_classifier("mobilenet_v3_small", num_classes=10, image_size=32, weights="none")
    model.save(tmp_path / "model.keras")
    load_args = dict(data_dir=data_dir, folder=None, samples_per_class=3, val_per_class=0, seed=0,
                     limit_test=None, image_size=None)
    run = _fake_run(tmp_path, load_args, list(CIFAR10_CLASSES), tmp_path / "model.keras")
    # random weights: this checks the calibration and test plumbing, not accuracy (no guard)
    result = export_run(run, "int8", True, 300, tmp_path / "out", limit_test=20, max_accuracy_drop=100)
    assert result.report["calibration_images"] == 30  # every training image: 10 classes x 3
    assert result.report["test_images"] == 20
    int8 = result.report["rows"][1]
    assert int8["accuracy"] is not None and int8["input"].startswith("uint8")


def test_quantization_names_and_configs():
    from kft.export import parse_quantizations
    from kft.export.convert import QuantizationConfig

    assert parse_quantizations("all") == ["float32", "float16", "dynamic", "int8"]
    assert parse_quantizations("int8, float32") == ["float32", "int8"]
    with pytest.raises(KftError, match="no quantization"):
        parse_quantizations(" , ")
    assert QuantizationConfig.for_float32().optimize is False
    assert QuantizationConfig.for_float16().float16_weights and QuantizationConfig.for_dynamic().optimize
    q = QuantizationConfig.for_int8(np.zeros((2, 8, 8, 3), np.uint8), int8_io=True)
    assert q.int8_io and not q.is_float and len(q.representative_images) == 2
    with pytest.raises(KftError, match="calibration images"):
        QuantizationConfig.for_int8(np.zeros((8, 8, 3)))
    with pytest.raises(KftError, match="calibration images"):
        QuantizationConfig.named("int8")


def test_the_shared_export_ran_with_the_guard_off_and_kept_every_variant():
    """The fixture export is a source of files, not a guard test: the guard is off there
    (export_fixtures.GUARD_OFF), so every variant is written at its first attempt on any CPU."""
    from export_fixtures import GUARD_OFF

    report = exported().report
    assert report["max_accuracy_drop"] == GUARD_OFF
    assert [(r["status"], len(r["attempts"]), r["float_nodes"]) for r in report["rows"][1:]] == [("ok", 1, [])] * 4


def test_a_variant_that_computes_what_keras_does_passes_the_default_guard(tmp_path):
    """The deliberately passing case, on any CPU: float32 differs from Keras by rounding only
    (1e-5 of the logits, test_float32_matches_keras_to_float_precision), so with the default
    guard it passes at its first attempt, without float islands, and is written."""
    from kft.export import export_model
    from kft.export.guard import DEFAULT_MAX_ACCURACY_DROP

    t = trained()
    result = export_model(t.model, t.class_names, ["float32"], tmp_path, test_images=t.test_x, test_labels=t.test_y)
    (row,) = result.report["rows"][1:]
    assert result.report["max_accuracy_drop"] == DEFAULT_MAX_ACCURACY_DROP
    assert (row["status"], len(row["attempts"]), row["float_nodes"]) == ("ok", 1, [])
    assert (tmp_path / "model_float32.tflite").is_file() and "| ok |" in (tmp_path / "export_report.md").read_text()


def test_a_variant_below_the_guard_is_retried_then_not_written(tmp_path, monkeypatch):
    """An impossible bar (any drop fails) exercises the whole path: int8 is retried with its
    float-island fallback, every variant ends FAILED, nothing but labels and report is written,
    and an earlier export's model file of that name is removed."""
    from kft.export import ExportFailed, export_model, guard

    monkeypatch.setattr(guard, "allowed_drop", lambda max_drop, n: -200.0)

    t = trained()
    (tmp_path / "model_int8.tflite").write_bytes(b"stale file from an earlier export")
    with pytest.raises(ExportFailed) as e:
        export_model(t.model, t.class_names, ["float32", "int8"], tmp_path, calibration_samples=24,
                     train_images=t.train_x, test_images=t.test_x, test_labels=t.test_y, max_accuracy_drop=0.5)
    msg = str(e.value)
    assert "\n" not in msg and "float32 (" in msg and "int8 (" in msg and "not written" in msg and "0.5 points" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export_report.json", "export_report.md", "labels.txt"]
    rows = {r["variant"]: r for r in json.loads((tmp_path / "export_report.json").read_text())["rows"]}
    assert rows["float32"]["status"] == rows["int8"]["status"] == "FAILED"
    assert [a["selective"] for a in rows["int8"]["attempts"]] == [False, True]
    assert all(a["accuracy"] is not None for a in rows["int8"]["attempts"])
    assert "not written (model_int8.tflite)" in (tmp_path / "export_report.md").read_text()


def test_an_int8_file_with_float_islands_is_timed_against_float32(tmp_path, monkeypatch):
    """The first int8 attempt is made to fail and the float-island fallback to pass, so the
    fallback ships; the report then says whether that file is still faster than float32 at 1 thread (figures, not a
    verdict this test could rely on: timing depends on the machine)."""
    from kft.export import export_model, guard

    # Both verdicts are set here: whether this tiny model's islands recover its int8 accuracy
    # depends on the CPU's kernels, and the subject is the timing in the report.
    monkeypatch.setattr(guard, "verdict", lambda row, *a: guard.OK if row["selective"] else guard.FAILED)
    t = trained()
    result = export_model(t.model, t.class_names, ["int8"], tmp_path, calibration_samples=24,
                          train_images=t.train_x, test_images=t.test_x, test_labels=t.test_y)
    (row,) = [r for r in result.report["rows"] if r["variant"] == "int8"]
    assert row["selective"] and row["float_nodes"] and row["status"] == "ok"
    speed = row["island_speed"]
    assert speed["threads"] == 1 and speed["int8_ms"] > 0 and speed["float32_ms"] > 0
    assert speed["faster"] == (speed["int8_ms"] < speed["float32_ms"])
    md = (tmp_path / "export_report.md").read_text()
    assert f"{speed['int8_ms']:.2f} ms vs float32 {speed['float32_ms']:.2f} ms at 1 thread" in md
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export_report.json", "export_report.md", "labels.txt",
                                                          "model_int8.tflite"]  # float32 was only timed


def test_without_held_out_images_the_guard_says_it_could_not_check(tmp_path):
    from kft.export import export_model

    t = trained()
    result = export_model(t.model, t.class_names, ["float32"], tmp_path)
    assert result.report["rows"][1]["status"] == "unchecked"
    assert (tmp_path / "model_float32.tflite").is_file()


def test_quantization_report_lists_every_layer_worst_first(tmp_path):
    import csv as csv_module

    from kft.export import export_model

    t = trained()
    export_model(t.model, t.class_names, ["int8"], tmp_path, calibration_samples=24, train_images=t.train_x,
                 test_images=t.test_x, test_labels=t.test_y, quantization_report=True)
    rows = list(csv_module.DictReader((tmp_path / "quantization_report.csv").open()))
    assert len(rows) > 50 and {"CONV_2D", "DEPTHWISE_CONV_2D"} <= {r["op_name"] for r in rows}
    errors = [float(r["rmse_per_scale"]) for r in rows]
    assert errors == sorted(errors, reverse=True) and errors[0] > 0
    md = (tmp_path / "quantization_report.md").read_text()
    assert md.count("\n| ") == len(rows) + 1 and "rmse/scale" in md
    with pytest.raises(KftError, match="add int8"):
        export_model(t.model, t.class_names, ["float32"], tmp_path / "x", quantization_report=True)


def test_the_guard_allows_one_image_on_small_held_out_sets():
    from kft.export import guard

    assert guard.allowed_drop(1.0, 10_000) == pytest.approx(1.0)
    assert guard.allowed_drop(1.0, 30) == pytest.approx(100 / 30)  # one image of 30 is no evidence
    keras, variant = {"accuracy": 0.80}, {"accuracy": 0.80 - 1 / 30}
    assert guard.verdict(variant, keras, 1.0, 30) == "ok"
    assert guard.verdict({"accuracy": 0.80 - 2 / 30}, keras, 1.0, 30) == "FAILED"
    assert guard.verdict({"accuracy": 0.788}, keras, 1.0, 10_000) == "FAILED"
    assert guard.verdict({"accuracy": None}, keras, 1.0, 0) == "unchecked"
