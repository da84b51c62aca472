import os
from types import SimpleNamespace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KFT_PROGRESS", "off")  # progress lines would land in the stderr tests compare (test_progress turns it on)

import subprocess
import sys

import numpy as np
import pytest


def make_data(n_classes=3, per_class=8, size=32, seed=0):
    """Tiny separable images: each class has its own mean colour, plus noise."""
    rng = np.random.default_rng(seed)
    def split(n):
        y = np.repeat(np.arange(n_classes), n)
        base = (np.arange(n_classes)[:, None] * np.array([70, 30, 110]) % 255)[y]
        x = np.clip(base[:, None, None, :] + rng.normal(0, 40, (len(y), size, size, 3)), 0, 255).astype(np.uint8)
        return SimpleNamespace(x=x, y=y.astype(np.int64))
    return SimpleNamespace(train=split(per_class), val=split(per_class // 2), test=split(per_class // 2),
                           class_names=[f"c{i}" for i in range(n_classes)], split={})


@pytest.fixture
def tiny_data():
    return make_data()


def require_env(var: str):
    if not os.environ.get(var):
        pytest.skip(f"{var} is not set: this test needs the real files (bash .ci/run sets it)")
    return os.environ[var]


def tiny_run_cmd(out, *extra):
    """``kft train`` of a tiny two_stage run on real CIFAR-10 (random weights, 32 px, 2 epochs); holdout
    unless ``extra`` sets another protocol (a later ``--set protocol=...`` wins)."""
    return [sys.executable, "-m", "kft", "train", "mobilenet_v3_small", "--strategy", "two_stage",
            "--set", "protocol=holdout", "--weights", "none", "--set", "samples_per_class=4", "--set", "val_per_class=3",
            "--limit-test", "30", "--set", "image_size=32", "--max-epochs", "2", "--set", "cache_views=2", "--seed", "3",
            "--out", str(out), *extra]


def kft_env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "KFT_TEST_KILL_AT"}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def finished_run(tmp_path_factory, name, cmd):
    """Run ``cmd(folder)`` (a ``kft train`` command line) to its end in a fresh folder: the
    folder and what it printed. Needs the real CIFAR-10 (skips, saying why, without it)."""
    require_env("KFT_DATA_DIR")
    out = tmp_path_factory.mktemp(name) / "run"
    proc = subprocess.run(cmd(out), env=kft_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """The tiny run, uninterrupted (shared by the resume and refit tests)."""
    return finished_run(tmp_path_factory, "ref", tiny_run_cmd)[0]
