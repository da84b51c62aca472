"""The input contract: what a real client sees is what kft measures.

MediaPipe's ImageClassifier, given whole photo files, decodes and resizes them itself
(no antialiasing). ``kft predict`` resizes the same way (``resize_like_mediapipe``), so
the two agree on the same files. And the exported model declares a camera-friendly input
(224 px for 32-px training images) that it box-filters down inside the graph, so the
client's aliasing resize sways its answers little: they agree with those for the same
files resized with antialiasing.
"""

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import require_env
from export_fixtures import trained

# A top-1 margin at or below this (in probability) counts as a tie: runtimes and decoders that
# differ in their last bits may flip it. Above it, MediaPipe and kft predict must agree on >= 97%.
TIE = 0.05
# The int8 files' scores depend on the runtime's integer kernels far more than the float files'
# do. On this quick model (it loses ~5 points in int8) TFLite's own kernel sets gave the same
# inputs probabilities up to 0.24 apart (ai_edge_litert with XNNPACK against its built-in and its
# reference kernels, on an AVX2-only AMD EPYC, 2026-12-08), and MediaPipe's build sided with
# neither on 7 of 70 photos. A margin within that spread is a tie for int8. Whether the client
# resizes as kft predict does is what the float variants test, at TIE.
INT8_TIE = 0.25
VARIANTS = [("float32", False), ("float16", False), ("dynamic", False), ("int8", False), ("int8", True)]


def test_default_input_is_224_and_box_filtered_in_the_graph(tmp_path):
    from kft.export.convert import QuantizationConfig, box_factor, convert, default_input_size, to_input_size
    from kft.runtime import Classifier

    assert [default_input_size(s) for s in (32, 64, 96, 160, 224, 300)] == [224, 256, 288, 320, 224, 300]
    assert box_factor(224, 32) == 7 and box_factor(100, 32) == 3
    t = trained()
    ref = trained().model.predict(t.test_x[:6].astype(np.float32), verbose=0)
    for size in (224, 100):  # a multiple of 32, and not one (bilinear to 96 first)
        buf = convert(t.model, QuantizationConfig.for_float32(), input_size=size)
        ops = _op_names(buf)
        assert "AVERAGE_POOL_2D" in ops and ("RESIZE_BILINEAR" in ops[:ops.index("AVERAGE_POOL_2D")]) == (size == 100)
        clf = Classifier(buf, num_threads=1)
        assert clf.input_size == (size, size)
        probs = clf.classify(to_input_size(t.test_x[:6], size))
        if size == 224:  # each pixel shown 7x7 comes back exactly through the box filter
            z = ref - ref.mean(1, keepdims=True)
            logp = np.log(probs.astype(np.float64))
            np.testing.assert_allclose(logp - logp.mean(1, keepdims=True), z, atol=1e-4 * max(1, np.abs(z).max()))


def test_input_size_below_the_training_resolution_is_a_user_error():
    from kft.errors import KftError
    from kft.export.convert import QuantizationConfig, convert

    with pytest.raises(KftError, match="`input_size` must be"):
        convert(trained().model, QuantizationConfig.for_float32(), input_size=16)


def test_kft_export_input_size_option(tmp_path, capsys):
    from kft.cli import main

    with pytest.raises(SystemExit) as e:
        main(["export", str(trained().model_path), "--tflite", "--quantize", "float32", "--input-size", "96",
              "--out", str(tmp_path / "e")])
        raise SystemExit(0)
    assert e.value.code == 0, capsys.readouterr().err
    from kft.runtime import Classifier

    assert Classifier(tmp_path / "e" / "model_float32.tflite").input_size == (96, 96)
    assert "box filter" in (tmp_path / "e" / "export_report.md").read_text()


@functools.lru_cache(maxsize=None)
def _cifar_exports():
    """A real CIFAR-10 classifier trained by kft in about 30 s (MobileNetV2 ImageNet features at 96 px,
    head-only, 50 images per class; ~55% test accuracy), exported in every variant at the default
    input and, as the old export did, at its 32-px training input (float32 only)."""
    from kft import api

    require_env("KFT_DATA_DIR")
    require_env("KFT_WEIGHTS_DIR")
    out = Path(tempfile.mkdtemp(prefix="kft-contract-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    run = api.train("mobilenet_v2", strategy="head_only", seed=0, samples_per_class=50, val_per_class=20,
                    image_size=96, max_epochs=8, limit_test=200, out=out / "run")
    guard_off = dict(max_accuracy_drop=100.0)  # this quick model's int8 loses ~5 points: not the subject here
    exports = {"after": api.export(run, quantize="all", out=out / "after", **guard_off),
               "after-io": api.export(run, quantize="int8", int8_io=True, out=out / "after-io", **guard_off),
               "before": api.export(run, quantize="float32", input_size=32, out=out / "before", **guard_off)}
    from kft.bench.clients import write_photo_set

    return exports["after"].report["class_names"], exports, write_photo_set(out / "photos")


def _scores(kind, variant, antialiased=False):
    """(ours, MediaPipe's) scores on the photo files; ours through kft predict's path, or with
    the files resized with antialiasing instead of as the client resizes them."""
    from kft.bench.clients import antialiased_scores, kft_scores

    pytest.importorskip("mediapipe", reason="mediapipe (test extra) is not installed")
    pytest.importorskip("skimage", reason="scikit-image (test extra) is not installed: no sample photos")
    names, exports, files = _cifar_exports()
    model = exports[kind].out_dir / f"model_{variant}.tflite"
    ours = antialiased_scores(model, files) if antialiased else kft_scores(model, files)
    return ours, _mediapipe_scores(model, tuple(files), tuple(names))


@functools.lru_cache(maxsize=None)
def _mediapipe_scores(model, files, names):
    """MediaPipe's scores for one model file, computed once for the tests that compare against them."""
    from kft.bench.clients import mediapipe_scores

    return mediapipe_scores(model, list(files), list(names))


@pytest.mark.parametrize("variant,int8_io", VARIANTS)
def test_mediapipe_on_photo_files_agrees_with_kft_predict(variant, int8_io):
    """Every variant, 70 photo files (14 photos x full size, nearest 1000 and 300 px, bilinear
    1280x720 and 150 px): kft predict's top-1 is MediaPipe's wherever neither is a tie (for int8:
    a margin within the spread of TFLite's own int8 kernels, ``INT8_TIE``)."""
    from kft.bench.clients import agreement

    ours, theirs = _scores("after-io" if int8_io else "after", variant)
    tie, decided = (INT8_TIE, 0.3) if variant == "int8" else (TIE, 0.6)
    a = agreement(ours, theirs, tie)
    assert a.images == 5 * 14 and a.decided >= decided * a.images, a  # real photos, enough clear decisions
    assert a.rate >= 0.97, a


def test_the_check_fails_for_another_resizer():
    """The check above is not vacuous: the same files resized with antialiasing (what kft predict
    did until 2026-12-05) disagree with MediaPipe on some photos, given a 32-px input."""
    from kft.bench.clients import agreement

    a = agreement(*_scores("before", "float32", antialiased=True), TIE)
    assert a.rate < 0.75, a


@pytest.mark.parametrize("variant,int8_io", VARIANTS)
def test_the_box_filter_keeps_the_clients_aliasing_from_swaying_the_model(variant, int8_io):
    """The client's aliasing resize to 224 px, then the in-graph box filter, gives nearly the
    answers of an antialiased resize. This quick 55%-accuracy model is far more easily swayed
    than a real run, so the bar is 90%; declaring the 32-px training input (the old export)
    fails it (the test above)."""
    from kft.bench.clients import agreement

    a = agreement(*_scores("after-io" if int8_io else "after", variant, antialiased=True), TIE)
    assert a.decided >= 0.6 * a.images and a.rate >= 0.90, a


def test_cifar_accuracy_is_unchanged_by_the_box_filter():
    names, exports, _ = _cifar_exports()
    before = {r["variant"]: r for r in exports["before"].report["rows"]}
    after = {r["variant"]: r for r in exports["after"].report["rows"]}
    assert after["float32"]["accuracy"] == pytest.approx(before["float32"]["accuracy"], abs=1 / 200 + 1e-9)
    assert after["float32"]["top1_agreement"] >= 0.995 and before["float32"]["top1_agreement"] >= 0.995
    assert exports["after"].report["input_size"] == [224, 224] and exports["before"].report["input_size"] == [32, 32]


def _op_names(buf):
    from kft.export import tflite_model

    tree = tflite_model.load(buf)
    names = {v: k for k, v in vars(tflite_model._schema().BuiltinOperator).items() if not k.startswith("_")}
    return [names[max(tree.operatorCodes[op.opcodeIndex].builtinCode,
                      tree.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)]
            for op in tree.subgraphs[0].operators]


@pytest.mark.slow
def test_default_run_agrees_with_mediapipe_on_97_percent_of_photos(tmp_path):
    """The issue's bar, on the real thing: the default `kft train mobilenet_v2` run (~8 min on 2 cores),
    every variant, >= 97% agreement on non-tie photo files. (It failed for the 2026-12-05 default,
    int8 48 of 54, while kft predict resized with antialiasing; docs/benchmarks.md.)"""
    from kft import api
    from kft.bench.clients import agreement, kft_scores, mediapipe_scores, write_photo_set

    require_env("KFT_DATA_DIR")
    require_env("KFT_WEIGHTS_DIR")
    pytest.importorskip("mediapipe")
    pytest.importorskip("skimage")
    run = api.train("mobilenet_v2", seed=1, limit_test=1000, out=tmp_path / "run")
    files = write_photo_set(tmp_path / "photos")
    for int8_io in (False, True):
        result = api.export(run, quantize="int8" if int8_io else "all", int8_io=int8_io, out=tmp_path / f"e{int8_io}",
                            max_accuracy_drop=100.0)
        for row in result.report["rows"][1:]:
            model = result.out_dir / row["file"]
            a = agreement(kft_scores(model, files), mediapipe_scores(model, files, result.report["class_names"]), TIE)
            assert a.rate >= 0.97 and a.decided >= 0.6 * a.images, (row["variant"], int8_io, a)
