"""``kft compare`` glue: parse the comma lists, then run the comparison."""

from __future__ import annotations

from pathlib import Path
import time

from kft.compare.grid import CompareResult
from kft.compare.grid import compare
from kft.compare.settings import CompareSettings
from kft.errors import KftError
from kft.lists import parse_list

# -- CLI glue -------------------------------------------------------------------------------------------------------
def run_compare_cli(backbones, strategies, seeds, samples_per_class, weights, val_per_class, image_size, data_dir,
                    max_epochs, limit_test, cache, cache_views, out, refit=None) -> CompareResult:
    """``kft compare``: parse the comma lists, then ``compare``."""
    import click

    settings = CompareSettings(
        backbones=parse_list(backbones, "backbones"), strategies=parse_list(strategies, "strategies"),
        seeds=parse_list(seeds, "seeds", int, minimum=0),
        samples_per_class=parse_list(samples_per_class, "samples-per-class", int, minimum=0),
        out=Path(out) if out else Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}",
        weights=weights, val_per_class=val_per_class, image_size=image_size, max_epochs=max_epochs,
        limit_test=limit_test, cache=cache, cache_views=cache_views, data_dir=str(data_dir) if data_dir else None,
        refit=refit)
    if any(n < 1 for n in settings.samples_per_class):
        raise KftError("--samples-per-class: every value must be at least 1")
    result = compare(settings, log=click.echo)
    click.echo(f"compare folder: {result.out} ({len(result.ran)} trained, {len(result.reused)} reused)")
    return result
