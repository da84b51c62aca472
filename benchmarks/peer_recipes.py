"""kft against the two transfer-learning recipes a Keras user would copy, on the same labelled images.

    KFT_DATA_DIR=... KFT_WEIGHTS_DIR=... python benchmarks/peer_recipes.py RUN_DIR [--seed 0]
    python benchmarks/peer_recipes.py RUN_DIR --quick        # smoke test, well under a minute of training

RUN_DIR is a finished ``kft train`` run folder on CIFAR-10 (e.g. ``runs/default-s0``). The peers
train on exactly the images that run's final model trained on: the rows of the CIFAR-10
training set listed in its ``split.json`` (``train``, plus ``val`` when ``config.yaml`` says
``refit: true``: the fixed and refit protocols train the final model on every label; the
holdout protocol on ``train`` only). They start from the same ImageNet weights (MobileNetV2 1.0,
``mobilenet_v2_1.0_imagenet_no_top.weights.h5`` from ``KFT_WEIGHTS_DIR`` or kft's weights cache,
loaded into ``keras.applications.MobileNetV2(include_top=False, weights=None)``; nothing is
downloaded) and are scored once, after their fixed epochs, on the full 10,000-image CIFAR-10
test set. Nothing is selected on the test set, and no validation split or early stopping is
used (kft's fixed protocol has none either). It prints one ``RESULT`` line per recipe and one
for kft (its ``metrics.json``: test_accuracy and seconds), then a Markdown table.

The recipes (read from their sources on 2026-12-07):

``tf_tutorial`` -- TensorFlow, "Transfer learning and fine-tuning"
(https://www.tensorflow.org/tutorials/images/transfer_learning; tensorflow/docs
``site/en/tutorials/images/transfer_learning.ipynb``). Followed: MobileNetV2 base,
``base_model.trainable = False``, called with ``training=False``; RandomFlip("horizontal") +
RandomRotation(0.2) inside the model (active during ``fit`` only); ``mobilenet_v2.preprocess_input``;
GlobalAveragePooling2D, Dropout(0.2), Dense; Adam(learning_rate=base_learning_rate = 0.0001)
for ``initial_epochs = 10``; then ``base_model.trainable = True`` with the layers before
``fine_tune_at = 100`` frozen again, recompiled with RMSprop(learning_rate=base_learning_rate / 10)
and trained on to ``total_epochs = 20`` from ``initial_epoch=len(history.epoch)`` (10 more
epochs); batch 32, images 160 x 160, training data reshuffled every epoch (its
``image_dataset_from_directory(shuffle=True)``).

``keras_guide`` -- keras.io, "Transfer learning & fine-tuning" (https://keras.io/guides/transfer_learning/,
keras-team/keras-io ``guides/transfer_learning.py``, last modified 2023/06/25). Followed: its
end-to-end example's pipeline -- images resized with ``keras.layers.Resizing`` in the data
pipeline (its size, 150 x 150), RandomFlip("horizontal") + RandomRotation(0.1) mapped over
the training set *before* ``.batch(64).prefetch(...).cache()`` (so, as in the guide, each
image keeps the one random flip/rotation drawn in the first epoch), no shuffling; the model
Rescaling(scale=1/127.5, offset=-1) (the guide's scaling for Xception, and exactly what
``mobilenet_v2.preprocess_input`` computes), base called with ``training=False``,
GlobalAveragePooling2D, Dropout(0.2), Dense; ``Adam()`` (1e-3) with the base frozen; then
``base_model.trainable = True`` (every layer; BatchNorm meant to stay in inference mode through
``training=False``, see below) and ``Adam(1e-5)``. Epochs: the guide's end-to-end example runs 2 + 1 (a
short demo run); its workflow section, and the same example before the Keras 3 rewrite, use
20 + 10 ("epochs=20" for the new top, "epochs=10" end to end). ``keras_guide`` uses 20 + 10;
``keras_guide_2_1`` (opt-in with ``--recipes``) is the example as printed today.

BatchNorm: both recipes build ``base_model(x, training=False)`` so that BatchNorm stays in
inference mode after unfreezing. In Keras 3 that is not what happens: ``fit`` passes
``training=True`` down the functional graph and overrides it (keras-team/keras#20285; checked
here on Keras 3.15.1: the moving means change during ``fit``). ``--bn inference`` (default) does
what the recipes intend -- the base runs in inference mode, its unfrozen weights train -- as
``training=False`` did in tf.keras 2 and as kft does; ``--bn as-written`` runs their literal line,
i.e. what a user copying them into Keras 3 gets (BatchNorm on batch statistics once unfrozen).

Adaptations, the same for both recipes: CIFAR-10's 32 x 32 images are upsampled (bilinear, as
their loaders resize) to each recipe's size -- inside the model for the tutorial (before its
augmentation, as its loader resizes before the model), in the tf.data pipeline for the guide
(where the guide resizes); 10 classes instead of 2, so ``Dense(10)`` with sparse categorical
cross-entropy (softmax + probabilities for the tutorial, as its current sigmoid head; logits for
the guide, as its ``from_logits=True``) instead of one unit with binary cross-entropy; the
tutorial's validation/test split of cats-vs-dogs is replaced by no validation data and the
CIFAR-10 test set; the guide's data arrive in one fixed, seeded random order (never
reshuffled, as the guide's) rather than the split's order (training rows, then validation rows); ``keras.utils.set_random_seed(seed)`` before each recipe.

``--quick`` (smoke test): 2 labels per class from the run's rows, 1 epoch per phase, 200
class-balanced test images, 96 x 96 images, and random weights when no ImageNet file is found.
Its numbers mean nothing; it checks that everything runs.

Prints timings from the machine it runs on: ``wall s`` is model building + training + scoring
(data loading excluded); kft's ``seconds`` is its run's training + scoring, measured when it ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# fit() says a tf.data dataset ignores shuffle=True; the recipes shuffle (or not) in their pipelines
warnings.filterwarnings("ignore", message=".*shuffle=True. was passed")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kft.errors import KftError  # noqa: E402

WEIGHTS_FILE = "mobilenet_v2_1.0_imagenet_no_top.weights.h5"
NUM_CLASSES = 10


class Recipe:
    """One recipe's fixed settings: name, description, epochs per phase, image size, batch size."""

    def __init__(self, name: str, title: str, run, epochs: tuple[int, int], size: int, batch: int, summary: str):
        self.name, self.title, self.run, self.epochs = name, title, run, epochs
        self.size, self.batch, self.summary = size, batch, summary


# ----------------------------------------------------------------------------- the run folder

def read_run(run_dir: Path) -> dict:
    """What a kft run trained on and scored: ``{"rows", "protocol", "kft", "source", "class_names"}``.

    ``rows`` are CIFAR-10 training-set indices (train, plus val under refit/fixed), in split order.
    Example: ``read_run(Path("runs/default-s0"))["protocol"] == "fixed"``.
    """
    if not run_dir.is_dir():
        raise KftError(f"run folder {run_dir} does not exist")
    split_path = run_dir / "split.json"
    if not split_path.is_file():
        raise KftError(f"{run_dir} has no split.json: not a kft run folder")
    try:
        split = json.loads(split_path.read_text())
    except (OSError, ValueError) as e:
        raise KftError(f"{split_path}: unreadable ({type(e).__name__}: {e})") from None
    source = split.get("source") or {}
    if source.get("kind") != "cifar10":
        raise KftError(f"{split_path}: the run did not train on CIFAR-10 (source {source.get('kind')!r}); "
                       "the recipes are compared on CIFAR-10 only")
    train, val = split.get("train"), split.get("val") or []
    if not isinstance(train, list) or not isinstance(val, list) or not train:
        raise KftError(f"{split_path}: expected 'train' (and 'val') lists of CIFAR-10 training-set rows")
    if split.get("test") is not None and len(split["test"]) != 10000:
        print(f"note: the kft run scored {len(split['test'])} test images (--limit-test); the peers score "
              "the full test set")
    protocol = _plan_protocol(run_dir)
    rows = train + val if protocol in ("fixed", "refit") else train
    metrics = {}
    if (run_dir / "metrics.json").is_file():
        try:
            metrics = json.loads((run_dir / "metrics.json").read_text())
        except (OSError, ValueError):
            metrics = {}
    said = (metrics.get("labels") or {}).get("protocol")
    if said and said != protocol:
        raise KftError(f"{run_dir}: config.yaml gives the {protocol} protocol but metrics.json says {said}")
    return {"rows": [int(i) for i in rows], "protocol": protocol, "source": source,
            "class_names": split.get("class_names"), "data_source": split.get("data_source"),
            "kft": {"test_accuracy": metrics.get("test_accuracy"), "seconds": metrics.get("seconds"),
                    "test_images": metrics.get("test_images"), "backbone": metrics.get("backbone"),
                    "strategy": metrics.get("strategy"), "seed": metrics.get("seed"),
                    "per_class": (metrics.get("labels") or {}).get("per_class")}}


def _plan_protocol(run_dir: Path) -> str:
    """The run's label protocol (fixed | refit | holdout) from its config.yaml: its ``protocol``
    key, or the older ``refit``/``select`` pair (absent: holdout with selection, the old default)."""
    import yaml

    path = run_dir / "config.yaml"
    if not path.is_file():
        raise KftError(f"{run_dir} has no config.yaml: cannot tell which labels trained the model")
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise KftError(f"{path}: unreadable ({type(e).__name__})") from None
    if not isinstance(cfg, dict):
        raise KftError(f"{path}: expected a mapping")
    if cfg.get("protocol"):
        return str(cfg["protocol"])
    refit, select = bool(cfg.get("refit", False)), bool(cfg.get("select", True))
    return "holdout" if not refit else ("refit" if select else "fixed")


# ----------------------------------------------------------------------------- data and weights

def load_images(data_dir, rows: list[int], test_limit: int | None):
    """CIFAR-10 via kft's loader: (x, y) for ``rows`` of the training set, and the test set
    (its first ``test_limit // 10`` images of each class when a limit is given)."""
    from kft.data import load_cifar10_with_source

    full_train, full_test, source = load_cifar10_with_source(data_dir)
    idx = np.asarray(rows, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= len(full_train)):
        raise KftError(f"split.json lists training rows up to {idx.max()}, but the CIFAR-10 training set in "
                       f"{source.get('path')} has {len(full_train)} images")
    xt, yt = full_test.x, full_test.y
    if test_limit is not None:
        per = max(test_limit // NUM_CLASSES, 1)
        keep = np.sort(np.concatenate([np.flatnonzero(yt == c)[:per] for c in range(NUM_CLASSES)]))
        xt, yt = xt[keep], yt[keep]
    return full_train.x[idx], full_train.y[idx], xt, yt, source


def per_class_subset(y: np.ndarray, k: int) -> np.ndarray:
    """Positions of the first ``k`` rows of each class, in their original order."""
    return np.sort(np.concatenate([np.flatnonzero(y == c)[:k] for c in range(NUM_CLASSES)]))


def find_weights(explicit: str | None, allow_random: bool) -> Path | None:
    """The MobileNetV2 ImageNet weights file (``--weights``, else KFT_WEIGHTS_DIR, else kft's
    cache, as kft.backbones.weights looks), or None for random weights when ``allow_random``."""
    if explicit == "none":
        return None
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise KftError(f"weights file not found: {path}")
        return path
    from kft.backbones import weights as kw

    for folder in (kw.weights_dir(), kw.CACHE_DIR):
        if folder is not None and (Path(folder) / WEIGHTS_FILE).is_file():
            return Path(folder) / WEIGHTS_FILE
    if allow_random:
        return None
    raise KftError(f"no {WEIGHTS_FILE} in KFT_WEIGHTS_DIR ({os.environ.get('KFT_WEIGHTS_DIR') or 'unset'}) "
                   "or kft's weights cache; set KFT_WEIGHTS_DIR or pass --weights FILE (no download here)")


def mobilenet_v2(size: int, weights: Path | None):
    """``keras.applications.MobileNetV2`` 1.0 without top, ImageNet weights loaded from ``weights``."""
    import keras

    base = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=1.0, include_top=False, weights=None)
    if weights is not None:
        base.load_weights(weights)
    return base


# ----------------------------------------------------------------------------- the recipes

BN_MODES = ("inference", "as-written")


def call_base(base_model, h, bn: str):
    """The recipes' ``base_model(h, training=False)``, in one of two meanings.

    ``as-written``: that very call. In Keras 3 (3.15.1 here) ``fit`` calls the outer model with
    ``training=True`` and the functional graph passes it on to the nested base model, overriding
    the ``training=False`` given when the graph was built (keras-team/keras#20285). So once the
    base is unfrozen its BatchNorm layers normalise with batch statistics and update their moving
    averages -- what copying the recipes into Keras 3 does, not what they say.
    ``inference`` (default): what the recipes say and what ``training=False`` did in tf.keras 2:
    the base always runs in inference mode (BatchNorm uses and keeps its ImageNet moving
    statistics) while its unfrozen weights, BatchNorm's gamma/beta included, still train.
    """
    if bn == "as-written":
        return base_model(h, training=False)
    return _inference_mode_layer()(base_model)(h)


def _inference_mode_layer():
    import keras

    class InferenceMode(keras.layers.Layer):
        """Calls ``inner`` with ``training=False`` whatever the outer model is called with (its own
        ``call`` has no ``training`` argument, so Keras has nothing to override)."""

        def __init__(self, inner, **kwargs):
            super().__init__(**kwargs)
            self.inner = inner

        def call(self, x):
            return self.inner(x, training=False)

        def compute_output_shape(self, input_shape):
            return self.inner.compute_output_shape(input_shape)

    return InferenceMode

def tf_tutorial(x, y, recipe: Recipe, weights: Path | None, seed: int, bn: str = "inference"):
    """TensorFlow tutorial: frozen base + new head (Adam 1e-4), then fine-tune from layer 100
    (RMSprop 1e-5). Returns the trained model and a function mapping uint8 images to class ids."""
    import keras
    import tensorflow as tf

    size, batch = recipe.size, recipe.batch
    initial_epochs, fine_tune_epochs = recipe.epochs
    train = (tf.data.Dataset.from_tensor_slices((x, y))
             .shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
             .map(lambda a, b: (tf.cast(a, tf.float32), b))
             .batch(batch).prefetch(tf.data.AUTOTUNE))

    base_model = mobilenet_v2(size, weights)
    base_model.trainable = False
    data_augmentation = keras.Sequential([keras.layers.RandomFlip("horizontal"),
                                          keras.layers.RandomRotation(0.2)])
    preprocess_input = keras.applications.mobilenet_v2.preprocess_input
    inputs = keras.Input(shape=x.shape[1:])
    h = keras.layers.Resizing(size, size, interpolation="bilinear")(inputs)  # adaptation: 32 px -> 160 px
    h = data_augmentation(h)
    h = preprocess_input(h)
    h = call_base(base_model, h, bn)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dropout(0.2)(h)
    outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax")(h)  # the tutorial: Dense(1, sigmoid)
    model = keras.Model(inputs, outputs)

    base_learning_rate = 0.0001
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=base_learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    history = model.fit(train, epochs=initial_epochs, verbose=2)

    base_model.trainable = True
    fine_tune_at = 100
    for layer in base_model.layers[:fine_tune_at]:
        layer.trainable = False
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=base_learning_rate / 10),
                  loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    total_epochs = initial_epochs + fine_tune_epochs
    model.fit(train, epochs=total_epochs, initial_epoch=len(history.epoch), verbose=2)

    def predict(images):
        ds = tf.data.Dataset.from_tensor_slices(images).map(lambda a: tf.cast(a, tf.float32)).batch(batch)
        return np.argmax(model.predict(ds, verbose=0), axis=1)

    return model, predict


def keras_guide(x, y, recipe: Recipe, weights: Path | None, seed: int, bn: str = "inference"):
    """keras.io guide: frozen base + new head (Adam 1e-3), then the whole base trainable
    (Adam 1e-5), BatchNorm in inference mode. Returns the model and a uint8 -> class-id function."""
    import keras
    import tensorflow as tf

    size, batch = recipe.size, recipe.batch
    top_epochs, end_to_end_epochs = recipe.epochs
    order = np.random.default_rng(seed).permutation(len(y))  # one fixed order, never reshuffled
    resize_fn = keras.layers.Resizing(size, size)
    augmentation_layers = [keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.1)]

    def data_augmentation(img):
        for layer in augmentation_layers:
            img = layer(img)
        return img

    train = tf.data.Dataset.from_tensor_slices((x[order].astype(np.float32), y[order]))
    train = train.map(lambda a, b: (resize_fn(a), b))
    train = train.map(lambda a, b: (data_augmentation(a), b))
    train = train.batch(batch).prefetch(tf.data.AUTOTUNE).cache()  # the guide's order: augment, then cache

    base_model = mobilenet_v2(size, weights)
    base_model.trainable = False
    inputs = keras.Input(shape=(size, size, 3))
    h = keras.layers.Rescaling(scale=1 / 127.5, offset=-1)(inputs)  # = mobilenet_v2.preprocess_input
    h = call_base(base_model, h, bn)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dropout(0.2)(h)
    outputs = keras.layers.Dense(NUM_CLASSES)(h)  # the guide: Dense(1), from_logits=True
    model = keras.Model(inputs, outputs)

    model.compile(optimizer=keras.optimizers.Adam(),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])
    model.fit(train, epochs=top_epochs, verbose=2)

    base_model.trainable = True
    model.compile(optimizer=keras.optimizers.Adam(1e-5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])
    model.fit(train, epochs=end_to_end_epochs, verbose=2)

    def predict(images):
        ds = (tf.data.Dataset.from_tensor_slices(images.astype(np.float32))
              .map(resize_fn).batch(batch))
        return np.argmax(model.predict(ds, verbose=0), axis=1)

    return model, predict


RECIPES = {
    "tf_tutorial": Recipe(
        "tf_tutorial", "TensorFlow tutorial", tf_tutorial, (10, 10), 160, 32,
        "frozen 10 ep Adam 1e-4, then layers 100+ 10 ep RMSprop 1e-5; flip + rot 0.2; 160 px; batch 32"),
    "keras_guide": Recipe(
        "keras_guide", "keras.io guide", keras_guide, (20, 10), 150, 64,
        "frozen 20 ep Adam 1e-3, then all layers 10 ep Adam 1e-5; flip + rot 0.1 (cached); 150 px; batch 64"),
    "keras_guide_2_1": Recipe(
        "keras_guide_2_1", "keras.io guide, epochs as printed", keras_guide, (2, 1), 150, 64,
        "as keras_guide with the example's printed 2 + 1 epochs"),
}
DEFAULT_RECIPES = ("tf_tutorial", "keras_guide")


def run_recipe(recipe: Recipe, x, y, xt, yt, weights: Path | None, seed: int, bn: str = "inference") -> dict:
    """Seed, train and score one recipe: ``{"recipe", "test_accuracy", "seconds", ...}``."""
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    t0 = time.time()
    model, predict = recipe.run(x, y, recipe, weights, seed, bn)
    t_train = time.time() - t0
    pred = predict(xt)
    seconds = time.time() - t0
    del model
    return {"recipe": recipe.name, "title": recipe.title, "summary": recipe.summary, "epochs": list(recipe.epochs),
            "image_size": recipe.size, "batch_size": recipe.batch, "batchnorm": bn,
            "test_accuracy": round(float(np.mean(pred == yt)), 4), "test_images": int(len(yt)),
            "train_seconds": round(t_train, 1), "seconds": round(seconds, 1)}


# ----------------------------------------------------------------------------- output

def result_line(name: str, labels_per_class, acc, seconds, test_images) -> str:
    acc_s = "n/a" if acc is None else f"{acc:.4f}"
    sec_s = "n/a" if seconds is None else f"{seconds:.1f}"
    return (f"RESULT {name:<16} labels/class={labels_per_class} test_accuracy={acc_s} "
            f"test_images={test_images} seconds={sec_s}")


BN_TEXT = {"inference": "inference mode (moving statistics kept)",
           "as-written": "batch statistics (Keras 3 overrides `training=False`)",
           "kft": "kft's own (inference mode)"}


def markdown_table(rows: list[dict]) -> str:
    out = ["| recipe | what it does | BatchNorm when fine-tuning | labels per class | test accuracy | wall time |",
           "|---|---|---|---:|---:|---:|"]
    for r in rows:
        acc = "n/a" if r["test_accuracy"] is None else f"{100 * r['test_accuracy']:.2f}%"
        if r.get("test_images") not in (None, 10000):
            acc += f" ({r['test_images']} images)"
        sec = "n/a" if r["seconds"] is None else f"{r['seconds']:,.0f} s"
        out.append(f"| {r['title']} (`{r['recipe']}`) | {r['summary']} | {BN_TEXT.get(r.get('batchnorm'), 'n/a')} "
                   f"| {r['labels_per_class']:g} | {acc} | {sec} |")
    return "\n".join(out)


def write_json(path: Path, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically (a temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, help="a finished kft run folder on CIFAR-10 (split.json, config.yaml, metrics.json)")
    ap.add_argument("--seed", type=int, default=0, help="keras.utils.set_random_seed for the peers (default 0)")
    ap.add_argument("--recipes", default=",".join(DEFAULT_RECIPES),
                    help=f"comma-separated, from {', '.join(RECIPES)} (default {','.join(DEFAULT_RECIPES)})")
    ap.add_argument("--data-dir", default=None, help="CIFAR-10 folder (default: KFT_DATA_DIR)")
    ap.add_argument("--weights", default=None, help="MobileNetV2 .weights.h5 file, or 'none' for random weights "
                    "(default: KFT_WEIGHTS_DIR, then kft's cache)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 labels/class, 1 epoch per phase, "
                    "200 test images, 96 px, random weights if none found")
    ap.add_argument("--bn", choices=BN_MODES, default="inference",
                    help="inference (default): the base runs in inference mode as the recipes intend; as-written: "
                    "their literal base_model(x, training=False), which Keras 3's fit overrides once unfrozen")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return _main(args)
    except KftError as e:
        print(f"peer_recipes: error: {e}", file=sys.stderr)
        return 2


def _main(args) -> int:
    names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    unknown = [n for n in names if n not in RECIPES]
    if unknown or not names:
        raise KftError(f"unknown recipe {unknown[0] if unknown else '(none)'}; choose from {', '.join(RECIPES)}")
    if args.seed < 0:
        raise KftError("--seed must be >= 0")
    run = read_run(args.run_dir)
    weights = find_weights(args.weights, allow_random=args.quick)
    x, y, xt, yt, source = load_images(args.data_dir, run["rows"], 200 if args.quick else None)
    if run["source"].get("path") and source.get("path") and run["source"]["path"] != source["path"]:
        print(f"note: the run read CIFAR-10 from {run['source']['path']}, this reads {source['path']}")
    recipes = [RECIPES[n] for n in names]
    if args.quick:
        keep = per_class_subset(y, 2)
        x, y = x[keep], y[keep]
        recipes = [Recipe(r.name, r.title, r.run, (1, 1), 96, r.batch, r.summary + " [quick: 1 + 1 ep, 96 px]")
                   for r in recipes]
    counts = np.bincount(y, minlength=NUM_CLASSES)
    labels_per_class = len(y) / NUM_CLASSES
    print(f"run {args.run_dir}: {run['protocol']} protocol, the peers train on {len(y)} labelled images "
          f"({counts.min()}..{counts.max()} per class), score {len(yt)} test images; "
          f"weights {weights or 'random (none found)'}; seed {args.seed}; BatchNorm {args.bn}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs", flush=True)

    rows = []
    for recipe in recipes:
        print(f"--- {recipe.name}: {recipe.summary}", flush=True)
        r = run_recipe(recipe, x, y, xt, yt, weights, args.seed, args.bn)
        r["labels_per_class"] = labels_per_class
        rows.append(r)
        print(result_line(r["recipe"], f"{labels_per_class:g}", r["test_accuracy"], r["seconds"], r["test_images"]),
              flush=True)
    k = run["kft"]
    kft_row = {"recipe": "kft", "title": "kft " + " ".join(str(v) for v in (k["backbone"], k["strategy"]) if v),
               "summary": f"{args.run_dir.name} ({run['protocol']} protocol, seed {k['seed']}), from its metrics.json",
               "labels_per_class": k["per_class"] if k["per_class"] is not None else len(run["rows"]) / NUM_CLASSES,
               "test_accuracy": k["test_accuracy"], "test_images": k["test_images"], "seconds": k["seconds"],
               "batchnorm": "kft"}
    rows.append(kft_row)
    print(result_line("kft", f"{kft_row['labels_per_class']:g}", k["test_accuracy"], k["seconds"], k["test_images"]))
    print()
    print(markdown_table(rows))
    if args.json:
        write_json(args.json, {"run_dir": str(args.run_dir), "seed": args.seed, "quick": args.quick, "bn": args.bn,
                               "weights": str(weights) if weights else None, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
