import os
from types import SimpleNamespace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KFT_PROGRESS", "off")  # progress lines would land in the stderr tests compare (test_progress turns it on)

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
