"""TensorFlow's own distribution for kft's stage loop: ``none``, ``mirrored``, ``multiworker``.

``mirrored`` is ``tf.distribute.MirroredStrategy`` over the local GPUs (or the
devices given); ``multiworker`` is ``MultiWorkerMirroredStrategy``, configured by
the ``TF_CONFIG`` environment variable as TensorFlow documents. The batch size of
a plan is the *global* batch: each step splits it evenly over the replicas, each
replica's loss is its share of the global mean (``sum / global batch``), and
Keras' optimizers sum the gradients across replicas, so one step equals the
single-device step on the same batch. The learning rates are the plan's, for
that global batch; when you raise the batch size k-fold, the usual linear
scaling rule is to raise the learning rates k-fold too.

``KFT_LOGICAL_CPUS=N`` splits the CPU into N logical devices, so ``mirrored``
runs on a machine without accelerators (tests, trying it out). It must be set
before TensorFlow starts.
"""

from __future__ import annotations

import json
import os

from kft.plan import Plan, choices_of
from kft.errors import KftError, one_of

MODES = choices_of(Plan, "distribute")

LOGICAL_CPUS_ENV = "KFT_LOGICAL_CPUS"


def split_cpu() -> None:
    """Apply ``KFT_LOGICAL_CPUS`` (once, before TensorFlow initialises its devices)."""
    n = os.environ.get(LOGICAL_CPUS_ENV)
    if not n:
        return
    import tensorflow as tf

    try:
        count = int(n)
    except ValueError:
        raise KftError(f"{LOGICAL_CPUS_ENV}={n!r}: expected a whole number of logical CPUs") from None
    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or []) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        raise KftError(f"{LOGICAL_CPUS_ENV} must be set before TensorFlow starts (set it in the environment "
                       "of the kft process)") from None


def make_strategy(mode: str, devices: list[str] | None = None):
    """The ``tf.distribute`` strategy for ``mode``; None for ``none`` (the plain loop)."""
    if mode not in MODES:
        raise one_of("distribute mode", mode, MODES)
    if mode == "none":
        return None
    import tensorflow as tf

    if mode == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise KftError("`distribute` multiworker needs TF_CONFIG (the cluster and this worker's task), "
                           "see docs/distribute.md")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except ValueError:
            raise KftError("TF_CONFIG is not valid JSON") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    split_cpu()
    if devices is None:
        gpus = tf.config.list_logical_devices("GPU")
        cpus = tf.config.list_logical_devices("CPU")
        devices = [d.name for d in gpus] or [d.name for d in cpus]
    return tf.distribute.MirroredStrategy(devices)


def is_chief(strategy) -> bool:
    """Whether this process writes the run folder: always, except a non-chief multi-worker task."""
    resolver = getattr(strategy, "cluster_resolver", None) if strategy is not None else None
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                             and "chief" not in resolver.cluster_spec().as_dict())


def replicas(strategy) -> int:
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def split_batch(strategy, x, y):
    """The global batch ``(x, y)`` as per-replica values: replica i of n takes rows
    ``[i*B/n, (i+1)*B/n)``. Every worker holds the same global batch (same seeds, same
    data), so this is deterministic across machines."""
    import tensorflow as tf

    def part(ctx, t):
        i, n = ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync
        size = tf.shape(t)[0]
        return t[size * i // n:size * (i + 1) // n]

    return (strategy.experimental_distribute_values_from_function(lambda ctx: part(ctx, x)),
            strategy.experimental_distribute_values_from_function(lambda ctx: part(ctx, y)))
