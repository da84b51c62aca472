"""kft's messages go through ``logging``: each module logs to ``logging.getLogger(__name__)``.

Who shows them decides how. The ``kft`` command line prints INFO lines as plain
text (``show_messages``); the Python API does the same when nothing else has
configured logging (a notebook), and leaves an application's own logging set-up
alone. TensorFlow-free.
"""

from __future__ import annotations

import logging
import sys

ROOT = "kft"


class PlainHandler(logging.Handler):
    """Each record as its bare message: INFO to ``sys.<stream>``, warnings and errors to stderr.
    The stream is looked up per record, so redirection and test capture see it."""

    def __init__(self, stream: str = "stdout"):
        super().__init__(logging.INFO)
        self.stream_name = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if record.levelno >= logging.WARNING else getattr(sys, self.stream_name)
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging's own convention
            self.handleError(record)


def show_messages(stream: str = "stdout") -> None:
    """Print kft's INFO messages as plain lines on ``sys.<stream>`` (replacing an earlier call's)."""
    logger = logging.getLogger(ROOT)
    for h in [h for h in logger.handlers if isinstance(h, PlainHandler)]:
        logger.removeHandler(h)
    logger.addHandler(PlainHandler(stream))
    logger.setLevel(logging.INFO)
    logger.propagate = False


def show_messages_unless_configured() -> None:
    """``show_messages()`` unless kft's or the root logger already has handlers (an application's)."""
    if not logging.getLogger(ROOT).handlers and not logging.getLogger().handlers:
        show_messages()
