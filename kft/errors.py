"""User-facing errors.

A ``KftError`` means the user asked for something that cannot be done (unknown
backbone, missing file, bad config key...). The CLI prints its message as one
line and exits non-zero; anything else is a bug and keeps its traceback.
"""


class KftError(Exception):
    """A user mistake or an unusable input, explained in one sentence."""


def one_of(kind: str, value, allowed) -> KftError:
    """Error for a value that is not among the allowed ones, listing them."""
    allowed = sorted(str(a) for a in allowed)
    return KftError(f"unknown {kind} {value!r}; choose one of: {', '.join(allowed)}")
