"""``kft predict``: top-k output, JSON, Keras/run-folder models, bad images, no TensorFlow for .tflite."""

import json
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
from PIL import Image

from export_fixtures import decisive, exported, keras_logits, trained
from kft.cli import main


def _tflite(name="float32", int8_io=False):
    return str(exported(int8_io).out_dir / f"model_{name}.tflite")


def _good_images(tmp_path, n=3):
    """One image of each class, saved at the exported model's 224-px input (each pixel 7x7),
    so both the .tflite's box filter and the Keras model see exactly the 32-px image."""
    t = trained()
    paths = []
    for i in range(n):
        p = tmp_path / f"good{i}.png"
        Image.fromarray(t.test_x[i * 10].repeat(7, axis=0).repeat(7, axis=1)).save(p)
        paths.append(p)
    return paths, t.test_x[[0, 10, 20][:n]]


def _softmax(logits):
    z = np.exp(logits - logits.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bad_images(tmp_path, good_png):
    not_image = tmp_path / "notes.png"
    not_image.write_text("this is not a picture\n")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good_png.read_bytes()[:60])
    huge = tmp_path / "huge.png"  # a valid header claiming 20000x20000 RGB, no pixel data
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    huge.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + _png_chunk(b"IEND", b""))
    return [not_image, empty, truncated, huge]


def _run(args, capsys):
    capsys.readouterr()  # not what a fixture printed while building the model (e.g. its export's log)
    with pytest.raises(SystemExit) as e:
        main(args)
        raise SystemExit(0)
    captured = capsys.readouterr()
    return e.value.code or 0, captured.out, captured.err


def test_predict_prints_top_k_labels(tmp_path, capsys):
    paths, _ = _good_images(tmp_path)
    code, out, err = _run(["predict", _tflite(), *map(str, paths), "--top-k", "2"], capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 3 * 3
    for i, p in enumerate(paths):
        assert lines[3 * i] == str(p)
        for line in lines[3 * i + 1:3 * i + 3]:
            label, prob = line.strip().split(": ")
            assert label in trained().class_names and 0.0 <= float(prob) <= 1.0


@pytest.mark.parametrize("name,int8_io", [("float32", False), ("int8", True)])
def test_predict_json_matches_the_keras_model(tmp_path, capsys, name, int8_io):
    paths, pixels = _good_images(tmp_path)
    code, out, _ = _run(["predict", _tflite(name, int8_io), *map(str, paths), "--json", "--top-k", "5"], capsys)
    assert code == 0
    results = json.loads(out)["results"]
    assert [r["image"] for r in results] == list(map(str, paths))
    logits = keras_logits(pixels)
    # int8 moves probabilities by a few output steps: its top-1 is compared only where Keras is clearly decided.
    clear = decisive(_softmax(logits), 0.1 if name == "int8" else 1e-4)
    assert clear.any()
    for r, k, is_clear in zip(results, logits.argmax(1), clear):
        assert len(r["top_k"]) == 3  # clamped to the number of classes
        probs = [c["probability"] for c in r["top_k"]]
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=0.02)
        if is_clear:
            assert r["top_k"][0]["label"] == trained().class_names[k]


def test_predict_with_a_keras_model_or_folder_agrees_with_tflite(tmp_path, capsys):
    paths, _ = _good_images(tmp_path)
    t = trained()
    outputs = []
    for model in (_tflite(), str(t.model_path), str(t.dir)):
        code, out, _ = _run(["predict", model, *map(str, paths), "--json"], capsys)
        assert code == 0
        outputs.append(json.loads(out)["results"])
    for tfl, keras_file, folder in zip(*outputs):
        assert keras_file == {**folder, "image": keras_file["image"]}  # same Keras model, same answer
        by_label = {c["label"]: c["probability"] for c in keras_file["top_k"]}
        for c in tfl["top_k"]:  # float32 TFLite vs Keras: the same probabilities within rounding
            assert c["probability"] == pytest.approx(by_label[c["label"]], abs=1e-4)


def test_bad_images_give_one_line_each_and_exit_1(tmp_path, capsys):
    (good,), _ = _good_images(tmp_path, n=1)
    bad = _bad_images(tmp_path, good)
    args = ["predict", _tflite("int8", True), str(bad[0]), str(good), *map(str, bad[1:])]
    code, out, err = _run(args, capsys)
    assert code == 1
    assert out.splitlines()[0] == str(good) and len(out.splitlines()) == 4  # the good image is still classified
    errors = err.splitlines()
    assert len(errors) == len(bad)
    for path, line in zip(bad, errors):
        assert line.startswith(f"error: {path}: ")
    assert "too large" in errors[-1] and "empty" in errors[1]


def test_bad_images_in_json_mode(tmp_path, capsys):
    (good,), _ = _good_images(tmp_path, n=1)
    bad = _bad_images(tmp_path, good)
    code, out, err = _run(["predict", _tflite(), str(good), *map(str, bad), "--json"], capsys)
    assert code == 1
    results = json.loads(out)["results"]
    assert "top_k" in results[0] and all("error" in r for r in results[1:])
    assert len(err.splitlines()) == len(bad)


def test_predict_user_errors_exit_2(tmp_path, capsys):
    (good,), _ = _good_images(tmp_path, n=1)
    code, _, err = _run(["predict", str(tmp_path / "nope.tflite"), str(good)], capsys)
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1
    code, _, err = _run(["predict", _tflite(), str(good), "--top-k", "0"], capsys)
    assert code == 2 and "--top-k" in err
    notes = tmp_path / "model.txt"
    notes.write_text("hello")
    code, _, err = _run(["predict", str(notes), str(good)], capsys)
    assert code == 2 and "expected a .tflite" in err


def test_predict_on_tflite_never_imports_tensorflow(tmp_path):
    """The real process: no TensorFlow/Keras module loaded, stderr holds exactly the error lines."""
    paths, _ = _good_images(tmp_path, n=2)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    code = textwrap.dedent(f"""
        import sys
        from kft.cli import cli
        try:
            cli.main(args=["predict", {_tflite("int8", True)!r}, {str(paths[0])!r}, {str(bad)!r},
                           {str(paths[1])!r}], standalone_mode=False)
            code = 0
        except SystemExit as e:
            code = e.code
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
        print("LOADED", loaded)
        sys.exit(code)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    assert "LOADED []" in out.stdout
    assert str(paths[0]) in out.stdout and str(paths[1]) in out.stdout
    assert len(out.stderr.splitlines()) == 1, repr(out.stderr)
    (line,) = out.stderr.splitlines()  # no runtime INFO chatter, no traceback
    assert line.startswith(f"error: {bad}: ")


def test_predict_classifies_every_image_under_a_folder_in_sorted_order(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    paths, _ = _good_images(tmp_path / "src", n=3)
    photos = tmp_path / "photos"
    (photos / "b-sub" / "deeper").mkdir(parents=True)
    (photos / ".hidden").mkdir()
    targets = [photos / "c.PNG", photos / "a.jpg", photos / "b-sub" / "deeper" / "x.png"]
    for src, dst in zip(paths, targets):
        with Image.open(src) as im:
            im.save(dst, format="JPEG" if dst.suffix == ".jpg" else "PNG")
    (photos / "notes.txt").write_text("not an image, not listed")
    (photos / ".hidden" / "skip.png").write_bytes(paths[0].read_bytes())
    code, out, err = _run(["predict", _tflite(), str(photos), "--json"], capsys)
    assert code == 0, err
    listed = [r["image"] for r in json.loads(out)["results"]]
    assert listed == [str(photos / "a.jpg"), str(photos / "b-sub" / "deeper" / "x.png"), str(photos / "c.PNG")]
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(["predict", _tflite(), str(empty)], capsys)
    assert code == 2 and err.startswith(f"error: {empty}: no image files") and len(err.splitlines()) == 1
