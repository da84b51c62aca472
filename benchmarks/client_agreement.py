"""Agreement of MediaPipe's ImageClassifier (given photo files) with `kft predict`, and with the same
files resized with antialiasing (how much the client's aliasing resize sways the model), before and
after the input contract: the same run exported with `--input-size <training resolution>` (the old
export, a 32-px input for CIFAR-10) and with the default input size (224), every variant.

    python benchmarks/client_agreement.py runs/<run> [--out benchmarks/out/agreement] [--tie 0.05]

Needs the test extra (mediapipe, scikit-image). Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--out", default="benchmarks/out/agreement")
    ap.add_argument("--tie", type=float, default=0.05, help="top-1 margins at or below this count as ties")
    ap.add_argument("--limit-test", type=int, default=None, help="CIFAR-10 test images to score (default all)")
    ap.add_argument("--quantize", default="all")
    args = ap.parse_args()

    from kft import rundir
    from kft.bench.clients import agreement, antialiased_scores, kft_scores, mediapipe_scores, write_photo_set
    from kft.export import export_run

    out = Path(args.out)
    files = write_photo_set(out / "photos")
    run = rundir.load_run(args.run)
    train_size = int(run.train_images().shape[1])
    rows = []
    for label, size in (("before", train_size), ("after", None)):
        t = time.time()
        result = export_run(args.run, args.quantize, out_dir=out / label, input_size=size, limit_test=args.limit_test)
        report = {r["variant"]: r for r in result.report["rows"]}
        for variant in [r["variant"] for r in result.report["rows"] if r["variant"] != "keras"]:
            model = result.out_dir / f"model_{variant}.tflite"
            theirs = mediapipe_scores(model, files, run.class_names)
            a = agreement(kft_scores(model, files), theirs, args.tie)
            aa = agreement(antialiased_scores(model, files), theirs, args.tie)
            rows.append(dict(export=label, input=result.report["input_size"][0], variant=variant,
                             cifar_test=report[variant]["accuracy"], keras=report["keras"]["accuracy"],
                             photos=a.images, decided=a.decided, agree=a.agree, rate=a.rate,
                             antialiased_decided=aa.decided, antialiased_agree=aa.agree, antialiased_rate=aa.rate))
        print(f"{label}: exported and compared in {time.time() - t:.0f} s", file=sys.stderr)
    (out / "agreement.json").write_text(json.dumps(rows, indent=2))
    print(f"photo files: {len(files)} ({len(files) // 5} photos x full size + 4 resized copies); "
          f"tie = top-1 margin <= {args.tie}")
    print("| export | input | variant | CIFAR-10 test acc | Keras | MediaPipe = kft predict (non-tie) "
          "| MediaPipe = antialiased resize (non-tie) |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['export']} | {r['input']} | {r['variant']} | {100 * r['cifar_test']:.2f}% | "
              f"{100 * r['keras']:.2f}% | {r['agree']}/{r['decided']} = {100 * r['rate']:.1f}% "
              f"| {r['antialiased_agree']}/{r['antialiased_decided']} = {100 * r['antialiased_rate']:.1f}% |")


if __name__ == "__main__":
    main()
