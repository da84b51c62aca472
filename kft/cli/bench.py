"""``kft bench``: latency table on stdout (progress on stderr), optional --json and --plot."""

from __future__ import annotations

from pathlib import Path

import click

from kft.cli.group import cli
from kft.errors import KftError

PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


@cli.command()
@click.argument("models", nargs=-1, required=True, type=click.Path())
@click.option("--threads", default="1", show_default=True, help="Comma-separated thread counts, e.g. 1,2,4.")
@click.option("--runs", type=int, default=50, show_default=True, help="Timed single-image runs per thread count.")
@click.option("--warmup", type=int, default=5, show_default=True, help="Untimed runs first.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the records as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Accuracy vs latency plot (.png).")
@click.option("--images", "images_dir", type=click.Path(), help="Folder of photos to feed "
              "(default: CIFAR-10 test images from $KFT_DATA_DIR, else synthetic natural-looking images).")
def bench(models, threads, runs, warmup, json_path, plot_path, images_dir):
    """Latency (batch 1), MACs and GMAC/s of .tflite (and .keras) MODELS per thread count."""
    from kft.rundir import atomic
    from kft.bench.report import format_table, header, plot_pareto
    from kft.bench.run import benchmark, check_models, parse_threads
    from kft.log import show_messages

    show_messages("stderr")  # stdout holds the table only
    thread_counts = parse_threads(threads)
    check_models(models)
    for p, what in ((json_path, "--json"), (plot_path, "--plot")):
        if p is not None and Path(p).is_dir():
            raise KftError(f"{what} {p} is a folder; give a file name")
    if plot_path is not None and Path(plot_path).suffix.lower() not in PLOT_SUFFIXES:
        raise KftError(f"--plot {plot_path}: unsupported image type; choose one of: {', '.join(PLOT_SUFFIXES)}")

    records, ctx = benchmark(list(models), thread_counts, runs, warmup, images_dir)
    click.echo(header(ctx["cpu"], ctx["runtimes"], ctx["images"], runs, warmup))
    click.echo(format_table(records))
    if json_path is not None:
        try:
            atomic.write_json(json_path, records)
        except OSError as e:
            raise KftError(f"cannot write {json_path} ({e.strerror or e})") from None
    if plot_path is not None and plot_pareto(records, plot_path) == 0:
        click.echo(f"warning: no model has a known accuracy (no export_report.json / metrics.json beside it); "
                   f"{plot_path} not written", err=True)
