"""Wall and CPU milliseconds per image for each TFLite file of an export folder under several
(batch size, interpreters) settings of ``kft.runtime.Classifier``: what ``ScoringSpeed``'s
defaults are chosen from on a given CPU.

    python benchmarks/scoring_settings.py export/<run> [N]     # the first N CIFAR-10 test images (1000)

The images are brought to the files' declared input (``Classifier.input_size``) once; each setting
warms up on 32 images.
"""

import sys
import time

from kft.data.cifar10 import load_cifar10
from kft.export.convert import to_input_size
from kft.runtime import Classifier

SETTINGS = ((1, 2), (4, 2), (8, 2), (16, 2), (1, 1))  # (images per invoke, interpreters); 1 interpreter: 2 threads


def main() -> None:
    folder, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    _, test = load_cifar10()
    declared = Classifier(f"{folder}/model_float32.tflite").input_size[0]  # every variant declares the same
    x = to_input_size(test.x[:n], declared)
    for variant in ("float32", "float16", "dynamic", "int8"):
        for batch, workers in SETTINGS:
            clf = Classifier(f"{folder}/model_{variant}.tflite", num_threads=1 if workers > 1 else 2,
                             batch_size=batch, workers=workers)
            xi = clf.prepare(x)
            clf.run(xi[:32])
            wall, cpu = time.perf_counter(), time.process_time()
            clf.run(xi)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(f"{variant:8s} batch {batch:2d}, {workers} interpreter(s): wall {1000 * wall / n:6.2f} ms/img, "
                  f"CPU {1000 * cpu / n:6.2f} ms/img", flush=True)


if __name__ == "__main__":
    main()
