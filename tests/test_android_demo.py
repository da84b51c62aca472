"""The Android demo's code expects what `kft export` writes (no Android SDK here, so its contract is
checked from the source): the asset file name the README's copy step produces, a model that carries
its labels (the app reads categoryName from the metadata and never a labels file), and no
preprocessing of its own (MediaPipe resizes full camera frames to the model's declared input)."""

import io
import re
import zipfile
from pathlib import Path

from export_fixtures import exported, trained

DEMO = Path(__file__).resolve().parents[1] / "android_demo"
HELPER = (DEMO / "app/src/main/java/dev/kft/demo/ImageClassifierHelper.kt").read_text()
ACTIVITY = (DEMO / "app/src/main/java/dev/kft/demo/MainActivity.kt").read_text()
README = (DEMO / "README.md").read_text()


def test_the_readme_copies_an_export_file_to_the_asset_name_the_app_loads():
    (asset,) = re.findall(r'MODEL_FILE\s*=\s*"([^"]+)"', HELPER)
    copies = re.findall(r"cp export/<name>/(model_\w+\.tflite) android_demo/app/src/main/assets/(\S+)", README)
    assert copies and all(dst == asset for _, dst in copies)
    written = {p.name for p in exported().out_dir.iterdir()}
    assert all(src in written for src, _ in copies)  # kft export really writes the file the README copies


def test_the_app_takes_labels_from_the_model_file_alone():
    code = "\n".join(line.split("//")[0] for line in HELPER.splitlines() if not line.strip().startswith("*"))
    assert "categoryName()" in code and "labels.txt" not in code
    for variant in ("float32", "int8"):
        data = (exported().out_dir / f"model_{variant}.tflite").read_bytes()
        with zipfile.ZipFile(io.BytesIO(data)) as zf:  # MediaPipe reads these as the category names
            assert zf.read("labels.txt").decode().split() == trained().class_names


def test_the_app_feeds_whole_frames_and_the_model_declares_a_camera_sized_input():
    from kft.runtime import Classifier

    code = HELPER + ACTIVITY
    assert "createScaledBitmap" not in code and "postScale" not in code  # no resizing of its own
    assert "postRotate" in code and "bitmap.width, bitmap.height" in code  # the whole frame, only turned upright
    assert Classifier(exported().out_dir / "model_int8.tflite").input_size == (224, 224)
