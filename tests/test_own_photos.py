"""A user's own photo folder: a held-out test split by default (near-duplicates on one side), its
accuracy with a 95% interval, the mistakes sheet, data warnings, and `kft evaluate --data`."""

import json
import math

import numpy as np
import pytest
from PIL import Image

from conftest import kft_env
from export_fixtures import colour_images
from kft.data import load_few_shot
from kft.data.checks import folder_warnings
from kft.data.dedup import near_duplicate_groups, phash
from kft.data.folder import load_folder, choose_test_split
from kft.heldout.stats import Z95, accuracy_line, wilson_interval

CLASSES = ["red", "green", "blue"]  # the classes of export_fixtures' tiny model


def make_photos(root, per_class=15, seed=5, size=32, bursts=0):
    """``root/<colour>/NNN.png``; ``bursts``: that many shots per class get 2 near-copies each
    (a brighter JPEG re-save and a 1-pixel re-crop), as a phone's burst or a re-shared photo."""
    x, y = colour_images(per_class, seed=seed, size=size)
    for i, (img, c) in enumerate(zip(x, y)):
        d = root / CLASSES[c]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i:03d}.png")
        if i % per_class < bursts:
            Image.fromarray(np.clip(img.astype(int) + 6, 0, 255).astype(np.uint8)).save(d / f"{i:03d}-b1.jpg",
                                                                                         quality=85)
            Image.fromarray(img[1:-1, 1:-1]).resize((size, size)).save(d / f"{i:03d}-b2.png")
    return root


def _shot(name: str) -> str:
    return name.rsplit("/", 1)[-1][:3]  # NNN: the shot a file is a copy of


# -- the split ---------------------------------------------------------------------------------------------------

def test_the_test_split_is_stratified_and_seeded(tmp_path):
    root = make_photos(tmp_path / "photos", per_class=20)
    a = load_folder(root, 16, seed=0, test_fraction=0.2)
    assert np.bincount(a.test.y).tolist() == [4, 4, 4]  # 20% of each class
    parts = [set(a.train.indices), set(a.val.indices), set(a.test.indices)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sum(map(len, parts)) == 60
    again = load_folder(root, 16, seed=0, test_fraction=0.2)
    assert again.test.indices.tolist() == a.test.indices.tolist()
    tests = {tuple(load_folder(root, 16, seed=s, test_fraction=0.2).test.indices) for s in range(4)}
    assert len(tests) > 1
    # without a test split the train/validation split is what it always was (old runs reload the same)
    assert load_folder(root, 16, seed=0).val.indices.tolist() == \
        load_folder(root, 16, seed=0, test_fraction=0.0).val.indices.tolist()
    assert load_folder(root, 16, seed=0).test is None


def test_every_class_with_two_photos_gets_a_test_photo(tmp_path):
    rng = np.random.default_rng(0)
    for c, n in zip(CLASSES, (2, 3, 9)):  # folders sort as blue (9), green (3), red (2)
        (tmp_path / c).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), np.uint8)).save(tmp_path / c / f"{i}.png")
    data = load_folder(tmp_path, 16, seed=0, test_fraction=0.2)
    assert np.bincount(data.test.y, minlength=3).tolist() == [2, 1, 1]
    assert np.bincount(data.train.y, minlength=3).min() >= 1  # never the whole class


def test_a_train_and_test_layout_is_used_as_given(tmp_path):
    make_photos(tmp_path / "train", per_class=6)
    make_photos(tmp_path / "test", per_class=3, seed=9)
    data = load_few_shot(folder=tmp_path, image_size=16, seed=0, test_split=0.2)
    split = data.split
    assert split["layout"] == "train/test folders" and split["test_split"] is None
    assert sorted(split["files"][i] for i in split["test"]) == sorted(
        f"test/{p.parent.name}/{p.name}" for p in (tmp_path / "test").rglob("*.png"))
    assert all(split["files"][i].startswith("train/") for i in split["train"] + split["val"])
    assert np.bincount(data.test.y).tolist() == [3, 3, 3]


def test_near_duplicates_land_on_one_side_of_the_split(tmp_path):
    root = make_photos(tmp_path / "photos", per_class=12, bursts=6, size=64)  # phone photos are larger still
    data = load_folder(root, 64, seed=1, test_fraction=0.3)
    files = data.files
    assert len(data.groups) == 18  # 6 bursts of 3 in each class
    assert all(len({_shot(files[i]) for i in g}) == 1 and len(g) == 3 for g in data.groups)
    test = {files[i] for i in data.test.indices}
    for i in np.concatenate([data.train.indices, data.val.indices]):
        assert not any(_shot(files[i]) == _shot(t) and files[i].split("/")[0] == t.split("/")[0] for t in test)
    # the same split without grouping puts copies of one shot on both sides: what the grouping is for
    y = np.array([CLASSES.index(f.split("/")[0]) for f in files])
    ungrouped = choose_test_split(y, np.arange(len(y)), 0.3, 1, 3)
    held = {files[i] for i in ungrouped}
    assert any(_shot(f) == _shot(t) and f.split("/")[0] == t.split("/")[0] for f in files if f not in held
               for t in held)


def test_the_hash_tells_copies_from_other_photos():
    x, _ = colour_images(6, seed=3, size=64)
    h = [phash(img) for img in x]
    brighter = phash(np.clip(x[0].astype(int) + 8, 0, 255).astype(np.uint8))
    assert bin(h[0] ^ brighter).count("1") <= 4
    assert near_duplicate_groups(x).tolist() == list(range(len(x)))  # different noise: different photos


# -- the honest number -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k,n", [(87, 100), (0, 10), (10, 10), (3, 7), (950, 1000)])
def test_the_wilson_interval_solves_its_defining_equation(k, n):
    """Its ends are the p where the observed proportion is exactly z standard errors away."""
    lo, hi = wilson_interval(k, n)
    for p in (lo, hi):
        if 0 < p < 1:
            assert abs(k / n - p) == pytest.approx(Z95 * math.sqrt(p * (1 - p) / n), abs=1e-9)
    assert lo <= k / n <= hi
    assert wilson_interval(87, 100) == pytest.approx((0.7902, 0.9224), abs=1e-4)
    assert accuracy_line(87, 100, "test photos") == "87.0% (95% CI 79.0-92.2%, 100 test photos)"


def test_each_data_warning(tmp_path):
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for c, n in zip(CLASSES, (40, 10, 12)):
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), np.uint8)).save(root / c / f"{i:02d}.png")
    (root / "red" / "broken.jpg").write_bytes(b"not an image")
    lines = folder_warnings(load_few_shot(folder=root, image_size=8, seed=0, test_split=0.2))
    assert any(line.startswith("few photos: blue (12), green (10); below 20") for line in lines), lines
    assert any("differ 4.0x in size (red 40, green 10)" in line and "class_weight: balanced" in line for line in lines)
    assert any(line.startswith("1 file(s) could not be read") for line in lines)
    lines = folder_warnings(load_few_shot(folder=root, image_size=8, seed=0, test_split=0))
    assert any(line.startswith("no test split (test_split 0): no accuracy will be reported") for line in lines)
    burst = make_photos(tmp_path / "bursts", per_class=8, bursts=2, size=64)
    lines = folder_warnings(load_few_shot(folder=burst, image_size=64, seed=0, test_split=0.25))
    assert any(line.startswith("6 groups of near-duplicate photos (18 photos") for line in lines)


# -- a whole (tiny) folder run -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A tiny folder run through the API with a callback recording what every stage trained and
    scored on; random weights, 32 px, 2 epochs a stage."""
    from kft import api
    from kft.training.callbacks import Callback

    class Seen(Callback):
        rows = []

        def on_stage_begin(self, trainer):
            self.rows.append((trainer.stage.name, trainer.data.train.indices, trainer.data.val.indices))

    base = tmp_path_factory.mktemp("own")
    photos = make_photos(base / "photos", per_class=15, bursts=2, size=64)
    seen = Seen()
    run = api.train("mobilenet_v3_small", data=photos, weights="none", seed=0, image_size=64, max_epochs=2,
                    protocol="refit", out=base / "run", callbacks=[seen])
    return run, photos, seen.rows


def test_a_folder_run_reports_a_held_out_accuracy_with_its_interval(folder_run):
    run, _, _ = folder_run
    m = json.loads((run / "metrics.json").read_text())
    n, acc = m["test_images"], m["test_accuracy"]
    # 19 photos per class (15 shots, 2 of them with 2 copies): at most 20% (4) held out, whole groups
    assert all(1 <= row["images"] <= 4 for row in m["per_class"])
    right = round(acc * n)
    assert m["test_ci95"] == pytest.approx(wilson_interval(right, n), abs=1e-4)
    assert m["test_summary"] == accuracy_line(right, n, "test photos")
    assert "test split" in m["test_set"] and "never saw" in m["test_set"]
    assert [row["images"] for row in m["per_class"]] == np.sum(m["confusion_matrix"], axis=1).tolist()
    sheet = run / "mistakes.png"
    assert sheet.is_file() and sheet.stat().st_size > 1000
    assert Image.open(sheet).size[0] > 100


def test_the_test_split_never_reaches_training_or_selection(folder_run):
    run, _, seen = folder_run
    split = json.loads((run / "split.json").read_text())
    test = set(split["test"])
    # refit: the selection run on the training split (validated), then every label trains
    assert test and {"probe", "refit-probe"} <= {name for name, _, _ in seen}
    for name, train, val in seen:
        assert not test & set(train.tolist()), name
        assert not test & set(val.tolist()), name
    # split.json names the files, so a user can see which photos were held out
    assert all(split["files"][i].endswith((".png", ".jpg")) for i in split["test"])
    assert split["near_duplicates"]["groups"] and split["test_split"] == 0.2


def test_kft_evaluate_data_scores_a_model_on_a_labelled_folder(tmp_path, capsys):
    """The exported tiny model on a folder of its three colours: the report's accuracy is what
    kft predict says of the same files."""
    from export_fixtures import exported
    from kft import api
    from kft.cli import main

    photos = make_photos(tmp_path / "new", per_class=5, seed=11)
    model = exported().out_dir / "model_float32.tflite"
    capsys.readouterr()  # the shared export's own log, if this test built it: not evaluate's output
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(model), "--data", str(photos), "--out", str(tmp_path / "report")])
        raise SystemExit(0)
    assert (e.value.code or 0) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    assert report["images"] == 15 and out.startswith(f"accuracy {report['summary']} on ")
    predicted = {r["image"]: r["top_k"][0]["label"] for r in api.predict(model, [photos])}
    truth = {str(p): p.parent.name for p in photos.rglob("*.png")}
    assert report["accuracy"] == pytest.approx(np.mean([predicted[f] == truth[f] for f in truth]))
    assert (tmp_path / "report" / "mistakes.png").is_file() and "| red |" in (tmp_path / "report" / "evaluation.md").read_text()
    (photos / "purple").mkdir()
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(model), "--data", str(photos)])
    assert e.value.code == 2 and "'purple' is not one of the model's classes" in capsys.readouterr().err


def test_test_split_zero_warns_that_no_accuracy_will_be_reported(tmp_path):
    import subprocess
    import sys

    photos = make_photos(tmp_path / "photos", per_class=6)
    out = subprocess.run([sys.executable, "-m", "kft", "train", "mobilenet_v3_small", "--data", str(photos),
                          "--weights", "none", "--set", "image_size=32", "--max-epochs", "1", "--test-split", "0",
                          "--out", str(tmp_path / "run")], capture_output=True, text=True, env=kft_env(), timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no test split (test_split 0): no accuracy will be reported" in out.stdout + out.stderr
    assert "test_accuracy" not in json.loads((tmp_path / "run" / "metrics.json").read_text())


def test_export_of_a_folder_run_scores_the_test_split_and_calibrates_on_training_photos(folder_run, monkeypatch):
    """The export's held-out images are the test split (the photos the model never saw) and its int8
    calibration images come from the training split only."""
    import kft.export as export
    from kft.rundir import load_run

    run, _, _ = folder_run
    seen = {}

    def spy(model, class_names, quantizations, out_dir, **kw):
        seen.update(kw)
        return None

    monkeypatch.setattr(export, "export_model", spy)
    export.export_run(run, "float32,int8", calibration_samples=5, out_dir=run.parent / "export")
    data = load_run(run).data()
    np.testing.assert_array_equal(seen["test_images"], data.test.x)
    np.testing.assert_array_equal(seen["train_images"], data.train.x)  # calibration: training photos only
    assert seen["scored_on"] == f"the folder's test split ({len(data.test.y)} photos the model never saw)"
    split = json.loads((run / "split.json").read_text())
    assert set(data.test.indices.tolist()) == set(split["test"]) and not set(split["test"]) & set(split["train"])
