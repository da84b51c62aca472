"""``kft backbones``, ``kft plan``, ``kft train`` and ``kft evaluate``."""

from __future__ import annotations

import json

import click

from kft.cli.group import cli
from kft.cli.plan_flags import deprecated_settings, old_flags, plan_flag_settings, plan_flags
from kft.errors import KftError
from kft.plan import strategies


@cli.command()
def backbones():
    """List backbones, their blocks, parameter counts and local ImageNet weights."""
    from kft.backbones.listing import format_backbones

    click.echo(format_backbones())


@cli.command()
@click.argument("backbone", required=False)
@click.option("--strategy", default=strategies.DEFAULT, show_default=True,
              help=f"One of: {', '.join(strategies.names())} (kft.plan.strategies).")
@click.option("--keys", is_flag=True, help="Print the reference of every plan key instead (Markdown).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write it to this file (default: print it).")
def plan(backbone, strategy, keys, out):
    """Print the training plan of BACKBONE and --strategy as YAML, to copy, edit and pass to --config."""
    from kft.plan import build_plan, key_reference, plan_yaml
    from kft.rundir import atomic

    if keys:
        text = key_reference()
    elif not backbone:
        raise KftError("name a backbone: kft plan BACKBONE (or kft plan --keys)")
    else:
        text = plan_yaml(build_plan(backbone, strategy))
    if out:
        atomic.write_text(out, text)
        click.echo(f"written to {out}")
    else:
        click.echo(text, nl=False)


@cli.command()
@click.argument("backbone", required=False)
@click.option("--data", "folder", type=click.Path(), help="Your photos: one sub-folder per class "
              "(default: few-shot CIFAR-10 from --data-dir or $KFT_DATA_DIR).")
@click.option("--labels", type=int, help="Labels per class in total; all of them train (CIFAR-10; default: "
              "the plan's samples_per_class + val_per_class).")
@click.option("--unlabeled", metavar="cifar10-rest|DIR",
              help="Self-training: unlabelled images the model pseudo-labels and learns from (cifar10-rest: "
                   "the CIFAR-10 training images not drawn; DIR: a folder).")
@click.option("--strategy", default=None,
              help=f"One of: {', '.join(strategies.names())} (default {strategies.DEFAULT}).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Your own plan (YAML, see kft plan).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Set any plan key (kft plan --keys): --set image_size=96 --set self_training.lr_scale=2 "
                   "--set stages.top.max_epochs=5.")
@click.option("--seed", type=int, default=0, show_default=True, help="Fixes the subset, the split and the init.")
@click.option("--weights", default="imagenet", show_default=True, help="imagenet, none or a weights file.")
@click.option("--data-dir", type=click.Path(), help="Folder holding cifar10/ (default: $KFT_DATA_DIR).")
@click.option("--out", type=click.Path(file_okay=False), help="Run folder (default runs/<backbone>-<strategy>-<time>).")
@click.option("--resume", type=click.Path(), help="Continue an interrupted run folder.")
@click.option("--overwrite", is_flag=True, help="Replace a previous run in --out (refused otherwise).")
@click.option("--max-epochs", type=int, help="Cap every stage's epochs (smoke runs).")
@click.option("--limit-test", type=int, help="Score a stratified N-image subset of the test set (smoke runs).")
@plan_flags
@old_flags
def train(backbone, folder, labels, unlabeled, strategy, config_path, settings, seed, weights, data_dir, out, resume,
          overwrite, max_epochs, limit_test, **old):
    """Fine-tune BACKBONE in stages on few-shot CIFAR-10 (or --data FOLDER)."""
    from kft import api
    from kft.plan import OptionError, parse_setting

    if resume:
        click.echo(f"run folder: {api.resume(resume)}")
        return
    if not backbone:
        from kft.backbones import registry

        raise KftError(f"name a backbone: kft train BACKBONE (one of: {', '.join(registry.names())})")
    plan_settings = dict(parse_setting(text) for text in settings)
    labels = deprecated_settings(old, plan_settings, labels)
    plan_flag_settings(old, plan_settings)
    if unlabeled is not None:
        plan_settings["unlabeled"] = unlabeled
    try:
        run = api.train(backbone, strategy=strategy, config=config_path, seed=seed, weights=weights, data_dir=data_dir,
                        data=folder, limit_test=limit_test, out=out, overwrite=overwrite, settings=plan_settings,
                        labels=labels, max_epochs=max_epochs)
    except OptionError as e:  # name the flag the user typed, where it was one
        from kft.plan.resolve import flagged_keys

        typed = {"labels": "--labels", "max_epochs": "--max-epochs", "limit_test": "--limit-test",
                 **{k: f for k, f in flagged_keys().items() if old.get("old__" + k.replace(".", "__")) is not None}}
        if e.key in typed:
            raise KftError(f"{typed[e.key]} {e.problem.lstrip(': ')}") from None
        raise
    click.echo(f"run folder: {run}")


@cli.command()
@click.argument("target", type=click.Path())
@click.option("--data", "folder", type=click.Path(), help="Score on this labelled folder (one sub-folder per class, "
              "photos the model never saw) instead; writes evaluation.md/.json and mistakes.png.")
@click.option("--out", type=click.Path(file_okay=False), help="With --data: where the report goes "
              "(default <folder>-evaluation beside the model).")
@click.option("--limit-test", type=int, help="Score a stratified N-image subset of the test set.")
@click.option("--data-dir", type=click.Path(), help="Folder holding cifar10/ (default: the run's, or $KFT_DATA_DIR).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the scores as JSON.")
@click.option("--tta", is_flag=True, help="Also average each image with its mirror image (reported separately; "
                                          "exported models do not do this).")
def evaluate(target, folder, out, limit_test, data_dir, json_path, tta):
    """Accuracy of a run folder on its test set, or of any model (.tflite, .keras, run) on --data FOLDER."""
    from kft import api
    from kft.rundir import atomic

    if folder:
        report = api.evaluate_folder(target, folder, out=out)
        click.echo(f"accuracy {report['summary']} on {folder}")
        for row in report["per_class"]:
            acc = "  -  " if row["accuracy"] is None else f"{row['accuracy']:.3f}"
            click.echo(f"  {row['class']:<12} {acc}  ({row['correct']}/{row['images']})")
        click.echo(f"report: {report['out']} (evaluation.md, mistakes.png)")
        return
    scores = api.evaluate(target, limit_test=limit_test, data_dir=data_dir, tta=tta)
    click.echo(f"test accuracy {scores['summary']}"
               + (" (flip test-time augmentation: not what an exported model does)" if tta else ""))
    for name, acc in zip(scores["class_names"], scores["per_class_accuracy"]):
        click.echo(f"  {name:<12} {acc:.3f}")
    if json_path:
        atomic.write_json(json_path, {"target": str(target), "test_accuracy": scores["accuracy"], **scores})
        click.echo(json.dumps({"json": str(json_path)}))
