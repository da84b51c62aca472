"""``any_batch``: a step traced once for every batch size, and the same answers as traced per size."""

import numpy as np


def test_a_step_is_traced_once_for_batches_of_every_size():
    import tensorflow as tf

    from kft.training.tracing import any_batch

    def step(x, y):
        return tf.reduce_sum(tf.cast(x, tf.float32), axis=[1, 2, 3]) * tf.cast(y, tf.float32)

    traced = tf.function(step, reduce_retracing=True)
    once = any_batch(traced)
    x = np.arange(40 * 4 * 4 * 3, dtype=np.float16).reshape(40, 4, 4, 3) % 7
    y = np.arange(40, dtype=np.int32)
    for n in (32, 8, 40, 1):
        np.testing.assert_array_equal(once(x[:n], y[:n]), step(x[:n], y[:n]))
    assert traced.experimental_get_tracing_count() == 1
    plain = tf.function(step, reduce_retracing=True)  # what it replaces: a second trace at another size
    plain(x[:32], y[:32]), plain(x[:8], y[:8])
    assert plain.experimental_get_tracing_count() == 2
