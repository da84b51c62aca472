"""A ``tf.function`` traced once for batches of every size: ``any_batch``."""

from __future__ import annotations

import functools

__all__ = ["any_batch"]


def any_batch(fn):
    """``fn`` (a ``tf.function`` whose arguments are tensors batched on their first axis), traced
    once for a batch of any size.

    With ``reduce_retracing`` alone TensorFlow traces twice: for the first batch's exact shape,
    then again, generalised, at the first batch of another size (an epoch's last, smaller batch).
    A train step's trace costs seconds on a CPU, once per stage and process. Here the first call
    traces with the batch dimension unknown and every call takes that trace. Example::

        step = any_batch(tf.function(train_step))
        step(x[:32], y[:32]); step(x[32:40], y[32:40])   # one trace
    """
    traced = False

    @functools.wraps(fn)
    def call(*args):
        nonlocal traced
        if not traced:
            fn.get_concrete_function(*(_any_batch_spec(a) for a in args))
            traced = True
        return fn(*args)

    return call


def _any_batch_spec(value):
    import tensorflow as tf

    shape = tuple(value.shape)
    return tf.TensorSpec([None, *shape[1:]], tf.as_dtype(value.dtype))
