"""``kft compare``: statistics on hand-computed numbers, weights refusal, and a tiny real comparison
(mobilenet_v3_small from random init, 32 px, 2 images/class, 1 epoch) with resumption."""

import csv
import json
import math
import os
from pathlib import Path

import pytest

from kft import compare as cmp
from kft.cli import main
from kft.errors import KftError

# -- statistics ------------------------------------------------------------------------------------------------


def _row(strategy, seed, acc, backbone="mobilenet_v2", n=100, weights="imagenet"):
    return {"backbone": backbone, "strategy": strategy, "seed": seed, "samples_per_class": n, "weights": weights,
            "test_accuracy": acc}


@pytest.mark.parametrize("dof, expected", [(1, 12.7062047), (2, 4.3026527), (3, 3.1824463), (4, 2.7764451),
                                           (5, 2.5705818), (10, 2.2281389), (30, 2.0422725), (100, 1.9839715),
                                           (1000, 1.9623391)])
def test_t_quantile_matches_published_table(dof, expected):
    assert cmp.t_quantile(0.975, dof) == pytest.approx(expected, abs=2e-7)


def test_t_quantile_symmetry_and_other_levels():
    assert cmp.t_quantile(0.5, 7) == 0.0
    assert cmp.t_quantile(0.025, 4) == pytest.approx(-2.7764451, abs=2e-7)
    assert cmp.t_quantile(0.995, 9) == pytest.approx(3.2498355, abs=2e-7)
    assert cmp.t_quantile(0.9, 1) == pytest.approx(math.tan(math.pi * 0.4), rel=1e-9)  # Cauchy, exact
    # the exact branch (<= 300 dof) and the expansion (> 300) agree where they meet
    for p in (0.9, 0.975, 0.995):
        assert cmp._t_expansion(p, 301) == pytest.approx(cmp._t_bisect(p, 301), abs=1e-8)
    assert cmp._t_expansion(0.975, 5) != pytest.approx(2.5705818, abs=1e-4)  # why small dof need the exact CDF
    with pytest.raises(ValueError):
        cmp.t_quantile(0.975, 0)


def test_paired_summary_hand_computed():
    rows = [_row("two_stage", 0, 0.50), _row("two_stage", 1, 0.60), _row("two_stage", 2, 0.70),
            _row("full", 0, 0.55), _row("full", 1, 0.60), _row("full", 2, 0.80),
            _row("head_only", 0, 0.40), _row("head_only", 1, 0.70),  # seed 2 missing: paired over 0, 1
            _row("full", 0, 0.30, backbone="resnet18", weights="random init")]  # no baseline: no pair
    groups, paired = cmp.paired_summary(rows)
    g = {(x.backbone, x.strategy): x for x in groups}
    assert [(x.backbone, x.strategy) for x in groups] == [("mobilenet_v2", "two_stage"), ("mobilenet_v2", "full"),
                                                          ("mobilenet_v2", "head_only"), ("resnet18", "full")]
    assert g["mobilenet_v2", "two_stage"].mean == pytest.approx(0.6)
    assert g["mobilenet_v2", "two_stage"].std == pytest.approx(0.1)  # ddof=1
    assert g["mobilenet_v2", "full"].mean == pytest.approx(0.65)
    assert g["mobilenet_v2", "full"].std == pytest.approx(math.sqrt(0.0175))  # (.01+.0025+.0225)/2
    assert g["resnet18", "full"].n == 1 and math.isnan(g["resnet18", "full"].std)

    p = {x.strategy: x for x in paired}
    assert set(p) == {"full", "head_only"}
    full = p["full"]  # diffs .05, 0, .10
    assert full.seeds == [0, 1, 2] and full.diffs == pytest.approx([0.05, 0.0, 0.10])
    assert full.mean == pytest.approx(0.05) and full.std == pytest.approx(0.05)
    half = 4.3026527 * 0.05 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n) = 0.1242068
    assert full.ci_low == pytest.approx(0.05 - half, abs=1e-7)
    assert full.ci_high == pytest.approx(0.05 + half, abs=1e-7)
    head = p["head_only"]  # diffs -.10, +.10 over seeds 0, 1
    assert head.seeds == [0, 1] and head.n == 2
    assert head.mean == pytest.approx(0.0, abs=1e-12) and head.std == pytest.approx(math.sqrt(0.02))
    assert head.ci_high == pytest.approx(12.7062047 * math.sqrt(0.02) / math.sqrt(2), abs=1e-6)


def test_paired_summary_single_pair_has_no_interval():
    _, paired = cmp.paired_summary([_row("two_stage", 0, 0.5), _row("full", 0, 0.6)])
    assert paired[0].mean == pytest.approx(0.1) and math.isnan(paired[0].ci_low)


def test_parse_list_errors():
    assert cmp.parse_list("0, 1,2", "seeds", int) == (0, 1, 2)
    for text in ("0,,1", "0,x", "1,1", "-1"):
        with pytest.raises(KftError, match="--seeds"):
            cmp.parse_list(text, "seeds", int, minimum=0)


def test_reports_from_rows_learning_curve_and_labels(tmp_path):
    """Reports from synthetic rows: several sizes draw a learning curve; random init is labelled everywhere."""
    rows = []
    for n, base in ((10, 0.3), (50, 0.5)):
        for seed in (0, 1):
            for strategy, delta in (("two_stage", 0.0), ("head_only", -0.05)):
                rows.append({**_row(strategy, seed, base + delta + 0.01 * seed, n=n), "val_accuracy": 0.4,
                             "epochs": "stage1:3;stage2:2" if strategy == "two_stage" else "head:4", "seconds": 1.0,
                             "run": ""})
                rows.append({**rows[-1], "backbone": "resnet18", "weights": "random init", "test_accuracy": 0.1})
    settings = cmp.CompareSettings(("mobilenet_v2", "resnet18"), ("two_stage", "head_only"), (0, 1), (10, 50),
                                   tmp_path, weights="imagenet")
    files = cmp.write_reports(settings, rows)
    assert {f.name for f in files} == {"results.csv", "results.md", "compare.png", "learning_curve.png"}
    for name in ("compare.png", "learning_curve.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "results.md").read_text()
    assert "| resnet18 | **random init** | 10 | head_only |" in md
    assert "| mobilenet_v2 | imagenet | 50 | head_only | 2 | -5.00 |" in md  # paired diff in points
    assert "stage1 3.0, stage2 2.0" in md
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporaries


# -- weights refusal ---------------------------------------------------------------------------------------------


@pytest.fixture
def only_mobilenet_weights(tmp_path, monkeypatch):
    """A weights folder holding (a stand-in for) mobilenet_v3_small's file only, and an empty cache."""
    from kft.backbones import registry, weights

    wdir = tmp_path / "weights"
    wdir.mkdir()
    (wdir / registry.get("mobilenet_v3_small").weights_file).write_bytes(b"stand-in")
    monkeypatch.setenv("KFT_WEIGHTS_DIR", str(wdir))
    monkeypatch.setattr(weights, "CACHE_DIR", tmp_path / "empty-cache")
    return wdir


def test_refuses_backbones_without_local_weights(tmp_path, only_mobilenet_weights, capsys):
    out = tmp_path / "cmp"
    with pytest.raises(SystemExit) as e:
        main(["compare", "--backbones", "mobilenet_v3_small,resnet18,resnet34", "--strategies", "two_stage",
              "--seeds", "0", "--out", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no local ImageNet weights for resnet18, resnet34 (" in err
    assert "--weights none" in err and "random init" in err
    assert not out.exists()  # nothing started
    cmp.check_weights(["mobilenet_v3_small"], "imagenet")  # present -> accepted
    cmp.check_weights(["resnet18", "resnet34"], "none")  # explicit random init -> accepted
    with pytest.raises(KftError, match="fits one backbone"):
        cmp.check_weights(["resnet18", "resnet34"], str(only_mobilenet_weights / "x.h5"))


# -- a real (tiny) comparison --------------------------------------------------------------------------------------

STRATEGIES = ("two_stage", "head_only")
SEEDS = (0, 1)


def _args(out, **extra):
    args = {"backbones": "mobilenet_v3_small", "strategies": ",".join(STRATEGIES), "seeds": "0,1",
            "samples-per-class": "2", "val-per-class": "1", "max-epochs": "1", "limit-test": "20",
            "image-size": "32", "weights": "none", "cache": "off", "out": str(out), **extra}
    return ["compare", *[x for k, v in args.items() for x in (f"--{k}", v)], "--protocol", "holdout"]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    from conftest import require_env

    require_env("KFT_DATA_DIR")
    out = tmp_path_factory.mktemp("compare") / "cmp"
    main(_args(out))
    return out


def _run_dirs(out):
    return {(s, seed): out / "runs" / f"mobilenet_v3_small-{s}-s{seed}-n2" for s in STRATEGIES for seed in SEEDS}


def test_compare_writes_results(compared):
    for name in ("results.csv", "results.md", "compare.png", "compare.json"):
        assert (compared / name).is_file(), name
    assert not (compared / "learning_curve.png").exists()  # one samples-per-class value
    with open(compared / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == cmp.CSV_COLUMNS
    assert sorted((r["strategy"], int(r["seed"])) for r in rows) == sorted((s, x) for s in STRATEGIES for x in SEEDS)
    for r in rows:
        assert r["weights"] == "random init" and r["samples_per_class"] == "2"
        assert 0 <= float(r["test_accuracy"]) <= 1 and float(r["seconds"]) > 0
        metrics = json.loads((compared / r["run"] / "metrics.json").read_text())
        assert float(r["test_accuracy"]) == metrics["test_accuracy"] and metrics["test_images"] == 20
        assert r["epochs"] == ("stage1:1;stage2:1" if r["strategy"] == "two_stage" else "head:1")
    md = (compared / "results.md").read_text()
    assert "NOT transfer-learning results" in md
    assert "| mobilenet_v3_small | **random init** | 2 | two_stage | 2 |" in md
    assert "## Paired difference vs two_stage" in md and "| head_only | 2 |" in md
    assert cmp.CompareSettings(("mobilenet_v3_small",), STRATEGIES, SEEDS, (2,), compared, weights="none",
                               val_per_class=1, image_size=32, max_epochs=1, limit_test=20,
                               cache="off", protocol="holdout").command() in md
    cpu = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
           if line.startswith("model name")][:1] if Path("/proc/cpuinfo").exists() else []
    assert f"Machine: {cpu[0] if cpu else ''}" in md and f"{os.cpu_count()} cores" in md


def _table(folder):
    with open(folder / "results.csv") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


@pytest.mark.slow  # minutes on 2 cores; the fast suite covers its parts (CI time)
def test_print_jobs_then_jobs_2_give_the_same_results(compared, tmp_path, capsys):
    """The grid as `kft train` lines for a scheduler, then run by `--jobs 2` processes: the same table."""
    out = tmp_path / "parallel"
    capsys.readouterr()
    main([*_args(out), "--print-jobs"])
    printed = capsys.readouterr()
    lines = printed.out.splitlines()
    first = out.resolve() / "runs" / "mobilenet_v3_small-two_stage-s0-n2"
    assert len(lines) == 4 and lines[0].startswith("kft train mobilenet_v3_small --strategy two_stage --seed 0 ")
    assert lines[0].endswith(f"--cache off --no-refit --out {first}") and "then run `kft compare" in printed.err
    assert not (out / "runs").exists()  # nothing trained
    main([*_args(out), "--jobs", "2"])
    assert "training 4 runs in 2 processes" in capsys.readouterr().out
    assert _table(out) == _table(compared)
    assert (out / "logs" / "mobilenet_v3_small-head_only-s1-n2.log").is_file()


def test_same_seed_same_images_across_strategies(compared):
    runs = _run_dirs(compared)
    split = {k: json.loads((p / "split.json").read_text()) for k, p in runs.items()}
    for seed in SEEDS:
        a, b = split["two_stage", seed], split["head_only", seed]
        assert a["train"] == b["train"] and a["val"] == b["val"] and len(a["train"]) == 20
    assert split["two_stage", 0]["train"] != split["two_stage", 1]["train"]
    assert split["two_stage", 0]["test"] == split["two_stage", 1]["test"]  # same test subset for every run


def test_settings_change_is_refused(compared, capsys):
    with pytest.raises(SystemExit) as e:
        main(_args(compared, **{"max-epochs": "2"}))
    assert e.value.code == 2 and "max_epochs=1, not 2" in capsys.readouterr().err


def test_resume_skips_finished_and_restarts_unfinished(compared, capsys):
    runs = _run_dirs(compared)
    broken = runs["head_only", 1]
    (broken / "metrics.json").unlink()  # as if killed before the end
    (broken / "leftover.tmp").write_text("partial")
    before = {k: (p / "metrics.json").stat().st_mtime_ns for k, p in runs.items() if p != broken}
    capsys.readouterr()
    main(_args(compared))
    out = capsys.readouterr().out
    assert "(3 already finished, 1 to train)" in out and "(1 trained, 3 reused)" in out
    assert before == {k: (p / "metrics.json").stat().st_mtime_ns for k, p in runs.items() if p != broken}
    assert (broken / "metrics.json").is_file() and not (broken / "leftover.tmp").exists()
    with open(compared / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 4


def test_unfinished_run_folders(tmp_path):
    run = tmp_path / "mobilenet_v3_small-two_stage-s0-n2"
    run.mkdir()
    (run / "metrics.json").write_text('{"backbone": "mobilenet_v3_small", "strat')  # truncated
    assert cmp.finished_metrics(run) is None
    (run / "config.yaml").write_text("backbone: mobilenet_v3_small\n")
    cmp._clear_unfinished(run)
    assert not run.exists()
    run.mkdir()
    (run / "notes.txt").write_text("not a run")
    with pytest.raises(KftError, match="not a kft run"):
        cmp._clear_unfinished(run)
    assert (run / "notes.txt").exists()


def test_rows_say_the_label_protocol_and_labels_per_class():
    base = {"backbone": "mobilenet_v2", "strategy": "two_stage", "seed": 0, "samples_per_class": 80,
            "val_per_class": 20, "weights": "imagenet", "test_accuracy": 0.8, "val_accuracy": 0.8,
            "stages": [{"name": "stage1", "epochs": 3}], "seconds": 1.0}
    old = cmp.row_from_metrics(base)  # a run written before the refit protocol existed
    assert (old["label_protocol"], old["labels_per_class"]) == ("holdout", 100)
    refit = cmp.row_from_metrics({**base, "labels": {"protocol": "refit", "per_class": 100.0}})
    assert (refit["label_protocol"], refit["labels_per_class"]) == ("refit", 100.0)
    assert "**refit**" in cmp.format_markdown(cmp.CompareSettings(("mobilenet_v2",), ("two_stage",), (0,), (80,),
                                                                   Path("x")), [refit])
    # the refit protocol, now that the shipped plans default to fixed: --protocol refit, in the command and every plan
    settings = cmp.CompareSettings(("mobilenet_v2",), ("two_stage", "lp_ft_top"), (0,), (80,), Path("x"),
                                   protocol="refit")
    assert settings.command().split()[-4:] == ["--protocol", "refit", "--out", "x"]
    assert {job.plan.protocol for job in cmp.plan_jobs(settings)} == {"refit"}
    assert "**refit**" in cmp.format_markdown(settings, [])
    default = cmp.CompareSettings(("mobilenet_v2",), ("two_stage",), (0,), (80,), Path("x"))
    assert {job.plan.protocol for job in cmp.plan_jobs(default)} == {"fixed"}


def test_a_fixed_protocol_run_reports_without_a_validation_score():
    """A fixed run trains on every label and has no validation score: the report says so."""
    base = {"backbone": "mobilenet_v2", "strategy": "lp_ft_top", "seed": 0, "samples_per_class": 100,
            "val_per_class": 100, "weights": "imagenet", "test_accuracy": 0.85, "val_accuracy": None,
            "stages": [{"name": "probe", "epochs": 20}, {"name": "top", "epochs": 20}], "seconds": 290.0,
            "labels": {"protocol": "fixed", "per_class": 200.0}}
    rows = [cmp.row_from_metrics({**base, "seed": s, "test_accuracy": 0.85 + s / 100}) for s in (0, 1)]
    md = cmp.format_markdown(cmp.CompareSettings(("mobilenet_v2",), ("lp_ft_top",), (0, 1), (100,), Path("x")), rows)
    assert "**fixed**" in md
    line = next(x for x in md.splitlines() if x.startswith("| mobilenet_v2 |") and "lp_ft_top" in x)
    assert "| 85.50 ± 0.71 | – ± – | probe 20.0, top 20.0 |" in line
