"""Input pipelines: ``tf.data`` batches gathered, augmented in a parallel map and prefetched.

The arrays live in memory as tensors (a few-shot training set, or its cached
features), or on disk (a large image folder, ``kft.data.ondisk``: the map reads
each batch's rows from the memory-mapped file); a dataset of index batches is
mapped to the data, so an epoch's
order is whatever permutation the trainer passes, and augmentation seeds travel
with the batches (see ``kft.training.augment``). ``deterministic=True`` keeps the batch
order fixed while the map runs in parallel with training.

Parallelism and prefetch depth are fixed rather than AUTOTUNE: on a 2-core
machine, tf.data's tuning made some cached epochs take 1.5-1.7x longer (the
training step, not the input, is the bottleneck, so there is nothing to tune).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kft.data.ondisk import on_disk

PARALLEL_CALLS = 2
PREFETCH = 2


def _index_batches(order: np.ndarray, batch_size: int, seeds: np.ndarray | None):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(order.astype(np.int32)).batch(batch_size)
    if seeds is not None:
        ds = tf.data.Dataset.zip(ds, tf.data.Dataset.from_tensor_slices(seeds))
    return ds


def _mapped(ds, fn):
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.map(fn, num_parallel_calls=PARALLEL_CALLS, deterministic=True).prefetch(PREFETCH).with_options(options)


@dataclass
class Mix:
    """Mixup for an epoch's batches: ``weights[j]`` (lam) belongs to the j-th image of the epoch's
    order. Each image of a batch is mixed with the batch's mirror image (the first with the
    last ...; the batch order is random, so the partner is too), and so are the targets: int
    labels become one-hot over ``num_classes`` first."""

    weights: np.ndarray  # float32, one per image of the epoch
    num_classes: int

    def batches(self, batch_size: int):
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices(self.weights).batch(batch_size)

    def __call__(self, x, y, lam):
        import tensorflow as tf

        x = tf.cast(x, tf.float32)
        y = tf.cast(y, tf.float32) if y.dtype.is_floating else tf.one_hot(y, self.num_classes)
        lx = tf.reshape(lam, tf.concat([tf.shape(lam), tf.ones([tf.rank(x) - 1], tf.int32)], 0))
        x = lx * x + (1 - lx) * tf.reverse(x, [0])
        y = lam[:, None] * y + (1 - lam[:, None]) * tf.reverse(y, [0])
        return x, y


def n_batches(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


def as_source(images):
    """What ``image_batches`` gathers from: a tensor made once for arrays in memory (a captured
    numpy array would be copied on every call); on-disk arrays stay as they are."""
    import tensorflow as tf


    return images if on_disk(images) or isinstance(images, tf.Tensor) else tf.convert_to_tensor(images)


def _rows(images):
    """index batch -> those rows of ``images`` (see ``as_source``) as a tensor."""
    import tensorflow as tf


    if not on_disk(images):
        return lambda idx: tf.gather(images, idx)
    dtype, shape = tf.as_dtype(images.dtype), images.shape[1:]

    def read(idx):  # numpy reads exactly these rows from the mapped file
        x = tf.numpy_function(lambda i: images[np.asarray(i)], [idx], dtype, stateful=False)
        x.set_shape((None, *shape))
        return x

    return read


def image_batches(images, labels, batch_size: int, *, order: np.ndarray | None = None, augmenter=None,
                  seeds: np.ndarray | None = None, mix: Mix | None = None):
    """Batches of (float32 images, int32 labels) in ``order``; ``seeds``: one per batch when augmenting.

    ``images`` may be uint8 images (in memory or on disk) or float16 features
    (anything cast to float32 for the model); ``labels`` may be None (the dataset then yields images only).
    ``mix``: mixup after augmentation (the labels become float targets).
    """
    import tensorflow as tf

    images = as_source(images)
    rows = _rows(images)
    labels = None if labels is None else tf.convert_to_tensor(labels)
    order = np.arange(len(images)) if order is None else order
    if augmenter is not None and (seeds is None or len(seeds) != n_batches(len(order), batch_size)):
        raise ValueError("augmenting needs one seed per batch")

    def load(idx, seed=None):
        x = tf.cast(rows(idx), tf.float32)
        if augmenter is not None:
            x = augmenter(x, seed)
        return x if labels is None else (x, tf.gather(labels, idx))

    ds = _index_batches(order, batch_size, seeds if augmenter is not None else None)
    if mix is None or labels is None:
        return _mapped(ds, load)
    batch = (lambda b: load(*b)) if augmenter is not None else load  # (index batch, seed) or index batch
    return _mapped(tf.data.Dataset.zip(ds, mix.batches(batch_size)), lambda b, lam: mix(*batch(b), lam))


def view_batches(views, labels, batch_size: int, *, order: np.ndarray, view_of: np.ndarray,
                 mix: Mix | None = None):
    """Batches of (cached features, int32 labels): image ``i`` comes from view ``view_of[i]``.

    ``views`` holds K views of every image, shape (K, N, ...). ``mix``: mixup of the features
    (then float32) and the labels (then float targets).
    """
    import tensorflow as tf

    views, labels = tf.convert_to_tensor(views), tf.convert_to_tensor(labels)
    pairs = np.stack([view_of[order], order], axis=1).astype(np.int32)

    def load(pair):
        return tf.gather_nd(views, pair), tf.gather(labels, pair[:, 1])

    ds = tf.data.Dataset.from_tensor_slices(pairs).batch(batch_size)
    if mix is None:
        return _mapped(ds, load)
    return _mapped(tf.data.Dataset.zip(ds, mix.batches(batch_size)), lambda pair, lam: mix(*load(pair), lam))
