"""Where ``kft export`` spends its time, before and after batched scoring, from one run of this script.

    python benchmarks/export_speed.py RUN_FOLDER [--quantize all] [--limit-test N] [--force-fallback]
    python benchmarks/export_speed.py --quick        # a small generated model, no training run needed

Runs the same export twice, each in a fresh child process (so each has its own peak memory
and neither warms the other up), on the same model and images:

- ``before``: ``ScoringSpeed.one_at_a_time()``, the path ``kft export`` took until
  2026-12-07: every held-out image alone through each variant (upsampled again for each),
  Keras at 128 images a call, the int8 fallback's candidates scored one image at a time on 1
  thread, the int8 preparation repeated for the fallback;
- ``after``: ``ScoringSpeed()``, the default: batches on every CPU, each chunk of images
  upsampled once for all variants, the int8 model prepared once, and the Keras model's
  logits taken from the run's ``test_logits.npz`` (``kft train`` keeps them since 2026-12-08)
  where its model file and images are those they were computed on; a run without the file,
  or ``--quick``, scores the Keras model as ``before`` does.

Prints the seconds of each phase (``export_model(timings=)``), the whole export's wall and
CPU seconds, the peak resident memory of each child (VmHWM), and checks that both wrote the
same files (the flatbuffer bytes and the packed labels; only the zip's time stamp differs)
and the same report (accuracy and agreement within one image, logit error to 1e-3).

``--quick``: MobileNetV3-Small (random backbone, 3 classes) taking 32-px images upsampled
to 64 px inside, as ``kft train`` builds its default runs, on 600 generated images (colour
classes, ``kft.testing``, as the tests' fixture model); ``--force-fallback`` is on, so the int8 fallback
(float islands) is timed as well. About 3-5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KFT_PROGRESS", "off")

PATHS = ("before", "after")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", help="a run folder (or .keras model beside its run)")
    ap.add_argument("--quick", action="store_true", help="a small generated model instead of a run")
    ap.add_argument("--quantize", default="all")
    ap.add_argument("--limit-test", type=int, help="score on N test images (default: all)")
    ap.add_argument("--force-fallback", action="store_true",
                    help="fail plain int8 at the guard so its fallback runs (and is timed)")
    ap.add_argument("--only", choices=PATHS, help="run one path only")
    ap.add_argument("--keep", type=Path, help="write the exports under this folder (default: a temporary one)")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # internal: run one path, print JSON
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(_child(args)), flush=True)
        return
    if not args.quick and not args.run:
        ap.error("give a run folder, or --quick")

    with tempfile.TemporaryDirectory(prefix="kft-export-speed-") as tmp:
        root = args.keep or Path(tmp)
        source = _quick_model(Path(tmp)) if args.quick else args.run
        force = args.force_fallback or args.quick
        results = {}
        for path in ([args.only] if args.only else PATHS):
            cmd = [sys.executable, __file__, "--child", path, "--quantize", args.quantize, "--keep", str(root / path)]
            cmd += ["--quick", str(source)] if args.quick else [str(source)]
            cmd += ["--limit-test", str(args.limit_test)] if args.limit_test else []
            cmd += ["--force-fallback"] if force else []
            print(f"running {path} ...", file=sys.stderr, flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                sys.exit(f"{path} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
            results[path] = json.loads(lines[-1][len("RESULT "):])
        _print(results, source, force)
        if len(results) == 2:
            _compare(root / "before", root / "after")


def _child(args) -> dict:
    """Run one path in this process; return its phase seconds, wall and CPU seconds, peak RSS."""
    from kft.export import ScoringSpeed, export_model, export_run, guard

    speed = ScoringSpeed.one_at_a_time() if args.child == "before" else ScoringSpeed()
    if args.force_fallback:
        real = guard.verdict
        guard.verdict = lambda row, *a: (guard.FAILED if row["variant"] == "int8" and not row["selective"]
                                         else real(row, *a))
    timings: dict = {}
    if args.quick:
        import numpy as np

        import keras

        d = Path(args.run)
        data = np.load(d / "images.npz")
        model = keras.models.load_model(d / "model.keras")
        _reset_peak_rss()
        t0, c0 = time.perf_counter(), time.process_time()
        result = export_model(model, ["red", "green", "blue"], args.quantize, args.keep, calibration_samples=48,
                              train_images=data["train_x"], test_images=data["test_x"], test_labels=data["test_y"],
                              source=str(d), model_file=d / "model.keras", speed=speed, timings=timings)
    else:
        _reset_peak_rss()
        t0, c0 = time.perf_counter(), time.process_time()
        result = export_run(args.run, args.quantize, out_dir=args.keep, limit_test=args.limit_test, speed=speed,
                            timings=timings)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"timings": timings, "wall": wall, "cpu": cpu, "peak_rss_mb": _peak_rss_mb(),
            "test_images": result.report["test_images"], "calibration_images": result.report["calibration_images"],
            "cpus": os.cpu_count()}


def _quick_model(d: Path) -> Path:
    """A small kft classifier and its images, saved for both children (``--quick``)."""
    import numpy as np

    from kft.model import build_classifier
    from kft.testing import colour_images, fit_head

    train_x, train_y = colour_images(32, seed=0)
    test_x, test_y = colour_images(200, seed=1)
    model = build_classifier("mobilenet_v3_small", num_classes=3, image_size=64, input_size=32, weights="none",
                             seed=0)
    fit_head(model, train_x, train_y, backbone_input=model.get_layer("upsample")(train_x.astype(np.float32)))
    model.save(d / "model.keras")
    np.savez(d / "images.npz", train_x=train_x, test_x=test_x, test_y=test_y)
    return d


def _reset_peak_rss() -> None:
    """Start VmHWM (peak resident memory) afresh: what the export adds to the loaded process."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _print(results: dict, source, force: bool) -> None:
    any_ = next(iter(results.values()))
    print(f"kft export speed: {source}; {any_['test_images']} held-out images, {any_['calibration_images']} "
          f"calibration images; {any_['cpus']} CPUs, load average {os.getloadavg()[0]:.1f} at the end"
          + ("; int8 fallback forced" if force else ""))
    phases = []
    for r in results.values():
        phases += [p for p in r["timings"] if p not in phases]
    order = ["keras scoring"] + sorted(p for p in phases if p.startswith("convert") and "fallback" not in p) + \
        ["prepare held-out images"] + sorted(p for p in phases if p.startswith("score") and "fallback" not in p) + \
        sorted(p for p in phases if "fallback" in p) + ["island timing", "write", "quantization report"]
    order = [p for p in order if p in phases] + [p for p in phases if p not in order]
    cols = list(results)
    print(f"{'phase':<26}" + "".join(f"{c + ' wall':>13}{c + ' CPU':>12}" for c in cols)
          + ("   wall x   CPU x" if len(cols) == 2 else ""))
    rows = [(p, [results[c]["timings"].get(p) for c in cols]) for p in order]
    rows += [("whole export", [{"wall": results[c]["wall"], "cpu": results[c]["cpu"]} for c in cols])]
    for name, vals in rows:
        cells = "".join(f"{v['wall']:>13.2f}{v['cpu']:>12.2f}" if v else f"{'-':>13}{'-':>12}" for v in vals)
        ratio = ""
        if len(vals) == 2 and all(vals) and vals[1]["wall"] > 0 and vals[1]["cpu"] > 0:
            ratio = f"{vals[0]['wall'] / vals[1]['wall']:>8.1f}x{vals[0]['cpu'] / vals[1]['cpu']:>6.1f}x"
        print(f"{name:<26}{cells}{ratio}")
    print(f"{'peak RSS (MB)':<26}" + "".join(f"{results[c]['peak_rss_mb']:>13.0f}{'':>12}" for c in cols))
    print("CPU: this process, all its threads. 'prepare held-out images': upsampling to the declared input and "
          "the input type ('before': once per variant; 'after': once for all). 'convert int8 (fallback)' "
          "includes the fallback's search over nodes.")


def _compare(before: Path, after: Path) -> None:
    """Same files (but for the packed labels' zip time stamp) and the same report numbers."""
    names = sorted(p.name for p in before.iterdir())
    problems = []
    if names != sorted(p.name for p in after.iterdir()):
        problems.append(f"different files: {names} vs {sorted(p.name for p in after.iterdir())}")
    for name in names:
        if name.endswith(".tflite") and (after / name).exists():
            a, b = (before / name).read_bytes(), (after / name).read_bytes()
            if _parts(a) != _parts(b):
                problems.append(f"{name} differs")
    old, new = (json.loads((d / "export_report.json").read_text()) for d in (before, after))
    n = max(1, old["test_images"])
    for a, b in zip(old["rows"], new["rows"]):
        for key, va in a.items():
            vb = b.get(key)
            if key in ("convert_seconds", "island_speed"):
                continue
            if key in ("accuracy", "top1_agreement") and va is not None:
                ok = abs(va - vb) <= 1 / n + 1e-12
            elif key == "max_abs_logit_diff" and va is not None:
                ok = abs(va - vb) <= 1e-3 * abs(va) + 1e-5
            elif key == "attempts":
                ok = [dict(x, accuracy=None) for x in va] == [dict(x, accuracy=None) for x in vb]
            else:
                ok = va == vb
            if not ok:
                problems.append(f"{a['variant']} {key}: {va} vs {vb}")
    print("same files and report: " + ("yes" if not problems else "NO: " + "; ".join(problems)))


def _parts(data: bytes):
    cut = data.rfind(b"PK\x03\x04")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return len(data), data[:cut], [(i.filename, zf.read(i)) for i in zf.infolist()]


if __name__ == "__main__":
    main()
