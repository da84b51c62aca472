"""Named points in a run's life where a test can kill the process (``KFT_TEST_KILL_AT``).

Resume must be exact from any kill point; a timer-based kill lands somewhere
different on every machine, so tests name the point instead:
``KFT_TEST_KILL_AT=stage-start:1`` SIGKILLs the process when the run reaches the
start of stage 2. Unset (always, outside tests), ``reached`` does nothing.
Points: ``data-loaded``, ``stage-start:<i>`` (cache built, before its first
epoch), ``epoch-trained:<i>:<e>`` (epoch e of stage i trained, not yet
checkpointed), ``stage-done:<i>`` (best weights restored, boundary checkpoint
not yet written), ``final-eval`` and ``artifacts`` (model saved, metrics not yet).
"""

from __future__ import annotations

import os
import signal

ENV = "KFT_TEST_KILL_AT"


def reached(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
