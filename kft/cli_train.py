"""``kft train`` / ``kft evaluate``: turn CLI options into a plan and call the trainer."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kft.errors import KftError


def resolve_plan(backbone, strategy=None, config_path=None, **overrides):
    """The plan to run: a shipped strategy or ``--config``, with CLI overrides applied."""
    from kft import config

    if config_path and strategy:
        raise KftError("give either --strategy or --config, not both")
    if config_path:
        plan = config.load_plan(config_path)
        if plan.backbone != backbone:
            raise KftError(f"{config_path} is a plan for {plan.backbone!r}, not {backbone!r}")
    else:
        plan = config.strategy_plan(backbone, strategy or config.DEFAULT_STRATEGY)
    for key in ("samples_per_class", "val_per_class", "image_size", "cache_views", "max_epochs"):
        v = overrides.get(key)
        if v is not None and v <= 0:
            raise KftError(f"--{key.replace('_', '-')} must be positive, got {v}")
    return config.with_overrides(plan, **overrides)


def run_train(backbone, strategy, config_path, samples_per_class, val_per_class, image_size, seed, weights,
              data_dir, folder, max_epochs, limit_test, cache, cache_views, out, resume):
    if data_dir and folder:
        raise KftError("give either --data-dir (CIFAR-10) or --data (a folder dataset), not both")
    if limit_test is not None and limit_test <= 0:
        raise KftError(f"--limit-test must be positive, got {limit_test}")
    if resume:
        from kft.train import resume as resume_run

        click.echo(f"run folder: {resume_run(resume, log=click.echo)}")
        return
    if not backbone:
        from kft.backbones import registry

        raise KftError(f"name a backbone: kft train BACKBONE (one of: {', '.join(registry.names())})")
    plan = resolve_plan(backbone, strategy, config_path, samples_per_class=samples_per_class,
                        val_per_class=val_per_class, image_size=image_size, cache=cache,
                        cache_views=cache_views, max_epochs=max_epochs)
    from kft.train import train

    run = train(plan, seed=seed, weights=weights, data_dir=data_dir, folder=folder,
                folder_counts=(samples_per_class, val_per_class), limit_test=limit_test, out=out, log=click.echo)
    click.echo(f"run folder: {run}")


def run_evaluate(target, limit_test, data_dir, json_path):
    from kft import atomic, runs
    from kft.evaluate import evaluate_model

    path = Path(target)
    if path.is_dir():
        run = runs.load_run(path)
        if data_dir:
            run.split["load_args"]["data_dir"] = str(data_dir)
        model = runs.load_model(run.model_path)
        x, y = run.test_set(limit_test)
        names = run.class_names
    else:
        from kft.data import load_few_shot

        model = runs.load_model(path)
        data = load_few_shot(data_dir=data_dir, samples_per_class=1, val_per_class=1, seed=0, limit_test=limit_test)
        x, y, names = data.test.x, data.test.y, data.class_names
        if model.outputs[0].shape[-1] != len(names):
            raise KftError(f"{path} has {model.outputs[0].shape[-1]} outputs; CIFAR-10 has {len(names)} classes")
    scores = evaluate_model(model, x, y, len(names), desc=f"scoring {len(y)} test images")
    click.echo(f"test accuracy {scores['accuracy']:.4f} on {scores['n']} images")
    for name, acc in zip(names, scores["per_class_accuracy"]):
        click.echo(f"  {name:<12} {acc:.3f}")
    if json_path:
        atomic.write_json(json_path, {"target": str(path), "test_accuracy": scores["accuracy"], **scores,
                                      "class_names": names})
        click.echo(json.dumps({"json": str(json_path)}))
