"""The plan a run trains with: a shipped strategy or a YAML file, then a user's changes.

Changes come as plan keys (``{"image_size": 96, "self_training.lr_scale": 2}``, dotted for
nested keys, ``stages.top.max_epochs`` or ``stages.1.max_epochs`` for one stage), plus two
conveniences: ``labels`` (labels per class in total, split 80/20 for the runs that select)
and ``max_epochs`` (a cap on every stage, for smoke runs). The old ``kft train`` flags'
names (``student_lr_scale``, ``refit`` ...) are accepted too (``legacy_settings``).

    plan = resolve_plan("mobilenet_v2", settings={"image_size": 96}, labels=50)
"""

from __future__ import annotations

import dataclasses

from kft.errors import KftError
from kft.plan import strategies
from kft.plan.options import COUNT, Option, OptionError, check_value, option_of
from kft.plan.schema import FIXED, HOLDOUT, REFIT, SECTIONS, Plan
from kft.plan.validate import load_plan, plan_from_dict

__all__ = ["LABELS", "MAX_EPOCHS", "VAL_FRACTION", "flagged_keys", "labels_split", "legacy_settings",
           "parse_setting", "protocol_from_flags", "resolve_plan", "with_settings"]

VAL_FRACTION = 0.2  # labels N: the inner validation split's share of the N (it trains too unless holdout)
LABELS = Option("Labels per class in total (80% train + 20% validation; all of them train unless holdout).",
                kind=COUNT, minimum=2)
MAX_EPOCHS = Option("Cap every stage's epochs (smoke runs).", kind=COUNT, minimum=1)


def flagged_keys() -> dict[str, str]:
    """Plan key -> the old ``kft train`` flag that set it (``self_training.lr_scale`` -> ``--student-lr-scale``)."""
    out = {}
    for prefix, cls in (("", Plan), *((f"{name}.", c) for name, c in SECTIONS.items())):
        for f in dataclasses.fields(cls):
            declared = option_of(f)
            if declared is not None and declared.flag:
                out[prefix + f.name] = declared.flag
    return out


def legacy_settings(**old) -> dict:
    """Keyword settings as plan-key settings: a top-level plan key (``image_size``, ``protocol``), an
    old flag's name (``student_lr_scale`` -> ``self_training.lr_scale``) or the old ``refit``/``select``
    booleans (resolved against the plan's protocol in ``resolve_plan``); None values are dropped."""
    by_name = {flag.lstrip("-").replace("-", "_"): key for key, flag in flagged_keys().items()}
    plan_keys = {f.name for f in dataclasses.fields(Plan)}
    settings, protocol = {}, {}
    for name, value in old.items():
        if value is None:
            continue
        if name in ("refit", "select"):
            protocol[name] = value
        elif name in by_name or name in plan_keys:
            settings[by_name.get(name, name)] = value
        else:
            raise KftError(f"unknown setting {name!r}; plan keys: {', '.join(sorted(plan_keys))}")
    if protocol:
        if "protocol" in settings:
            raise KftError("give protocol, or the older refit/select, not both")
        settings["protocol"] = protocol  # resolved against the plan's own protocol by resolve_plan
    return settings


def protocol_from_flags(current: str, flags: dict) -> str:
    """The protocol after the old ``refit``/``select`` booleans were applied to ``current``."""
    refit = flags.get("refit", current != HOLDOUT)
    select = flags.get("select", current != FIXED)
    if flags.get("select") is False and not refit:
        raise KftError("select false needs refit: a holdout run trains on the training split and selects on the "
                       "validation split, which is what its validation labels are for")
    return HOLDOUT if not refit else (REFIT if select else FIXED)


def labels_split(labels_per_class: int) -> tuple[int, int]:
    """``labels_per_class`` labels in total -> (train, validation) per class: 80/20, at least one of each."""
    check_value("labels", labels_per_class, LABELS)
    val = min(labels_per_class - 1, max(1, round(labels_per_class * VAL_FRACTION)))
    return labels_per_class - val, val


def parse_setting(text: str) -> tuple[str, object]:
    """``"key=value"`` (a ``--set``) -> (key, value), the value read as YAML: ``96`` is a number,
    ``true`` a boolean, ``null`` nothing, ``[a, b]`` a list."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise KftError(f"expected key=value, got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        return key.strip(), value


def with_settings(plan: Plan, settings: dict) -> Plan:
    """``plan`` with each dotted key of ``settings`` set, validated as a whole."""
    data = plan.to_dict()
    for key, value in settings.items():
        _set(data, key, value)
    return plan_from_dict(data, "plan")


def _set(data: dict, key: str, value) -> None:
    parts, node, where = key.split("."), data, []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):  # stages: by name or position
            names = [s.get("name") for s in node]
            k = names.index(part) if part in names else int(part) if part.isdigit() and int(part) < len(node) else None
            if k is None:
                raise KftError(f"unknown stage {part!r} in {key!r}; stages: {', '.join(map(str, names))}")
            if last:
                raise KftError(f"{key!r} names a stage; set one of its keys, e.g. {key}.max_epochs")
            node, where = node[k], [*where, part]
            continue
        if part not in node:
            allowed = ", ".join(node)
            raise KftError(f"unknown plan key {'.'.join([*where, part])!r}; allowed here: {allowed}")
        if last:
            node[part] = value
        else:
            node, where = node[part], [*where, part]
            if not isinstance(node, (dict, list)):
                raise KftError(f"{'.'.join(where)!r} has no keys below it")


def resolve_plan(backbone: str, strategy: str | None = None, config=None, *, settings: dict | None = None,
                 labels: int | None = None, max_epochs: int | None = None, **keys) -> Plan:
    """A shipped ``strategy`` plan or the ``config`` YAML, with ``settings`` (plan keys, dotted for
    nested ones), plan keys given as keyword arguments (``image_size=96``; see ``legacy_settings``),
    ``labels`` and the ``max_epochs`` cap applied."""
    if config and strategy:
        raise KftError("give either a strategy or a config file, not both")
    if config:
        plan = load_plan(config)
        if plan.backbone != backbone:
            raise KftError(f"{config} is a plan for {plan.backbone!r}, not {backbone!r}")
    else:
        plan = strategies.build_plan(backbone, strategy or strategies.DEFAULT)
    settings = {**legacy_settings(**keys), **(settings or {})}
    if isinstance(settings.get("protocol"), dict):  # the old refit/select booleans
        settings["protocol"] = protocol_from_flags(plan.protocol, settings["protocol"])
    if max_epochs is not None:
        check_value("max_epochs", max_epochs, MAX_EPOCHS)
    if labels is not None:
        if "samples_per_class" in settings or "val_per_class" in settings:
            raise KftError("give either labels (per class in total) or samples_per_class/val_per_class, not both")
        protocol = settings.get("protocol", plan.protocol)
        if protocol == HOLDOUT:
            if settings.get("protocol") == HOLDOUT:
                raise OptionError("labels", "counts every label, so it needs a protocol where every label trains "
                                  "(fixed or refit), not holdout")
            settings["protocol"] = REFIT  # a holdout plan keeps its selection, then every label trains
        settings["samples_per_class"], settings["val_per_class"] = labels_split(labels)
    plan = with_settings(plan, settings)
    if max_epochs is not None:
        plan.stages = [dataclasses.replace(s, max_epochs=min(s.max_epochs, max_epochs)) for s in plan.stages]
    return plan

