"""``kft serve``: the web app (the one ``kft export --web`` writes) and a JSON API over an export folder or .tflite."""

from __future__ import annotations

import click

from kft.cli.group import cli


@cli.command()
@click.argument("target", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8000, show_default=True, help="Port (0: any free one).")
@click.option("--variant", type=click.Choice(["int8", "float16", "dynamic", "float32"]),
              help="Which model of an export folder (default: the smallest that passed the export's accuracy guard).")
def serve(target, host, port, variant):
    """Classify photos and camera frames in the browser with an export folder or .tflite (the page of
    `kft export --web`, served from this machine; plus a JSON API: /health, /model, /classify)."""
    from kft.serve import serve as run_server

    run_server(target, host=host, port=port, variant=variant)
