"""The machine a number was measured on (stdlib only): every report that prints timings says it."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_info() -> dict:
    """CPU model name (/proc/cpuinfo), logical cores, and the cores this process may use."""
    name = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() in ("model name", "Hardware", "Processor"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    return {"cpu": name or platform.processor() or platform.machine() or "unknown CPU", "cores": os.cpu_count(),
            "usable_cores": usable}


def describe() -> str:
    """One line: CPU, cores (and how many this process may use), OS and Python."""
    info = cpu_info()
    cores, usable = info["cores"] or 0, info["usable_cores"]
    extra = f" ({usable} usable by this process)" if usable not in (None, cores) else ""
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return f"{info['cpu']}, {cores} cores{extra}; {system}"
