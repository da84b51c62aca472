"""The ``kft`` group and what every command shares: log levels and how messages print."""

from __future__ import annotations

import logging
import os
import warnings

import click


@click.group()
@click.version_option(package_name="kft")
@click.option("--verbose", "-v", is_flag=True, help="Also show TensorFlow's own log lines.")
def cli(verbose):
    """Few-shot transfer learning to small, fast on-device image classifiers."""
    from kft.log import show_messages

    show_messages("stdout")  # kft's own progress lines (kft.log); a command may move them to stderr
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from kft.native_logs import hide_native_logs

        hide_native_logs()
        # TensorFlow's Python-side warnings (e.g. tf.function retracing notices) are for its
        # developers, not kft's users; errors still show.
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        # The quantization debugger builds tf.lite.Interpreter, whose deprecation notice is for TF's users.
        warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter is deprecated",
                                category=UserWarning)
