"""Which resize makes `kft predict` see a photo as MediaPipe's ImageClassifier does? For one exported
.tflite, the 70 photo files of kft.bench.clients are resized several ways before the same
interpreter, and each result is compared with MediaPipe's own scores for the files.

    python benchmarks/resizer_agreement.py export/model_float32.tflite [--tie 0.05]

Needs the test extra (mediapipe, which brings OpenCV; scikit-image). Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def resizers(cv2):
    """name -> f(rgb, (h, w)) for each way of bringing a photo to the model's input."""
    from kft.images import resize, resize_like_mediapipe

    def cv(interp):
        return lambda rgb, hw: cv2.resize(rgb, hw[::-1], interpolation=interp)

    def warp_affine(rgb, hw):
        m = np.array([[hw[1] / rgb.shape[1], 0, 0], [0, hw[0] / rgb.shape[0], 0]])
        return cv2.warpAffine(rgb, m, hw[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    return {"Pillow bilinear, antialiased (kft.images.resize)": resize,
            "OpenCV resize INTER_LINEAR (half-pixel centres)": cv(cv2.INTER_LINEAR),
            "OpenCV resize INTER_AREA": cv(cv2.INTER_AREA),
            "OpenCV warpAffine, scale matrix, INTER_LINEAR": warp_affine,
            "kft.images.resize_like_mediapipe": resize_like_mediapipe}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--tie", type=float, default=0.05, help="top-1 margins at or below this count as ties")
    ap.add_argument("--photos", default="benchmarks/out/photos")
    args = ap.parse_args()

    import cv2

    from kft.bench.clients import agreement, mediapipe_scores, write_photo_set
    from kft.images import load_rgb
    from kft.predict import open_model

    files = write_photo_set(Path(args.photos))
    clf = open_model(args.model, num_threads=1)
    theirs = mediapipe_scores(Path(args.model), files, clf.labels)
    photos = [load_rgb(f) for f in files]
    print(f"{args.model}: {len(files)} photo files; tie = top-1 margin <= {args.tie}")
    print("| resize before the model | mean L1 to MediaPipe | same top-1 (all files) | agree (non-tie) |")
    print("|---|---:|---:|---:|")
    for name, fn in resizers(cv2).items():
        ours = np.stack([clf.classify(fn(rgb, clf.input_size)) for rgb in photos])
        a = agreement(ours, theirs, args.tie)
        same = (ours.argmax(1) == theirs.argmax(1)).mean()
        print(f"| {name} | {np.abs(ours - theirs).sum(1).mean():.4f} | {100 * same:.1f}% | {a.agree}/{a.decided} |")


if __name__ == "__main__":
    main()
