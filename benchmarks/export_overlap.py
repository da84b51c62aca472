"""Would ``kft export`` gain from converting in a thread while it scores? Wall and CPU seconds, from one run.

    python benchmarks/export_overlap.py RUN_FOLDER [--images 2000]

Times, on the run's model and its first N test images: scoring the float32 file (2 one-thread
interpreters, batches of 8, as the export scores), converting int8 (300 calibration images),
both at once (the conversion in the main thread, the scoring in a second one); then the three
float conversions, and the same with the int8 conversion in a second thread. Overlap pays where
"together" is well below the sum of "alone".
"""

from __future__ import annotations

import argparse
import os
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KFT_PROGRESS", "off")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a finished run folder")
    ap.add_argument("--images", type=int, default=2000, help="test images to score (default 2000)")
    args = ap.parse_args()

    import numpy as np

    from kft import rundir
    from kft.export.convert import QuantizationConfig, convert, default_input_size, to_input_size
    from kft.runtime import Classifier

    run = rundir.load_run(args.run)
    model = rundir.load_model(run.model_path)
    size = default_input_size(int(model.inputs[0].shape[1]))
    x = run.data().test.x[:args.images]
    calibration = run.train_images()[:300].astype(np.float32)
    clf = Classifier(convert(model, QuantizationConfig.named("float32", None, False), size), num_threads=1,
                     batch_size=8, workers=2)

    def score():
        for i in range(0, len(x), 256):
            clf.run(clf.prepare(to_input_size(x[i:i + 256], size)))

    def convert_int8():
        convert(model, QuantizationConfig.named("int8", calibration, False), size)

    def convert_floats():
        for q in ("float32", "float16", "dynamic"):
            convert(model, QuantizationConfig.named(q, None, False), size)

    def beside(main_work, thread_work):
        def both():
            t = threading.Thread(target=thread_work)
            t.start()
            main_work()
            t.join()
        return both

    print(f"{args.run}: {len(x)} test images, {size} px input, {os.cpu_count()} CPUs")
    print(f"{'work':<58}{'wall s':>9}{'CPU s':>9}")
    for name, work in (("score float32", score), ("convert int8", convert_int8),
                       ("convert int8 | score float32 in a thread", beside(convert_int8, score)),
                       ("convert float32, float16, dynamic", convert_floats),
                       ("convert float32, float16, dynamic | int8 in a thread", beside(convert_floats, convert_int8))):
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        print(f"{name:<58}{time.perf_counter() - wall:>9.1f}{time.process_time() - cpu:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
