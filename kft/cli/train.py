"""``kft backbones``, ``kft plan``, ``kft train`` and ``kft evaluate``."""

from __future__ import annotations

import json

import click

from kft import strategies
from kft.cli.group import cli
from kft.errors import KftError


class CountOrAll(click.ParamType):
    """A positive whole number, or ``all``."""

    name = "N|all"

    def convert(self, value, param, ctx):
        if value == "all" or isinstance(value, int):
            return value
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is neither a whole number nor 'all'", param, ctx)


@cli.command()
def backbones():
    """List backbones, their blocks, parameter counts and local ImageNet weights."""
    from kft.backbones.listing import format_backbones

    click.echo(format_backbones())


@cli.command()
@click.argument("backbone")
@click.option("--strategy", default=strategies.DEFAULT, show_default=True,
              help=f"One of: {', '.join(strategies.names())} (kft.strategies).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the YAML to this file (default: print it).")
def plan(backbone, strategy, out):
    """Print the training plan of BACKBONE and --strategy as YAML, to copy, edit and pass to --config."""
    from kft import atomic

    text = strategies.plan_yaml(strategies.build_plan(backbone, strategy))
    if out:
        atomic.write_text(out, text)
        click.echo(f"plan written to {out}")
    else:
        click.echo(text, nl=False)


@cli.command()
@click.argument("backbone", required=False)
@click.option("--strategy", default=None,
              help=f"One of: {', '.join(strategies.names())} (default {strategies.DEFAULT}).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Your own plan (YAML).")
@click.option("--samples-per-class", type=CountOrAll(),
              help="Training images per class (default 100), or all: every image not drawn for validation.")
@click.option("--val-per-class", type=int, help="Validation images per class, from the rest of the training set.")
@click.option("--labels-per-class", type=int,
              help="Every label you have per class: 80% train / 20% select the epochs, then all of them "
                   "train the final model (implies --refit; with --no-select all of them train from the start).")
@click.option("--refit/--no-refit", default=None,
              help="Every label (train + validation) trains the final model (the shipped plans' default; "
                   "see --select); --no-refit: the validation labels only select, as in a holdout study. With "
                   "--unlabeled that model teaches and the student trains on every label.")
@click.option("--select/--no-select", default=None,
              help="With refit: choose each stage's epochs on the validation split first, then retrain on "
                   "every label (--select), or skip that run and train every label for each stage's planned "
                   "epochs (--no-select, the fixed protocol: the shipped plans' default).")
@click.option("--image-size", type=int, help="Backbone resolution; images are upsampled inside the model.")
@click.option("--class-weight", type=click.Choice(["none", "balanced"]),
              help="balanced: weight each class's loss by n / (classes x its count), for imbalanced folders.")
@click.option("--distribute", type=click.Choice(["none", "mirrored", "multiworker"]),
              help="tf.distribute: mirrored over local GPUs (or KFT_LOGICAL_CPUS), multiworker via TF_CONFIG.")
@click.option("--unlabeled", metavar="cifar10-rest|DIR",
              help="Self-training: unlabelled images the model pseudo-labels and learns from (cifar10-rest: "
                   "the CIFAR-10 training images not drawn for training or validation; DIR: a folder).")
@click.option("--rounds", type=int, help="Self-training rounds (teacher -> student), default 1.")
@click.option("--pseudo-per-class", type=int,
              help="Unlabelled images kept per predicted class and round (the most confident), default 1000.")
@click.option("--pool-limit", type=int, help="Use a seeded sample of at most this many unlabelled images.")
@click.option("--student-epochs", type=int, help="At most this many epochs per student stage, default 10.")
@click.option("--student", type=click.Choice(["fresh", "top", "teacher"]),
              help="Self-training student: fresh (every stage anew, default), top (only the first stage's "
                   "blocks anew, on the teacher's frozen lower blocks: a quarter of the student's time) or "
                   "teacher (the teacher's weights, trained further in the plan's last stage only).")
@click.option("--student-probe", type=click.Choice(["train", "teacher"]),
              help="A fresh student's linear-probe stage: train it on the student's images (train, default) or "
                   "start from the teacher's probe head and skip it (teacher: faster, less accurate where measured).")
@click.option("--student-mixup", type=float,
              help="Mixup for the students' stages: Beta(A, A) mixing of pairs of training inputs (their cached "
                   "features) and targets; default 0 (off).")
@click.option("--student-lr-scale", type=float,
              help="The students' stages' learning rates times this, default 3 (a student has far more "
                   "images than its teacher; 1: the plan's rates).")
@click.option("--seed", type=int, default=0, show_default=True, help="Fixes the subset, the split and the init.")
@click.option("--weights", default="imagenet", show_default=True, help="imagenet, none or a weights file.")
@click.option("--data-dir", type=click.Path(), help="Folder holding cifar10/ (default: $KFT_DATA_DIR).")
@click.option("--data", "folder", type=click.Path(), help="Your own dataset: one sub-folder per class.")
@click.option("--max-epochs", type=int, help="Cap every stage's epochs (smoke runs).")
@click.option("--limit-test", type=int, help="Score a stratified N-image subset of the test set (smoke runs).")
@click.option("--cache", type=click.Choice(["auto", "off"]), help="Frozen-prefix feature cache.")
@click.option("--cache-views", type=int, help="Augmented views per image in the cache.")
@click.option("--data-budget-mb", type=float,
              help="Past this many MB of decoded images, a --data folder stays on disk, read per batch "
                   "(default 4096).")
@click.option("--out", type=click.Path(file_okay=False), help="Run folder (default runs/<backbone>-<strategy>-<time>).")
@click.option("--resume", type=click.Path(), help="Continue an interrupted run folder.")
@click.option("--overwrite", is_flag=True, help="Replace a previous run in --out (refused otherwise).")
def train(backbone, strategy, config_path, samples_per_class, val_per_class, labels_per_class, refit, select,
          image_size, class_weight, distribute, unlabeled, rounds, pseudo_per_class, pool_limit, student_epochs,
          student, student_probe, student_mixup, student_lr_scale, seed, weights, data_dir, folder, max_epochs, limit_test, cache, cache_views, data_budget_mb, out, resume,
          overwrite):
    """Fine-tune BACKBONE in stages on few-shot CIFAR-10 (or --data FOLDER)."""
    from kft import api

    if resume:
        click.echo(f"run folder: {api.resume(resume)}")
        return
    if not backbone:
        from kft.backbones import registry

        raise KftError(f"name a backbone: kft train BACKBONE (one of: {', '.join(registry.names())})")
    run = api.train(backbone, strategy=strategy, config=config_path, seed=seed, weights=weights, data_dir=data_dir,
                    data=folder, limit_test=limit_test, out=out, overwrite=overwrite,
                    samples_per_class=samples_per_class, val_per_class=val_per_class, image_size=image_size,
                    class_weight=class_weight, distribute=distribute,
                    cache=cache, cache_views=cache_views, data_budget_mb=data_budget_mb, max_epochs=max_epochs,
                    labels_per_class=labels_per_class, refit=refit, select=select, unlabeled=unlabeled, rounds=rounds,
                    pseudo_per_class=pseudo_per_class, pool_limit=pool_limit, student_epochs=student_epochs,
                    student=student, student_probe=student_probe, student_mixup=student_mixup,
                    student_lr_scale=student_lr_scale)
    click.echo(f"run folder: {run}")


@cli.command()
@click.argument("target", type=click.Path())
@click.option("--limit-test", type=int, help="Score a stratified N-image subset of the test set.")
@click.option("--data-dir", type=click.Path(), help="Folder holding cifar10/ (default: the run's, or $KFT_DATA_DIR).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the scores as JSON.")
@click.option("--tta", is_flag=True, help="Also average each image with its mirror image (reported separately; "
                                          "exported models do not do this).")
def evaluate(target, limit_test, data_dir, json_path, tta):
    """Test accuracy of a run folder (or a .keras model, on CIFAR-10)."""
    from kft import api, atomic

    scores = api.evaluate(target, limit_test=limit_test, data_dir=data_dir, tta=tta)
    click.echo(f"test accuracy {scores['accuracy']:.4f} on {scores['n']} images"
               + (" (flip test-time augmentation: not what an exported model does)" if tta else ""))
    for name, acc in zip(scores["class_names"], scores["per_class_accuracy"]):
        click.echo(f"  {name:<12} {acc:.3f}")
    if json_path:
        atomic.write_json(json_path, {"target": str(target), "test_accuracy": scores["accuracy"], **scores})
        click.echo(json.dumps({"json": str(json_path)}))
