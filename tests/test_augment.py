"""Stateless augmentation and the tf.data pipeline: exact geometry, seeded determinism."""

import numpy as np
import pytest

from kft.training.augment import Augmenter, affine_transforms, batch_seeds, make_augmenter
from kft.plan import Augment


def _warp(x, flip=0.0, angle=0.0, tx=0.0, ty=0.0):
    import tensorflow as tf

    n, h, w = x.shape[:3]
    t = affine_transforms(tf.fill([n], flip), tf.fill([n], angle), tf.fill([n], tx), tf.fill([n], ty), h, w)
    return tf.raw_ops.ImageProjectiveTransformV3(images=tf.constant(x, tf.float32), transforms=t,
                                                 output_shape=[h, w], fill_value=0.0, interpolation="BILINEAR",
                                                 fill_mode="REFLECT").numpy()


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, (2, 9, 9, 3)).astype(np.float32)


def test_identity_flip_and_quarter_turn_are_exact(images):
    np.testing.assert_allclose(_warp(images), images, atol=1e-4)
    np.testing.assert_allclose(_warp(images, flip=1.0), images[:, :, ::-1], atol=1e-4)
    np.testing.assert_allclose(_warp(images, angle=np.pi / 2), np.rot90(images, 1, axes=(1, 2)), atol=1e-3)


def test_integer_translation_shifts_content(images):
    out = _warp(images, tx=3.0, ty=-2.0)
    # out[y, x] = in[y + 2, x - 3] wherever that pixel exists (the border is reflected)
    np.testing.assert_allclose(out[:, :7, 3:], images[:, 2:, :6], atol=1e-4)


def test_same_seed_same_views_other_seed_other_views():
    import tensorflow as tf

    aug = make_augmenter(Augment())
    x = tf.constant(np.random.default_rng(1).integers(0, 256, (8, 16, 16, 3)), tf.float32)
    a, b = aug(x, tf.constant([1, 2])).numpy(), aug(x, tf.constant([1, 2])).numpy()
    c = aug(x, tf.constant([1, 3])).numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 1.0
    assert a.shape == x.shape and a.min() >= 0.0 and a.max() <= 255.0
    # each image gets its own draw: two copies of one image come out different
    same = tf.repeat(x[:1], 2, axis=0)
    d = aug(same, tf.constant([5, 6])).numpy()
    assert np.abs(d[0] - d[1]).mean() > 1.0


def test_brightness_only_shifts_each_image_by_one_bounded_offset():
    import tensorflow as tf

    aug = Augmenter(Augment(translate=0.0, flip=False, rotate=0.0, contrast=0.0, brightness=0.1))
    x = np.full((4, 8, 8, 3), 128.0, np.float32)
    out = aug(tf.constant(x), tf.constant([0, 1])).numpy()
    shift = out - x
    assert np.all(np.abs(shift - shift[:, :1, :1, :1]) < 1e-4)  # one offset per image
    assert np.all(np.abs(shift) <= 25.5 + 1e-4) and np.abs(shift).max() > 0


def test_nothing_enabled_means_no_augmenter():
    assert make_augmenter(Augment(enabled=False)) is None
    assert make_augmenter(Augment(translate=0.0, flip=False, rotate=0.0, contrast=0.0, brightness=0.0)) is None


def test_parallel_pipeline_is_deterministic_and_follows_the_order():
    from kft.training import pipeline

    x = np.random.default_rng(2).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    y = np.arange(10, dtype=np.int32)
    order = np.random.default_rng(3).permutation(10)
    aug = make_augmenter(Augment())
    seeds = batch_seeds(0, 1, 0, 0, n=pipeline.n_batches(10, 4))

    def run():
        return [(bx.numpy(), by.numpy()) for bx, by in
                pipeline.image_batches(x, y, 4, order=order, augmenter=aug, seeds=seeds)]

    first, second = run(), run()
    assert [len(b[1]) for b in first] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in first]), order)
    for (a, _), (b, _) in zip(first, second):
        np.testing.assert_array_equal(a, b)
    plain = np.concatenate([bx.numpy() for bx, _ in pipeline.image_batches(x, y, 4, order=order)])
    np.testing.assert_array_equal(plain, x[order].astype(np.float32))
    with pytest.raises(ValueError):
        pipeline.image_batches(x, y, 4, augmenter=aug, seeds=seeds[:1])


def test_view_batches_pick_the_requested_view():
    from kft.training import pipeline

    views = np.arange(3 * 5, dtype=np.float16).reshape(3, 5, 1)  # value = 5 * view + image
    y = np.arange(5, dtype=np.int32)
    order, view_of = np.array([4, 0, 2, 1, 3]), np.array([2, 0, 1, 1, 0])
    got = np.concatenate([bx.numpy()[:, 0] for bx, _ in
                          pipeline.view_batches(views, y, 2, order=order, view_of=view_of)])
    np.testing.assert_array_equal(got, 5 * view_of[order] + order)


def test_mixup_mixes_each_input_and_target_with_its_batch_mirror():
    """Mix: x -> lam x + (1 - lam) x[mirror], the same for the targets (int labels one-hot first);
    the weights follow the epoch's order, whatever the batch size."""
    from kft.training import pipeline

    views = np.arange(2 * 5 * 2, dtype=np.float16).reshape(2, 5, 2)  # (K views, N images, 2)
    y = np.array([0, 1, 2, 0, 1], np.int32)
    order, view_of = np.array([4, 0, 2, 1, 3]), np.array([1, 0, 1, 0, 0])
    lam = np.array([1.0, 0.25, 0.5, 0.9, 0.0], np.float32)
    mix = pipeline.Mix(lam, num_classes=3)
    batches = list(pipeline.view_batches(views, y, 2, order=order, view_of=view_of, mix=mix))
    x_plain = views[view_of[order], order].astype(np.float32)
    y_plain = np.eye(3, dtype=np.float32)[y[order]]
    start = 0
    for bx, by in batches:
        b = len(bx)
        xs, ys, ls = x_plain[start:start + b], y_plain[start:start + b], lam[start:start + b, None]
        np.testing.assert_allclose(bx.numpy(), ls * xs + (1 - ls) * xs[::-1], rtol=1e-6)
        np.testing.assert_allclose(by.numpy(), ls * ys + (1 - ls) * ys[::-1], rtol=1e-6)
        np.testing.assert_allclose(by.numpy().sum(1), 1, rtol=1e-6)
        start += b
    assert start == 5 and batches[0][1].dtype.is_floating
    # soft targets stay soft; images (augmented or not) mix the same way
    soft = np.array([[0.5, 0.5, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0.2, 0.2, 0.6]], np.float32)
    x = np.arange(5 * 4 * 4 * 3, dtype=np.uint8).reshape(5, 4, 4, 3)
    (bx, by), = pipeline.image_batches(x, soft, 5, order=order, mix=mix)
    xs, ls = x[order].astype(np.float32), lam[:, None]
    np.testing.assert_allclose(bx.numpy(), ls[:, :, None, None] * xs + (1 - ls[:, :, None, None]) * xs[::-1],
                               rtol=1e-6)
    np.testing.assert_allclose(by.numpy(), ls * soft[order] + (1 - ls) * soft[order][::-1], rtol=1e-6)
    aug = make_augmenter(Augment())
    seeds = batch_seeds(0, 1, 0, 0, n=1)
    (ax, ay), = pipeline.image_batches(x, soft, 5, order=order, augmenter=aug, seeds=seeds, mix=mix)
    (px, _), = pipeline.image_batches(x, soft, 5, order=order, augmenter=aug, seeds=seeds)
    px = px.numpy()
    np.testing.assert_allclose(ax.numpy(), ls[:, :, None, None] * px + (1 - ls[:, :, None, None]) * px[::-1],
                               rtol=1e-5, atol=1e-3)
