"""``kft.rundir.artifacts.open_artifact``: one decision of "run folder, .keras or .tflite" for every command."""

import shutil
from pathlib import Path

import pytest

from kft import rundir
from kft.rundir.artifacts import KERAS, RUN, TFLITE, open_artifact
from kft.errors import KftError

OLD_RUN = Path(__file__).parent / "fixtures" / "run_d6acc48"


def test_each_kind_opens_with_its_model_file_and_labels(tmp_path):
    run_dir = shutil.copytree(OLD_RUN, tmp_path / "run")
    (run_dir / rundir.MODEL).write_bytes(b"not loaded by open_artifact")
    art = open_artifact(run_dir, data_dir="/elsewhere")
    assert (art.kind, art.model_path) == (RUN, run_dir / rundir.MODEL)
    assert art.labels[:2] == ["airplane", "automobile"] and art.run.source.data_dir == "/elsewhere"

    folder = tmp_path / "exported"  # model.keras + labels.txt, not a run folder
    folder.mkdir()
    (folder / rundir.MODEL).write_bytes(b"x")
    (folder / "labels.txt").write_text("cat\ndog\n")
    art = open_artifact(folder)
    assert (art.kind, art.model_path, art.labels, art.run) == (KERAS, folder / rundir.MODEL, ["cat", "dog"], None)

    tflite = tmp_path / "m.TFLITE"
    tflite.write_bytes(b"x")
    assert (open_artifact(tflite).kind, open_artifact(tflite).labels) == (TFLITE, None)


@pytest.mark.parametrize("case, kinds, message", [
    ("missing", (RUN, KERAS, TFLITE), "no such file or folder"),
    ("suffix", (RUN, KERAS, TFLITE), "unsupported model type '.onnx'; expected a .tflite or .keras model, or a run folder"),
    ("tflite", (RUN, KERAS), "unsupported model type '.tflite'; expected a .keras model, or a run folder"),
    ("empty-folder", (RUN, KERAS, TFLITE), "no model.keras in this folder"),
    ("unfinished-run", (RUN, KERAS), "no model.keras in this run folder"),
])
def test_wrong_paths_are_one_line(tmp_path, case, kinds, message):
    path = {"missing": tmp_path / "nope.keras", "suffix": tmp_path / "m.onnx", "tflite": tmp_path / "m.tflite",
            "empty-folder": tmp_path, "unfinished-run": tmp_path / "run"}[case]
    if case in ("suffix", "tflite"):
        path.write_bytes(b"x")
    if case == "unfinished-run":
        shutil.copytree(OLD_RUN, path)
    with pytest.raises(KftError) as e:
        open_artifact(path, kinds)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_commands_share_the_opener(tmp_path, capsys):
    """export refuses a .tflite and bench takes a run folder, through the same decision."""
    from kft.bench.run import check_models
    from kft.export import export_run

    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    with pytest.raises(KftError, match="expected a .keras model, or a run folder"):
        export_run(model, "float32")
    run_dir = shutil.copytree(OLD_RUN, tmp_path / "run")
    (run_dir / rundir.MODEL).write_bytes(b"x")
    assert check_models([run_dir, model]) == [run_dir / rundir.MODEL, model]
