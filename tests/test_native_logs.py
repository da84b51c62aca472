"""TensorFlow's C++ log lines stay out of the terminal; everything else still gets through."""

import subprocess
import sys
import textwrap

from kft.native_logs import is_native_log


def test_recognises_tensorflow_log_lines_only():
    assert is_native_log(b"I0000 00:00:1795896384.480544    2648 port.cc:153] oneDNN custom operations are on.\n")
    assert is_native_log(b"E0000 00:00:1795896473.757420    2648 util.cc:131] oneDNN supports DT_HALF only\n")
    assert is_native_log(b"W1128 20:15:03.123456   77 cpu_feature_guard.cc:227] This TensorFlow binary\n")
    assert is_native_log(b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    assert is_native_log(b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    assert is_native_log(b"fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, "
                         b"output_inference_type: FLOAT32\n")
    assert not is_native_log(b"fully_quantize: my own line\n")
    assert not is_native_log(b"F0000 00:00:1.0  1 check.cc:12] Check failed: x\n")  # fatal: the user must see it
    assert not is_native_log(b"error: photos/cat.jpg: not an image\n")
    assert not is_native_log(b"Traceback (most recent call last):\n")
    assert not is_native_log(b"I0000 is not a log line\n")


def test_filter_drops_native_lines_and_keeps_the_rest_in_order():
    code = textwrap.dedent("""
        import os, sys
        from kft.native_logs import hide_native_logs
        hide_native_logs()
        os.write(2, b"I0000 00:00:1795896384.480544    2648 port.cc:153] oneDNN custom operations are on.\\n")
        os.write(2, b"native error a user must see\\n")
        print("python message", file=sys.stderr)
        print("stdout stays stdout")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "port.cc" not in proc.stderr
    assert "native error a user must see" in proc.stderr and "python message" in proc.stderr
    assert proc.stdout == "stdout stays stdout\n"


def test_kft_commands_print_no_tensorflow_notices():
    """``kft backbones`` imports TensorFlow; its C++ notices show only with --verbose."""
    quiet = subprocess.run([sys.executable, "-m", "kft", "backbones"], capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert "mobilenet_v2" in quiet.stdout
    assert not [line for line in quiet.stderr.splitlines() if is_native_log(line.encode())], quiet.stderr
    assert "absl::InitializeLog" not in quiet.stderr
