"""Bad input: one line naming the problem, exit code 2, no traceback, nothing written."""

import os

import pytest

from conftest import require_env
from kft.cli import main


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    err = capsys.readouterr().err
    return e.value.code, err


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]


def test_unknown_backbone_lists_valid_ones(capsys):
    assert_one_line_error(*run(capsys, "train", "vgg16"), "unknown backbone 'vgg16'", "mobilenet_v2", "resnet18")


def test_unknown_strategy(capsys):
    assert_one_line_error(*run(capsys, "train", "mobilenet_v2", "--strategy", "yolo"),
                          "unknown strategy 'yolo'", "two_stage")


def test_config_unknown_key_and_unknown_block(capsys, tmp_path):
    bad_key = tmp_path / "a.yaml"
    bad_key.write_text("backbone: mobilenet_v2\nlearning_rat: 0.1\nstages: [{name: s, trainable: [head]}]\n")
    assert_one_line_error(*run(capsys, "train", "mobilenet_v2", "--config", str(bad_key)),
                          "unknown key 'learning_rat'", "allowed keys")
    bad_block = tmp_path / "b.yaml"
    bad_block.write_text("backbone: resnet18\nstages: [{name: s, trainable: [layer5, head]}]\n")
    assert_one_line_error(*run(capsys, "train", "resnet18", "--config", str(bad_block)),
                          "unknown block 'layer5' for resnet18", "layer4")
    bad_stage_key = tmp_path / "c.yaml"
    bad_stage_key.write_text("backbone: resnet18\nstages: [{name: s, trainable: [head], epochs: 3}]\n")
    assert_one_line_error(*run(capsys, "train", "resnet18", "--config", str(bad_stage_key)),
                          "unknown key 'epochs'", "max_epochs")
    bad_value = tmp_path / "d.yaml"
    bad_value.write_text("backbone: resnet18\nstages: [{name: s, trainable: [head], optimizer: lion}]\n")
    assert_one_line_error(*run(capsys, "train", "resnet18", "--config", str(bad_value)),
                          "optimizer: 'lion' is not one of adam, adamw, sgd")
    assert_one_line_error(*run(capsys, "train", "resnet18", "--config", str(tmp_path / "none.yaml")),
                          "config file not found")


@pytest.mark.parametrize("flag,value,named", [("--max-epochs", "0", "--max-epochs"), ("--limit-test", "0", "--limit-test"),
                                              ("--labels", "1", "--labels"),
                                              ("--set", "image_size=-4", "image_size must be an integer >= 32"),
                                              ("--set", "samples_per_class=0", "samples_per_class"),
                                              ("--set", "cache_views=0", "cache_views"),
                                              ("--cache-views", "0", "--cache-views")])  # an old flag: named as typed
def test_non_positive_numbers(capsys, flag, value, named, tmp_path):
    code, err = run(capsys, "train", "mobilenet_v2", flag, value, "--out", str(tmp_path / "run"))
    assert_one_line_error(code, err, named, "must be")
    assert not (tmp_path / "run").exists()


def test_missing_data_says_where_it_looked(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("KFT_DATA_DIR", str(tmp_path))
    code, err = run(capsys, "train", "mobilenet_v2", "--out", str(tmp_path / "run"))
    assert_one_line_error(code, err, str(tmp_path), "cifar10_train.npz")
    assert not (tmp_path / "run").exists()


def test_samples_per_class_larger_than_the_class(capsys, tmp_path):
    require_env("KFT_DATA_DIR")
    code, err = run(capsys, "train", "mobilenet_v2", "--set", "samples_per_class=6000", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "5000 images", "6000")
    assert not (tmp_path / "r").exists()


def test_weights_whose_shapes_do_not_match_name_the_layer(capsys, tmp_path):
    require_env("KFT_DATA_DIR")
    require_env("KFT_WEIGHTS_DIR")
    wrong = os.path.join(os.environ["KFT_WEIGHTS_DIR"], "mobilenet_v3_small_0.75_imagenet_no_top.weights.h5")
    code, err = run(capsys, "train", "mobilenet_v2", "--weights", wrong, "--set", "samples_per_class=1",
                    "--set", "val_per_class=1", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "does not fit mobilenet_v2", "layer 'Conv1'")
    assert not (tmp_path / "r").exists()


def test_resume_of_non_run_and_export_without_model(capsys, tmp_path):
    assert_one_line_error(*run(capsys, "train", "--resume", str(tmp_path)), "is not a kft run folder")
    assert_one_line_error(*run(capsys, "train", "--resume", str(tmp_path / "nope")), "is not a folder")
    code, err = run(capsys, "export", str(tmp_path), "--tflite", "--out", str(tmp_path / "exp"))
    assert code == 2 and "Traceback" not in err and str(tmp_path) in err
    assert not (tmp_path / "exp").exists() or not any((tmp_path / "exp").iterdir())


def test_output_folder_not_writable(capsys, tmp_path):
    require_env("KFT_DATA_DIR")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(*run(capsys, "train", "mobilenet_v2", "--out", str(blocker / "run")),
                          "is not writable")
