"""Plans from mappings and YAML files, checked against their declarations (``kft.plan.schema``).

Loading refuses an unknown key, an unknown block or a bad value with one sentence that
names the key and what is allowed. The checks of single values come from the fields'
declarations (``kft.plan.options``); what spans several keys (stage blocks exist in the
backbone, unique stage names ...) is written here.

    plan = plan_from_dict({"backbone": "mobilenet_v2", "stages": [{"name": "probe", "trainable": ["head"]}]})
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kft.backbones import registry
from kft.errors import KftError
from kft.plan.options import OptionError, check_value, option_of
from kft.plan.schema import FIXED, HOLDOUT, REFIT, SECTIONS, Plan, Stage

__all__ = ["load_plan", "plan_from_dict", "validate"]

LEGACY_PROTOCOL_KEYS = ("refit", "select")  # run folders and plans written before ``protocol`` existed


def _build(cls, data, where: str):
    """Construct dataclass ``cls`` from a mapping, refusing unknown keys."""
    if not isinstance(data, dict):
        raise KftError(f"{where}: expected a mapping, got {type(data).__name__}")
    if cls is Plan:
        data = legacy_protocol(data, where)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise KftError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(known)}")
    kwargs = {}
    for k, v in data.items():
        if k in SECTIONS:
            v = _build(SECTIONS[k], v or {}, f"{where}.{k}")
        elif k == "stages":
            if not isinstance(v, list) or not v:
                raise KftError(f"{where}.stages: expected a non-empty list of stages")
            v = [_build(Stage, s, f"{where}.stages[{i}]") for i, s in enumerate(v)]
        kwargs[k] = v
    missing = [f.name for f in known.values() if f.name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise KftError(f"{where}: missing key {missing[0]!r}")
    return cls(**kwargs)


def legacy_protocol(data: dict, where: str) -> dict:
    """``refit``/``select`` (plans and run folders before ``protocol``) as a ``protocol``: refit false is
    holdout; refit true is refit, or fixed with select false."""
    if not any(k in data for k in LEGACY_PROTOCOL_KEYS):
        return data
    if "protocol" in data:
        raise KftError(f"{where}: give protocol, or the older keys refit/select, not both")
    data = dict(data)
    refit, select = data.pop("refit", False), data.pop("select", True)
    for key, value in (("refit", refit), ("select", select)):
        if not isinstance(value, bool):
            raise OptionError(key, f"must be true or false, got {value!r}")
    data["protocol"] = HOLDOUT if not refit else (REFIT if select else FIXED)
    return data


def _check_fields(obj, prefix: str) -> None:
    for f in dataclasses.fields(obj):
        declared = option_of(f)
        if declared is not None:
            check_value(prefix + f.name, getattr(obj, f.name), declared)


def validate(plan: Plan) -> Plan:
    """Check every value against its declaration, and what spans keys: the stages' blocks
    exist in the backbone's block map, stage names are unique, a multiplier's block trains."""
    spec = registry.get(plan.backbone)  # unknown backbone -> one line listing the known ones
    blocks = registry.all_block_names(spec)
    _check_fields(plan, "")
    _check_fields(plan.augment, "augment.")
    _check_fields(plan.self_training, "self_training.")
    if not plan.stages:
        raise KftError("a plan needs at least one stage")
    names = [s.name for s in plan.stages]
    if len(set(names)) != len(names):
        raise KftError(f"stage names must be unique, got {names}")
    for i, s in enumerate(plan.stages):
        where = f"stages[{i}] ({s.name})"
        _check_fields(s, where + ".")
        for b in [*s.trainable, *s.lr_multipliers]:
            if b not in blocks:
                raise KftError(f"{where}: unknown block {b!r} for {plan.backbone}; blocks: {', '.join(blocks)}")
        extra = sorted(set(s.lr_multipliers) - set(s.trainable))
        if extra:
            raise KftError(f"{where}.lr_multipliers: block {extra[0]!r} is not trainable in this stage")
        if "preprocess" in s.trainable:
            raise KftError(f"{where}: the preprocess block has no weights to train")
    if plan.unlabeled is not None and plan.distribute != "none":
        raise KftError("unlabeled images: self-training runs with distribute none only")
    if plan.unlabeled is not None and plan.retrain_on_all:
        raise KftError("retrain_on_all retrains a labelled-only recipe; with unlabeled images leave it off")
    return plan


def plan_from_dict(data: dict, where: str = "config") -> Plan:
    return validate(_build(Plan, data, where))


def load_plan(path: str | Path) -> Plan:
    """A plan from a YAML file (``kft plan`` writes one to start from)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise KftError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise KftError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    return plan_from_dict(data, str(path))
