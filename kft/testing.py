"""Tiny generated images and a classifier fitted to them in seconds, for tests and benchmarks
that need a trained model but no dataset and no pretrained weights.

A random backbone run in inference mode has BatchNorm statistics (0, 1) that shrink its features
to ~1e-11; ``fit_head`` first sets them from one batch, then trains the head alone. Example::

    from kft.model import build_classifier
    from kft.testing import CLASS_NAMES, colour_images, fit_head

    x, y = colour_images(24, seed=1)
    model = build_classifier("mobilenet_v3_small", num_classes=len(CLASS_NAMES), image_size=32, weights="none")
    fit_head(model, x, y)        # ~98% on its images, ~75% on colour_images(10, seed=2)
"""

from __future__ import annotations

import numpy as np

__all__ = ["CLASS_NAMES", "SIZE", "colour_images", "fit_head"]

CLASS_NAMES = ["red", "green", "blue"]
SIZE = 32
_COLOURS = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]], np.float32)


def colour_images(n_per_class: int, seed: int, size: int = SIZE):
    """uint8 (3n, size, size, 3) images: a class colour plus smooth and pixel noise; labels 0..2."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per_class)
    base = _COLOURS[y][:, None, None, :]
    blobs = rng.normal(0, 30, (len(y), 4, 4, 3)).repeat(size // 4, 1).repeat(size // 4, 2)
    x = base + blobs + rng.normal(0, 25, (len(y), size, size, 3))
    return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)


def fit_head(model, train_x, train_y, backbone_input=None) -> None:
    """BatchNorm's moving statistics set to ``train_x``'s (fed to the ``backbone`` layer as
    ``backbone_input``, default ``train_x``: give the upsampled images for a model that
    upsamples before its backbone), then the head alone trained 20 epochs; the backbone is
    left trainable again."""
    import keras

    backbone = model.get_layer("backbone")
    norms = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    feed = train_x.astype(np.float32) if backbone_input is None else backbone_input
    backbone(feed, training=True)  # moving statistics := this batch's
    for layer in norms:
        layer.momentum = 0.99
    backbone.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(train_x.astype(np.float32), train_y, batch_size=24, epochs=20, shuffle=True, verbose=0)
    backbone.trainable = True
