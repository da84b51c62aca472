"""The ``kft`` command line: parses arguments and calls the library. No logic here.

Heavy modules (TensorFlow) are imported inside each command, so ``kft --help``
and ``kft predict`` start fast. A ``KftError`` is a user mistake: it is printed
as one line and the exit code is 2.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

import click

from kft.compare import settings as compare_defaults  # constants only: no TensorFlow
from kft.errors import KftError


@click.group()
@click.version_option(package_name="kft")
@click.option("--verbose", "-v", is_flag=True, help="Also show TensorFlow's own log lines.")
def cli(verbose):
    """Few-shot transfer learning to small, fast on-device image classifiers."""
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from kft.native_logs import hide_native_logs

        hide_native_logs()
        # TensorFlow's Python-side warnings (e.g. tf.function retracing notices) are for its
        # developers, not kft's users; errors still show.
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        # The quantization debugger builds tf.lite.Interpreter, whose deprecation notice is for TF's users.
        warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter is deprecated",
                                category=UserWarning)


@cli.command()
def backbones():
    """List backbones, their blocks, parameter counts and local ImageNet weights."""
    from kft.backbones.listing import format_backbones

    click.echo(format_backbones())


@cli.command()
@click.argument("backbone")
@click.option("--strategy", default="two_stage", show_default=True,
              help="two_stage, three_stage, full or head_only (kft.strategies).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the YAML to this file (default: print it).")
def plan(backbone, strategy, out):
    """Print the training plan of BACKBONE and --strategy as YAML, to copy, edit and pass to --config."""
    from kft import atomic, strategies

    text = strategies.plan_yaml(strategies.build_plan(backbone, strategy))
    if out:
        atomic.write_text(out, text)
        click.echo(f"plan written to {out}")
    else:
        click.echo(text, nl=False)


@cli.command()
@click.argument("backbone", required=False)
@click.option("--strategy", default=None, help="two_stage (default), three_stage, full or head_only.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Your own plan (YAML).")
@click.option("--samples-per-class", type=int, help="Training images per class (default 100).")
@click.option("--val-per-class", type=int, help="Validation images per class, from the rest of the training set.")
@click.option("--labels-per-class", type=int,
              help="Every label you have per class: 80% train / 20% select the epochs, then all of them "
                   "train the final model (implies --refit).")
@click.option("--refit/--no-refit", default=None,
              help="After selection, retrain from scratch on train + validation images (default: the plan's).")
@click.option("--image-size", type=int, help="Backbone resolution; images are upsampled inside the model.")
@click.option("--seed", type=int, default=0, show_default=True, help="Fixes the subset, the split and the init.")
@click.option("--weights", default="imagenet", show_default=True, help="imagenet, none or a weights file.")
@click.option("--data-dir", type=click.Path(), help="Folder holding cifar10/ (default: $KFT_DATA_DIR).")
@click.option("--data", "folder", type=click.Path(), help="Your own dataset: one sub-folder per class.")
@click.option("--max-epochs", type=int, help="Cap every stage's epochs (smoke runs).")
@click.option("--limit-test", type=int, help="Score a stratified N-image subset of the test set (smoke runs).")
@click.option("--cache", type=click.Choice(["auto", "off"]), help="Frozen-prefix feature cache.")
@click.option("--cache-views", type=int, help="Augmented views per image in the cache.")
@click.option("--out", type=click.Path(file_okay=False), help="Run folder (default runs/<backbone>-<strategy>-<time>).")
@click.option("--resume", type=click.Path(), help="Continue an interrupted run folder.")
@click.option("--overwrite", is_flag=True, help="Replace a previous run in --out (refused otherwise).")
def train(backbone, strategy, config_path, samples_per_class, val_per_class, labels_per_class, refit, image_size, seed,
          weights, data_dir, folder, max_epochs, limit_test, cache, cache_views, out, resume, overwrite):
    """Fine-tune BACKBONE in stages on few-shot CIFAR-10 (or --data FOLDER)."""
    options = dict(locals())
    from kft.cli_train import run_train

    run_train(**options)


@cli.command()
@click.argument("target", type=click.Path())
@click.option("--limit-test", type=int, help="Score a stratified N-image subset of the test set.")
@click.option("--data-dir", type=click.Path(), help="Folder holding cifar10/ (default: the run's, or $KFT_DATA_DIR).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the scores as JSON.")
@click.option("--tta", is_flag=True, help="Also average each image with its mirror image (reported separately; "
                                          "exported models do not do this).")
def evaluate(target, limit_test, data_dir, json_path, tta):
    """Test accuracy of a run folder (or a .keras model, on CIFAR-10)."""
    from kft.cli_train import run_evaluate

    run_evaluate(target, limit_test, data_dir, json_path, tta)


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
                            quantization_report=quantization_report, log=click.echo)
    except ExportFailed as e:
        click.echo((e.result.out_dir / "export_report.md").read_text())
        raise
    click.echo((result.out_dir / "export_report.md").read_text())
    click.echo(f"exported to {result.out_dir}")


@cli.command()
@click.argument("model", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--top-k", type=int, default=3, show_default=True, help="How many classes to print per image.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def predict(model, images, top_k, as_json):
    """Classify IMAGES with MODEL (.tflite without TensorFlow, .keras or a run folder).

    IMAGES are files or folders; a folder means every image file under it, sub-folders
    included, in sorted order (hidden files skipped)."""
    from kft.predict import run_predict

    code = run_predict(model, list(images), top_k, as_json)
    if code:
        sys.exit(code)


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
@click.option("--refit/--no-refit", default=None,
              help="Label protocol: after selection, retrain on training + validation labels (see kft train).")
@click.option("--out", type=click.Path(file_okay=False), help="Compare folder (default runs/compare-<time>); "
              "rerun with the same --out to continue.")
def compare(backbones, strategies, seeds, samples_per_class, weights, val_per_class, image_size, data_dir,
            max_epochs, limit_test, cache, cache_views, refit, out):
    """Train every backbone x strategy x seed; tables, paired statistics and plots."""
    options = dict(locals())
    from kft.compare import run_compare_cli

    run_compare_cli(**options)


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
    from kft.bench.run import run_bench

    run_bench(list(models), threads, runs, warmup, json_path, plot_path, images_dir,
              echo=click.echo, warn=lambda m: click.echo(m, err=True))


@cli.command()
@click.argument("target", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8000, show_default=True, help="Port (0: any free one).")
@click.option("--variant", type=click.Choice(["int8", "float16", "dynamic", "float32"]),
              help="Which model of an export folder (default: the smallest there).")
def serve(target, host, port, variant):
    """Classify images in the browser with an export folder or .tflite (offline; plus a JSON API)."""
    from kft.serve import serve as run_server

    run_server(target, host=host, port=port, variant=variant, echo=click.echo)


def main(argv=None) -> None:
    """Entry point: run the CLI, turning user errors into one line and exit code 2."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except KftError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except OSError as e:  # a full disk met outside kft.atomic's writers is still the user's situation
        from kft.runguard import disk_full_error

        error = disk_full_error(e.filename or "a file", e)
        if error is None:
            raise
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
