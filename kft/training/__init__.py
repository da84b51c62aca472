"""Training: a run is a schedule of steps (``schedule``) that the run driver (``run``) walks, one
``StageTrainer`` (``trainer``) per step, with callbacks (``callbacks``), per-block optimizers
(``optim``), the frozen-prefix feature cache (``cache``), input pipelines and augmentation
(``pipeline``, ``augment``), BatchNorm folding (``fold``), tf.distribute (``distribute``) and
self-training (``selftrain``); ``summary`` writes the end of a run.

    from kft.training import train
    run = train(resolve_plan("mobilenet_v2"), seed=0)

Importing this package does not import TensorFlow; training does.
"""

from kft.training.run import resume, train

__all__ = ["resume", "train"]
