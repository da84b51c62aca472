"""The classifier: preprocessing + backbone + head, as one Keras functional model.

The model takes raw RGB pixels (float 0..255) at ``input_size`` (the size of
the training images, 32 for CIFAR-10), upsamples them to the plan's
``image_size`` inside itself and applies the backbone's normalisation, so every
client only resizes a photo to the declared input size. It outputs logits.

Layout (layer names are part of the contract with plans, cache and export):
``image`` -> [``upsample``] -> [``normalize``] -> ``backbone`` (nested model, always
called with ``training=False`` so BatchNorm runs in inference mode, trainable or
not) -> ``avg_pool`` -> ``dropout`` -> ``logits``.
"""

from __future__ import annotations

import weakref

from kft.backbones.registry import HEAD_BLOCK, PREPROCESS_BLOCK, BackboneSpec, assign_blocks
from kft.backbones import registry

BACKBONE_LAYER = "backbone"
HEAD_LAYERS = ("avg_pool", "dropout", "logits")


def build_classifier(backbone: str | BackboneSpec, num_classes: int, *, image_size: int,
                     input_size: int | None = None, weights: str | None = "none", dropout: float = 0.2,
                     seed: int = 0):
    """Build the classifier; ``weights`` is ``imagenet``, ``none`` or a file path.

    ``seed`` fixes the head's (and a random backbone's) initial weights.
    """
    import keras

    from kft.backbones.weights import load_backbone_weights

    spec = registry.get(backbone) if isinstance(backbone, str) else backbone
    input_size = input_size or image_size
    keras.utils.set_random_seed(seed)
    base = spec.build(image_size)
    base.name = BACKBONE_LAYER
    load_backbone_weights(spec, base, weights, image_size=image_size)

    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = inputs
    if input_size != image_size:
        x = keras.layers.Resizing(image_size, image_size, interpolation="bilinear", name="upsample")(x)
    if not spec.normalization.is_identity:
        x = keras.layers.Rescaling(list(spec.normalization.scale), list(spec.normalization.offset),
                                   name="normalize")(x)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    model = keras.Model(inputs, outputs, name=f"kft_{spec.name}")
    model.kft_backbone = spec.name
    return model


def spec_of(model) -> BackboneSpec:
    """The registry entry a classifier was built from: ``kft_backbone``, set by
    ``build_classifier`` and, from the run's config, by ``kft.rundir.artifacts``; only a bare
    ``.keras`` file (no run folder) falls back to its model name, ``kft_<backbone>``."""
    return registry.get(getattr(model, "kft_backbone", None) or model.name.removeprefix("kft_"))


def backbone_of(model):
    return model.get_layer(BACKBONE_LAYER)


def input_size_of(model) -> int:
    return int(model.inputs[0].shape[1])


def block_layers(model) -> dict[str, list]:
    """Every layer holding state, grouped by block: preprocess, stem .. layer4, head."""
    spec = spec_of(model)
    base = backbone_of(model)
    groups: dict[str, list] = {b: [] for b in registry.all_block_names(spec)}
    for layer in model.layers:
        if layer is base:
            continue
        groups[HEAD_BLOCK if layer.name in HEAD_LAYERS else PREPROCESS_BLOCK].append(layer)
    for name, block in assign_blocks(spec, base).items():
        groups[block].append(base.get_layer(name))
    return groups


def set_trainable_blocks(model, blocks) -> None:
    """Make exactly ``blocks`` trainable; every other layer is frozen."""
    blocks = set(blocks)
    model.trainable = True
    base = backbone_of(model)
    base.trainable = True
    for block, layers in block_layers(model).items():
        for layer in layers:
            layer.trainable = block in blocks


def block_of_variable(model) -> dict[int, str]:
    """Map ``id(variable)`` to its block, for per-block learning-rate groups."""
    out = {}
    for block, layers in block_layers(model).items():
        for layer in layers:
            for v in layer.weights:
                out[id(v)] = block
    return out


_INFERENCE_FNS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def inference_fn(model):
    """``model(float32(x), training=False)`` as one ``tf.function`` per model, kept while the model lives.

    BatchNorm is folded into the convolutions (``kft.training.fold``: the same outputs, 1.4-1.6x
    faster on CPU). Scoring and cache building call a model many times; a fresh ``tf.function``
    per call traced the graph again each time (TensorFlow's retracing warning).
    It is traced once for batches of every size (``kft.training.tracing.any_batch``).
    """
    fn = _INFERENCE_FNS.get(model)
    if fn is None:
        import tensorflow as tf

        from kft.training import fold
        from kft.training.tracing import any_batch

        ref = weakref.ref(model)  # the function must not keep its own key alive

        @tf.function(reduce_retracing=True)
        def traced(x):
            return fold.call(ref(), tf.cast(x, tf.float32))

        fn = _INFERENCE_FNS[model] = any_batch(traced)
    return fn


def dropout_rng_variables(model) -> list:
    """Seed-generator state of the dropout layer (augmentation is stateless, see kft.training.augment):
    the only random state that carries from one epoch, or stage, to the next."""
    import keras

    dropout = model.get_layer("dropout")
    return [g.state for g in vars(dropout).values() if isinstance(g, keras.random.SeedGenerator)]
