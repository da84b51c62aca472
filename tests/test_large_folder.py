"""Image folders larger than the data budget: decoded once onto disk and streamed per batch.

What must hold: the same split and the same pixels as in memory, the images really on disk
(memory-mapped, never gathered into memory by subset/refit), and a training run whose every
number equals the in-memory run's.
"""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import kft_env, require_env
from export_fixtures import colour_images
from kft.data import load_few_shot, ondisk

TIMED = ("seconds", "wall_seconds", "train_seconds", "created")  # what differs between two runs of the same plan


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    x, y = colour_images(8, seed=5)
    for i, (img, label) in enumerate(zip(x, y)):
        d = root / ["red", "green", "blue"][label]
        d.mkdir(exist_ok=True)
        Image.fromarray(img).save(d / f"{i:02d}.png")
    (root / "red" / "broken.jpg").write_bytes(b"not a jpeg")  # skipped the same way on both paths
    return root


def test_past_the_budget_the_split_and_pixels_are_the_same_but_on_disk(folder):
    args = dict(folder=folder, image_size=32, seed=2, val_per_class=3)
    memory = load_few_shot(**args)
    disk = load_few_shot(**args, memory_budget_mb=0.05)  # 24 images x 3 KB = 0.07 MB
    assert not ondisk.on_disk(memory.train.x) and ondisk.on_disk(disk.train.x) and ondisk.on_disk(disk.val.x)
    assert disk.split == memory.split and disk.skipped == memory.skipped
    for a, b in ((memory.train, disk.train), (memory.val, disk.val)):
        assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and np.array_equal(a.indices, b.indices)
    refit = disk.for_refit()  # train + val joined: on disk too
    assert ondisk.on_disk(refit.train.x)
    assert np.array_equal(refit.train.x, memory.for_refit().train.x)
    assert ondisk.on_disk(disk.train.x[5:])  # what the feature cache's refit slices


def test_the_pipeline_reads_the_same_batches_from_disk():
    from kft.training import pipeline
    from kft.training.augment import make_augmenter
    from kft.plan import Augment

    x = np.random.default_rng(0).integers(0, 256, (21, 16, 16, 3), dtype=np.uint8)
    y = np.arange(21) % 3
    on_disk = ondisk.empty(x.shape)
    on_disk[:] = x
    order = np.random.default_rng(1).permutation(21)
    seeds = np.arange(2 * 3, dtype=np.int32).reshape(3, 2)
    augmenter = make_augmenter(Augment())
    for aug, s in ((None, None), (augmenter, seeds)):
        a = list(pipeline.image_batches(x, y, 8, order=order, augmenter=aug, seeds=s))
        b = list(pipeline.image_batches(on_disk, y, 8, order=order, augmenter=aug, seeds=s))
        assert len(a) == len(b) == 3
        for (xa, ya), (xb, yb) in zip(a, b):
            assert np.array_equal(xa.numpy(), xb.numpy()) and np.array_equal(ya.numpy(), yb.numpy())


def _train(folder, out, *extra):
    cmd = [sys.executable, "-m", "kft", "train", "mobilenet_v3_small", "--strategy", "two_stage",
           "--data", str(folder), "--set", "image_size=32", "--set", "val_per_class=3", "--max-epochs", "1",
           "--set", "cache_views=2", "--set", "protocol=refit", "--seed", "1", "--out", str(out), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=kft_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow  # minutes on 2 cores; the fast suite covers its parts (CI time)
def test_a_run_streamed_from_disk_equals_the_in_memory_run(folder, tmp_path):
    require_env("KFT_WEIGHTS_DIR")  # ImageNet features: a random network's numbers barely depend on the images
    _train(folder, tmp_path / "memory")
    log = _train(folder, tmp_path / "disk", "--set", "data_budget_mb=0.05")
    assert "data budget 0.05 MB: keeping them on disk" in log
    a, b = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("memory", "disk"))
    def untimed(m):
        return {k: [untimed(s) for s in v] if k == "stages" else v for k, v in m.items() if k not in TIMED}

    assert untimed(a) == untimed(b)
    assert [s["epochs"] for s in a["stages"]] == [1, 1, 1, 0]

    def history(run):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(open(run / "history.csv"))]

    rows = history(tmp_path / "memory")
    assert rows == history(tmp_path / "disk")
    assert len({r["loss"] for r in rows}) == len(rows)  # ImageNet features: the images move the numbers
    assert (tmp_path / "memory" / "split.json").read_text() == (tmp_path / "disk" / "split.json").read_text()


def test_a_bad_budget_is_one_line(folder, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "kft", "train", "mobilenet_v3_small", "--data", str(folder),
                           "--set", "data_budget_mb=-1", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=120, env=kft_env())
    assert proc.returncode != 0 and "data_budget_mb must be a positive number, got -1" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r").exists()
