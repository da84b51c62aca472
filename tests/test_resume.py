"""Kill a training run in the middle of stage 2, resume it, and get the uninterrupted result."""

import json
import os
import signal
import subprocess
import sys
import time

from conftest import require_env

PLAN = """
backbone: mobilenet_v3_small
strategy: custom
image_size: 32
batch_size: 16
samples_per_class: 8
val_per_class: 4
cache_views: 2
stages:
- {name: stage1, trainable: [layer4, head], learning_rate: 0.003, max_epochs: 3, patience: 10}
- {name: stage2, trainable: [layer3, layer4, head], learning_rate: 0.001, max_epochs: 8, patience: 10}
"""


def _cmd(out, plan):
    return [sys.executable, "-m", "kft", "train", "mobilenet_v3_small", "--config", str(plan), "--weights", "none",
            "--limit-test", "50", "--seed", "3", "--out", str(out)]


def _state(run):
    try:
        return json.loads((run / "checkpoint" / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def test_sigkill_in_stage_two_then_resume_matches_uninterrupted_run(tmp_path):
    require_env("KFT_DATA_DIR")
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    full = tmp_path / "full"
    subprocess.run(_cmd(full, plan), check=True, env=env, capture_output=True, timeout=600)

    run = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(run, plan), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_at = None
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        s = _state(run)
        if s and s["stage_index"] == 1 and 2 <= s.get("next_epoch", 0) <= 5:
            proc.send_signal(signal.SIGKILL)
            killed_at = s
            break
        time.sleep(0.02)
    proc.wait()
    assert killed_at is not None, "the run ended before it could be killed in stage 2"
    assert not (run / "metrics.json").exists()
    state = _state(run)  # the checkpoint on disk after the kill: mid stage 2
    assert state["stage_index"] == 1 and state["next_epoch"] >= 2

    out = subprocess.run([sys.executable, "-m", "kft", "train", "--resume", str(run)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"stage 2/2 (stage2), epoch {state['next_epoch'] + 1}" in out.stdout
    assert "[stage1]" not in out.stdout  # a finished stage is never retrained

    a = json.loads((full / "metrics.json").read_text())
    b = json.loads((run / "metrics.json").read_text())
    assert [s["epochs"] for s in b["stages"]] == [s["epochs"] for s in a["stages"]]
    assert [s["best_val_accuracy"] for s in b["stages"]] == [s["best_val_accuracy"] for s in a["stages"]]
    assert b["test_accuracy"] == a["test_accuracy"]
    assert b["confusion_matrix"] == a["confusion_matrix"]
    hist_a = (full / "history.csv").read_text().splitlines()
    hist_b = (run / "history.csv").read_text().splitlines()
    strip = lambda rows: [r.rsplit(",", 1)[0] for r in rows]  # noqa: E731 -- drop the seconds column
    assert strip(hist_b) == strip(hist_a)
    for name in ("model.keras", "history.csv", "curves.png", "confusion.png", "config.yaml", "split.json"):
        assert (run / name).stat().st_size > 0


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    out = subprocess.run([sys.executable, "-m", "kft", "train", "--resume", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "is not a kft run folder" in out.stderr and "Traceback" not in out.stderr
