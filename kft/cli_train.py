"""``kft train`` / ``kft evaluate``: pass CLI options to ``kft.api`` and print what it returns."""

from __future__ import annotations

import json
import click

from kft.errors import KftError


def run_train(backbone, strategy, config_path, samples_per_class, val_per_class, image_size, seed, weights,
              data_dir, folder, max_epochs, limit_test, cache, cache_views, out, resume, overwrite=False,
              labels_per_class=None, refit=None):
    from kft import api

    if resume:
        click.echo(f"run folder: {api.resume(resume, log=click.echo)}")
        return
    if not backbone:
        from kft.backbones import registry

        raise KftError(f"name a backbone: kft train BACKBONE (one of: {', '.join(registry.names())})")
    run = api.train(backbone, strategy=strategy, config=config_path, seed=seed, weights=weights, data_dir=data_dir,
                    data=folder, limit_test=limit_test, out=out, overwrite=overwrite, log=click.echo,
                    samples_per_class=samples_per_class, val_per_class=val_per_class, image_size=image_size,
                    cache=cache, cache_views=cache_views, max_epochs=max_epochs,
                    labels_per_class=labels_per_class, refit=refit)
    click.echo(f"run folder: {run}")


def run_evaluate(target, limit_test, data_dir, json_path, tta=False):
    from kft import api, atomic

    scores = api.evaluate(target, limit_test=limit_test, data_dir=data_dir, tta=tta)
    click.echo(f"test accuracy {scores['accuracy']:.4f} on {scores['n']} images"
               + (" (flip test-time augmentation: not what an exported model does)" if tta else ""))
    for name, acc in zip(scores["class_names"], scores["per_class_accuracy"]):
        click.echo(f"  {name:<12} {acc:.3f}")
    if json_path:
        atomic.write_json(json_path, {"target": str(target), "test_accuracy": scores["accuracy"], **scores})
        click.echo(json.dumps({"json": str(json_path)}))
