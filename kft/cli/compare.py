"""``kft compare``: parse the comma lists, run the grid, say where the results are."""

from __future__ import annotations

import time
from pathlib import Path

import click

from kft.cli.group import cli
from kft.compare import settings as compare_defaults  # constants only: no TensorFlow
from kft.errors import KftError
from kft.plan.schema import PROTOCOLS


@cli.command()
@click.option("--backbones", default=compare_defaults.DEFAULT_BACKBONES, show_default=True, help="Comma-separated.")
@click.option("--strategies", default=compare_defaults.DEFAULT_STRATEGIES, show_default=True,
              help="Comma-separated.")
@click.option("--seeds", default=compare_defaults.DEFAULT_SEEDS, show_default=True, help="Comma-separated; a seed fixes the sampled images.")
@click.option("--samples-per-class", default="100", show_default=True,
              help="Training images per class; a list (10,25,50,100,250) also draws a learning curve.")
@click.option("--weights", default="imagenet", show_default=True, help="imagenet, none (random init) or a file.")
@click.option("--val-per-class", type=int, help="Validation images per class.")
@click.option("--image-size", type=int, help="Backbone resolution (default: each plan's).")
@click.option("--data-dir", type=click.Path(), help="Folder holding cifar10/ (default: $KFT_DATA_DIR).")
@click.option("--max-epochs", type=int, help="Cap every stage's epochs (smoke runs).")
@click.option("--limit-test", type=int, help="Score a stratified N-image subset of the test set (smoke runs).")
@click.option("--cache", type=click.Choice(["auto", "off"]), help="Frozen-prefix feature cache.")
@click.option("--cache-views", type=int, help="Augmented views per image in the cache.")
@click.option("--protocol", type=click.Choice(PROTOCOLS),
              help="Label protocol of every run (default: each plan's, fixed for the shipped ones; see kft plan --keys).")
@click.option("--refit/--no-refit", default=None, hidden=True, help="Deprecated: --protocol.")
@click.option("--select/--no-select", default=None, hidden=True, help="Deprecated: --protocol.")
@click.option("--out", type=click.Path(file_okay=False), help="Compare folder (default runs/compare-<time>); "
              "rerun with the same --out to continue.")
@click.option("--jobs", type=int, default=1, show_default=True,
              help="Train this many runs at once, each a `kft train` process (logs in OUT/logs/).")
@click.option("--print-jobs", is_flag=True,
              help="Train nothing: print a `kft train` line per missing run (for a cluster scheduler); "
                   "the same `kft compare` afterwards collects the finished runs.")
def compare(backbones, strategies, seeds, samples_per_class, weights, val_per_class, image_size, data_dir,
            max_epochs, limit_test, cache, cache_views, protocol, refit, select, out, jobs, print_jobs):
    """Train every backbone x strategy x seed; tables, paired statistics and plots."""
    from kft.compare.grid import compare as run_compare
    from kft.compare.settings import CompareSettings
    from kft.lists import parse_list

    if refit is not None or select is not None:
        from kft.plan.resolve import protocol_from_flags

        old = " ".join(f for f, v in (("--refit", refit), ("--no-refit", refit is False), ("--select", select),
                                      ("--no-select", select is False)) if v is True)
        protocol = protocol_from_flags(protocol or "fixed", {k: v for k, v in (("refit", refit), ("select", select))
                                                             if v is not None})
        click.echo(f"note: {old} is deprecated; use --protocol {protocol}", err=True)
    settings = CompareSettings(
        backbones=parse_list(backbones, "backbones"), strategies=parse_list(strategies, "strategies"),
        seeds=parse_list(seeds, "seeds", int, minimum=0),
        samples_per_class=parse_list(samples_per_class, "samples-per-class", int, minimum=0),
        out=Path(out) if out else Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}",
        weights=weights, val_per_class=val_per_class, image_size=image_size, max_epochs=max_epochs,
        limit_test=limit_test, cache=cache, cache_views=cache_views, data_dir=str(data_dir) if data_dir else None,
        protocol=protocol)
    if any(n < 1 for n in settings.samples_per_class):
        raise KftError("--samples-per-class: every value must be at least 1")
    result = run_compare(settings, jobs=jobs, print_jobs=print_jobs)
    if print_jobs:
        for line in result.commands:
            click.echo(line)
        click.echo(f"{len(result.commands)} runs to train ({len(result.reused)} finished); then run "
                   f"`{settings.command()}` to collect them", err=True)
        return
    click.echo(f"compare folder: {result.out} ({len(result.ran)} trained, {len(result.reused)} reused)")
