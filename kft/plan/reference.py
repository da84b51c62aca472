"""Plans for people: a plan as commented YAML, and the reference of every key.

Both are generated from the declarations in ``kft.plan.schema``, so they cannot drift
from the code: ``kft plan BACKBONE`` prints ``plan_yaml``, ``kft plan --keys`` prints
``key_reference`` (also docs/plan.md, which a test keeps equal to it).
"""

from __future__ import annotations

import dataclasses
import textwrap

from kft.plan import strategies
from kft.plan.options import SECTION, option_of
from kft.plan.schema import Augment, Plan, SelfTraining, Stage

__all__ = ["SECTIONS_IN_ORDER", "key_names", "key_reference", "plan_yaml"]

SECTIONS_IN_ORDER = (("", Plan, "The plan"), ("stages[].", Stage, "Each stage (`stages:` list)"),
                     ("augment.", Augment, "`augment:`"), ("self_training.", SelfTraining, "`self_training:`"))


def key_names() -> dict[str, list[str]]:
    """Section title -> its keys, as a plan file spells them (sections themselves included)."""
    return {title: [f.name for f in dataclasses.fields(cls)] for _, cls, title in SECTIONS_IN_ORDER}


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        if dataclasses.is_dataclass(value):
            return "(section)"
    else:
        return "(required)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return "`{}`".format(value if value != {} else "{}")


def key_reference() -> str:
    """Markdown: per section, one row per key: key, default, allowed values, meaning; then the
    old ``kft train`` flags and the keys they set."""
    lines = ["# Plan keys", "",
             "Generated from `kft/plan/schema.py` by `kft plan --keys`; set any of them in a plan file "
             "(`kft plan BACKBONE > plan.yaml`, then `kft train BACKBONE --config plan.yaml`) or on the command "
             "line: `kft train mobilenet_v2 --set key=value` (dotted for nested keys: "
             "`--set self_training.lr_scale=2`, `--set stages.top.max_epochs=5`).", ""]
    for prefix, cls, title in SECTIONS_IN_ORDER:
        lines += [f"## {title}", "", "| key | default | allowed | meaning |", "|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            o = option_of(f)
            allowed = "see below" if o.kind == SECTION else o.requirement()
            lines.append(f"| `{prefix}{f.name}` | {_default(f)} | {allowed} | {o.help} |")
        lines.append("")
    lines += ["## Old `kft train` flags", "",
              "Still accepted for one release, with a one-line notice naming the `--set` that replaces each.", "",
              "| flag | plan key |", "|---|---|"]
    from kft.plan.resolve import flagged_keys

    for key, flag in flagged_keys().items():
        lines.append(f"| `{flag}` | `{key}` |")
    lines += ["| `--refit` / `--no-refit`, `--select` / `--no-select` | `protocol` |",
              "| `--labels-per-class N` | `--labels N` |", ""]
    return "\n".join(lines)


def plan_yaml(plan: Plan) -> str:
    """``plan`` as commented YAML that ``kft train --config`` reads back unchanged."""
    import yaml

    title = f"{plan.backbone} / {plan.strategy}"
    if plan.strategy in strategies.names():
        title += f": {strategies.get(plan.strategy).summary}"
    header = [*textwrap.wrap(title, 96),
              "Keys: `kft plan --keys` (docs/plan.md). Block names: `kft backbones`.",
              f"Edit, then: kft train {plan.backbone} --config THIS_FILE"]
    body = yaml.safe_dump(plan.to_dict(), sort_keys=False, default_flow_style=None, width=100)
    return "".join(f"# {line}\n" for line in header) + body
