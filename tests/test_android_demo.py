"""The Android demo's contract with `kft export` and MediaPipe, checked from its source (there is no
Android SDK here): the asset name the README's copy step produces is the one the app loads and one
`kft export` writes; labels come from the model's metadata; the app classifies the centre square of
the upright camera frame (one Kotlin function, evaluated here, used for both the model's input and
the on-screen guide; MediaPipe, run here with the app's crop and rotation, turns it upright); the
model declares a camera-sized input; MediaPipe gets the application context; the analysis rotation
is kept current; errors reach the screen; the permission flow is not a dead end."""

import io
import re
import subprocess
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from export_fixtures import exported, trained

DEMO = Path(__file__).resolve().parents[1] / "android_demo"
SRC = DEMO / "app/src/main/java/dev/kft/demo"
HELPER = (SRC / "ImageClassifierHelper.kt").read_text()
ACTIVITY = (SRC / "MainActivity.kt").read_text()
CROP = (SRC / "CenterSquare.kt").read_text()
README = (DEMO / "README.md").read_text()


def code(kotlin: str) -> str:
    """Kotlin source without comments (strings stay), so a search cannot match prose."""
    kotlin = re.sub(r"/\*.*?\*/", "", kotlin, flags=re.S)
    return re.sub(r"(?m)(^|[^:])//.*$", r"\1", kotlin)  # keep "https://" inside strings


APP = code("\n".join(p.read_text() for p in sorted(SRC.glob("*.kt"))))


def function(kotlin: str, name: str) -> tuple[str, str]:
    """(parameters, body) of ``fun name(...)`` in ``kotlin`` (comments removed), by brace matching."""
    src = code(kotlin)
    matches = list(re.finditer(rf"\bfun\s+{name}\s*\(", src))
    assert len(matches) == 1, f"expected one `fun {name}(`, found {len(matches)}"
    depth, i = 1, matches[0].end()
    while depth:
        depth += {"(": 1, ")": -1}.get(src[i], 0)
        i += 1
    params = src[matches[0].end():i - 1]
    start = src.index("{", i)
    depth, j = 1, start + 1
    while depth:
        depth += {"{": 1, "}": -1}.get(src[j], 0)
        j += 1
    return params, src[start + 1:j - 1]


def center_square(left, top, right, bottom):
    """The app's crop rule, run by evaluating the body of the Kotlin ``centerSquare`` (val
    statements and a ``return Rect(...)`` of integer arithmetic) on a rectangle."""
    _, body = function(CROP, "centerSquare")
    py = body.replace("val ", "").replace("minOf(", "min(").replace(" / ", " // ")
    py = re.sub(r"\breturn\s+Rect\(", "result = Rect(", py)
    assert re.fullmatch(r"[\w\s.()+\-*/=,]*", py), f"centerSquare is no longer plain integer arithmetic:\n{body}"
    frame = SimpleNamespace(left=left, top=top, right=right, bottom=bottom,
                            width=lambda: right - left, height=lambda: bottom - top)
    scope = {"frame": frame, "Rect": lambda *r: tuple(r), "min": min}
    exec("\n".join(line.strip() for line in py.splitlines() if line.strip()), scope)  # noqa: S102
    return scope["result"]


def test_the_readme_copies_an_export_file_to_the_asset_name_the_app_loads():
    (asset,) = re.findall(r'MODEL_FILE\s*=\s*"([^"]+)"', HELPER)
    copies = re.findall(r"cp export/<name>/(model_\w+\.tflite) android_demo/app/src/main/assets/(\S+)", README)
    assert copies and all(dst == asset for _, dst in copies)
    assert re.search(r"setModelAssetPath\(modelName\)", APP) and "modelName: String = MODEL_FILE" in APP
    written = {p.name for p in exported().out_dir.iterdir()}
    assert all(src in written for src, _ in copies)  # kft export really writes the file the README copies


def test_the_app_takes_labels_from_the_model_file_alone():
    assert "categoryName()" in APP and "labels.txt" not in APP and "setDisplayNamesLocale" not in APP
    for variant in ("float32", "int8"):
        data = (exported().out_dir / f"model_{variant}.tflite").read_bytes()
        with zipfile.ZipFile(io.BytesIO(data)) as zf:  # MediaPipe reads these as the category names
            assert zf.read("labels.txt").decode().split() == trained().class_names


def test_the_model_declares_a_camera_sized_input_and_the_app_resizes_nothing_itself():
    from kft.runtime import Classifier

    assert Classifier(exported().out_dir / "model_int8.tflite").input_size == (224, 224)
    for resize in ("createScaledBitmap", "createBitmap(", "Matrix(", "postScale", "postRotate", "setRotate",
                   "setScale", "Canvas(bitmap"):
        assert resize not in APP, f"the app transforms pixels itself ({resize}); MediaPipe must do all of it"


@pytest.mark.parametrize("frame, square", [
    ((0, 0, 640, 480), (80, 0, 560, 480)),     # landscape buffer
    ((0, 0, 480, 640), (0, 80, 480, 560)),     # portrait buffer
    ((10, 20, 650, 500), (90, 20, 570, 500)),  # a crop rect that does not start at 0
    ((0, 0, 641, 480), (80, 0, 560, 480)),     # odd difference: half a pixel left of centre
    ((0, 0, 300, 300), (0, 0, 300, 300)),      # already square
])
def test_the_crop_rule_is_the_largest_centred_square(frame, square):
    assert center_square(*frame) == square


def test_the_model_input_and_the_guide_are_the_same_square_of_what_the_preview_shows():
    assert len(re.findall(r"\bcenterSquare\(", APP)) == 2  # its definition and one call
    _, analyze = function(ACTIVITY, "analyze")
    (name,) = re.findall(r"val\s+(\w+)\s*=\s*centerSquare\(\s*frame\.cropRect\s*\)", analyze)
    assert re.search(rf"\.classify\(\s*\w+\s*,\s*{name}\s*,\s*frame\.imageInfo\.rotationDegrees\s*\)", analyze)
    assert re.search(rf"showGuide\(\s*{name}\s*,", analyze)
    # The helper hands that square to MediaPipe as the region of interest (normalised by the frame's
    # size) and the frame's rotation as MediaPipe's rotation; MediaPipe crops, turns and resizes.
    params, classify = function(HELPER, "classify")
    assert re.fullmatch(r"\s*frame: Bitmap,\s*square: Rect,\s*rotationDegrees: Int\s*", params)
    assert re.search(r"setRegionOfInterest\(RectF\(square\.left / w, square\.top / h, "
                     r"square\.right / w, square\.bottom / h\)\)", classify)
    assert "setRotationDegrees(rotationDegrees)" in classify and "w = frame.width" in classify
    # The guide is that square mapped into the preview by CameraX, drawn by the overlay.
    _, guide = function(ACTIVITY, "showGuide")
    assert "CoordinateTransform(frameTransform, previewTransform).mapRect(rect)" in guide
    assert "RectF(square)" in guide and "guide.setSquare(rect)" in guide
    assert "ImageProxyTransformFactory().getOutputTransform(frame)" in analyze
    # What the preview shows is the analysis frame's crop rect, and all of it (so the square is on
    # screen): both use cases share PreviewView's ViewPort, and the preview is not cropped to fill.
    assert "previewView.scaleType = PreviewView.ScaleType.FIT_CENTER" in APP
    assert re.search(r"UseCaseGroup\.Builder\(\)\s*\.setViewPort\(viewPort\)\s*\.addUseCase\(preview\)"
                     r"\s*\.addUseCase\(analysis\)", APP)
    assert "val viewPort = checkNotNull(previewView.viewPort)" in APP


def test_mediapipe_gives_the_model_the_upright_centre_square():
    """MediaPipe's Python ImageClassifier runs the C++ graph the app's Java API runs (the Java and C++
    sides turn ImageProcessingOptions into the same NormalizedRect). A model that outputs its own
    16x16 input shows what it was given: for upright scenes whose centre square has red, green, blue
    and black quadrants (white outside), each buffer the camera could deliver (the scene turned
    counter-clockwise by rotationDegrees) must come out as the upright square, using the app's crop
    rule and its ImageProcessingOptions."""
    import mediapipe as mp
    import tensorflow as tf
    from mediapipe.tasks.python import BaseOptions, vision
    from mediapipe.tasks.python.components.containers.rect import RectF

    n = 16
    inp = tf.keras.Input((n, n, 3), batch_size=1, dtype="uint8")
    out = tf.keras.layers.Lambda(lambda x: tf.reshape(tf.cast(x, tf.float32) / 255.0, (1, n * n * 3)))(inp)
    model = tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inp, out)).convert()
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_buffer=model), max_results=n * n * 3)
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 0, 0], [255, 255, 255]])
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for width, height in ((640, 480), (480, 640)):
            scene = np.full((height, width, 3), 255, np.uint8)
            s, x0, y0 = min(width, height), (width - min(width, height)) // 2, (height - min(width, height)) // 2
            for q, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):  # R G / B black
                scene[y0 + dy * s // 2:y0 + (dy + 1) * s // 2, x0 + dx * s // 2:x0 + (dx + 1) * s // 2] = colours[q]
            for degrees in (0, 90, 180, 270):
                buffer = np.ascontiguousarray(np.rot90(scene, k=degrees // 90))  # turning it clockwise gives the scene
                h, w = buffer.shape[:2]
                left, top, right, bottom = center_square(0, 0, w, h)
                roi = RectF(left=left / w, top=top / h, right=right / w, bottom=bottom / h)
                result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=buffer),
                                             vision.ImageProcessingOptions(region_of_interest=roi,
                                                                           rotation_degrees=degrees))
                seen = np.zeros(n * n * 3)
                for c in result.classifications[0].categories:
                    seen[c.index] = c.score * 255
                nearest = np.abs(seen.reshape(n, n, 1, 3) - colours).sum(-1).argmin(-1)  # colour index per pixel
                quadrants = [np.bincount(nearest[r:r + n // 2, c:c + n // 2].ravel(), minlength=5).argmax()
                             for r in (0, n // 2) for c in (0, n // 2)]
                where = f"{width}x{height} scene, rotationDegrees {degrees}"
                assert quadrants == [0, 1, 2, 3], f"{where}: the model saw quadrants {quadrants}, not [R, G, B, black]"
                # MediaPipe samples from the turned square's first corner without a half-pixel offset, so one
                # row or column of samples may fall just outside the square (1/16 here; ~1/224 for the app).
                assert (nearest == 4).mean() <= 1 / n + 1e-9, f"{where}: the model saw outside the centre square"


def test_the_classifier_gets_the_application_context():
    calls = re.findall(r"ImageClassifier\.(create\w*)\(\s*([^,)]+)", APP)
    assert calls == [("createFromOptions", "context.applicationContext")]


def test_the_analysis_target_rotation_follows_the_device():
    listener = re.search(r"RotationProvider\.Listener\s*\{\s*(\w+)\s*->(.*?)\n    \}", APP, re.S)
    assert listener and re.search(rf"imageAnalysis\?\.targetRotation\s*=\s*{listener.group(1)}\b", listener.group(2))
    _, on_start = function(ACTIVITY, "onStart")
    _, on_stop = function(ACTIVITY, "onStop")
    assert "rotationProvider.addListener(" in on_start and "rotationListener)" in on_start
    assert "rotationProvider.removeListener(rotationListener)" in on_stop
    _, bind = function(ACTIVITY, "bindCamera")
    assert ".setTargetRotation(deviceRotation ?:" in bind  # a use case bound later starts from the known rotation


def test_errors_reach_the_screen_and_every_frame_is_closed():
    # IMAGE mode: MediaPipe's errors are exceptions from classify() (in LIVE_STREAM some only reach the log).
    assert "RunningMode.IMAGE" in HELPER and "LIVE_STREAM" not in code(HELPER) and "classifyAsync" not in APP
    _, analyze = function(ACTIVITY, "analyze")
    assert analyze.strip().startswith("frame.use {")
    assert re.search(r"catch \(e: Exception\) \{[^}]*showOnScreen\(getString\(R\.string\.classify_failed", analyze)
    _, load = function(ACTIVITY, "loadClassifier")
    assert "catch (e: Exception)" in load and "R.string.model_failed" in load
    _, destroy = function(ACTIVITY, "onDestroy")
    assert re.search(r"try \{\s*classifier\?\.close\(\)\s*\} catch \(e: Exception\)", destroy)


def test_a_refused_camera_permission_is_not_a_dead_end():
    assert "registerForActivityResult(ActivityResultContracts.RequestPermission())" in APP
    _, resume = function(ACTIVITY, "onResume")
    assert "hasCameraPermission() -> startCameraWhenLaidOut()" in resume and "permissionRequestInFlight ->" in resume
    _, save = function(ACTIVITY, "onSaveInstanceState")
    assert "putBoolean(KEY_REQUEST_IN_FLIGHT, permissionRequestInFlight)" in save
    assert "savedInstanceState?.getBoolean(KEY_REQUEST_IN_FLIGHT)" in APP
    _, denied = function(ACTIVITY, "showPermissionDenied")
    assert "shouldShowRequestPermissionRationale(Manifest.permission.CAMERA)" in denied
    assert "Settings.ACTION_APPLICATION_DETAILS_SETTINGS" in APP
    assert "setOnClickListener { requestCameraPermission() }" in APP  # "Ask again"


def test_the_gradle_wrapper_pins_a_version_the_android_plugin_accepts():
    props = DEMO / "gradle/wrapper/gradle-wrapper.properties"
    text = props.read_text()
    (gradle,) = re.findall(r"distributionUrl=https\\://services\.gradle\.org/distributions/gradle-([\d.]+)-bin\.zip",
                           text)
    assert re.search(r"(?m)^distributionSha256Sum=[0-9a-f]{64}$", text)
    (agp,) = re.findall(r'id\("com\.android\.application"\) version "(\d+\.\d+)', (DEMO / "build.gradle.kts").read_text())
    minimum = {"8.7": (8, 9), "8.8": (8, 10, 2), "8.9": (8, 11, 1)}  # developer.android.com AGP release notes
    assert agp in minimum, f"add AGP {agp}'s minimum Gradle version to this table"
    assert tuple(map(int, gradle.split("."))) >= minimum[agp]
    assert f"--gradle-version {gradle}" in README
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", str(props)], cwd=DEMO, capture_output=True)
    if ignored.returncode != 128:  # 128: not a git checkout
        assert ignored.returncode == 1, "gradle-wrapper.properties is git-ignored: it must be committed"
