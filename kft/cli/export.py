"""``kft export``: TFLite files, their metadata and the fidelity report; the phone web app (``--web``)."""

from __future__ import annotations

from pathlib import Path

import click

from kft.cli.group import cli
from kft.errors import KftError

VARIANTS = ("int8", "float16", "dynamic", "float32")


@cli.command()
@click.argument("source", type=click.Path())
@click.option("--tflite", is_flag=True, help="Export TFLite models (the default format).")
@click.option("--web", is_flag=True,
              help="Also write the static phone web app (camera, offline) into <export folder>/web; SOURCE may "
                   "be an export folder (then only the web app is written).")
@click.option("--variant", type=click.Choice(VARIANTS),
              help="The web app's model (default: the smallest variant that passed the accuracy guard).")
@click.option("--quantize", default="all", show_default=True, help="float32,float16,dynamic,int8 or all.")
@click.option("--int8-io", is_flag=True, help="int8 model takes uint8 pixels and gives uint8 probabilities.")
@click.option("--calibration-samples", type=int, default=300, show_default=True,
              help="Training images used to calibrate int8.")
@click.option("--limit-test", type=int, help="Score on a stratified N-image subset of the test set.")
@click.option("--data-dir", type=click.Path(), help="Folder holding cifar10/ (default: the run's, or $KFT_DATA_DIR).")
@click.option("--out", type=click.Path(file_okay=False),
              help="Output folder (default export/<run-name>); with an export folder as SOURCE and --web: the "
                   "web app's folder (default <export folder>/web).")
@click.option("--input-size", type=int, help="Square input the .tflite declares, reduced in the model to the "
              "training resolution by a box filter (default: smallest multiple of it >= 224, e.g. 224 for CIFAR-10).")
@click.option("--max-accuracy-drop", type=float, default=1.0, show_default=True,
              help="Points a variant may fall below the Keras model before its fallback, then FAILED (not written).")
@click.option("--quantization-report", is_flag=True,
              help="Also write the per-layer int8 error table (quantization_report.csv/.md).")
def export(source, tflite, web, variant, quantize, int8_io, calibration_samples, limit_test, data_dir, out,
           input_size, max_accuracy_drop, quantization_report):
    """Export a run folder (or .keras model) to TFLite with metadata and a fidelity report; with --web
    also the phone web app (from a run folder, or from an export folder alone)."""
    from kft.webapp import is_export_folder, write_web_app

    if variant and not web:
        raise KftError("--variant chooses the web app's model: add --web")
    if is_export_folder(source):
        if not web:
            raise KftError(f"{source} is an export folder already; add --web to write its web app")
        _web(write_web_app(source, out, variant))
        return
    from kft import api
    from kft.export import ExportFailed

    try:
        result = api.export(source, quantize=quantize, int8_io=int8_io, out=out,
                            calibration_samples=calibration_samples, limit_test=limit_test, data_dir=data_dir,
                            input_size=input_size, max_accuracy_drop=max_accuracy_drop,
                            quantization_report=quantization_report)
    except ExportFailed as e:
        click.echo((e.result.out_dir / "export_report.md").read_text())
        if web:  # the variants that passed still get their web app; then the error
            _web(write_web_app(e.result.out_dir, None, variant))
        raise
    click.echo((result.out_dir / "export_report.md").read_text())
    click.echo(f"exported to {result.out_dir}")
    if web:
        _web(write_web_app(result.out_dir, None, variant))


def _web(out: Path) -> None:
    import json

    info = json.loads((out / "model.json").read_text())
    click.echo(f"web app ({info['file']}, {info['size_bytes'] / 1e6:.1f} MB model) written to {out}: try it with "
               f"`python -m http.server -d {out}` and open http://127.0.0.1:8000/; to deploy see {out / 'DEPLOY.md'}")
