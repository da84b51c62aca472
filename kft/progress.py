"""Progress for long steps (feature cache, scoring, export): one helper for the whole CLI.

On a terminal it draws a tqdm bar on stderr; when stderr is not a terminal (a log
file, CI, a pipe) it prints a plain line at start, about every 10% and at the end,
so logs stay readable. ``KFT_PROGRESS=off`` silences it. TensorFlow-free.

    with progress("scoring model_int8.tflite", total=len(images), unit="img") as bar:
        for x in images:
            ...
            bar.update(1)
"""

from __future__ import annotations

import os
import sys
import time

PLAIN_STEPS = 10  # plain-line mode prints about this many updates per task


class _Plain:
    """Plain-line progress: start, every ~10%, done (with seconds)."""

    def __init__(self, desc: str, total: int | None, unit: str, stream):
        self.desc, self.total, self.unit, self.stream = desc, total, unit, stream
        self.n = 0
        self._step = max(1, (total or 0) // PLAIN_STEPS)
        self._next = self._step
        self._t0 = time.perf_counter()
        self._say(f"{desc}: started" + (f" ({total} {unit})" if total else ""))

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.total and self.n >= self._next and self.n < self.total:
            self._say(f"{self.desc}: {self.n}/{self.total} {self.unit} ({100 * self.n // self.total}%)")
            self._next = self.n + self._step

    def close(self) -> None:
        self._say(f"{self.desc}: done, {self.n} {self.unit} in {time.perf_counter() - self._t0:.1f} s")

    def _say(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


class _Silent:
    n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        pass


class progress:  # noqa: N801 - used like a function: ``with progress(...) as bar``
    """A progress display for ``total`` units of work named ``desc``; ``enabled=False`` shows nothing."""

    def __init__(self, desc: str | None, total: int | None = None, unit: str = "it", stream=None,
                 enabled: bool = True):
        stream = stream or sys.stderr
        if not enabled or os.environ.get("KFT_PROGRESS", "").lower() in ("off", "0", "no"):
            self._bar = _Silent()
        elif _is_tty(stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=stream, leave=True, dynamic_ncols=True)
        else:
            self._bar = _Plain(desc, total, unit, stream)

    def update(self, n: int = 1) -> None:
        self._bar.update(n)

    @property
    def n(self) -> int:
        return self._bar.n

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> "progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_tty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
