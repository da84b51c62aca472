"""Frozen-prefix feature cache: compute the frozen part of the network once per run.

In a stage, every block below the lowest trainable one is a fixed function of
the input (BatchNorm always runs in inference mode), so kft splits the model at
that block's input (its *cut*) into ``prefix`` (preprocessing + frozen blocks)
and ``suffix`` (trainable blocks + pooling), and trains the suffix on the
prefix's cached output. With augmentation, K augmented views of each training
image are cached and one is drawn per image each epoch (K=1 without
augmentation is exact).

A plan's stages unfreeze blocks from the top down, so nothing below the
earliest cut of any stage is ever trained. :class:`FeatureCache` therefore
computes the expensive high-resolution prefix once, at that *base* cut, and
each stage derives its own cut's features by running the blocks in between
(frozen in that stage) over the stored ones. The saved and exported model is
always the whole model: the split models share its layers and weights, nothing
here is stored in it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from kft.training import pipeline
from kft.training.augment import CACHE_REFIT_VIEWS, CACHE_VIEWS, batch_seeds, make_augmenter
from kft.backbones.registry import HEAD_BLOCK, block_input
from kft.model import HEAD_LAYERS, backbone_of, spec_of
from kft.progress import progress

_log = logging.getLogger(__name__)

BUILD_BATCH = 64


@dataclass
class Split:
    cut_block: str  # the first trainable backbone block ("head": only the head trains)
    prefix: object  # keras.Model: raw image -> features at cut_block's input
    suffix: object  # keras.Model: features -> pooled features (input of dropout)


def stage_cut(model, trainable: list[str]) -> str | None:
    """Where a stage's frozen prefix ends: its earliest trainable backbone block, ``head``
    when only the head trains, None when the first block trains (nothing to cache)."""
    blocks = spec_of(model).block_names
    cut = next((b for b in blocks if b in trainable), HEAD_BLOCK)
    return None if cut == blocks[0] else cut


def _order(model, cut: str) -> int:
    return (*spec_of(model).block_names, HEAD_BLOCK).index(cut)


def _cut_tensor(model, cut: str):
    base = backbone_of(model)
    return base.output if cut == HEAD_BLOCK else block_input(spec_of(model), base, cut)


def bridge(model, start: str, end: str):
    """keras.Model: features entering block ``start`` -> features entering ``end`` (``head``: pooled)."""
    import keras

    a = _cut_tensor(model, start)
    if start == HEAD_BLOCK:  # pooled features: nothing left to run
        f_in = keras.Input((int(a.shape[-1]),), name="features")
        return keras.Model(f_in, keras.layers.Identity(name="pooled")(f_in), name=f"{start}_to_{end}")
    f_in = keras.Input(tuple(a.shape[1:]), name="features")
    h = keras.Model(a, _cut_tensor(model, end), name="backbone_part")(f_in, training=False)
    if end == HEAD_BLOCK:
        h = model.get_layer(HEAD_LAYERS[0])(h)
    return keras.Model(f_in, h, name=f"{start}_to_{end}")


def prefix_model(model, cut: str):
    """keras.Model: raw image (as the classifier takes it) -> features entering ``cut``."""
    import keras

    image = keras.Input(model.inputs[0].shape[1:], name="image")
    x = image
    for name in ("upsample", "normalize"):
        if any(layer.name == name for layer in model.layers):
            x = model.get_layer(name)(x)
    base = backbone_of(model)
    feats = keras.Model(base.input, _cut_tensor(model, cut), name="backbone_prefix")(x, training=False)
    if cut == HEAD_BLOCK:  # only the head trains: cache the pooled features (tiny)
        feats = model.get_layer(HEAD_LAYERS[0])(feats)
    return keras.Model(image, feats, name="prefix")


def split_model(model, cut_block: str | None) -> Split:
    """Split ``model`` at the input of ``cut_block`` (None or ``head``: at the pooled features)."""
    cut = cut_block or HEAD_BLOCK
    return Split(cut, prefix_model(model, cut), bridge(model, cut, HEAD_BLOCK))


def feature_bytes(model, cut: str, n_items: int, dtype=np.float16) -> int:
    """Memory for ``n_items`` feature maps entering ``cut`` (``head``: pooled vectors)."""
    shape = _cut_tensor(model, cut).shape[1:]
    values = int(shape[-1]) if cut == HEAD_BLOCK else int(np.prod(shape))
    return values * n_items * np.dtype(dtype).itemsize


def compute_features(fn, inputs, batch_size: int = BUILD_BATCH, augmenter=None, view_seeds=None,
                     dtype=np.float16, desc: str | None = None, allocate=np.empty) -> np.ndarray:
    """Run keras model ``fn`` over ``inputs`` (uint8 images or cached features) in batches.

    With ``augmenter``, returns one augmented view per entry of ``view_seeds``
    (each: one seed per batch), stacked as (views, N, ...); else (N, ...).
    Batches come from a prefetched ``tf.data`` pipeline, so preparing the next
    batch overlaps the current forward pass. ``desc`` names the progress display.
    ``allocate(shape, dtype)`` makes the output (``kft.data.ondisk.empty``: on disk).
    """
    from kft.model import inference_fn

    run = inference_fn(fn)
    inputs = pipeline.as_source(inputs)
    n = int(inputs.shape[0])
    views = [None] if augmenter is None else list(view_seeds)
    out = None
    with progress(desc or "features", total=len(views) * n, unit="img") as bar:
        for k, seeds in enumerate(views):
            start = 0
            for x in pipeline.image_batches(inputs, None, batch_size, augmenter=augmenter, seeds=seeds):
                f = run(x).numpy()
                if out is None:
                    out = allocate((len(views), n, *f.shape[1:]), dtype)
                out[k, start:start + len(f)] = f
                start += len(f)
                bar.update(len(f))
    return out if augmenter is not None else out[0]


def _features_or_empty(fn, inputs, train_views: np.ndarray, batches: int, desc: str) -> np.ndarray:
    """``compute_features`` of ``inputs``; shaped like one training view when there are none
    (a refit has no validation split)."""
    if len(inputs) == 0:
        return np.zeros((0, *train_views.shape[2:]), dtype=train_views.dtype)
    return compute_features(fn, inputs, batches * BUILD_BATCH, desc=desc)


def _weights_digest(model) -> bytes:
    """A fingerprint of every weight of ``model`` (trainable or not): features it derived
    earlier can be reused only while this is unchanged."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    for w in model.weights:
        h.update(np.ascontiguousarray(np.asarray(w)).tobytes())
    return h.digest()


@dataclass
class StageFeatures:
    cut: str
    suffix: object  # keras.Model: features -> pooled features
    train: np.ndarray  # (views, N, ...) float16
    val: np.ndarray  # (N, ...) float16
    megabytes: float  # what the cache holds while this stage trains


class FeatureCache:
    """The run's cached features, shared by its stages (see the module docstring).

    ``for_stage(stage)`` returns the features a stage trains on, or None when the
    stage trains the first block, the plan says ``cache: off``, or the features
    would not fit ``cache_budget_mb``.
    """

    def __init__(self, model, plan, data, seed: int, stream: tuple[int, ...] = (CACHE_VIEWS,)):
        self.model, self.plan, self.data, self.seed = model, plan, data, seed
        self.augmenter = make_augmenter(plan.augment)
        self.views = plan.cache_views if self.augmenter is not None else 1
        cuts = [stage_cut(model, s.trainable) for s in plan.stages] if plan.cache == "auto" else []
        cuts = [c for c in cuts if c is not None]
        self.base = min(cuts, key=lambda c: _order(model, c)) if cuts else None
        self.stored: tuple[str, np.ndarray, np.ndarray] | None = None
        # Training images in parts, each with its own stream of view seeds: the refit appends
        # the validation images as a second part, so the first part's views stay as they were.
        # ``stream``: the view seeds' purpose key (kft.training.augment), so another model's cache draws other views.
        self.parts: list[tuple[np.ndarray, tuple[int, ...]]] = [(data.train.x, tuple(stream))]
        # Pooled features derived for a part, by the weights they came from: the refit's probe
        # stage runs the same (initial) blocks over the same first part, so it reuses them.
        self._pooled: dict[tuple[bytes, int, int], np.ndarray] = {}

    def refit(self, data, stream: tuple[int, ...] = (CACHE_REFIT_VIEWS,)) -> None:
        """Switch to ``data.for_refit()``-style data (the old training images first, then the new
        ones, no validation split), keeping every view already computed; the new images' views
        come from ``stream``."""
        n_old = sum(len(x) for x, _ in self.parts)
        if len(data.train.x) <= n_old or len(data.val.x):
            raise ValueError("refit data must extend the training images and have no validation split")
        self.parts.append((data.train.x[n_old:], tuple(stream)))
        self.data = data
        if self.stored is not None:
            t = time.time()
            base, train, val = self.stored
            prefix = prefix_model(self.model, base)
            extra = self._views(prefix, *self.parts[-1], desc=f"caching features entering {base} (refit)")
            self.stored = (base, np.concatenate([train, extra], axis=1), val[:0])
            _log.info(f"refit: cached {self.views} view(s) of the {extra.shape[1]} new training images entering "
                     f"{base} too, {time.time() - t:.1f}s")

    def release(self) -> None:
        """Drop the stored features (a self-training round is done with this cache)."""
        self.stored = None
        self._pooled.clear()

    def _bytes(self, cut: str) -> int:
        return feature_bytes(self.model, cut, len(self.data.train.x) * self.views + len(self.data.val.x))

    def _views(self, prefix, x, stream: tuple[int, ...], desc: str) -> np.ndarray:
        """(views, N, ...) features of images ``x``: augmented with seeds from ``stream``, or the
        plain image once without augmentation."""
        if self.augmenter is None:
            return compute_features(prefix, x, desc=f"{desc} (train)")[None]
        n_batches = pipeline.n_batches(len(x), BUILD_BATCH)
        return compute_features(prefix, x, augmenter=self.augmenter,
                                view_seeds=[batch_seeds(self.seed, *stream, k, n=n_batches)
                                            for k in range(self.views)],
                                desc=f"{desc} ({self.views} train views)")

    def _from_images(self, cut: str) -> tuple[np.ndarray, np.ndarray]:
        prefix = prefix_model(self.model, cut)
        desc = f"caching features entering {cut}"
        parts = [self._views(prefix, x, stream, desc) for x, stream in self.parts]
        train = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        return train, _features_or_empty(prefix, self.data.val.x, train, 1, desc=f"{desc} (val)")

    def _derive(self, cut: str) -> tuple[np.ndarray, np.ndarray]:
        """Features entering ``cut``, run from the stored ones part by part (so a part's
        batches are the same whether or not an earlier run of this cache derived it)."""
        start, train, val = self.stored
        if start == cut:
            return train, val
        part = bridge(self.model, start, cut)
        digest = _weights_digest(part) if cut == HEAD_BLOCK else None
        desc = f"features entering {cut} from {start}"
        pieces, first = [], 0
        for images, _ in self.parts:
            key, end = (digest, first, first + len(images)), first + len(images)
            derived = self._pooled.get(key) if digest else None
            if derived is None:
                flat = train[:, first:end].reshape(-1, *train.shape[2:])
                derived = compute_features(part, flat, 4 * BUILD_BATCH, desc=f"{desc} (train)")
                derived = derived.reshape(train.shape[0], end - first, *derived.shape[1:])
                if digest:
                    self._pooled[key] = derived
            else:
                _log.info(f"reusing the pooled features of training images {first}-{end - 1} (same weights)")
            pieces.append(derived)
            first = end
        derived = pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=1)
        return derived, _features_or_empty(part, val, derived, 4, desc=f"{desc} (val)")

    def for_stage(self, stage) -> StageFeatures | None:
        cut = stage_cut(self.model, stage.trainable)
        if self.base is None or cut is None:
            return None
        budget = self.plan.cache_budget_mb * 2**20
        shared = self._bytes(self.base) + (self._bytes(cut) if cut != self.base else 0)
        t = time.time()
        if shared <= budget:
            if self.stored is None:
                self.stored = (self.base, *self._from_images(self.base))
                _log.info(f"[{stage.name}] cached features entering {self.base} (kept for every stage): "
                         f"{self.views} view(s) x {len(self.data.train.x)} train + {len(self.data.val.x)} val, "
                         f"{self._bytes(self.base) / 2**20:.0f} MB float16, {time.time() - t:.1f}s")
                t = time.time()
            train, val, need, source = *self._derive(cut), shared, f"the cached {self.base} features"
        elif self._bytes(cut) <= budget:
            train, val, need, source = *self._from_images(cut), self._bytes(cut), "the images"
        else:
            _log.info(f"[{stage.name}] feature cache would need {self._bytes(cut) / 2**20:.0f} MB > budget "
                     f"{self.plan.cache_budget_mb} MB: training uncached")
            return None
        if cut != self.base or shared > budget:
            _log.info(f"[{stage.name}] features entering {cut} from {source}: "
                     f"{self._bytes(cut) / 2**20:.0f} MB float16, {time.time() - t:.1f}s")
        return StageFeatures(cut, bridge(self.model, cut, HEAD_BLOCK), train, val, need / 2**20)
