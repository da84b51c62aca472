"""The phone web app (``kft export --web``): the folder itself, then the folder served by a PLAIN static
server (``python -m http.server``, not kft's) in headless Chromium emulating a phone: offline after
the first visit, labels equal to ``kft predict``'s, the camera's centre square, a new export
replacing the cached one, 360 px, camera denied, the CPU and GPU delegates."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from export_fixtures import decisive, exported, trained

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_CHROMIUM = "no Chromium installed (bash .ci/run installs Debian's chromium)"
ARTIFACTS = Path(os.environ.get("KFT_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "benchmarks" / "out"))
# No --disable-gpu: WebGL on Chromium's software renderer (SwiftShader) lets the GPU delegate run.
FLAGS = ["--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
TIE = 0.05  # top-1 compared only where it beats the runner-up by more than this, on both sides
N_PHOTOS = 5
FRAME = (1280, 320)  # the fake camera's frame: a red centre square between blue sides


def _web(out, variant=None, source=None):
    from kft.webapp import write_web_app

    return write_web_app(source or exported().out_dir, out, variant)


def _photos():
    clients = pytest.importorskip("kft.bench.clients")
    pytest.importorskip("skimage", reason="scikit-image (test extra) holds the sample photos")
    return [clients.photo_dir() / name for name in clients.PHOTOS[:N_PHOTOS]]


def _kft_predict(model, files):
    """kft predict's class probabilities for ``files`` (its decoder and resizer)."""
    from kft.bench.clients import kft_scores

    return kft_scores(model, files)


# --- the folder --------------------------------------------------------------------------------


def test_importing_the_web_app_does_not_import_tensorflow():
    code = ("import sys, kft.webapp, kft.webapp.build, kft.serve; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_the_folder_is_static_complete_and_same_origin(tmp_path):
    from kft.webapp.build import APP_VERSION

    web = _web(tmp_path / "web")
    names = {p.relative_to(web).as_posix() for p in web.rglob("*") if p.is_file()}
    assert {"index.html", "app.js", "style.css", "sw.js", "manifest.webmanifest", "model.json", "labels.txt",
            "DEPLOY.md", "model_int8.tflite", "icon-192.png", "icon-512.png", "apple-touch-icon.png",
            "vendor/mediapipe/vision_bundle.js", "vendor/mediapipe/vision_wasm_internal.wasm"} <= names
    assert not any(n.startswith(".") for n in os.listdir(tmp_path) if n != "web"), os.listdir(tmp_path)
    model = exported().out_dir / "model_int8.tflite"  # the smallest variant that passed
    assert (web / "model_int8.tflite").read_bytes() == model.read_bytes()
    info = json.loads((web / "model.json").read_text())
    report = json.loads((exported().out_dir / "export_report.json").read_text())
    row = next(r for r in report["rows"] if r["variant"] == "int8")
    assert info["labels"] == trained().class_names and info["input_size"] == [224, 224]
    assert info["variant"] == "int8" and info["size_bytes"] == model.stat().st_size
    assert info["accuracy"] == row["accuracy"] and info["scored_on"] == report["scored_on"] == "the test set"
    assert (web / "labels.txt").read_text().split() == trained().class_names
    import hashlib

    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    assert info["sha256"] == sha and info["cache"].startswith(f"{APP_VERSION}-{sha[:16]}")
    worker = (web / "sw.js").read_text()
    assert json.dumps(info["cache"]) in worker
    cached = json.loads(re.search(r"const FILES = (\[.*?\]);", worker).group(1))
    assert set(cached) == (names - {"DEPLOY.md", "sw.js"}) | {"./"}  # every file the page needs, offline
    manifest = json.loads((web / "manifest.webmanifest").read_text())
    assert manifest["display"] == "standalone" and manifest["start_url"] == "./"
    for icon in manifest["icons"]:
        with Image.open(web / icon["src"]) as im:
            assert f"{im.width}x{im.height}" == icon["sizes"] and im.format == "PNG"
    assert {"maskable", "any"} <= {i["purpose"] for i in manifest["icons"]}
    page = (web / "index.html").read_text()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "connect-src 'self'" in csp and "'wasm-unsafe-eval'" in csp and "default-src 'self'" in csp
    assert "'unsafe-eval'" not in csp and "'unsafe-inline'" not in csp
    for name in ("index.html", "app.js", "sw.js", "style.css", "manifest.webmanifest"):
        assert not re.search(r"(src|href|url)\s*[=(]\s*[\"']?(https?:)?//", (web / name).read_text()), name


def test_variant_choice_skips_failed_variants_and_the_folder_is_replaced_whole(tmp_path, monkeypatch):
    from kft.errors import KftError
    from kft.webapp import build

    src = tmp_path / "export"
    shutil.copytree(exported().out_dir, src)
    report = json.loads((src / "export_report.json").read_text())
    for row in report["rows"]:  # as the guard leaves it: int8 FAILED, its file not written
        if row["variant"] == "int8":
            row["status"] = "FAILED"
    (src / "export_report.json").write_text(json.dumps(report))
    (src / "model_int8.tflite").unlink()
    assert build.pick_model(src).name == "model_float16.tflite"
    with pytest.raises(KftError, match="int8 failed the export's accuracy guard"):
        build.pick_model(src, "int8")
    web = _web(None, source=src)
    assert web == src / "web" and json.loads((web / "model.json").read_text())["variant"] == "float16"
    before = {p: p.read_bytes() for p in web.rglob("*") if p.is_file()}
    listing = sorted(os.listdir(src))

    def broken(dest):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(build, "_write_icons", broken)
    with pytest.raises(OSError):
        _web(web, "float32", source=src)
    assert {p: p.read_bytes() for p in web.rglob("*") if p.is_file()} == before  # the previous export, intact
    assert sorted(os.listdir(src)) == listing  # no half-built folder left beside it
    monkeypatch.undo()
    _web(web, "float32", source=src)
    assert json.loads((web / "model.json").read_text())["variant"] == "float32"
    assert not (web / "model_float16.tflite").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(KftError, match="exists and is not a kft web export"):
        _web(tmp_path / "mine", source=src)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_cli_export_web(tmp_path, capsys):
    from kft.cli import main

    src = tmp_path / "export"
    shutil.copytree(exported().out_dir, src)
    main(["export", str(src), "--web", "--variant", "float16"])
    assert json.loads((src / "web" / "model.json").read_text())["variant"] == "float16"
    assert "DEPLOY.md" in capsys.readouterr().out
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    for args, words in ((["--web", "--out", str(tmp_path / "mine")], "not a kft web export"),
                        ([], "add --web"), (["--variant", "int8"], "add --web")):
        with pytest.raises(SystemExit) as e:
            main(["export", str(src), *args])
        err = capsys.readouterr().err
        assert e.value.code == 2 and words in err and "Traceback" not in err, err


# --- in the browser --------------------------------------------------------------------------


def _y4m(path: Path, rgb: np.ndarray) -> None:
    """One-frame YUV4MPEG2 file (4:2:0, BT.601 full range), which Chromium's fake camera loops."""
    x = rgb.astype(np.float32)
    y = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    u = -0.168736 * x[..., 0] - 0.331264 * x[..., 1] + 0.5 * x[..., 2] + 128
    v = 0.5 * x[..., 0] - 0.418688 * x[..., 1] - 0.081312 * x[..., 2] + 128
    sub = lambda c: c.reshape(c.shape[0] // 2, 2, c.shape[1] // 2, 2).mean((1, 3))  # noqa: E731
    planes = [np.clip(np.rint(p), 0, 255).astype(np.uint8).tobytes() for p in (y, sub(u), sub(v))]
    h, w = y.shape
    path.write_bytes(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode() + b"FRAME\n" + b"".join(planes))


@pytest.fixture(scope="module")
def camera(tmp_path_factory):
    """The fake camera's frame: a red centre square (with texture) between blue sides, as a .y4m
    for Chromium, and as PNGs of the whole frame and of its centre square for kft predict."""
    d = tmp_path_factory.mktemp("camera")
    w, h = FRAME
    rng = np.random.default_rng(0)
    frame = np.empty((h, w, 3), np.float32)
    frame[:] = (40, 40, 200)
    left = (w - h) // 2
    frame[:, left:left + h] = (200, 40, 40)
    frame += rng.normal(0, 20, (h // 16, w // 16, 3)).repeat(16, 0).repeat(16, 1)
    frame = np.clip(frame, 0, 255).astype(np.uint8)
    _y4m(d / "frame.y4m", frame)
    Image.fromarray(frame).save(d / "whole.png")
    Image.fromarray(frame[:, left:left + h]).save(d / "centre.png")
    return SimpleNamespace(y4m=d / "frame.y4m", whole=d / "whole.png", centre=d / "centre.png")


@pytest.fixture(scope="module")
def browser(camera):
    if CHROMIUM is None:
        pytest.skip(NO_CHROMIUM)
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (test extra) is not installed")
    patch = pytest.MonkeyPatch()
    # Let Playwright see (and route) the service worker's own requests too.
    patch.setenv("PW_EXPERIMENTAL_SERVICE_WORKER_NETWORK_EVENTS", "1")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=FLAGS + [f"--use-file-for-fake-video-capture={camera.y4m}"])
        phone = {k: v for k, v in p.devices["Pixel 7"].items() if k != "default_browser_type"}
        yield SimpleNamespace(browser=b, phone=phone)
        b.close()
    patch.undo()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A plain static server (python -m http.server) over a folder holding web apps."""
    root = tmp_path_factory.mktemp("site")
    _web(root / "app")
    server = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "0", "-d", str(root)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(re.search(r"port (\d+)", server.stdout.readline()).group(1))
        yield SimpleNamespace(root=root, origin=f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(10)


def _context(b, outside=None, **options):
    """A phone (Pixel 7: 412 px wide, touch, mobile) browser context; requests to anything but the
    page's origin are recorded in ``outside`` and refused."""
    ctx = b.browser.new_context(**{**b.phone, **options})
    if outside is not None:
        ctx.on("request", lambda r: None if r.url.startswith("http://127.0.0.1:") else outside.append(r.url))
        ctx.route(lambda url: not url.startswith("http://127.0.0.1:"), lambda route: route.abort())
    return ctx


def _open(ctx, url, errors=None):
    page = ctx.new_page()
    errors = [] if errors is None else errors
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    _ready(page)
    return page


def _ready(page):
    page.wait_for_selector('#status[data-state="ready"], #status[data-state="error"]', timeout=120_000)
    assert page.get_attribute("#status", "data-state") == "ready", page.inner_text("#status")


def _classify(page, files):
    before = len(page.query_selector_all(".result.photo"))
    page.set_input_files("#files", [str(f) for f in files])
    page.wait_for_selector(f".result.photo >> nth={before + len(files) - 1}", timeout=120_000)
    labels = trained().class_names
    cards = {c.get_attribute("data-image"): c for c in page.query_selector_all(".result.photo")}
    scores = np.zeros((len(files), len(labels)))
    for i, f in enumerate(files):
        card = cards[f.name]
        assert card.get_attribute("data-error") is None, card.get_attribute("data-error")
        for bar in card.query_selector_all(".bar"):
            scores[i, labels.index(bar.get_attribute("data-label"))] = float(bar.get_attribute("data-score"))
        assert card.get_attribute("data-top1") == labels[scores[i].argmax()]
    return scores


def _same_top1(ours, theirs, at_least):
    both = decisive(ours, TIE) & decisive(theirs, TIE)
    assert both.sum() >= at_least, (ours, theirs)
    assert (ours.argmax(1) == theirs.argmax(1))[both].all(), (ours, theirs)


def test_offline_after_the_first_visit_and_labels_equal_kft_predict(browser, site):
    """The service worker caches the app and controls the page; offline, a reload still classifies
    the photos, whole, with kft predict's top-1; no request ever leaves the page's origin."""
    photos = _photos()
    outside, errors = [], []
    ctx = _context(browser, outside)
    seen = []
    ctx.on("request", lambda r: seen.append(r.url))
    page = _open(ctx, f"{site.origin}/app/", errors)
    assert page.evaluate("navigator.serviceWorker.controller !== null")
    assert any(u.endswith("/app/vendor/mediapipe/vision_wasm_internal.wasm") for u in seen)
    ctx.set_offline(True)
    seen.clear()
    page.reload()
    _ready(page)
    assert page.evaluate("navigator.onLine") is False
    about = page.inner_text("#about")
    info = json.loads((site.root / "app" / "model.json").read_text())
    size = info["size_bytes"]
    size = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{round(size / 1e3)} kB"
    assert f" · int8 · {size} · input 224×224 float32 · " in about
    assert f"{100 * info['accuracy']:.1f}% held-out accuracy on the test set" in about
    theirs = _classify(page, photos)
    ours = _kft_predict(site.root / "app" / "model_int8.tflite", photos)
    _same_top1(ours, theirs, at_least=3)
    ctx.close()
    assert not outside, outside
    assert not errors, errors


def test_live_camera_classifies_the_centre_square(browser, site, camera):
    """Chromium's fake camera plays a frame whose centre square is red and whose sides are blue: kft
    predict calls the whole frame blue and the centre square red; the page (rear camera, the
    guide over exactly that square) calls the live frames red."""
    centre, whole = _kft_predict(exported().out_dir / "model_int8.tflite", [camera.centre, camera.whole])
    labels = trained().class_names
    assert decisive(np.stack([centre, whole]), TIE).all()
    assert labels[centre.argmax()] == "red" and labels[whole.argmax()] == "blue"  # the premise
    ctx = _context(browser, permissions=["camera"])
    page = _open(ctx, f"{site.origin}/app/?delegate=cpu")
    page.tap("#start-camera")
    page.wait_for_selector('#live[data-top1]:not([data-top1=""])', timeout=60_000)
    live = page.query_selector("#live")
    assert live.get_attribute("data-image") == "camera" and live.get_attribute("data-frame") == "{}x{}".format(*FRAME)
    assert live.get_attribute("data-top1") == "red"
    constraints = page.evaluate("JSON.stringify(document.getElementById('video').srcObject"
                                ".getVideoTracks()[0].getConstraints())")
    assert '"facingMode":' in constraints and '"environment"' in constraints, constraints  # the rear camera
    video = page.query_selector("#video").bounding_box()
    guide = page.query_selector("#guide").bounding_box()
    shown_h = min(video["height"], video["width"] * FRAME[1] / FRAME[0])  # object-fit: contain
    assert guide["width"] == pytest.approx(guide["height"], abs=1) and guide["height"] == pytest.approx(shown_h, abs=2)
    assert guide["x"] + guide["width"] / 2 == pytest.approx(video["x"] + video["width"] / 2, abs=2)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "webapp_phone.png"))
    page.tap("#stage")  # freeze
    page.wait_for_selector('#live[data-frozen="true"]')
    assert page.is_visible("#frozen") and page.inner_text("#freeze") == "Resume"
    page.reload()  # it ran last time and the permission stands: it starts by itself
    _ready(page)
    assert page.get_attribute("#stage", "data-camera") == "on"
    ctx.close()


def test_a_second_export_into_the_folder_replaces_the_cached_model(browser, site):
    ctx = _context(browser)
    _web(site.root / "update")
    page = _open(ctx, f"{site.origin}/update/?delegate=cpu")
    assert page.evaluate("navigator.serviceWorker.controller !== null")
    assert page.get_attribute("#about", "data-variant") == "int8"
    _web(site.root / "update", "float16")
    page.reload()  # the old worker answers; the new sw.js installs, takes over, and the page reloads once
    page.wait_for_selector('#about[data-variant="float16"]', timeout=120_000)
    _ready(page)
    assert "float16" in page.inner_text("#about")
    caches = page.evaluate("caches.keys()")
    mine = [c for c in caches if "/update/" in c]
    info = json.loads((site.root / "update" / "model.json").read_text())
    assert mine == [f"kft-web {site.origin}/update/ {info['cache']}"], caches  # the old cache is gone
    ctx.close()


def test_360px_wide_no_horizontal_scroll_camera_denied_and_the_picker_still_works(browser, site, tmp_path):
    photo = tmp_path / ("a_photo_with_a_very_long_file_name_that_could_push_the_layout_sideways_" * 2 + ".png")
    shutil.copyfile(_photos()[1], photo)
    ctx = _context(browser, viewport={"width": 360, "height": 740})
    ctx.add_init_script("navigator.mediaDevices.getUserMedia = () => "
                        "Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));")
    page = _open(ctx, f"{site.origin}/app/?delegate=cpu")
    page.tap("#start-camera")
    page.wait_for_selector("#camera-msg:not([hidden])")
    assert "permission denied" in page.inner_text("#camera-msg")
    _classify(page, [photo])
    width = "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    scroll, client = page.evaluate(width)
    assert scroll <= client == 360
    for target in page.query_selector_all("button:not([hidden]), label.button"):
        box = target.bounding_box()
        if box:  # hidden ones have none
            assert box["height"] >= 44 and box["width"] >= 44, (target.inner_text(), box)
    page.set_viewport_size({"width": 740, "height": 360})  # the phone on its side
    scroll, client = page.evaluate(width)
    assert scroll <= client == 740
    ctx.close()


def test_delegates_gpu_and_cpu_keep_the_input_contract(browser, site, tmp_path):
    """The page times MediaPipe's CPU (wasm) and GPU (WebGL; here Chromium's SwiftShader) delegates
    and keeps the faster; forced either way (?delegate=), the labels equal kft predict's. A model the
    GPU delegate cannot run (the test model: MediaPipe's WebGL backend fails on its 1x1 feature maps)
    falls back to the CPU and says why."""
    photos = _photos()
    ctx = _context(browser)
    page = _open(ctx, f"{site.origin}/app/?delegate=gpu")
    assert page.get_attribute("#about", "data-delegate") == "CPU"
    assert "GPU unavailable" in page.get_attribute("#about", "data-reason")
    web = _web(site.root / "gpu", source=_gpu_model(tmp_path))
    ours = _kft_predict(web / "model_float32.tflite", photos)
    for delegate in ("gpu", "cpu"):
        page = _open(ctx, f"{site.origin}/gpu/?delegate={delegate}")
        assert page.get_attribute("#about", "data-delegate") == delegate.upper(), page.get_attribute("#about", "title")
        _same_top1(ours, _classify(page, photos), at_least=4)
    page = _open(ctx, f"{site.origin}/gpu/")
    about = page.query_selector("#about")
    assert float(about.get_attribute("data-cpu-ms")) > 0 and float(about.get_attribute("data-gpu-ms")) > 0
    fastest = min(("CPU", "GPU"), key=lambda d: float(about.get_attribute(f"data-{d.lower()}-ms")))
    assert about.get_attribute("data-delegate") == fastest and "faster" in about.get_attribute("data-reason")
    ctx.close()


def _gpu_model(tmp_path):
    """A small float32 export MediaPipe's GPU delegate runs: conv layers that pick out the dominant
    colour (fixed weights, confident on photos), through kft's export (224 px input, box filter)."""
    import keras

    from kft.export import export_model

    L = keras.layers
    inp = keras.Input((32, 32, 3))
    x = L.Rescaling(1 / 255)(inp)
    colour = L.Conv2D(3, 3, padding="same", use_bias=False)
    x = colour(x)
    depthwise = L.DepthwiseConv2D(3, padding="same", use_bias=False)
    x = L.ReLU()(depthwise(x))
    x = L.GlobalAveragePooling2D()(x)
    dense = L.Dense(3)
    model = keras.Model(inp, dense(x), name="colours")  # logits: the export adds the softmax
    colour.set_weights([np.eye(3, dtype=np.float32)[None, None].repeat(3, 0).repeat(3, 1) / 9])
    depthwise.set_weights([np.ones((3, 3, 3, 1), np.float32)])
    dense.set_weights([10 * (np.eye(3, dtype=np.float32) - 1 / 3), np.zeros(3, np.float32)])
    images, labels = trained().test_x, trained().test_y
    return export_model(model, trained().class_names, ["float32"], tmp_path / "gpu-export",
                        test_images=images, test_labels=labels, source="colours").out_dir
