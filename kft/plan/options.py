"""How a plan option is declared: once, on its dataclass field, with everything the tools need.

Each field of the plan's dataclasses (``kft.plan.schema``) carries an :class:`Option` in its
metadata: what values it takes, its help text and, where it has one, its command-line flag.
From that one declaration kft derives the validation (``check_value``), the ``--set`` parser
and the deprecated flags of ``kft train`` (``kft.cli.train``), and the key reference that
``kft plan --keys`` prints and the README shows (``kft.plan.reference``).

    @dataclass
    class Augment:
        flip: bool = option(True, "Random horizontal flips.")
        rotate: float = option(0.03, "Fraction of a full turn.", kind=NUMBER, minimum=0)

An error names the option by its key (``image_size must be ...``), never by a flag; the CLI
turns the key back into the flag a user typed (``OptionError.key``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from kft.errors import KftError

__all__ = ["BOOL", "COUNT", "COUNT_OR_ALL", "NUMBER", "TEXT", "Option", "OptionError", "check_value", "choices_of",
           "option", "option_of"]

# kinds of value
COUNT = "count"  # a whole number (bool excluded)
COUNT_OR_ALL = "count|all"  # a whole number, or the word "all"
NUMBER = "number"  # int or float (bool excluded)
BOOL = "bool"
TEXT = "text"
BLOCKS = "blocks"  # a list of block names
MULTIPLIERS = "multipliers"  # block name -> number
SECTION = "section"  # a nested dataclass (augment, self_training) or the stage list


class OptionError(KftError):
    """A plan value that is not allowed: ``key`` names the option (``self_training.lr_scale``),
    ``problem`` says what is wrong (``must be a number > 0, got 0``)."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key} {problem}" if not problem.startswith(":") else f"{key}{problem}")
        self.key, self.problem = key, problem


@dataclass(frozen=True)
class Option:
    """One option's declaration: ``help``, ``kind`` of value, ``choices``, an inclusive
    ``minimum``/``maximum`` (``above``/``below``: exclusive bounds), ``nullable`` (null allowed),
    ``flag``: the old ``kft train`` flag that set it (kept, hidden, with a deprecation notice);
    ``cli``: a ``kft train`` flag of its own (shown in ``--help``) for the few options a user
    reaches for often."""

    help: str
    kind: str = TEXT
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None
    nullable: bool = False
    flag: str | None = None
    cli: str | None = None

    def requirement(self) -> str:
        """What a valid value is, in words: ``a positive integer``, ``a number in [0, 1)``."""
        if self.choices:
            text = "one of " + ", ".join(map(str, self.choices))
        elif self.kind == BOOL:
            text = "true or false"
        elif self.kind in (COUNT, COUNT_OR_ALL):
            text = "a positive integer" if self.minimum == 1 else _bounded("an integer", self)
            if self.kind == COUNT_OR_ALL:
                text += " or 'all'"
        elif self.kind == NUMBER:
            text = "a positive number" if self.above == 0 and self.maximum is None and self.below is None \
                else _bounded("a number", self)
        elif self.kind == BLOCKS:
            text = "a list of block names"
        elif self.kind == MULTIPLIERS:
            text = "a mapping of block name to a number >= 0"
        else:
            text = "text"
        return text + (" or null" if self.nullable else "")


def _bounded(noun: str, o: Option) -> str:
    low = "[" if o.minimum is not None else "(" if o.above is not None else None
    high = "]" if o.maximum is not None else ")" if o.below is not None else None
    lo = o.minimum if o.minimum is not None else o.above
    hi = o.maximum if o.maximum is not None else o.below
    if low and high:
        return f"{noun} in {low}{_num(lo)}, {_num(hi)}{high}"
    if low:
        return f"{noun} {'>=' if low == '[' else '>'} {_num(lo)}"
    if high:
        return f"{noun} {'<=' if high == ']' else '<'} {_num(hi)}"
    return noun


def _num(x) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def option(default=dataclasses.MISSING, help: str = "", *, default_factory=dataclasses.MISSING,
           **declaration) -> dataclasses.Field:
    """A dataclass field declared as a plan option (see :class:`Option` for ``declaration``)."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"option": Option(help, **declaration)})


def option_of(field: dataclasses.Field) -> Option | None:
    return field.metadata.get("option")


def choices_of(cls, name: str) -> tuple:
    """The allowed values of option ``name`` of dataclass ``cls`` (``choices_of(Plan, "distribute")``)."""
    (f,) = [f for f in dataclasses.fields(cls) if f.name == name]
    return option_of(f).choices


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_value(key: str, value, o: Option) -> None:
    """Raise ``OptionError`` naming ``key`` unless ``value`` is what ``o`` allows."""
    if value is None:
        if o.nullable:
            return
        raise OptionError(key, f"must be {o.requirement()}, got None")
    if o.choices:
        if value not in o.choices:
            raise OptionError(key, f": {value!r} is not one of {', '.join(map(str, o.choices))}")
        return
    ok = {BOOL: lambda v: isinstance(v, bool),
          COUNT: _is_count,
          COUNT_OR_ALL: lambda v: _is_count(v) or v == "all",
          NUMBER: _is_number,
          TEXT: lambda v: isinstance(v, str) and v.strip() != "",
          BLOCKS: lambda v: isinstance(v, list) and len(v) > 0 and all(isinstance(b, str) for b in v),
          MULTIPLIERS: lambda v: isinstance(v, dict) and all(_is_number(m) and m >= 0 for m in v.values()),
          SECTION: lambda v: True}[o.kind](value)
    if ok and _is_number(value) and o.kind in (COUNT, COUNT_OR_ALL, NUMBER):
        ok = ((o.minimum is None or value >= o.minimum) and (o.maximum is None or value <= o.maximum)
              and (o.above is None or value > o.above) and (o.below is None or value < o.below))
    if not ok:
        raise OptionError(key, f"must be {o.requirement()}, got {value!r}")
