"""``kft predict``: classify image files with a .tflite (no TensorFlow), .keras or run folder."""

from __future__ import annotations

import json
import sys

import click

from kft.cli.group import cli
from kft.errors import KftError


@cli.command()
@click.argument("model", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--top-k", type=int, default=3, show_default=True, help="How many classes to print per image.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def predict(model, images, top_k, as_json):
    """Classify IMAGES with MODEL (.tflite without TensorFlow, .keras or a run folder).

    IMAGES are files or folders; a folder means every image file under it, sub-folders
    included, in sorted order (hidden files skipped)."""
    from kft.images import expand_image_paths
    from kft.predict import classify_files, open_model

    if top_k < 1:
        raise KftError(f"--top-k must be at least 1, got {top_k}")
    paths = expand_image_paths(list(images))
    clf = open_model(model)

    def show(result):  # as soon as each image is classified
        if "error" in result:
            click.echo(f"error: {result['error']}", err=True)
        elif not as_json:
            click.echo(result["image"])
            for c in result["top_k"]:
                click.echo(f"  {c['label']}: {c['probability']:.4f}")

    results = classify_files(clf, paths, min(top_k, len(clf.labels)), on_result=show)
    if as_json:
        click.echo(json.dumps({"model": str(model), "results": results}, indent=2))
    if any("error" in r for r in results):
        sys.exit(1)
