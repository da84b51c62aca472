"""kft's Python API, for notebooks and scripts: the same steps the CLI runs.

    from kft import api

    run = api.train("mobilenet_v2", seed=0)                 # -> runs/<name>/ (a Path)
    print(api.evaluate(run)["accuracy"])
    result = api.export(run, quantize="float32,int8")       # -> export/<name>/model_*.tflite
    for r in api.predict(result.out_dir / "model_int8.tflite", ["photos/"]):
        print(r["image"], r["top_k"][0])

(``kft.training``, ``kft.export`` ... are the modules that do the work; this module is
the stable surface over them.) Every function raises ``kft.errors.KftError`` (one
readable line) for a user mistake. Importing it does not import TensorFlow; each
call imports what it needs. Progress lines go through ``logging`` (logger ``kft``):
printed plainly unless your program configured logging itself (see ``kft.log``).
"""

from __future__ import annotations

from pathlib import Path

from kft.log import show_messages_unless_configured


def plan(backbone: str, strategy: str | None = None, config: str | Path | None = None, *,
         settings: dict | None = None, labels: int | None = None, max_epochs: int | None = None, **keys):
    """The training plan: a shipped ``strategy`` (default ``lp_ft_top``) or a ``config`` YAML file, with
    plan keys changed: ``settings`` (dotted keys: ``{"self_training.lr_scale": 2}``) or keyword
    arguments (``image_size=96``); ``labels``: labels per class in total; ``max_epochs``: a cap on
    every stage. ``kft plan --keys`` lists the keys.

        p = api.plan("mobilenet_v2", image_size=96, settings={"stages.top.max_epochs": 5})
    """
    from kft.plan import legacy_settings, resolve_plan

    return resolve_plan(backbone, strategy, config, settings={**legacy_settings(**keys), **(settings or {})},
                        labels=labels, max_epochs=max_epochs)


def train(backbone: str, *, strategy: str | None = None, config: str | Path | None = None, seed: int = 0,
          weights: str = "imagenet", data_dir=None, data=None, limit_test: int | None = None, out=None,
          overwrite: bool = False, callbacks=(), settings: dict | None = None, labels: int | None = None,
          max_epochs: int | None = None, **keys) -> Path:
    """Fine-tune ``backbone`` in stages; returns the finished run folder.

    ``data``: a folder with one sub-folder per class (default: few-shot CIFAR-10 from
    ``data_dir`` or ``$KFT_DATA_DIR``). ``out`` must be new or empty unless ``overwrite``
    (which replaces a previous run there). ``settings``, ``labels``, ``max_epochs`` and plan
    keys as keyword arguments go to :func:`plan`. ``callbacks``: your own
    ``keras.callbacks.Callback`` objects (each stage is one Keras "fit"; epochs are numbered
    run-wide) or ``kft.training.callbacks.Callback`` ones.

        run = api.train("mobilenet_v2", labels=100, seed=1)
    """
    from kft.errors import KftError
    from kft.plan import legacy_settings
    from kft.plan.options import COUNT, Option, check_value
    from kft.training import train as train_plan

    show_messages_unless_configured()
    if data_dir and data:
        raise KftError("give either data_dir (CIFAR-10) or data (a folder dataset), not both")
    if limit_test is not None:
        check_value("limit_test", limit_test, Option("", kind=COUNT, minimum=1))
    settings = {**legacy_settings(**keys), **(settings or {})}
    p = plan(backbone, strategy, config, settings=settings, labels=labels, max_epochs=max_epochs)
    # a folder takes only the counts asked for (default: all its images, ~20% validation)
    counts = (p.samples_per_class, p.val_per_class) if labels is not None else \
        (settings.get("samples_per_class"), settings.get("val_per_class"))
    return train_plan(p, seed=seed, weights=weights, data_dir=data_dir, folder=data, folder_counts=counts,
                      limit_test=limit_test, out=out, overwrite=overwrite, callbacks=callbacks)


def resume(run: str | Path, *, callbacks=()) -> Path:
    """Continue an interrupted run folder; returns it when finished."""
    from kft.training import resume as resume_run

    show_messages_unless_configured()
    return resume_run(run, callbacks=callbacks)


def evaluate(target: str | Path, *, limit_test: int | None = None, data_dir=None, tta: bool = False) -> dict:
    """Test accuracy of a run folder (its own test set: CIFAR-10's, or a folder run's test split) or a
    ``.keras`` file (CIFAR-10): ``{"accuracy", "ci95", "summary", "per_class_accuracy",
    "confusion_matrix", "n", "class_names"}``. ``tta``: flip test-time augmentation (a separate
    figure: exported models do not do it). Photos of your own: :func:`evaluate_folder`."""
    from kft.errors import KftError
    from kft.evaluate import evaluate_model
    from kft.heldout.stats import accuracy_line, wilson_interval
    from kft.rundir.artifacts import KERAS, RUN, open_artifact

    art = open_artifact(target, (RUN, KERAS), data_dir=data_dir)
    model = art.load_keras()
    if art.run is not None:
        x, y = art.run.test_set(limit_test)
        names = art.run.class_names
    else:
        from kft.data import load_few_shot

        data = load_few_shot(data_dir=data_dir, samples_per_class=1, val_per_class=1, seed=0, limit_test=limit_test)
        x, y, names = data.test.x, data.test.y, data.class_names
        if model.outputs[0].shape[-1] != len(names):
            raise KftError(f"{art.path} has {model.outputs[0].shape[-1]} outputs; CIFAR-10 has {len(names)} classes")
    result = evaluate_model(model, x, y, len(names), desc=f"scoring {len(y)} test images", tta=tta)
    right = int(round(result["accuracy"] * result["n"]))
    return {**result, "class_names": names, "ci95": [round(v, 4) for v in wilson_interval(right, result["n"])],
            "summary": accuracy_line(right, result["n"])}


def evaluate_folder(model: str | Path, folder: str | Path, *, out=None, num_threads: int | None = None) -> dict:
    """Score any model (``.tflite``, ``.keras``, run folder) on a labelled folder of photos it never saw,
    resized as a phone does; writes evaluation.md/.json and mistakes.png into ``out``. Returns the
    report: ``{"accuracy", "ci95", "summary", "per_class", "confusion_matrix", ...}``.

        api.evaluate_folder("export/<run>/model_int8.tflite", "new_photos/")["summary"]
    """
    from kft.heldout import evaluate_on_folder

    show_messages_unless_configured()
    return evaluate_on_folder(model, folder, out=out, num_threads=num_threads)


def export(source: str | Path, *, quantize: str = "all", int8_io: bool = False, out=None, **options):
    """Export a run folder or ``.keras`` file to TFLite; returns ``ExportResult(out_dir, files, report)``.
    ``options`` are those of ``kft.export.export_run`` (``calibration_samples``, ``limit_test`` ...)."""
    from kft.export import export_run

    show_messages_unless_configured()
    return export_run(source, quantize, int8_io, out_dir=out, **options)


def predict(model: str | Path, images, *, top_k: int = 3, num_threads: int | None = None) -> list[dict]:
    """Classify image files or folders with a ``.tflite`` (no TensorFlow), ``.keras`` or run folder:
    one ``{"image", "top_k": [{"label", "probability"}]}`` (or ``{"image", "error"}``) per image."""
    from kft.errors import KftError
    from kft.images import expand_image_paths
    from kft.predict import classify_files, open_model

    if top_k < 1:
        raise KftError(f"`top_k` must be at least 1, got {top_k}")
    paths = expand_image_paths([images] if isinstance(images, (str, Path)) else images)
    clf = open_model(model, num_threads=num_threads)
    return classify_files(clf, paths, min(top_k, len(clf.labels)))
