"""User-facing errors.

A ``KftError`` means the user asked for something that cannot be done (unknown
backbone, missing file, bad config key...). The CLI prints its message as one
line and exits non-zero; anything else is a bug and keeps its traceback.
"""

import errno


class KftError(Exception):
    """A user mistake or an unusable input, explained in one sentence."""


def one_of(kind: str, value, allowed) -> KftError:
    """Error for a value that is not among the allowed ones, listing them."""
    allowed = sorted(str(a) for a in allowed)
    return KftError(f"unknown {kind} {value!r}; choose one of: {', '.join(allowed)}")


def disk_full_error(path, error: OSError) -> KftError | None:
    """The one-line error for an ENOSPC/EDQUOT ``error`` while writing ``path``, else None."""
    # h5py reports it as an OSError without errno, its text naming "errno = 28"
    if getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(error):
        return KftError(f"no space left on device while writing {path}; free some space and try again "
                        f"(nothing was left half-written)")
    return None
