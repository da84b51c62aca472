"""The run folder: its layout, atomic writes, the lock and guards, checkpoints and state, and
opening what a user points kft at. TensorFlow-free to import.

    from kft import rundir
    run = rundir.load_run("runs/<name>")          # config, split, class names, data source
    rundir.write_metrics(path, {...})             # atomic; metrics.json is written last

Modules: ``layout`` (file names), ``atomic`` (write-then-rename), ``guard`` (lock, no
overwrite, disk space), ``folder`` (``Run``, ``DataSource``, making and loading a folder),
``files`` (the files' writers), ``state`` and ``checkpoint`` (``--resume``), ``artifacts``
(a run folder, ``.keras`` or ``.tflite`` given on the command line), ``scores`` (the final
model's test logits, kept for ``kft export``).
"""

from kft.rundir.layout import (CHECKPOINT, CONFIG, CONFUSION, CURVES, FILES, HISTORY, HISTORY_COLUMNS, LABELS,
                               HELDOUT, MARKERS, METRICS, MISTAKES, MODEL, SCHEMA_VERSION, SPLIT, TENSORBOARD, TEST_LOGITS,
                               is_run_dir)
from kft.rundir.scores import read_test_logits, write_test_logits
from kft.rundir.folder import DataSource, Run, check_run_dir, load_run, new_run_dir
from kft.rundir.files import (git_revision, library_versions, load_model, revisions, save_model, weight_bytes,
                              write_config, write_history, write_labels, write_metrics, write_split,
                              write_tensorboard)

__all__ = ["CHECKPOINT", "CONFIG", "CONFUSION", "CURVES", "FILES", "HISTORY", "HISTORY_COLUMNS", "LABELS", "MARKERS",
           "HELDOUT", "METRICS", "MISTAKES", "MODEL", "SCHEMA_VERSION", "SPLIT", "TENSORBOARD", "TEST_LOGITS", "DataSource", "Run", "check_run_dir",
           "git_revision", "is_run_dir", "library_versions", "load_model", "load_run", "new_run_dir", "read_test_logits", "revisions",
           "save_model", "weight_bytes", "write_config", "write_history", "write_labels", "write_metrics",
           "write_split", "write_tensorboard", "write_test_logits"]
