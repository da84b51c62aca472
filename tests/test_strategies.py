"""Strategies as code: every backbone x strategy plan builds, and `kft plan` prints what `--config` reads."""

from pathlib import Path

import pytest
import yaml

from kft.plan import strategies
from kft.backbones import registry
from kft.cli import main
from kft.plan import load_plan, plan_from_dict, resolve_plan
from kft.errors import KftError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("backbone", registry.names())
@pytest.mark.parametrize("name", strategies.names())
def test_every_backbone_x_strategy_plan_builds_by_block_position(backbone, name):
    plan = strategies.build_plan(backbone, name)
    blocks = registry.get(backbone).block_names
    assert plan.backbone == backbone and plan.strategy == name
    trained = [set(s.trainable) for s in plan.stages]
    assert all("head" in t for t in trained)
    if name == "two_stage":  # the last block + head, then + the block before with smaller multipliers
        assert trained == [{blocks[-1], "head"}, {blocks[-2], blocks[-1], "head"}]
        m = plan.stages[1].lr_multipliers
        assert m[blocks[-2]] < m[blocks[-1]] < 1
    if name == "full":
        assert trained == [{*blocks, "head"}]
    if name == "lp_ft":  # the head alone, then every block, the last one faster than the rest
        assert trained == [{"head"}, {*blocks, "head"}]
        m = plan.stages[1].lr_multipliers
        assert set(m) == set(blocks) and all(m[b] < m[blocks[-1]] < 1 for b in blocks[:-1])
    if name == "lp_ft_top":  # the head alone, then two_stage's second stage: lower blocks stay frozen (cached)
        assert trained == [{"head"}, {blocks[-2], blocks[-1], "head"}]
        assert plan.stages[1].lr_multipliers == strategies.build_plan(backbone, "two_stage").stages[1].lr_multipliers
    # stages only ever unfreeze more (what makes the frozen-prefix cache valid for the whole run)
    assert all(a <= b for a, b in zip(trained, trained[1:]))


def test_unknown_strategy_and_taken_name():
    with pytest.raises(KftError, match="strategy"):
        strategies.build_plan("mobilenet_v2", "fastest")
    with pytest.raises(ValueError, match="registered already"):
        strategies.strategy("two_stage", "again")(lambda blocks: [])


def test_kft_plan_prints_yaml_that_config_reads_back(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["plan", "resnet34", "--strategy", "three_stage"])
        raise SystemExit(0)
    assert (e.value.code or 0) == 0
    text = capsys.readouterr().out
    assert text.startswith("# resnet34 / three_stage")
    assert plan_from_dict(yaml.safe_load(text)).to_dict() == strategies.build_plan("resnet34", "three_stage").to_dict()
    (tmp_path / "p.yaml").write_text(text.replace("max_epochs: 20", "max_epochs: 7"))
    edited = resolve_plan("resnet34", config=tmp_path / "p.yaml")
    assert [s.max_epochs for s in edited.stages] == [7, 30, 7]


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_plan_in_configs_loads(path):
    plan = load_plan(path)
    if path.name.startswith("mobilenet_v2-") and plan.strategy in strategies.names():  # annotated shipped plans
        assert plan.to_dict() == strategies.build_plan("mobilenet_v2", plan.strategy).to_dict()


def test_the_default_plan_is_lp_ft_top_with_every_label_for_fixed_epochs():
    plan = resolve_plan("mobilenet_v2")
    assert (plan.strategy, plan.protocol, plan.cache_views) == ("lp_ft_top", "fixed", 8)  # its own views
    assert resolve_plan("mobilenet_v2", strategy="two_stage").protocol == "fixed"  # every shipped plan
    assert resolve_plan("mobilenet_v2", strategy="two_stage").cache_views == 16
    assert resolve_plan("mobilenet_v2", cache_views=4).cache_views == 4  # the command line still decides
    assert resolve_plan("mobilenet_v2", settings={"protocol": "holdout"}).protocol == "holdout"
    assert resolve_plan("mobilenet_v2", refit=False).protocol == "holdout"  # the old spelling still works
    # self-training follows the plan's protocol: the model trained on every label teaches (kft.training.selftrain)
    assert resolve_plan("mobilenet_v2", unlabeled="cifar10-rest").protocol == "fixed"  # as without unlabelled images
    assert resolve_plan("mobilenet_v2", unlabeled="cifar10-rest", protocol="holdout").protocol == "holdout"
