"""The stage trainer: trainable flags, frozen weights, BatchNorm, LR groups, cache exactness."""

from types import SimpleNamespace

import numpy as np
import pytest

from kft.plan import Augment, Plan, Stage, validate
from kft.model import block_layers, build_classifier


def _plan(stages, **kw):
    kw.setdefault("augment", Augment(enabled=False))
    return validate(Plan(backbone="mobilenet_v3_small", image_size=32, batch_size=8, **kw, stages=stages))


def _model(seed=0):
    return build_classifier("mobilenet_v3_small", 3, image_size=32, weights="none", seed=seed)


def _snapshot(model):
    return {b: [w.numpy().copy() for layer in layers for w in layer.weights] for b, layers in block_layers(model).items()}


def _fit(model, plan, stage_index, data, **kw):
    from kft.training.trainer import StageTrainer

    return StageTrainer(model, plan, plan.stages[stage_index], stage_index, data, seed=0, **kw).fit()


@pytest.mark.parametrize("cache", ["auto", "off"])
def test_frozen_blocks_bit_identical_trainable_changed(tiny_data, cache):
    plan = _plan([Stage("s1", ["layer4", "head"], max_epochs=2, patience=5, learning_rate=1e-2)], cache=cache)
    model = _model()
    before = _snapshot(model)
    result = _fit(model, plan, 0, tiny_data)
    after = _snapshot(model)
    for block in ("stem", "layer1", "layer2", "layer3"):
        assert all(np.array_equal(a, b) for a, b in zip(before[block], after[block])), block
    for block in ("layer4", "head"):
        assert any(not np.array_equal(a, b) for a, b in zip(before[block], after[block])), block
    expected = sum(int(np.prod(w.shape)) for b in ("layer4", "head") for layer in block_layers(model)[b]
                   for w in layer.trainable_weights)
    assert result.trainable_params == expected
    assert result.cached == (cache == "auto")


def test_batchnorm_statistics_never_change(tiny_data):
    import keras

    plan = _plan([Stage("all", ["stem", "layer1", "layer2", "layer3", "layer4", "head"], max_epochs=1)])
    model = _model()
    bns = [l for l in model.get_layer("backbone").layers if isinstance(l, keras.layers.BatchNormalization)]
    stats = [(l.moving_mean.numpy().copy(), l.moving_variance.numpy().copy()) for l in bns]
    gammas = [l.gamma.numpy().copy() for l in bns]
    _fit(model, plan, 0, tiny_data)
    for l, (m, v) in zip(bns, stats):
        assert np.array_equal(l.moving_mean.numpy(), m) and np.array_equal(l.moving_variance.numpy(), v)
    assert any(not np.array_equal(l.gamma.numpy(), g) for l, g in zip(bns, gammas)), "gamma should train"


def test_zero_multiplier_block_does_not_move(tiny_data):
    plan = _plan([Stage("s", ["layer3", "layer4", "head"], lr_multipliers={"layer3": 0.0}, max_epochs=1,
                        learning_rate=1e-2)], cache="off")
    model = _model()
    before = _snapshot(model)
    _fit(model, plan, 0, tiny_data)
    after = _snapshot(model)
    assert all(np.array_equal(a, b) for a, b in zip(before["layer3"], after["layer3"]))
    assert any(not np.array_equal(a, b) for a, b in zip(before["layer4"], after["layer4"]))


def test_sgd_updates_scale_with_multipliers(tiny_data):
    """One SGD step (no momentum) with multiplier m moves a block by exactly m x the m=1 step."""
    from kft.training import optim

    import tensorflow as tf

    model = _model()
    x = tf.constant(tiny_data.train.x[:8], tf.float32)
    y = tf.one_hot(tiny_data.train.y[:8], 3)
    from kft.model import block_of_variable, set_trainable_blocks

    set_trainable_blocks(model, ["layer4", "head"])
    variables = list(model.trainable_variables)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(y, model(x, training=False)))
    grads = {id(v): g for v, g in zip(variables, tape.gradient(loss, variables))}

    def step(mults):
        stage = Stage("s", ["layer4", "head"], optimizer="sgd", momentum=0.0, learning_rate=0.1,
                      schedule="constant", lr_multipliers=mults)
        start = [v.numpy().copy() for v in variables]
        groups = optim.build_groups(stage, variables, block_of_variable(model), 1)
        optim.apply_gradients(groups, grads)
        deltas = [v.numpy() - s for v, s in zip(variables, start)]
        for v, s in zip(variables, start):
            v.assign(s)
        return deltas

    base, scaled = step({}), step({"layer4": 0.25})
    blocks = block_of_variable(model)
    for v, d0, d1 in zip(variables, base, scaled):
        m = 0.25 if blocks[id(v)] == "layer4" else 1.0
        np.testing.assert_allclose(d1, m * d0, rtol=1e-4, atol=1e-7)
    assert any(np.abs(d).max() > 0 for d in base)


def test_cache_suffix_matches_full_model_logits_and_gradients(tiny_data):
    """Suffix-on-cached-features == full model: same logits, same trainable gradients (float32, tol 1e-4)."""
    import tensorflow as tf

    from kft.training.cache import compute_features, split_model
    from kft.model import set_trainable_blocks

    model = _model()
    set_trainable_blocks(model, ["layer3", "layer4", "head"])
    split = split_model(model, "layer3")
    x = tiny_data.train.x[:6]
    feats = compute_features(split.prefix, x, 4, dtype=np.float32)
    head = model.get_layer("logits")
    y = tf.one_hot(tiny_data.train.y[:6], 3)
    variables = list(model.trainable_variables)

    def loss_and_grads(fn):
        with tf.GradientTape() as tape:
            logits = fn()
            loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(y, logits))
        return logits.numpy(), [g.numpy() for g in tape.gradient(loss, variables)]

    full_logits, full_grads = loss_and_grads(lambda: model(tf.constant(x, tf.float32), training=False))
    cut_logits, cut_grads = loss_and_grads(lambda: head(split.suffix(tf.constant(feats), training=False)))
    np.testing.assert_allclose(cut_logits, full_logits, atol=1e-4)
    for a, b in zip(cut_grads, full_grads):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-3)
    # every trainable variable lives in the suffix or the logits layer: nothing trainable is cached
    assert {id(v) for v in [*split.suffix.trainable_variables, *head.trainable_variables]} == {id(v) for v in variables}


def test_stage_two_never_ends_worse_than_it_started(tiny_data):
    plan = _plan([Stage("s1", ["head"], max_epochs=3, learning_rate=1e-2),
                  Stage("s2", ["layer4", "head"], max_epochs=2, learning_rate=10.0)])  # absurd LR
    model = _model()
    r1 = _fit(model, plan, 0, tiny_data)
    r2 = _fit(model, plan, 1, tiny_data)
    assert r2.best_val_accuracy >= r1.best_val_accuracy


def test_head_only_caches_pooled_features_and_matches_full_model(tiny_data):
    from kft.training.cache import compute_features, split_model

    model = _model()
    split = split_model(model, None)
    x = tiny_data.train.x[:4]
    feats = compute_features(split.prefix, x, 4, dtype=np.float32)
    assert feats.shape == (4, model.get_layer("avg_pool").output.shape[-1])
    logits = model.get_layer("logits")(split.suffix(feats)).numpy()
    np.testing.assert_allclose(logits, model(x.astype("float32"), training=False).numpy(), atol=1e-4)


def _two_stage_cache(plan_kw=None):
    from kft.training.cache import FeatureCache

    plan = _plan([Stage("s1", ["layer4", "head"]), Stage("s2", ["layer3", "layer4", "head"])],
                 augment=Augment(), cache_views=2, **(plan_kw or {}))
    return plan, lambda model, data, p=plan: FeatureCache(model, p, data, 0)


def test_feature_cache_runs_the_images_once_and_derives_every_stage(tiny_data):
    """Built once where the lowest stage cuts (layer3); stage 1's layer4 features are derived from it."""
    import dataclasses

    plan, make = _two_stage_cache()
    model = _model()
    cache = make(model, tiny_data)
    assert cache.base == "layer3"
    s1 = cache.for_stage(plan.stages[0])
    assert s1.cut == "layer4" and s1.train.shape[:2] == (2, len(tiny_data.train.x))
    s2 = cache.for_stage(plan.stages[1])
    assert s2.cut == "layer3" and s2.train is cache.stored[1]  # reused, not recomputed
    # the same views run straight through the stage-1 prefix give the same features
    # (up to the float16 storage of the intermediate layer3 input)
    alone = dataclasses.replace(plan, stages=plan.stages[:1])
    _, make_alone = _two_stage_cache()
    direct = make_alone(model, tiny_data, alone).for_stage(plan.stages[0])
    assert direct.cut == "layer4"
    for got, want in ((s1.train, direct.train), (s1.val, direct.val)):
        got, want = got.astype(np.float32), want.astype(np.float32)
        np.testing.assert_allclose(got, want, atol=0.01 * np.abs(want).max())
    assert not np.array_equal(s1.train[0], s1.train[1])  # two different augmented views


def test_feature_cache_falls_back_when_the_shared_store_is_over_budget(tiny_data, monkeypatch):
    from kft.training.cache import FeatureCache

    sizes = {"layer3": 3, "layer4": 1}  # MB, as if the images were large
    monkeypatch.setattr(FeatureCache, "_bytes", lambda self, cut: sizes[cut] * 2**20)
    plan, make = _two_stage_cache({"cache_budget_mb": 2})
    cache = make(_model(), tiny_data)
    s1 = cache.for_stage(plan.stages[0])
    assert s1 is not None and s1.cut == "layer4" and cache.stored is None  # straight from the images
    assert cache.for_stage(plan.stages[1]) is None  # layer3 features alone exceed the budget: uncached


def test_feature_cache_sees_blocks_an_earlier_stage_trained(tiny_data):
    """A later stage that cuts higher gets features through the blocks as they are *now*."""
    from kft.training.cache import FeatureCache, compute_features, prefix_model
    from kft.model import block_layers

    plan = _plan([Stage("s1", ["layer3", "layer4", "head"]), Stage("s2", ["layer4", "head"])])
    model = _model()
    cache = FeatureCache(model, plan, tiny_data, 0)
    assert cache.for_stage(plan.stages[0]).cut == "layer3"
    stale = compute_features(prefix_model(model, "layer4"), tiny_data.train.x, dtype=np.float32)
    for layer in block_layers(model)["layer3"]:  # stand-in for stage 1 training layer3
        for w in layer.trainable_weights:
            w.assign(w * 1.5)
    fresh = compute_features(prefix_model(model, "layer4"), tiny_data.train.x, dtype=np.float32)
    s2 = cache.for_stage(plan.stages[1])
    assert s2.cut == "layer4"
    got = s2.train[0].astype(np.float32)
    np.testing.assert_allclose(got, fresh, atol=0.01 * np.abs(fresh).max())
    assert np.abs(got - stale).max() > 0.1 * np.abs(stale).max()



def test_the_refits_probe_reuses_the_pooled_features_it_derived_with_the_same_weights(tiny_data, monkeypatch):
    """lp_ft_top's refit probe runs the same initial blocks over the same training views as the
    selection's probe: those pooled features are reused (only the validation images' are new),
    and equal what deriving them again gives; changed weights are never served stale features."""
    import keras

    from kft.training.cache import FeatureCache

    plan = validate(Plan(backbone="mobilenet_v2", image_size=32, batch_size=8, augment=Augment(), cache_views=2,
                         stages=[Stage("probe", ["head"]), Stage("top", ["layer3", "layer4", "head"])]))
    model, n = build_classifier("mobilenet_v2", 3, image_size=32, weights="none", seed=0), len(tiny_data.train.x)
    for layer in model._flatten_layers():  # random init shrinks pooled features to ~1e-11 (0 in float16)
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_variance.assign(np.full(layer.moving_variance.shape, 0.05, np.float32))
    both = SimpleNamespace(x=np.concatenate([tiny_data.train.x, tiny_data.val.x]),
                           y=np.concatenate([tiny_data.train.y, tiny_data.val.y]))
    refit_data = SimpleNamespace(**{**vars(tiny_data), "train": both, "val": SimpleNamespace(
        x=tiny_data.val.x[:0], y=tiny_data.val.y[:0])})  # what FewShotData.for_refit gives
    cache = FeatureCache(model, plan, tiny_data, 0)
    first = cache.for_stage(plan.stages[0]).train
    assert first.shape[:2] == (2, n)
    cache.refit(refit_data)
    from kft.training import cache as cache_module

    ran, compute = [], cache_module.compute_features
    monkeypatch.setattr(cache_module, "compute_features",
                        lambda fn, x, *a, **k: ran.append(len(x)) or compute(fn, x, *a, **k))
    again = cache.for_stage(plan.stages[0]).train
    assert ran == [2 * len(tiny_data.val.x)]  # only the validation images' two views went through the blocks
    assert again.shape[:2] == (2, n + len(tiny_data.val.x))
    assert np.abs(first.astype(np.float32)).mean() > 0.1  # real features, not zeros
    np.testing.assert_array_equal(again[:, :n], first)
    monkeypatch.setattr(cache_module, "compute_features", compute)
    fresh = FeatureCache(model, plan, tiny_data, 0)  # the same refit, nothing derived before it
    fresh.for_stage(plan.stages[1])
    fresh.refit(refit_data)
    np.testing.assert_array_equal(fresh.for_stage(plan.stages[0]).train, again)
    for layer in block_layers(model)["layer4"]:  # as if a stage had trained layer4
        for w in layer.trainable_weights:
            w.assign(w * 1.5)
    moved = cache.for_stage(plan.stages[0]).train
    assert np.abs(moved[:, :n].astype(np.float32) - first.astype(np.float32)).max() > 0.01

def test_balanced_class_weights_weight_each_images_loss(tiny_data):
    """--class-weight balanced: the step's loss is the batch mean of each image's loss times n / (k x count)."""
    import keras
    import tensorflow as tf

    from kft.training.trainer import StageTrainer, balanced_class_weights

    assert balanced_class_weights(np.array([0, 0, 0, 1]), 3) == pytest.approx([4 / 9, 4 / 3, 0.0])
    keep = np.r_[0:8, 8:10, 16:24]  # class 1 keeps 2 of its 8 images
    tiny_data.train.x, tiny_data.train.y = tiny_data.train.x[keep], tiny_data.train.y[keep]
    plan = _plan([Stage("s1", ["head"], max_epochs=1, label_smoothing=0.0)], cache="off", class_weight="balanced")
    model = build_classifier("mobilenet_v3_small", 3, image_size=32, weights="none", dropout=0.0, seed=0)
    trainer = StageTrainer(model, plan, plan.stages[0], 0, tiny_data, seed=0)
    assert trainer.class_weights == pytest.approx([18 / 24, 18 / 6, 18 / 24])
    x, y = tiny_data.train.x[4:12], tiny_data.train.y[4:12].astype(np.int32)  # 4 of class 0, 2 of 1, 2 of 2
    logits = model(x.astype(np.float32), training=False)  # before the step moves the weights
    per_image = keras.losses.CategoricalCrossentropy(from_logits=True, reduction=None)(np.eye(3)[y], logits)
    loss, _ = trainer.train_step(tf.constant(x), tf.constant(y))
    assert float(loss) == pytest.approx(float(np.mean(per_image * trainer.class_weights[y])), rel=1e-5)
    assert float(loss) != pytest.approx(float(np.mean(per_image)), rel=1e-3)
