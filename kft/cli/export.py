"""``kft export``: TFLite files, their metadata and the fidelity report."""

from __future__ import annotations

import click

from kft.cli.group import cli
from kft.errors import KftError


@cli.command()
@click.argument("source", type=click.Path())
@click.option("--tflite", is_flag=True, help="Export TFLite models (the only format so far).")
@click.option("--quantize", default="all", show_default=True, help="float32,float16,dynamic,int8 or all.")
@click.option("--int8-io", is_flag=True, help="int8 model takes uint8 pixels and gives uint8 probabilities.")
@click.option("--calibration-samples", type=int, default=300, show_default=True,
              help="Training images used to calibrate int8.")
@click.option("--limit-test", type=int, help="Score on a stratified N-image subset of the test set.")
@click.option("--data-dir", type=click.Path(), help="Folder holding cifar10/ (default: the run's, or $KFT_DATA_DIR).")
@click.option("--out", type=click.Path(file_okay=False), help="Output folder (default export/<run-name>).")
@click.option("--input-size", type=int, help="Square input the .tflite declares, reduced in the model to the "
              "training resolution by a box filter (default: smallest multiple of it >= 224, e.g. 224 for CIFAR-10).")
@click.option("--max-accuracy-drop", type=float, default=1.0, show_default=True,
              help="Points a variant may fall below the Keras model before its fallback, then FAILED (not written).")
@click.option("--quantization-report", is_flag=True,
              help="Also write the per-layer int8 error table (quantization_report.csv/.md).")
def export(source, tflite, quantize, int8_io, calibration_samples, limit_test, data_dir, out, input_size,
           max_accuracy_drop, quantization_report):
    """Export a run folder (or .keras model) to TFLite with metadata and a fidelity report."""
    if not tflite:
        raise KftError("choose an export format: --tflite")
    from kft import api
    from kft.export import ExportFailed

    try:
        result = api.export(source, quantize=quantize, int8_io=int8_io, out=out,
                            calibration_samples=calibration_samples, limit_test=limit_test, data_dir=data_dir,
                            input_size=input_size, max_accuracy_drop=max_accuracy_drop,
                            quantization_report=quantization_report)
    except ExportFailed as e:
        click.echo((e.result.out_dir / "export_report.md").read_text())
        raise
    click.echo((result.out_dir / "export_report.md").read_text())
    click.echo(f"exported to {result.out_dir}")
