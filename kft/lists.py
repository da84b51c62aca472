"""The one parser of comma-separated command-line lists (``--seeds 0,1,2``, ``--threads 1,2``,
``--quantize float32,int8``), so every option reports a bad list the same way."""

from __future__ import annotations

from collections.abc import Callable

from kft.errors import KftError


def parse_list(text, what: str, cast: Callable = str, minimum: int | None = None) -> tuple:
    """``"a,b,c"`` (or an already split sequence) -> a tuple of ``cast`` values.

    One-line ``KftError`` naming ``--what`` for an empty list or item, a value that is not a
    whole number (``cast=int``), one below ``minimum``, or one listed twice.
    """
    items = [t.strip() for t in (str(text).split(",") if isinstance(text, str) else map(str, text))]
    if not items or any(not t for t in items):
        raise KftError(f"--{what}: give a comma-separated list without empty items, got {text!r}")
    out = []
    for t in items:
        try:
            v = cast(t)
        except ValueError:
            raise KftError(f"--{what}: {t!r} is not a whole number") from None
        if minimum is not None and v < minimum:
            raise KftError(f"--{what}: {v} must be at least {minimum}")
        if v in out:
            raise KftError(f"--{what}: {v} is listed twice")
        out.append(v)
    return tuple(out)
