"""Training-only augmentation with Keras 3 core preprocessing layers.

Applied to raw RGB 0..255 images at their stored size (32x32 for CIFAR-10),
before the model's own upsampling, so a cached view and an on-the-fly view are
the same thing. Seeded: the same seed gives the same sequence of views.
"""

from __future__ import annotations

from kft.config import Augment


def make_augmenter(cfg: Augment, seed: int):
    """A ``keras.Sequential`` of random layers, or None when augmentation is off."""
    import keras

    if not cfg.enabled:
        return None
    layers = []
    if cfg.translate:
        layers.append(keras.layers.RandomTranslation(cfg.translate, cfg.translate, fill_mode="reflect",
                                                     seed=seed))
    if cfg.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed + 1))
    if cfg.rotate:
        layers.append(keras.layers.RandomRotation(cfg.rotate, fill_mode="reflect", seed=seed + 2))
    if cfg.contrast:
        layers.append(keras.layers.RandomContrast(cfg.contrast, value_range=(0, 255), seed=seed + 3))
    if cfg.brightness:
        layers.append(keras.layers.RandomBrightness(cfg.brightness, value_range=(0, 255), seed=seed + 4))
    if not layers:
        return None
    return keras.Sequential(layers, name="augment")
