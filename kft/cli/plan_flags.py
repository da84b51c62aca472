"""``kft train``'s plan flags, generated from the plan's declarations (``kft.plan.options``): the few
an option declares as its own (``cli``: ``--test-split``), and the old ones (``flag``), hidden, each
setting its plan key with a one-line notice naming the ``--set`` that replaces it (for one release)."""

from __future__ import annotations

import dataclasses

import click

from kft.plan import Plan
from kft.plan.options import COUNT, COUNT_OR_ALL, NUMBER, option_of
from kft.plan.options import BOOL
from kft.plan.resolve import flagged_keys
from kft.plan.schema import SECTIONS

__all__ = ["CountOrAll", "deprecated_settings", "old_flags", "plan_flags", "plan_flag_settings"]


class CountOrAll(click.ParamType):
    """A positive whole number, or ``all``."""

    name = "N|all"

    def convert(self, value, param, ctx):
        if value == "all" or isinstance(value, int):
            return value
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is neither a whole number nor 'all'", param, ctx)


def _plan_flag_type(key: str):
    """The click type of an old flag, from its option's declaration."""
    declared = _declared(key)
    if declared.choices:
        return click.Choice(list(declared.choices))
    return {COUNT: int, NUMBER: float, COUNT_OR_ALL: CountOrAll()}.get(declared.kind, str)


def _declared(key: str):
    cls, name = (Plan, key) if "." not in key else (SECTIONS[key.split(".")[0]], key.split(".")[1])
    return option_of({f.name: f for f in dataclasses.fields(cls)}[name])


def _cli_keys() -> dict[str, str]:
    """Plan key -> its own visible flag (``test_split`` -> ``--test-split``)."""
    return {f.name: option_of(f).cli for f in dataclasses.fields(Plan) if option_of(f) and option_of(f).cli}


def plan_flags(command):
    """The visible flags the plan declares (``Option.cli``), their help from the declaration."""
    for key, flag in reversed(_cli_keys().items()):
        declared = _declared(key)
        if declared.kind == BOOL:
            command = click.option(flag, "plan__" + key, is_flag=True, default=None, help=declared.help)(command)
        else:
            command = click.option(flag, "plan__" + key, type=_plan_flag_type(key), help=declared.help)(command)
    return command


def plan_flag_settings(values: dict, settings: dict) -> None:
    """The visible plan flags' values (None: not given) into ``settings``."""
    for dest, value in values.items():
        if dest.startswith("plan__") and value is not None:
            settings[dest[len("plan__"):]] = value


def old_flags(command):
    """The old ``kft train`` flags, hidden: each sets its plan key, with a one-line notice."""
    for key, flag in reversed(flagged_keys().items()):
        if flag == "--unlabeled":
            continue
        command = click.option(flag, "old__" + key.replace(".", "__"), type=_plan_flag_type(key), hidden=True,
                               help=f"Deprecated: --set {key}=VALUE.")(command)
    command = click.option("--labels-per-class", "old_labels", type=int, hidden=True,
                           help="Deprecated: --labels.")(command)
    command = click.option("--refit/--no-refit", "old_refit", default=None, hidden=True,
                           help="Deprecated: --set protocol=...")(command)
    return click.option("--select/--no-select", "old_select", default=None, hidden=True,
                        help="Deprecated: --set protocol=...")(command)


def deprecated_settings(old: dict, settings: dict, labels):
    """The old flags' values as plan settings, each with a one-line notice; returns ``labels``."""
    flags = flagged_keys()
    for dest, value in old.items():
        if value is None or dest in ("old_labels", "old_refit", "old_select") or not dest.startswith("old__"):
            continue
        key = dest[len("old__"):].replace("__", ".")
        click.echo(f"note: {flags[key]} is deprecated; use --set {key}={value}", err=True)
        settings[key] = value
    protocol = {k: old[f"old_{k}"] for k in ("refit", "select") if old.get(f"old_{k}") is not None}
    if protocol:
        spelled = " ".join(f"--{'' if v else 'no-'}{k}" for k, v in protocol.items())
        click.echo(f"note: {spelled} is deprecated; use --set protocol=fixed|refit|holdout", err=True)
        settings["protocol"] = protocol
    if old.get("old_labels") is not None:
        click.echo("note: --labels-per-class is deprecated; use --labels", err=True)
        labels = old["old_labels"] if labels is None else labels
    return labels
