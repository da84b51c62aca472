"""How many photos do I need? Test accuracy against labels per class, with and without unlabelled images.

Runs (or, where a run folder is already finished, reads) ``kft train BACKBONE --labels N --seed S``
for every N and seed, and with ``--unlabeled`` also ``... --unlabeled cifar10-rest``; then writes a
CSV, a Markdown table (mean ± std over seeds, labels per class in total) and one plot.

    python benchmarks/learning_curve.py --labels 10,25,50,100,250 --seeds 0,1,2 --unlabeled-seeds 0 \\
        --out benchmarks/out/learning_curve --plot docs/learning_curve.png
    python benchmarks/learning_curve.py --read-only ...     # tabulate and plot what has finished
    python benchmarks/learning_curve.py --previous docs/learning_curve.csv ...   # extend an earlier curve

Run folders are named ``BACKBONE-lN-sS`` (``-u`` with unlabelled images) under ``--out/runs``;
a finished run is read, not trained again (link existing runs there to reuse them). With
``--previous CSV`` (an earlier run of this script), the points that CSV holds are kept as they
are and not trained again, even when their run folders are gone.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def run(out: Path, backbone: str, labels: int, seed: int, unlabeled: bool, read_only: bool = False) -> dict | None:
    """One point: the run's metrics, training it first unless it is finished (``read_only``: None instead)."""
    folder = out / "runs" / f"{backbone}-l{labels}-s{seed}{'-u' if unlabeled else ''}"
    if not (folder / "metrics.json").is_file():
        if read_only:
            return None
        cmd = [sys.executable, "-m", "kft", "train", backbone, "--labels", str(labels), "--seed", str(seed),
               "--out", str(folder), "--overwrite", *(["--unlabeled", "cifar10-rest"] if unlabeled else [])]
        log = out / "logs" / f"{folder.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as f:
            if subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode != 0:
                raise SystemExit(f"failed: {' '.join(cmd)} (see {log})")
    m = json.loads((folder / "metrics.json").read_text())
    return {"backbone": backbone, "labels_per_class": labels, "seed": seed, "unlabeled": unlabeled,
            "test_accuracy": m["test_accuracy"], "seconds": m["seconds"], "run": str(folder)}


def previous_points(path: Path, backbone: str) -> dict:
    """The points of an earlier ``learning_curve.csv`` for ``backbone``, keyed (labels, seed, unlabeled)."""
    if not path.is_file():
        raise SystemExit(f"--previous: no such file: {path}")
    points = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r["backbone"] == backbone:
                row = {"backbone": backbone, "labels_per_class": int(r["labels_per_class"]), "seed": int(r["seed"]),
                       "unlabeled": r["unlabeled"] == "True", "test_accuracy": float(r["test_accuracy"]),
                       "seconds": float(r["seconds"]), "run": r["run"]}
                points[(row["labels_per_class"], row["seed"], row["unlabeled"])] = row
    return points


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for unlabeled in (False, True):
        for n in sorted({r["labels_per_class"] for r in rows}):
            acc = [r["test_accuracy"] for r in rows if r["labels_per_class"] == n and r["unlabeled"] == unlabeled]
            if acc:
                out.append({"labels_per_class": n, "unlabeled": unlabeled, "seeds": len(acc),
                            "mean": 100 * float(np.mean(acc)), "std": 100 * float(np.std(acc, ddof=1)) if len(acc) > 1 else None})
    return out


def markdown(table: list[dict]) -> str:
    lines = ["| labels per class (in total) | labelled only | + the rest of the training set, unlabelled (`--unlabeled cifar10-rest`) |",
             "|---:|---:|---:|"]
    for n in sorted({r["labels_per_class"] for r in table}):
        cells = []
        for unlabeled in (False, True):
            r = next((r for r in table if r["labels_per_class"] == n and r["unlabeled"] == unlabeled), None)
            cells.append("-" if r is None else f"{r['mean']:.2f}" + (f" ± {r['std']:.2f}" if r["std"] is not None else "")
                         + ("" if r["seeds"] == 3 else f" ({r['seeds']} seed{'s' * (r['seeds'] > 1)})"))
        lines.append(f"| {n} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def plot(table: list[dict], path: Path, backbone: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for unlabeled, label in ((False, "labelled only"), (True, "+ unlabelled CIFAR-10 rest")):
        pts = [r for r in table if r["unlabeled"] == unlabeled]
        if pts:
            x, y = [r["labels_per_class"] for r in pts], [r["mean"] for r in pts]
            err = [r["std"] or 0 for r in pts]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xticks(sorted({r["labels_per_class"] for r in table}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("labelled images per class, in total")
    ax.set_ylabel("CIFAR-10 test accuracy (%)")
    ax.set_title(f"{backbone}: how many photos do I need?")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="mobilenet_v2")
    p.add_argument("--labels", default="10,25,50,100,250")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--unlabeled-seeds", default="", help="seeds to run with --unlabeled cifar10-rest too")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/learning_curve"))
    p.add_argument("--plot", type=Path)
    p.add_argument("--previous", type=Path,
                   help="an earlier learning_curve.csv: its points are kept, not trained again")
    p.add_argument("--read-only", action="store_true",
                   help="train nothing: tabulate the finished runs under --out/runs, skipping missing ones")
    args = p.parse_args()
    rows = []
    kept = previous_points(args.previous, args.backbone) if args.previous else {}
    for n in [int(x) for x in args.labels.split(",")]:
        for unlabeled, seeds in ((False, args.seeds), (True, args.unlabeled_seeds)):
            for s in [int(x) for x in seeds.split(",") if x != ""]:
                row = kept.get((n, s, unlabeled)) or run(args.out, args.backbone, n, s, unlabeled, args.read_only)
                if row is not None:
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    if not rows:
        raise SystemExit(f"no finished runs under {args.out / 'runs'}")
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "learning_curve.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    table = summary(rows)
    print(markdown(table))
    if args.plot:
        plot(table, args.plot, args.backbone)


if __name__ == "__main__":
    main()
