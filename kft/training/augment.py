"""Training-only augmentation as stateless TensorFlow ops, for ``tf.data`` maps.

Applied to raw RGB 0..255 images at their stored size (32x32 for CIFAR-10),
before the model's own upsampling, so a cached view and an on-the-fly view are
the same thing. Flip, rotation and translation are one affine warp per image
(bilinear, reflected border: one resampling instead of three); contrast and
brightness follow, clipped to 0..255.

Every random draw comes from a seed passed with the batch (``tf.random.stateless_*``),
never from a generator's state. So a batch's views depend only on (run seed,
stage, epoch, batch index): the map can run in parallel and still be
deterministic, and a resumed run draws exactly the views it would have drawn.
"""

from __future__ import annotations

import math

import numpy as np

from kft.plan import Augment


def make_augmenter(cfg: Augment):
    """An :class:`Augmenter`, or None when augmentation is off or every transform is zero."""
    if not cfg.enabled or not (cfg.translate or cfg.flip or cfg.rotate or cfg.contrast or cfg.brightness):
        return None
    return Augmenter(cfg)


# What a batch's seeds are for: the second element of every batch_seeds key, so no two uses collide.
TRAIN_BATCHES = 1  # uncached training: (seed, TRAIN_BATCHES, stage, epoch)
CACHE_VIEWS = 2  # the cache's augmented views: (seed, CACHE_VIEWS, view)
CACHE_REFIT_VIEWS = 3  # views of the validation images a refit adds: (seed, CACHE_REFIT_VIEWS, view)
CACHE_STUDENT_VIEWS = 4  # a self-training student's views: (seed, CACHE_STUDENT_VIEWS, round, view)
CACHE_ALL_VIEWS = 5  # views of a folder's test photos when the run retrains on every photo (retrain_on_all)


def batch_seeds(*key: int, n: int) -> np.ndarray:
    """``n`` stateless seeds (int64 pairs) derived from ``key``: (run seed, purpose, ...)."""
    return np.random.default_rng(list(key)).integers(0, 2**31 - 1, size=(n, 2), dtype=np.int64)


def affine_transforms(flip, angle, tx, ty, height: int, width: int):
    """ImageProjectiveTransform rows mapping each output pixel to its input pixel.

    Per image: translate by (tx, ty) pixels, rotate by ``angle`` radians about the
    centre, mirror horizontally where ``flip`` is 1. Arguments are float32 vectors.
    """
    import tensorflow as tf

    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    f = 1.0 - 2.0 * flip
    cos, sin = tf.cos(angle), tf.sin(angle)
    zero = tf.zeros_like(angle)
    return tf.stack([f * cos, -f * sin, cx - f * cos * (cx + tx) + f * sin * (cy + ty),
                     sin, cos, cy - sin * (cx + tx) - cos * (cy + ty), zero, zero], axis=1)


class Augmenter:
    """``augmenter(images, seed)``: a random view of each float32 0..255 image in an NHWC batch."""

    def __init__(self, cfg: Augment):
        self.cfg = cfg

    def __call__(self, images, seed):
        import tensorflow as tf

        cfg = self.cfg
        n = tf.shape(images)[0]
        height, width = int(images.shape[1]), int(images.shape[2])
        s = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=6)

        def uniform(i, low, high, shape=None):
            return tf.random.stateless_uniform(shape if shape is not None else [n], s[i], low, high)

        x = images
        if cfg.flip or cfg.rotate or cfg.translate:
            flip = tf.cast(uniform(0, 0.0, 1.0) < 0.5, tf.float32) if cfg.flip else tf.zeros([n])
            angle = uniform(1, -cfg.rotate, cfg.rotate) * 2 * math.pi if cfg.rotate else tf.zeros([n])
            tx = uniform(2, -cfg.translate, cfg.translate) * width if cfg.translate else tf.zeros([n])
            ty = uniform(3, -cfg.translate, cfg.translate) * height if cfg.translate else tf.zeros([n])
            x = tf.raw_ops.ImageProjectiveTransformV3(
                images=x, transforms=affine_transforms(flip, angle, tx, ty, height, width),
                output_shape=[height, width], fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")
        if cfg.contrast:
            factor = uniform(4, 1.0 - cfg.contrast, 1.0 + cfg.contrast)[:, None, None, None]
            mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
            x = (x - mean) * factor + mean
        if cfg.brightness:
            x = x + uniform(5, -cfg.brightness, cfg.brightness)[:, None, None, None] * 255.0
        if cfg.contrast or cfg.brightness:
            x = tf.clip_by_value(x, 0.0, 255.0)
        return x
