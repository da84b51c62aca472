"""Keep TensorFlow's own C++ log lines out of a user's terminal.

TensorFlow 2.21 logs through absl from C++ straight to file descriptor 2
(``I0000 00:00:... port.cc:153] oneDNN custom operations are on ...``,
``E0000 ... oneDNN supports DT_HALF only on platforms with AVX-512``), which
``TF_CPP_MIN_LOG_LEVEL`` no longer silences. ``hide_native_logs`` points fd 2
at a pipe read by a thread that drops those lines and passes everything else
(crash reports, Python's own stderr) through to the real stderr. Python's
``sys.stderr`` is re-bound to the real stderr directly, so kft's own messages
never wait on the filter. ``kft --verbose`` leaves stderr untouched.
"""

from __future__ import annotations

import atexit
import io
import os
import re
import sys
import threading

# absl/glog line prefixes: severity letter, MMDD, time, thread id, file:line]
_NATIVE_LOG = re.compile(rb"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^ \]]+:\d+\] ")
_NATIVE_NOTICES = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
)
_TFLITE_INFO = b"INFO: "  # LiteRT's own info lines ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
# The int8 converter's summary ("fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, ...")
_QUANTIZER_SUMMARY = re.compile(rb"^fully_quantize: \d+, inference_type: \d+, ")

_installed = False


def is_native_log(line: bytes) -> bool:
    """Whether ``line`` is one of TensorFlow's C++ log lines (not an error a user must see)."""
    line = line.rstrip(b"\r\n")
    if line.startswith(b"F"):  # FATAL: the process is about to abort; say why
        return False
    return (bool(_NATIVE_LOG.match(line) or _QUANTIZER_SUMMARY.match(line)) or line in _NATIVE_NOTICES
            or line.startswith(_TFLITE_INFO))


def hide_native_logs() -> None:
    """Filter TensorFlow's C++ log lines out of fd 2 for the rest of the process (idempotent)."""
    global _installed
    if _installed or sys.stderr is not sys.__stderr__:  # already done, or stderr is captured (tests)
        return
    try:
        real = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
    except OSError:  # no fd 2 (a daemon) or no pipes left: leave stderr as it is
        return
    _installed = True
    sys.stderr.flush()
    sys.stderr = io.TextIOWrapper(io.FileIO(real, "w", closefd=False), encoding=sys.stderr.encoding or "utf-8",
                                  errors="backslashreplace", line_buffering=True)
    thread = threading.Thread(target=_pump, args=(read_end, real), name="kft-native-logs", daemon=True)
    thread.start()

    def _drain():
        # Close our end of the pipe so the thread sees EOF, and let it forward what is left.
        try:
            os.dup2(real, 2)
        except OSError:
            return
        thread.join(timeout=1.0)

    atexit.register(_drain)


def _pump(read_end: int, real: int) -> None:
    with io.FileIO(read_end, "r") as pipe:
        for line in io.BufferedReader(pipe):
            if not is_native_log(line):
                try:
                    os.write(real, line)
                except OSError:
                    return
