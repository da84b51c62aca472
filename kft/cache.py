"""Frozen-prefix feature cache: compute the frozen part of the network once per stage.

In a stage, every block below the lowest trainable one is a fixed function of
the input (BatchNorm always runs in inference mode), so kft splits the model at
that block's input into ``prefix`` (preprocessing + frozen blocks) and
``suffix`` (trainable blocks + pooling), caches the prefix's output and trains
the suffix on it. With augmentation, K augmented views of each training image
are cached and one is drawn per image each epoch (K=1 without augmentation is
exact). The saved and exported model is always the whole model: the split
models share its layers and weights, nothing here is stored in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kft.backbones.registry import block_input
from kft.model import HEAD_LAYERS, backbone_of, spec_of


@dataclass
class Split:
    cut_block: str  # the first trainable backbone block: the suffix starts here
    prefix: object  # keras.Model: raw image -> features at cut_block's input
    suffix: object  # keras.Model: features -> pooled features (input of dropout)


def lowest_trainable_block(model, trainable: list[str]) -> str | None:
    """The earliest backbone block in ``trainable`` (None if only the head trains)."""
    for block in spec_of(model).block_names:
        if block in trainable:
            return block
    return None


def split_model(model, cut_block: str | None) -> Split:
    """Split ``model`` at the input of ``cut_block`` (None: at the pooled features)."""
    import keras

    base = backbone_of(model)
    spec = spec_of(model)
    pool = model.get_layer(HEAD_LAYERS[0])
    cut = base.output if cut_block is None else block_input(spec, base, cut_block)
    image = keras.Input(model.inputs[0].shape[1:], name="image")
    x = image
    for name in ("upsample", "normalize"):
        if any(layer.name == name for layer in model.layers):
            x = model.get_layer(name)(x)
    feats = keras.Model(base.input, cut, name="backbone_prefix")(x, training=False)
    if cut_block is None:  # only the head trains: cache the pooled features (tiny)
        feats = pool(feats)
    prefix = keras.Model(image, feats, name="prefix")

    f_in = keras.Input(tuple(feats.shape[1:]), name="features")
    if cut_block is None:
        h = keras.layers.Identity(name="pooled")(f_in)
    else:
        h = pool(keras.Model(cut, base.output, name="backbone_suffix")(f_in, training=False))
    suffix = keras.Model(f_in, h, name="suffix")
    return Split(cut_block or "head", prefix, suffix)


def feature_bytes(split: Split, n_images: int, views: int, dtype=np.float16) -> int:
    shape = split.prefix.outputs[0].shape[1:]
    return int(np.prod(shape)) * n_images * views * np.dtype(dtype).itemsize


def compute_features(prefix, images: np.ndarray, batch_size: int, augmenter=None,
                     dtype=np.float16) -> np.ndarray:
    """Run ``prefix`` over uint8 ``images`` (optionally augmented), in batches."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def run(x):
        x = tf.cast(x, tf.float32)
        if augmenter is not None:
            x = augmenter(x, training=True)
        return prefix(x, training=False)

    out = None
    for start in range(0, len(images), batch_size):
        f = run(images[start:start + batch_size]).numpy()
        if out is None:
            out = np.empty((len(images), *f.shape[1:]), dtype=dtype)
        out[start:start + len(f)] = f
    return out
