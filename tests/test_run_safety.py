"""Lose nothing: exact resume from named kill points, a full disk, an existing run folder, two processes."""

import csv
import errno
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import kft_env as _env
from conftest import tiny_run_cmd as _cmd
from kft.errors import KftError

# Each point is where KFT_TEST_KILL_AT SIGKILLs a tiny two-stage run (kft.training.killpoints).
# Default: the two that were broken (no checkpoint yet; the first epoch after the stage switch).
FAST_POINTS = ["data-loaded", "stage-start:1"]
SLOW_POINTS = ["stage-start:0", "epoch-trained:0:0", "epoch-trained:0:1", "stage-done:0", "epoch-trained:1:0",
               "epoch-trained:1:1", "stage-done:1", "final-eval", "artifacts"]


def _history(run):
    rows = list(csv.DictReader((run / "history.csv").open()))
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _weights(run):
    import keras

    return [np.asarray(w) for w in keras.saving.load_model(run / "model.keras", safe_mode=True).get_weights()]


def _kill_and_resume(tmp_path, point, cmd=None):
    run = tmp_path / "run"
    killed = subprocess.run((cmd or _cmd)(run), env=_env(KFT_TEST_KILL_AT=point), capture_output=True, text=True,
                            timeout=600)
    assert killed.returncode == -9, (point, killed.returncode, killed.stderr[-1500:])
    assert not (run / "metrics.json").exists()
    resumed = subprocess.run([sys.executable, "-m", "kft", "train", "--resume", str(run)], env=_env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, (point, resumed.stderr[-2000:])
    return run, resumed.stdout


def _assert_same_run(run, reference):
    a = json.loads((reference / "metrics.json").read_text())
    b = json.loads((run / "metrics.json").read_text())
    assert [(s["name"], s["epochs"], s["best_val_accuracy"]) for s in b["stages"]] == \
        [(s["name"], s["epochs"], s["best_val_accuracy"]) for s in a["stages"]]
    assert b["test_accuracy"] == a["test_accuracy"] and b["confusion_matrix"] == a["confusion_matrix"]
    assert _history(run) == _history(reference)
    for x, y in zip(_weights(run), _weights(reference), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("point", FAST_POINTS)
def test_resume_from_a_kill_point_equals_the_uninterrupted_run(tmp_path, reference, point):
    run, out = _kill_and_resume(tmp_path, point)
    if point == "data-loaded":  # no checkpoint yet: started again from the saved config and split
        assert "starting it again from its saved config and split" in out
    _assert_same_run(run, reference)


@pytest.mark.slow
@pytest.mark.parametrize("point", SLOW_POINTS)
def test_resume_from_every_other_kill_point(tmp_path, reference, point):
    run, _ = _kill_and_resume(tmp_path, point)
    _assert_same_run(run, reference)


# -- the run folder -----------------------------------------------------------------------------

def _main(args, capsys):
    from kft.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
        raise SystemExit(0)
    return e.value.code or 0, capsys.readouterr().err


def test_a_folder_with_files_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, err = _main(["train", "mobilenet_v2", "--out", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1 and "is not empty" in err and "--overwrite" in err
    code, err = _main(["train", "mobilenet_v2", "--out", str(out), "--overwrite"], capsys)
    assert code == 2 and "not a kft run" in err  # --overwrite never deletes files that are not a run
    assert (out / "notes.txt").read_text() == "mine"
    for name in ("config.yaml", "split.json"):
        (out / name).write_text("{}")
    code, err = _main(["train", "mobilenet_v2", "--out", str(out)], capsys)
    assert code == 2 and f"kft train --resume {out}" in err
    (out / "metrics.json").write_text("{}")
    code, err = _main(["train", "mobilenet_v2", "--out", str(out)], capsys)
    assert code == 2 and "holds a finished run" in err and "--overwrite" in err


def test_overwrite_replaces_a_previous_run(tmp_path):
    from kft.rundir.guard import check_new_run_folder, unlock

    out = tmp_path / "old"
    (out / "checkpoint").mkdir(parents=True)
    for name in ("config.yaml", "split.json", "metrics.json", "checkpoint/state.json"):
        (out / name).write_text("{}")
    check_new_run_folder(out, overwrite=True)
    assert [p.name for p in out.iterdir()] == [".lock"]
    unlock(out)


LOCKER = """
import sys, time
from kft.rundir.guard import lock
lock(sys.argv[1])
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_process_is_refused_and_a_killed_holder_blocks_nothing(tmp_path):
    from kft.rundir.guard import lock, unlock

    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", LOCKER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(KftError, match=rf"in use by another kft process \(pid {holder.pid}\)"):
            lock(run)
    finally:
        holder.kill()  # SIGKILL: no clean-up ran
        holder.wait()
    lock(run)  # the kernel released the dead holder's lock
    unlock(run)


def test_resume_takes_the_lock(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "split.json"):
        (run / name).write_text("{}" if name == "split.json" else "backbone: mobilenet_v2\n")
    holder = subprocess.Popen([sys.executable, "-c", LOCKER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, err = _main(["train", "--resume", str(run)], capsys)
        assert code == 2 and f"pid {holder.pid}" in err
    finally:
        holder.kill()
        holder.wait()


# -- a full disk --------------------------------------------------------------------------------

def _tiny_model():
    from kft.model import build_classifier

    return build_classifier("mobilenet_v3_small", 3, image_size=32, weights="none", seed=0)


def test_checkpoint_on_a_full_disk_is_one_line_and_keeps_the_last_one(tmp_path, monkeypatch):
    import shutil

    from kft.rundir import checkpoint

    from kft.rundir import guard as runguard

    model = _tiny_model()
    checkpoint.save(tmp_path, model, {"stage_index": 0, "next_epoch": 1})
    before = checkpoint.load_state(tmp_path)
    files = sorted(p.name for p in (tmp_path / "checkpoint").iterdir())
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(runguard.shutil, "disk_usage", lambda p: usage._replace(free=1 << 20))
    with pytest.raises(KftError) as e:
        checkpoint.save(tmp_path, model, {"stage_index": 0, "next_epoch": 2})
    msg = str(e.value)
    assert msg.startswith("no space left on device while writing") and "MB needed" in msg and "\n" not in msg
    assert checkpoint.load_state(tmp_path) == before  # the last complete checkpoint still stands
    assert sorted(p.name for p in (tmp_path / "checkpoint").iterdir()) == files


def test_enospc_during_any_atomic_write_is_one_line_and_leaves_nothing(tmp_path):
    from kft.rundir import atomic

    target = tmp_path / "metrics.json"
    with pytest.raises(KftError, match=r"no space left on device while writing .*metrics\.json"):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_export_on_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys):
    from export_fixtures import trained

    from kft.rundir import atomic

    real = atomic.write_bytes

    def full(path, data):
        if str(path).endswith(".tflite"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(atomic, "write_bytes", full)
    start = time.time()
    code, err = _main(["export", str(trained().model_path), "--tflite", "--quantize", "float32", "--out",
                       str(tmp_path / "e")], capsys)
    assert code == 2 and err.startswith("error: no space left on device") and err.count("\n") == 1, err
    assert time.time() - start < 300
