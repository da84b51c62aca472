"""Atomic outputs survive SIGKILL mid-write; a seed fixes the initial weights."""

import os
import signal
import subprocess
import sys

import numpy as np

CHILD = """
import sys, time
from kft.rundir.atomic import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    with open(tmp, "wb") as f:
        f.write(b"new" * 100000)
        f.flush()
        print("writing", flush=True)
        time.sleep(60)  # killed here, mid-write
"""


def test_sigkill_mid_write_leaves_old_file_intact_and_no_partial_file(tmp_path):
    target = tmp_path / "model_int8.tflite"
    target.write_bytes(b"old complete file")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert target.read_bytes() == b"old complete file"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != target.name]
    assert all(name.startswith(".model_int8.tflite.") for name in leftovers)  # hidden temp, never the final name

    fresh = tmp_path / "metrics.json"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(fresh)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not fresh.exists()


def test_same_seed_same_initial_weights_different_seed_different_head():
    from kft.model import build_classifier

    def head(seed):
        m = build_classifier("mobilenet_v3_small", 10, image_size=32, weights="none", seed=seed)
        return [w.numpy() for w in m.get_layer("logits").weights], [w.numpy() for w in m.weights]

    (h1, all1), (_, all2), (h3, _) = head(5), head(5), head(6)
    assert all(np.array_equal(a, b) for a, b in zip(all1, all2))
    assert not np.array_equal(h1[0], h3[0])
