"""Tests for kft.data: CIFAR-10 layouts, the restricted unpickler, seeded splits, image folders."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kft.data import (
    CIFAR10_CLASSES,
    Dataset,
    few_shot_indices,
    load_cifar10,
    load_few_shot,
    load_folder,
    stratified_subset,
)
from kft.data import cifar10 as cifar10_mod
from kft.data.cifar_pickle import load_batch
from kft.errors import KftError

# ---------------------------------------------------------------- fake CIFAR-10


def fake_cifar(train_per_class=12, test_per_class=5, seed=123):
    """Random images, shuffled balanced labels; same structure as the real arrays."""
    rng = np.random.default_rng(seed)

    def part(per_class):
        y = rng.permutation(np.repeat(np.arange(10), per_class)).astype(np.uint8)
        x = rng.integers(0, 256, size=(len(y), 32, 32, 3), dtype=np.uint8)
        return x, y

    return part(train_per_class), part(test_per_class)


def write_npz_layout(root: Path, arrays) -> Path:
    (x_tr, y_tr), (x_te, y_te) = arrays
    d = root / "cifar10"
    d.mkdir(parents=True)
    np.savez(d / "cifar10_train.npz", x_train=x_tr, y_train=y_tr)
    np.savez(d / "cifar10_test.npz", x_test=x_te, y_test=y_te)
    return root


def py2_pickle(obj) -> bytes:
    """Encode like Python 2's cPickle (protocol 2) with numpy 1.x, as the original
    CIFAR-10 batches were: strings as BINSTRING (bytes under encoding='bytes'),
    arrays via numpy.core.multiarray._reconstruct + BUILD, dtype via numpy.dtype."""
    out = bytearray(b"\x80\x02")

    def enc(o):
        if isinstance(o, dict):
            out.extend(b"}(")
            for k, v in o.items():
                enc(k)
                enc(v)
            out.extend(b"u")
        elif isinstance(o, list):
            out.extend(b"](")
            for v in o:
                enc(v)
            out.extend(b"e")
        elif o is None:
            out.extend(b"N")
        elif isinstance(o, (int, np.integer)):
            o = int(o)
            if 0 <= o < 256:
                out.extend(b"K" + bytes([o]))
            else:
                out.extend(b"J" + struct.pack("<i", o))
        elif isinstance(o, bytes):
            if len(o) < 256:
                out.extend(b"U" + bytes([len(o)]) + o)
            else:
                out.extend(b"T" + struct.pack("<i", len(o)) + o)
        elif isinstance(o, np.ndarray):
            assert o.dtype == np.uint8
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            enc(0)
            out.extend(b"\x85")  # TUPLE1
            enc(b"b")
            out.extend(b"\x87R(")  # TUPLE3, REDUCE, MARK (state tuple)
            enc(1)
            out.extend(b"(")
            for s in o.shape:
                enc(s)
            out.extend(b"t")
            out.extend(b"cnumpy\ndtype\n")
            enc(b"u1")
            enc(0)
            enc(1)
            out.extend(b"\x87R(")
            for v in (3, b"|", None, None, None, -1, -1, 0):
                enc(v)
            out.extend(b"tb\x89")  # dtype BUILD, NEWFALSE (not Fortran order)
            enc(o.tobytes())
            out.extend(b"tb")  # array state tuple, BUILD
        else:
            raise TypeError(type(o))

    enc(obj)
    out.extend(b".")
    return bytes(out)


def batch_dict(x, y, label=b"batch"):
    data = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(len(x), 3072)  # NHWC -> R,G,B planes
    return {
        b"batch_label": label,
        b"labels": [int(v) for v in y],
        b"data": data,
        b"filenames": [b"img_%d.png" % i for i in range(len(y))],
    }


def write_batches_layout(root: Path, arrays, encode=py2_pickle) -> Path:
    (x_tr, y_tr), (x_te, y_te) = arrays
    d = root / "cifar10" / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for i, (xs, ys) in enumerate(zip(np.array_split(x_tr, 5), np.array_split(y_tr, 5)), start=1):
        (d / f"data_batch_{i}").write_bytes(encode(batch_dict(xs, ys)))
    (d / "test_batch").write_bytes(encode(batch_dict(x_te, y_te)))
    meta = {b"num_cases_per_batch": len(x_tr) // 5, b"label_names": [n.encode() for n in CIFAR10_CLASSES]}
    (d / "batches.meta").write_bytes(encode(meta))
    return root


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("KFT_DATA_DIR", raising=False)


@pytest.fixture
def arrays():
    return fake_cifar()


# ---------------------------------------------------------------- pickle batches


def test_py2_style_fake_batch_is_a_real_numpy_pickle(arrays):
    """The hand-made Python-2-style pickle is what the unrestricted unpickler also reads."""
    (x, y), _ = arrays
    d = batch_dict(x[:7], y[:7])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy.core alias warning
        ref = pickle.loads(py2_pickle(d), encoding="bytes")
    assert ref[b"labels"] == d[b"labels"] and ref[b"filenames"] == d[b"filenames"]
    np.testing.assert_array_equal(ref[b"data"], d[b"data"])


def test_batches_decode_equal_npz(tmp_path, arrays, no_env):
    npz_train, npz_test = load_cifar10(write_npz_layout(tmp_path / "a", arrays))
    pkl_train, pkl_test = load_cifar10(write_batches_layout(tmp_path / "b", arrays))
    (x_tr, y_tr), (x_te, y_te) = arrays
    for npz, pkl, x, y in ((npz_train, pkl_train, x_tr, y_tr), (npz_test, pkl_test, x_te, y_te)):
        assert pkl.x.dtype == np.uint8 and pkl.x.shape == x.shape
        assert pkl.y.dtype == np.int64
        np.testing.assert_array_equal(pkl.x, x)
        np.testing.assert_array_equal(pkl.x, npz.x)
        np.testing.assert_array_equal(pkl.y, npz.y)
        np.testing.assert_array_equal(npz.y, y)
        assert pkl.class_names == list(CIFAR10_CLASSES) == npz.class_names


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_batches_pickled_by_python3_numpy(tmp_path, arrays, protocol):
    (x, y), _ = arrays
    d = batch_dict(x[:9], y[:9])
    p = tmp_path / "batch"
    p.write_bytes(pickle.dumps(d, protocol=protocol))
    got = load_batch(p)
    assert got[b"labels"] == d[b"labels"] and got[b"batch_label"] == b"batch"
    np.testing.assert_array_equal(got[b"data"], d[b"data"])
    assert got[b"data"].dtype == np.uint8


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path, arrays, no_env):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": _Evil(marker), b"labels": [0]}, protocol=2)
    # the payload really works with an unrestricted unpickler (run it only in a sandbox path):
    pickle.loads(evil)
    assert marker.exists()
    marker.unlink()

    root = write_batches_layout(tmp_path / "root", arrays)
    batch = root / "cifar10" / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(evil)
    with pytest.raises(KftError, match=r"data_batch_3: refusing to load this pickle: .*system"):
        load_cifar10(root)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        b"\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1q\x85R.",  # builtins.eval('1+1')
        b"\x80\x02csubprocess\nPopen\n.",  # just naming a class is refused
        b"(S'true'\nios\nsystem\n.",  # protocol 0 INST opcode
        # an allowed name used for something else: _reconstruct of a non-ndarray
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncbuiltins\nobject\nK\x00\x85U\x01b\x87R.",
        # object dtype
        b"\x80\x02cnumpy\ndtype\nU\x02O8K\x00K\x01\x87R.",
        # a bare numpy type object as a value
        b"\x80\x02}U\x04datacnumpy\nndarray\ns.",
    ],
)
def test_pickle_asking_for_other_classes_is_refused(tmp_path, payload):
    p = tmp_path / "data_batch_1"
    p.write_bytes(payload)
    with pytest.raises(KftError, match="data_batch_1: refusing to load this pickle"):
        load_batch(p)


@pytest.mark.parametrize(
    "content", [b"", b"not a pickle at all", py2_pickle({b"data": [1, 2]})[:-5], b"\x80\x02K\x05."]
)
def test_non_batch_files_are_errors(tmp_path, content):
    p = tmp_path / "test_batch"
    p.write_bytes(content)
    with pytest.raises(KftError, match="test_batch"):
        load_batch(p)


def test_batch_with_wrong_structure(tmp_path, arrays, no_env):
    root = write_batches_layout(tmp_path, arrays)
    (root / "cifar10" / "cifar-10-batches-py" / "test_batch").write_bytes(py2_pickle({b"labels": [1]}))
    with pytest.raises(KftError, match=r"test_batch: not a CIFAR-10 batch"):
        load_cifar10(root)


# ---------------------------------------------------------------- locating the data


def test_env_var_is_used_and_argument_wins(tmp_path, arrays, monkeypatch):
    root = write_npz_layout(tmp_path / "env", arrays)
    monkeypatch.setenv("KFT_DATA_DIR", str(root))
    train, test = load_cifar10()
    assert len(train) == 120 and len(test) == 50
    np.testing.assert_array_equal(train.indices, np.arange(120))
    other = fake_cifar(train_per_class=3, test_per_class=2, seed=9)
    train2, _ = load_cifar10(write_npz_layout(tmp_path / "arg", other))
    assert len(train2) == 30
    # the cifar10 folder itself is accepted too
    train3, _ = load_cifar10(root / "cifar10")
    np.testing.assert_array_equal(train3.x, train.x)


def test_missing_and_empty_data_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("KFT_DATA_DIR", str(tmp_path / "nope"))
    with pytest.raises(KftError, match=r"nope \(from KFT_DATA_DIR\) does not exist.*cifar10_train\.npz"):
        load_cifar10()
    with pytest.raises(KftError, match=r"from --data-dir\) does not exist"):
        load_cifar10(tmp_path / "nope2")
    (tmp_path / "file").write_text("x")
    with pytest.raises(KftError, match="is not a folder"):
        load_cifar10(tmp_path / "file")
    (tmp_path / "empty" / "cifar10").mkdir(parents=True)
    with pytest.raises(KftError) as e:
        load_cifar10(tmp_path / "empty")
    msg = str(e.value)
    assert "\n" not in msg
    for part in (f"{tmp_path}/empty/cifar10/cifar10_train.npz", f"{tmp_path}/empty/cifar10/cifar-10-batches-py/",
                 "x_train, y_train", "data_batch_1"):  # fmt: skip
        assert part in msg, msg


def test_incomplete_layouts(tmp_path, arrays):
    root = write_npz_layout(tmp_path / "a", arrays)
    (root / "cifar10" / "cifar10_test.npz").unlink()
    with pytest.raises(KftError, match="missing cifar10_test.npz"):
        load_cifar10(root)
    root = write_batches_layout(tmp_path / "b", arrays)
    (root / "cifar10" / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(KftError, match="missing data_batch_4"):
        load_cifar10(root)


def test_bad_npz_contents(tmp_path, arrays):
    (x_tr, y_tr), (x_te, y_te) = arrays
    d = tmp_path / "cifar10"
    d.mkdir()
    np.savez(d / "cifar10_test.npz", x_test=x_te, y_test=y_te)
    np.savez(d / "cifar10_train.npz", images=x_tr, labels=y_tr)
    with pytest.raises(KftError, match="expected arrays x_train, y_train; found images, labels"):
        load_cifar10(tmp_path)
    np.savez(d / "cifar10_train.npz", x_train=x_tr[:, :16], y_train=y_tr)
    with pytest.raises(KftError, match=r"must be uint8 \(N, 32, 32, 3\)"):
        load_cifar10(tmp_path)
    np.savez(d / "cifar10_train.npz", x_train=x_tr, y_train=y_tr.astype(np.int64) + 5)
    with pytest.raises(KftError, match="labels must be 0..9"):
        load_cifar10(tmp_path)
    np.savez(d / "cifar10_train.npz", x_train=x_tr, y_train=np.array([{"a": 1}] * len(y_tr), dtype=object))
    with pytest.raises(KftError, match="unreadable .npz"):
        load_cifar10(tmp_path)
    (d / "cifar10_train.npz").write_bytes(b"garbage")
    with pytest.raises(KftError, match="unreadable .npz"):
        load_cifar10(tmp_path)


def test_keras_fallback_failure_is_one_helpful_error(monkeypatch, no_env):
    def offline():
        raise Exception("URL fetch failure on https://www.cs.toronto.edu/...: None -- [Errno -3]\nmore")

    monkeypatch.setattr(cifar10_mod, "_keras_load_data", offline)
    with pytest.raises(KftError) as e:
        load_cifar10()
    msg = str(e.value)
    assert "\n" not in msg
    for part in ("KFT_DATA_DIR is unset", "~/.keras/datasets", "URL fetch failure", "--data-dir",
                 "cifar10/cifar10_train.npz"):  # fmt: skip
        assert part in msg, msg


def test_keras_fallback_success(monkeypatch, no_env, arrays):
    (x_tr, y_tr), (x_te, y_te) = arrays
    monkeypatch.setattr(cifar10_mod, "_keras_load_data", lambda: ((x_tr, y_tr[:, None]), (x_te, y_te[:, None])))
    train, test = load_cifar10()
    assert train.y.shape == (120,) and train.y.dtype == np.int64
    np.testing.assert_array_equal(test.y, y_te)
    data = load_few_shot(samples_per_class=2, val_per_class=1)
    assert data.split["source"]["layout"] == "keras.datasets"


def test_data_layer_does_not_import_tensorflow():
    code = "import sys, kft.data; assert not {'tensorflow', 'keras'} & set(sys.modules), sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- sampling


def test_few_shot_indices_disjoint_balanced_deterministic():
    y = np.repeat(np.arange(10), 50)[np.random.default_rng(0).permutation(500)]
    tr, va = few_shot_indices(y, 7, 4, seed=3)
    assert len(tr) == 70 and len(va) == 40 and not set(tr) & set(va)
    assert np.all(np.diff(tr) > 0) and np.all(np.diff(va) > 0)
    np.testing.assert_array_equal(np.bincount(y[tr]), [7] * 10)
    np.testing.assert_array_equal(np.bincount(y[va]), [4] * 10)
    tr2, va2 = few_shot_indices(y, 7, 4, seed=3)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(va, va2)
    tr3, va3 = few_shot_indices(y, 7, 4, seed=4)
    assert not np.array_equal(tr, tr3) and not np.array_equal(va, va3)
    # a smaller training set is a subset of a larger one for the same seed
    assert set(few_shot_indices(y, 3, 0, seed=3)[0]) <= set(tr)


def test_few_shot_indices_errors():
    y = np.array([0] * 10 + [1] * 4)
    with pytest.raises(KftError, match=r"class 'cat' has 4 images, but 3 training \+ 2 validation = 5"):
        few_shot_indices(y, 3, 2, seed=0, class_names=["dog", "cat"])
    with pytest.raises(KftError, match="class 'bird' has 0 images"):
        few_shot_indices(y, 1, 0, seed=0, class_names=["dog", "cat", "bird"])
    for bad in (0, -1, 2.5, True):
        with pytest.raises(KftError, match="samples per class must be an integer >= 1"):
            few_shot_indices(y, bad, 1, seed=0)
    with pytest.raises(KftError, match="validation images per class must be an integer >= 0"):
        few_shot_indices(y, 1, -1, seed=0)
    with pytest.raises(KftError, match="seed"):
        few_shot_indices(y, 1, 1, seed=-2)
    tr, va = few_shot_indices(y, 4, 0, seed=0)
    assert len(va) == 0 and va.dtype == np.int64 and len(tr) == 8


def test_stratified_subset():
    y = np.repeat(np.arange(10), 20)
    np.testing.assert_array_equal(stratified_subset(y, 200, 0), np.arange(200))
    np.testing.assert_array_equal(stratified_subset(y, 10_000, 0), np.arange(200))
    idx = stratified_subset(y, 25, 1)
    counts = np.bincount(y[idx], minlength=10)
    assert len(set(idx)) == 25 and counts.min() == 2 and counts.max() == 3
    np.testing.assert_array_equal(idx, stratified_subset(y, 25, 1))
    with pytest.raises(KftError, match=r"test limit 9 is smaller than the number of classes \(10\)"):
        stratified_subset(y, 9, 0)
    # a small class gives what it has; the others share the rest
    y2 = np.array([0] * 2 + [1] * 50 + [2] * 50)
    counts = np.bincount(y2[stratified_subset(y2, 30, 0)])
    np.testing.assert_array_equal(counts, [2, 14, 14])


# ---------------------------------------------------------------- few-shot CIFAR


def test_load_few_shot_cifar_split(tmp_path, arrays, no_env):
    root = write_npz_layout(tmp_path, arrays)
    (x_tr, y_tr), (x_te, y_te) = arrays
    a = load_few_shot(data_dir=root, samples_per_class=5, val_per_class=3, seed=11, limit_test=20)
    assert len(a.train) == 50 and len(a.val) == 30 and len(a.test) == 20
    assert not set(a.train.indices) & set(a.val.indices)
    np.testing.assert_array_equal(a.train.x, x_tr[a.train.indices])  # train and val come from the train file
    np.testing.assert_array_equal(a.val.x, x_tr[a.val.indices])
    np.testing.assert_array_equal(a.test.x, x_te[a.test.indices])  # test only from the test file
    np.testing.assert_array_equal(a.test.y, y_te[a.test.indices])
    assert list(a.train.class_counts()) == [5] * 10 and list(a.val.class_counts()) == [3] * 10
    assert list(a.test.class_counts()) == [2] * 10
    split = json.loads(json.dumps(a.split))
    assert split["train"] == a.train.indices.tolist() and split["test"] == a.test.indices.tolist()
    assert split["seed"] == 11 and split["source"]["layout"] == "npz" and split["class_names"][9] == "truck"

    b = load_few_shot(data_dir=root, samples_per_class=5, val_per_class=3, seed=11, limit_test=20)
    for da, db in ((a.train, b.train), (a.val, b.val), (a.test, b.test)):
        np.testing.assert_array_equal(da.x, db.x)
        np.testing.assert_array_equal(da.y, db.y)
    c = load_few_shot(data_dir=root, samples_per_class=5, val_per_class=3, seed=12, limit_test=20)
    assert not np.array_equal(a.train.indices, c.train.indices)
    np.testing.assert_array_equal(a.test.indices, c.test.indices)  # same test subset whatever the seed
    full = load_few_shot(data_dir=root, samples_per_class=1, val_per_class=1)
    assert len(full.test) == 50 and full.split["limit_test"] is None


def test_load_few_shot_defaults_and_too_many(tmp_path, arrays, no_env):
    root = write_npz_layout(tmp_path, arrays)
    with pytest.raises(KftError, match=r"class 'airplane' has 12 images, but 80 training \+ 20 validation = 100"):
        load_few_shot(data_dir=root)
    with pytest.raises(KftError, match="has 12 images, but 13 training"):
        load_few_shot(data_dir=root, samples_per_class=13, val_per_class=0)
    with pytest.raises(KftError, match="not both"):
        load_few_shot(data_dir=root, folder=tmp_path)


# ---------------------------------------------------------------- image folders


def make_folder(root: Path) -> Path:
    """cats: 4 RGB PNGs + corrupt .jpg + empty .png; dogs: RGBA PNG + grey JPEG + 3 RGB PNGs; notes ignored."""
    rng = np.random.default_rng(0)
    for cls in ("dogs", "cats"):
        (root / cls).mkdir(parents=True)
        for i in range(3 if cls == "dogs" else 4):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    (root / "cats" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (root / "cats" / "empty.png").write_bytes(b"")
    (root / "cats" / "notes.txt").write_text("not an image")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255  # red
    rgba[:4, ..., 3] = 255  # top half opaque, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(root / "dogs" / "alpha.png")
    grey = np.tile(np.arange(0, 256, 32, dtype=np.uint8), (8, 1))
    Image.fromarray(grey, "L").save(root / "dogs" / "grey.jpg", quality=100)
    return root


def _image(data, name):
    files = data.files
    for ds in (data.train, data.val):
        for row, src in enumerate(ds.indices):
            if files[src] == name:
                return ds.x[row]
    raise AssertionError(name)


def test_load_folder(tmp_path):
    root = make_folder(tmp_path / "photos")
    data = load_folder(root, 8, seed=0)
    assert data.train.class_names == ["cats", "dogs"]
    assert sorted(Path(p).name for p, _ in data.skipped) == ["broken.jpg", "empty.png"]
    assert dict((Path(p).name, r) for p, r in data.skipped)["empty.png"] == "empty file"
    assert len(data.files) == 9 and "cats/notes.txt" not in data.files
    assert data.train.x.shape[1:] == (8, 8, 3) and data.train.x.dtype == np.uint8
    # per class ~20% validation, at least one: cats 4 -> 1, dogs 5 -> 1
    assert list(data.val.class_counts()) == [1, 1] and list(data.train.class_counts()) == [3, 4]
    assert not set(data.train.indices) & set(data.val.indices)
    alpha = _image(data, "dogs/alpha.png")
    np.testing.assert_array_equal(alpha[:4], np.broadcast_to([255, 0, 0], (4, 8, 3)))
    np.testing.assert_array_equal(alpha[4:], 0)  # transparent composited on black
    grey = _image(data, "dogs/grey.jpg").astype(int)
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    assert abs(grey[0, -1, 0] - 224) <= 3
    again = load_folder(root, 8, seed=0)
    np.testing.assert_array_equal(again.train.x, data.train.x)
    resized = load_folder(root, 5, seed=0, val_per_class=2, samples_per_class=2)
    assert resized.train.x.shape == (4, 5, 5, 3) and len(resized.val) == 4


def test_load_folder_seeds_differ(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(20):
            Image.new("RGB", (4, 4), (i, 0, 0)).save(tmp_path / cls / f"{i:02d}.png")
    splits = {tuple(load_folder(tmp_path, 4, seed=s).val.indices) for s in range(4)}
    assert len(splits) > 1
    assert all(len(v) == 8 for v in splits)  # 20% of 20 = 4 per class


def test_load_folder_errors(tmp_path):
    with pytest.raises(KftError, match="does not exist"):
        load_folder(tmp_path / "nope", 8)
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(KftError, match="is not a folder"):
        load_folder(tmp_path / "f.png", 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(KftError, match="has no class sub-folders"):
        load_folder(tmp_path / "empty", 8)
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(KftError, match="only one class"):
        load_folder(tmp_path / "one", 8)
    root = make_folder(tmp_path / "p")
    (root / "birds").mkdir()
    (root / "birds" / "x.txt").write_text("")
    with pytest.raises(KftError, match=r"class folder .*birds holds no images"):
        load_folder(root, 8)
    (root / "birds" / "bad.png").write_bytes(b"garbage")
    with pytest.raises(KftError, match=r"class folder .*birds has no readable image \(1 unreadable\)"):
        load_folder(root, 8)
    shutil.rmtree(root / "birds")
    with pytest.raises(KftError, match=r"class 'cats' has 4 images, but 10 training"):
        load_folder(root, 8, samples_per_class=10)
    with pytest.raises(KftError, match=r"class 'cats' has 4 readable images; 4 for validation leaves none"):
        load_folder(root, 8, val_per_class=4)
    with pytest.raises(KftError, match="image size"):
        load_folder(root, 0)


def test_load_few_shot_folder(tmp_path, no_env):
    root = make_folder(tmp_path / "photos")
    data = load_few_shot(folder=root, image_size=8, seed=0)
    assert data.test is None and data.class_names == ["cats", "dogs"]
    assert len(data.skipped) == 2
    split = json.loads(json.dumps(data.split))
    assert split["source"] == {"kind": "folder", "path": str(root.resolve())}
    assert [split["files"][i] for i in split["val"]] == [data.split["files"][i] for i in data.val.indices]
    assert split["test"] is None and len(split["skipped"]) == 2
    with pytest.raises(KftError, match="test limit applies only to CIFAR-10"):
        load_few_shot(folder=root, image_size=8, limit_test=10)
    with pytest.raises(KftError, match="image size is needed"):
        load_few_shot(folder=root)


def test_dataset_validates():
    with pytest.raises(ValueError):
        Dataset(np.zeros((2, 4, 4, 3), np.float32), np.zeros(2), ["a"])
    with pytest.raises(ValueError):
        Dataset(np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1]), ["a"])


# ---------------------------------------------------------------- real CIFAR-10


def _real_dir() -> str:
    d = os.environ.get("KFT_DATA_DIR")
    if not d:
        pytest.skip("KFT_DATA_DIR is unset (point it at the folder holding cifar10/)")
    return d


def test_real_cifar10():
    train, test = load_cifar10(_real_dir())
    assert train.x.shape == (50000, 32, 32, 3) and test.x.shape == (10000, 32, 32, 3)
    assert train.x.dtype == np.uint8 and train.y.dtype == np.int64
    assert train.y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert test.y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert train.class_counts().tolist() == [5000] * 10 and test.class_counts().tolist() == [1000] * 10


def test_real_few_shot_default_split():
    data = load_few_shot(data_dir=_real_dir(), seed=0)
    # 100 labelled images per class in total: 80 train + 20 validation
    assert len(data.train) == 800 and len(data.val) == 200 and len(data.test) == 10000
    assert data.train.class_counts().tolist() == [80] * 10 and data.val.class_counts().tolist() == [20] * 10
    assert not set(data.train.indices) & set(data.val.indices)
