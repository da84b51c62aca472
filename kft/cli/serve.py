"""``kft serve``: the browser page and JSON API over an export folder or .tflite."""

from __future__ import annotations

import click

from kft.cli.group import cli


@cli.command()
@click.argument("target", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8000, show_default=True, help="Port (0: any free one).")
@click.option("--variant", type=click.Choice(["int8", "float16", "dynamic", "float32"]),
              help="Which model of an export folder (default: the smallest there).")
def serve(target, host, port, variant):
    """Classify images in the browser with an export folder or .tflite (offline; plus a JSON API)."""
    from kft.serve import serve as run_server

    run_server(target, host=host, port=port, variant=variant)
