"""The run folder as a versioned artifact: names spelled once, schema_version, old runs still load."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from kft import rundir
from kft.rundir import files as rundir_files
from kft.errors import KftError

OLD_RUN = Path(__file__).parent / "fixtures" / "run_d6acc48"  # text files of a tiny run made by d6acc48's code


def test_a_run_written_by_d6acc48_still_loads(tmp_path):
    run_dir = shutil.copytree(OLD_RUN, tmp_path / "old")
    run = rundir.load_run(run_dir)
    assert run.schema_version == 1
    assert run.source == rundir.DataSource(data_dir=None, folder=None, samples_per_class=2, val_per_class=1,
                                         seed=0, limit_test=10, image_size=None)
    assert run.class_names[:2] == ["airplane", "automobile"] and run.finished
    assert run.config["backbone"] == "mobilenet_v3_small" and "schema_version" not in run.config
    moved = run.with_data_dir("/elsewhere")
    assert moved.source.data_dir == "/elsewhere" and run.source.data_dir is None


def test_an_old_run_is_evaluated_with_its_own_split(tmp_path):
    from conftest import require_env
    from kft import api
    from kft.model import build_classifier

    require_env("KFT_DATA_DIR")
    run_dir = shutil.copytree(OLD_RUN, tmp_path / "old")
    model = build_classifier("mobilenet_v3_small", 10, image_size=32, weights="none", seed=0)
    model.save(run_dir / rundir.MODEL)  # the fixture keeps the text files only (a model is 3 MB)
    scores = api.evaluate(run_dir)
    assert scores["n"] == json.loads((OLD_RUN / "metrics.json").read_text())["test_images"] == 10


def test_new_files_carry_the_schema_version_and_a_typed_data_source(tmp_path):
    source = rundir.DataSource(folder="/photos", samples_per_class=None, val_per_class=5, seed=3, image_size=96)
    rundir.write_config(tmp_path, {"backbone": "mobilenet_v2", "seed": 3, "weights": "none"})
    rundir.write_split(tmp_path, source, {"class_names": ["a", "b"]})
    rundir.write_metrics(tmp_path, {"test_accuracy": 0.5})
    for name, load in ((rundir.CONFIG, yaml.safe_load), (rundir.SPLIT, json.loads), (rundir.METRICS, json.loads)):
        assert load((tmp_path / name).read_text())["schema_version"] == rundir.SCHEMA_VERSION, name
    run = rundir.load_run(tmp_path)
    assert run.source == source and run.schema_version == rundir.SCHEMA_VERSION
    assert run.config == {"backbone": "mobilenet_v2", "seed": 3, "weights": "none"}


def test_a_run_from_a_newer_kft_or_a_corrupt_one_is_one_line(tmp_path):
    rundir.write_config(tmp_path, {"backbone": "mobilenet_v2"})
    rundir.write_split(tmp_path, rundir.DataSource(), {})
    text = (tmp_path / rundir.CONFIG).read_text().replace(f"schema_version: {rundir.SCHEMA_VERSION}", "schema_version: 99")
    (tmp_path / rundir.CONFIG).write_text(text)
    with pytest.raises(KftError, match="newer kft"):
        rundir.load_run(tmp_path)
    (tmp_path / rundir.SPLIT).write_text("{not json")
    with pytest.raises(KftError, match="corrupt"):
        rundir.load_run(tmp_path)


def test_file_names_are_spelled_only_in_the_run_folder_layout():
    root = Path(__file__).resolve().parents[1] / "kft"
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.relative_to(root).as_posix() != "rundir/layout.py" and any(f'"{n}"' in p.read_text() for n in
                                                (rundir.CONFIG, rundir.SPLIT, rundir.METRICS, rundir.MODEL, rundir.HISTORY))]
    assert offenders == []


def test_metrics_name_the_commit_a_run_started_with_and_a_different_one_that_finished_it(tmp_path, monkeypatch):
    rundir.write_split(tmp_path, rundir.DataSource(), {"git_revision": "a" * 40})
    monkeypatch.setattr(rundir_files, "git_revision", lambda: "a" * 40)
    assert rundir.revisions(tmp_path) == {"git_revision": "a" * 40}
    monkeypatch.setattr(rundir_files, "git_revision", lambda: "b" * 40)  # resumed and finished under other code
    assert rundir.revisions(tmp_path) == {"git_revision": "a" * 40, "git_revision_at_finish": "b" * 40}
    old = shutil.copytree(OLD_RUN, tmp_path / "old")  # split.json from before the revision was kept
    assert rundir.revisions(old) == {"git_revision": "b" * 40}
