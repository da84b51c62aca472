"""Is the accuracy kft reports for a photo folder the accuracy the phone will see?

Trains the default recipe on a photo folder (its own test split held out), then scores the run's
model on a separate folder of photos of the same classes that the run never touched
(``kft evaluate --data``, resized as a phone does), and prints, side by side: the reported test
accuracy with its 95% interval, and the "true" accuracy on the separate folder, whether the
interval contains it. ``--no-grouping`` also trains with near-duplicate grouping switched off (a
burst's copies then land on both sides of the split), ``--retrain-on-all`` also ships a model
retrained on every photo. One line per run, then a Markdown table.

    python benchmarks/own_photos.py --photos photos100/ --unseen unseen2000/ --seeds 0 --no-grouping

Make the folders from CIFAR-10 with ``--make-cifar-folders DIR`` (96-px JPEGs: 10 x 100 photos,
10 x 20, 10 x 100 with 50 shots each re-saved and re-cropped, and 10 x 200 unseen test photos).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def make_cifar_folders(out: Path, data_dir: str) -> None:
    """CIFAR-10 as phone-style folders of 96-px JPEGs (training images for the photo folders,
    test images for the unseen folder), drawn with a fixed seed."""
    from PIL import Image

    tr = np.load(Path(data_dir) / "cifar10" / "cifar10_train.npz")
    te = np.load(Path(data_dir) / "cifar10" / "cifar10_test.npz")
    xt, yt, xe, ye = tr["x_train"], tr["y_train"].ravel(), te["x_test"], te["y_test"].ravel()
    rng = np.random.default_rng(2026)

    def big(img):
        return Image.fromarray(img).resize((96, 96), Image.Resampling.BICUBIC)

    def save(root, x, y, idx):
        for i in idx:
            d = out / root / NAMES[y[i]]
            d.mkdir(parents=True, exist_ok=True)
            big(x[i]).save(d / f"{i:05d}.jpg", quality=90)

    pick = np.concatenate([rng.choice(np.flatnonzero(yt == c), 100, replace=False) for c in range(10)])
    save("photos100", xt, yt, pick)
    save("photos20", xt, yt, np.concatenate([pick[c * 100:c * 100 + 20] for c in range(10)]))
    save("unseen2000", xe, ye, np.concatenate([rng.choice(np.flatnonzero(ye == c), 200, replace=False)
                                               for c in range(10)]))
    for c in range(10):  # 50 shots a class, each also re-cropped by 3 px a side and re-saved at quality 70
        d = out / "bursts100" / NAMES[c]
        d.mkdir(parents=True, exist_ok=True)
        for i in pick[c * 100:c * 100 + 50]:
            img = np.asarray(big(xt[i]))
            Image.fromarray(img).save(d / f"{i:05d}.jpg", quality=90)
            Image.fromarray(img[3:-3, 3:-3]).resize((96, 96), Image.Resampling.BICUBIC).save(d / f"{i:05d}-b.jpg",
                                                                                             quality=70)


def run_one(photos: Path, unseen: Path, out: Path, seed: int, grouping: bool, settings: dict) -> dict:
    from kft import api
    from kft.data import folder

    original = folder.near_duplicate_groups
    if not grouping:  # every photo its own group: what the split did before near-duplicates were grouped
        folder.near_duplicate_groups = lambda x, y, d: np.arange(len(y))
    try:
        t = time.time()
        run = api.train("mobilenet_v2", data=photos, seed=seed, out=out, overwrite=True, settings=settings)
        seconds = time.time() - t
    finally:
        folder.near_duplicate_groups = original
    m = json.loads((run / "metrics.json").read_text())
    true = api.evaluate_folder(run, unseen, out=out / "unseen-evaluation")
    lo, hi = m["test_ci95"]
    return {"photos": photos.name, "seed": seed, "grouping": grouping, **settings, "reported": m["test_accuracy"],
            "ci95": [lo, hi], "test_photos": m["test_images"], "true": true["accuracy"], "true_photos": true["images"],
            "inside": lo <= true["accuracy"] <= hi, "seconds": round(seconds)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", type=Path, nargs="+", help="photo folders to train on")
    p.add_argument("--unseen", type=Path, help="a folder of other photos of the same classes")
    p.add_argument("--seeds", default="0")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/own_photos"))
    p.add_argument("--no-grouping", action="store_true", help="also train without near-duplicate grouping")
    p.add_argument("--retrain-on-all", action="store_true", help="also ship a model retrained on every photo")
    p.add_argument("--make-cifar-folders", type=Path, metavar="DIR", help="write the CIFAR-10 folders and stop")
    args = p.parse_args()
    if args.make_cifar_folders:
        import os

        make_cifar_folders(args.make_cifar_folders, os.environ["KFT_DATA_DIR"])
        return
    rows = []
    for photos in args.photos:
        for seed in [int(s) for s in args.seeds.split(",")]:
            variants = [(True, {})] + [(False, {})] * args.no_grouping + [(True, {"retrain_on_all": True})] * \
                args.retrain_on_all
            for grouping, settings in variants:
                tag = f"{photos.name}-s{seed}" + ("" if grouping else "-nogroup") + ("-all" if settings else "")
                row = run_one(photos, args.unseen, args.out / tag, seed, grouping, settings)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| photos | seed | grouping | shipped model | reported (95% CI, test photos) | true (unseen photos) | inside |"
          "\n|---|---:|---|---|---|---|---|")
    for r in rows:
        lo, hi = r["ci95"]
        print(f"| {r['photos']} | {r['seed']} | {'yes' if r['grouping'] else 'no'} | "
              f"{'all photos' if r.get('retrain_on_all') else 'test split held out'} | {100 * r['reported']:.1f}% "
              f"({100 * lo:.1f}-{100 * hi:.1f}%, {r['test_photos']}) | {100 * r['true']:.2f}% ({r['true_photos']}) | "
              f"{'yes' if r['inside'] else 'no'} |")


if __name__ == "__main__":
    main()
