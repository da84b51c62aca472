"""kft.training.fold: BatchNorm folded into the convolutions gives the model's own outputs and gradients."""

import numpy as np
import pytest

from kft.training import fold

ALL = ["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "resnet18", "resnet34"]


def _model(name, image_size=48):
    """A tiny classifier with random BatchNorm statistics and affine weights, so that every
    part of the fold (mean, variance, epsilon, gamma, beta) changes the outputs."""
    import keras

    from kft.model import backbone_of, build_classifier

    model = build_classifier(name, 10, image_size=image_size, input_size=32, weights="none", dropout=0.5)
    rng = np.random.default_rng(0)
    for layer in backbone_of(model).layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.2, shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.2, shape).astype("float32"))
    return model


def _images(n=4, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, 32, 32, 3)).astype("float32")


@pytest.mark.parametrize("name", ALL)
def test_every_batchnorm_of_every_backbone_folds_and_the_outputs_are_the_models(name):
    import keras

    from kft.model import backbone_of

    model = _model(name)
    base = backbone_of(model)
    n_bn = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in base.layers)
    assert len(fold.pairs(base)) == n_bn > 0  # each backbone's BatchNorms follow a bias-free conv
    x = _images()
    plain, folded = np.asarray(model(x, training=False)), np.asarray(fold.call(model, x))
    assert np.abs(plain).max() > 1e-3  # not a trivially zero model
    np.testing.assert_allclose(folded, plain, rtol=1e-4, atol=1e-5 * np.abs(plain).max())


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18"])  # depthwise and plain convs
def test_gradients_reach_the_same_variables_with_the_same_values(name):
    import tensorflow as tf

    from kft.model import set_trainable_blocks

    model = _model(name)
    set_trainable_blocks(model, ["layer4", "head"] if name == "resnet18" else ["layer3", "layer4", "head"])
    x = tf.constant(_images())

    def grads(run):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(run(x)))
        return tape.gradient(loss, model.trainable_variables)

    plain = grads(lambda x: model(x, training=False))
    folded = grads(lambda x: fold.call(model, x))
    assert all(g is not None for g in folded)  # kernels, gamma and beta all still learn
    for p, f, v in zip(plain, folded, model.trainable_variables):
        np.testing.assert_allclose(np.asarray(f), np.asarray(p), rtol=1e-3,
                                   atol=1e-4 * float(tf.reduce_max(tf.abs(p))) + 1e-12, err_msg=v.path)


def test_moving_statistics_do_not_change_and_cut_models_fold_too():
    """The cache's prefix and top models (kft.training.cache) nest the backbone's layers: they fold as the
    whole model does, and nothing is updated by a folded call."""
    from kft.training.cache import bridge, prefix_model
    from kft.backbones.registry import HEAD_BLOCK

    model = _model("mobilenet_v2")
    before = [np.array(w) for w in model.weights]
    prefix, top = prefix_model(model, "layer3"), bridge(model, "layer3", HEAD_BLOCK)
    x = _images()
    feats = np.asarray(prefix(x, training=False))
    np.testing.assert_allclose(np.asarray(fold.call(prefix, x)), feats, rtol=1e-4, atol=1e-5 * np.abs(feats).max())
    pooled = np.asarray(top(feats, training=False))
    np.testing.assert_allclose(np.asarray(fold.call(top, feats)), pooled, rtol=1e-4,
                               atol=1e-5 * np.abs(pooled).max())
    for b, w in zip(before, model.weights):
        np.testing.assert_array_equal(np.array(w), b)


def test_what_cannot_fold_runs_as_keras_runs_it():
    """A conv with a bias, a BatchNorm after something else, a conv read twice or also returned
    by the model: left alone."""
    import keras

    inp = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", use_bias=True, name="biased")(inp)
    a = keras.layers.BatchNormalization(name="bn_after_biased")(a)  # folds only bias-free convs
    b = keras.layers.Conv2D(4, 1, use_bias=False, name="read_twice")(a)
    c = keras.layers.BatchNormalization(name="bn_of_read_twice")(b)
    d = keras.layers.Add()([b, c])  # the conv's raw output is needed too: no fold
    e = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(d)
    out = keras.layers.BatchNormalization(name="bn_dw")(keras.layers.ReLU()(e))  # not directly after
    raw = keras.layers.Conv2D(4, 1, use_bias=False, name="also_an_output")(out)
    model = keras.Model(inp, [keras.layers.BatchNormalization(name="bn_of_output")(raw), raw])
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.full(layer.moving_mean.shape, 0.3, "float32"))
            layer.moving_variance.assign(np.full(layer.moving_variance.shape, 2.0, "float32"))
    assert fold.pairs(model) == {}
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype("float32")
    for f, p in zip(fold.call(model, x), model(x, training=False)):
        np.testing.assert_allclose(np.asarray(f), np.asarray(p), rtol=1e-5, atol=1e-6)


def test_dropout_inside_the_model_stays_off():
    model = _model("mobilenet_v3_small")  # the classifier's head has dropout 0.5
    x = _images()
    np.testing.assert_allclose(np.asarray(fold.call(model, x)), np.asarray(fold.call(model, x)), rtol=0, atol=0)
