"""tf.distribute in the stage loop (kft.training.distribute), on this CPU split into 2 logical devices.

The check that matters: one step under MirroredStrategy over 2 replicas equals the single-device
step on the same global batch. Tolerance: the loss to 1e-6 relative and every gradient entry to
1e-5 x the largest gradient (and to 1e-4 of each tensor's largest); float32 sums run in another
order across the two halves of the batch, so bit equality is not expected. Dropout is 0 there:
its masks are drawn per replica.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import kft_env, require_env

TESTS = Path(__file__).parent

SCRIPT = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    from kft.training.distribute import make_strategy
    strategy = make_strategy("mirrored")  # KFT_LOGICAL_CPUS=2: before anything else starts TensorFlow
    import keras, tensorflow as tf
    from conftest import make_data
    from kft.plan import Augment, Plan, Stage, validate
    from kft.model import build_classifier
    from kft.training.trainer import StageTrainer, scope as _scope

    data = make_data(per_class=8)
    keep = np.r_[0:8, 8:10, 16:24]  # imbalanced: the class weights take part too
    data.train.x, data.train.y = data.train.x[keep], data.train.y[keep]
    # plain SGD, w -= lr * g, with an lr so large that lr * g stands far above float32 rounding of w:
    # the weight change gives g back
    LR = 1e3
    stage = Stage("s", ["layer4", "head"], optimizer="sgd", momentum=0.0, learning_rate=LR, schedule="constant")
    plan = validate(Plan(backbone="mobilenet_v3_small", image_size=32, batch_size=18, dropout=0.0, cache="off",
                         class_weight="balanced", augment=Augment(enabled=False), stages=[stage]))

    def first_step(strategy):
        keras.utils.set_random_seed(0)
        with _scope(strategy):
            model = build_classifier("mobilenet_v3_small", 3, image_size=32, weights="imagenet", dropout=0.0, seed=0)
        trainer = StageTrainer(model, plan, stage, 0, data, 0, strategy=strategy)
        before = [v.numpy() for v in trainer.train_vars]
        loss, correct = trainer.train_step(tf.constant(data.train.x.astype(np.float32)),
                                           tf.constant(data.train.y.astype(np.int32)))
        grads = [(b.astype(np.float64) - v.numpy()) / LR for b, v in zip(before, trainer.train_vars)]
        return float(loss), int(correct), grads

    (l1, c1, g1), (l2, c2, g2) = first_step(None), first_step(strategy)
    print(json.dumps({{"replicas": strategy.num_replicas_in_sync, "loss": [l1, l2], "correct": [c1, c2],
                      "max_grad": max(float(np.abs(g).max()) for g in g1),
                      "max_diff": max(float(np.abs(a - b).max()) for a, b in zip(g1, g2)),
                      "worst_relative": max(float(np.abs(a - b).max() / np.abs(a).max()) for a, b in zip(g1, g2)
                                            if np.abs(a).max() > 0)}}))
""")


def test_a_mirrored_step_equals_the_single_device_step():
    require_env("KFT_WEIGHTS_DIR")  # ImageNet features: a random-init network's gradients are ~1e-8, mostly noise
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(tests=str(TESTS))], capture_output=True, text=True,
                         timeout=300, env=kft_env(KFT_LOGICAL_CPUS="2"))
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["replicas"] == 2
    assert r["loss"][1] == pytest.approx(r["loss"][0], rel=1e-6) and r["correct"][0] == r["correct"][1]
    assert r["max_grad"] > 1e-3 and r["max_diff"] <= 1e-5 * r["max_grad"] and r["worst_relative"] <= 1e-4, r


@pytest.mark.slow  # minutes on 2 cores; the fast suite covers its parts (CI time)
def test_a_tiny_two_stage_run_under_mirrored_finishes_and_resumes_exactly(tmp_path):
    """The run finishes under mirrored; killed after stage 2's first epoch and resumed (the strategy
    rebuilt from the run's config), it ends with the uninterrupted run's history and figures."""
    from conftest import tiny_run_cmd

    require_env("KFT_DATA_DIR")
    env = kft_env(KFT_LOGICAL_CPUS="2")
    out = subprocess.run(tiny_run_cmd(tmp_path / "run", "--set", "distribute=mirrored"),
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "distribute: mirrored over 2 replicas, global batch 32" in out.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["distribute"] == {"mode": "mirrored", "replicas": 2}
    assert [s["epochs"] for s in metrics["stages"]] == [2, 2]

    killed = tmp_path / "killed"
    proc = subprocess.run(tiny_run_cmd(killed, "--set", "distribute=mirrored"), capture_output=True, text=True,
                          timeout=600, env={**env, "KFT_TEST_KILL_AT": "epoch-trained:1:1"})
    assert proc.returncode == -9 and not (killed / "metrics.json").exists(), proc.stderr[-2000:]
    out = subprocess.run([sys.executable, "-m", "kft", "train", "--resume", str(killed)], capture_output=True,
                         text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "distribute: mirrored over 2 replicas" in out.stdout and "[stage1]" not in out.stdout
    resumed = json.loads((killed / "metrics.json").read_text())
    assert resumed["test_accuracy"] == metrics["test_accuracy"]
    assert resumed["confusion_matrix"] == metrics["confusion_matrix"]
    strip = lambda run: [r.rsplit(",", 1)[0] for r in (run / "history.csv").read_text().splitlines()]  # noqa: E731
    assert strip(killed) == strip(tmp_path / "run")


def test_bad_distribute_settings_are_one_line(tmp_path):
    from kft.training.distribute import make_strategy
    from kft.errors import KftError

    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    with pytest.MonkeyPatch.context() as m:
        m.setattr(os, "environ", env)
        with pytest.raises(KftError, match="needs TF_CONFIG"):
            make_strategy("multiworker")
        env["TF_CONFIG"] = "{not json"
        with pytest.raises(KftError, match="TF_CONFIG is not valid JSON"):
            make_strategy("multiworker")
    with pytest.raises(KftError, match="unknown distribute mode 'ring'"):
        make_strategy("ring")


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_two_local_workers_finish_a_tiny_run(tmp_path):
    """MultiWorkerMirroredStrategy: two processes on loopback ports, configured by TF_CONFIG.
    The chief (worker 0) writes the run folder; worker 1 trains the same steps and keeps nothing."""
    from conftest import tiny_run_cmd

    require_env("KFT_DATA_DIR")
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for i in range(2):
        config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
        procs.append(subprocess.Popen(tiny_run_cmd(tmp_path / f"run{i}", "--set", "distribute=multiworker",
                                                   "--max-epochs", "1"),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=kft_env(TF_CONFIG=config)))
    try:
        outs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    metrics = json.loads((tmp_path / "run0" / "metrics.json").read_text())
    assert metrics["distribute"] == {"mode": "multiworker", "replicas": 2}
    assert not (tmp_path / "run1").exists()  # a non-chief worker writes to a temporary folder, then removes it
