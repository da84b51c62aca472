"""kft.runtime: TensorFlow-free classification of every exported variant, labels, interpreter fallback."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from export_fixtures import decisive, exported, keras_logits, plain_float32, trained
from kft.errors import KftError


def _path(name, int8_io=False):
    return exported(int8_io).out_dir / f"model_{name}.tflite"


@pytest.mark.parametrize("name,int8_io", [("float32", False), ("float16", False), ("dynamic", False),
                                          ("int8", False), ("int8", True)])
def test_classifier_handles_every_variant(name, int8_io):
    from kft.runtime import Classifier

    t = trained()
    clf = Classifier(_path(name, int8_io), num_threads=1)
    assert clf.input_size == (224, 224) and clf.labels == t.class_names  # 32 px x 7, box-filtered inside
    assert clf.input_dtype == (np.uint8 if int8_io else np.float32)
    shown = t.test_x.repeat(7, axis=1).repeat(7, axis=2)  # each pixel 7x7: the box filter gives it back exactly
    probs = clf.classify(shown)
    assert probs.shape == (len(t.test_x), 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=0.02)
    ref = keras_logits(t.test_x)
    # near-ties may flip between runtimes and machines; float16's logits move by up to 2% of the largest
    # (tests/test_export.py), so only a margin of twice that is sure to hold
    clear = decisive(ref, 0.04 * np.abs(ref).max() if name == "float16" else 1e-3)
    agreement = (probs.argmax(1) == ref.argmax(1))[clear].mean()
    # float32 and float16 compute what Keras does within those margins; quantized files must agree well
    # above chance (1/3): a floor, as the rate of this tiny model depends on the CPU (test_export.INT8_FLOOR)
    assert agreement >= {"float32": 1.0, "float16": 1.0}.get(name, 0.6)
    single = clf.classify(shown[0])
    assert single.shape == (3,)
    np.testing.assert_array_equal(single, probs[0])


def test_classifier_resizes_other_sizes_as_mediapipe_does():
    from kft.images import resize, resize_like_mediapipe
    from kft.runtime import Classifier

    clf = Classifier(_path("float32"))
    big = np.random.default_rng(0).integers(0, 256, (480, 360, 3), dtype=np.uint8)
    probs = clf.classify(big)
    np.testing.assert_array_equal(probs, clf.classify(resize_like_mediapipe(big, (224, 224))))
    assert np.abs(probs - clf.classify(resize(big, (224, 224)))).max() > 0  # not the antialiased resize


def test_labels_fall_back_to_a_file_beside_the_model_then_to_indices(tmp_path):
    from kft.runtime import Classifier

    bare = tmp_path / "bare.tflite"
    bare.write_bytes(plain_float32())  # no metadata, no packed labels
    assert Classifier(bare).labels == ["0", "1", "2"]
    (tmp_path / "labels.txt").write_text("x\ny\nz\n")
    assert Classifier(bare).labels == ["x", "y", "z"]
    (tmp_path / "labels.txt").write_text("x\ny\n")
    with pytest.raises(KftError, match="2 labels for 3 model outputs"):
        Classifier(bare)


def test_not_a_model_is_a_user_error(tmp_path):
    from kft.runtime import Classifier

    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"definitely not a flatbuffer" * 10)
    with pytest.raises(KftError, match="junk.tflite"):
        Classifier(junk)
    with pytest.raises(KftError, match="no such model file"):
        Classifier(tmp_path / "missing.tflite")


def test_interpreter_fallback_order(monkeypatch):
    from kft.runtime import interpreter

    assert interpreter.interpreter_class().__module__.startswith("ai_edge_litert")
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import now fails
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    pytest.importorskip("tensorflow")
    import tensorflow as tf

    assert interpreter.interpreter_class() is tf.lite.Interpreter
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(KftError, match="no TFLite interpreter"):
        interpreter.interpreter_class()


def test_runtime_never_imports_tensorflow():
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from kft.runtime import Classifier
        clf = Classifier({str(_path("int8", True))!r})
        p = clf.classify(np.zeros((32, 32, 3), np.uint8))
        assert p.shape == (3,), p.shape
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
        print("LOADED", loaded)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout


def test_xnnpack_refusal_falls_back_to_builtin_kernels(monkeypatch):
    """Some int8 graphs (seen: a fine-tuned MobileNetV3-Small) make XNNPACK fail to prepare;
    the loader then retries without the default delegate instead of giving up."""
    from ai_edge_litert import interpreter as litert

    from kft.runtime import interpreter as rt

    model = _path("int8").read_bytes()  # built before the patch
    calls = []

    class Flaky(litert.Interpreter):
        def __init__(self, *a, **kw):
            calls.append(kw.get("experimental_op_resolver_type"))
            super().__init__(*a, **kw)

        def allocate_tensors(self):
            if calls[-1] is None:
                raise RuntimeError("failed to create XNNPACK runtimeNode number 120 (TfLiteXNNPackDelegate) failed to prepare.")
            return super().allocate_tensors()

    monkeypatch.setattr(rt, "interpreter_class", lambda: Flaky)
    monkeypatch.setattr(rt, "_builtin_without_delegates", lambda cls: litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp = rt.load_interpreter(model, 1)
    assert calls == [None, litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES]
    assert "XNNPACK refused" in interp.kft_fallback
