"""`kft serve`: the JSON API (Flask's test client), and the page (the same web app `kft export --web`
writes, tests/test_webapp.py) in a real headless Chromium."""

import io
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from export_fixtures import exported, trained

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("KFT_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "benchmarks" / "out"))


def _model():
    return exported().out_dir / "model_float32.tflite"


@pytest.fixture(scope="module")
def client():
    from kft.serve import create_app

    return create_app(_model()).test_client()


def _png(rgb) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _photos(tmp_path, n=4):
    """Real photographs (scikit-image's samples) if installed, else photo-sized colour images."""
    try:
        from kft.bench.clients import PHOTOS, photo_dir

        return [photo_dir() / name for name in PHOTOS[:n]]
    except ImportError:
        paths = []
        for i, img in enumerate(trained().test_x[::10][:n]):
            paths.append(tmp_path / f"photo{i}.png")
            Image.fromarray(img.repeat(12, 0).repeat(12, 1)).save(paths[-1])
        return paths


def test_importing_the_server_does_not_import_tensorflow():
    code = ("import sys, kft.serve, kft.serve.app; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_health_model_and_page_headers(client):
    assert client.get("/health").get_json() == {"status": "ok"}
    info = client.get("/model").get_json()
    assert info["labels"] == trained().class_names and info["input_size"] == [224, 224]
    assert info["variant"] == "float32" and info["size_bytes"] == _model().stat().st_size
    page = client.get("/")
    assert page.status_code == 200 and b'type="module"' in page.data and b'src="app.js"' in page.data
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp and "'unsafe-eval'" not in csp
    assert "frame-ancestors 'none'" in csp
    wasm = client.get("/vendor/mediapipe/vision_wasm_internal.wasm")
    assert wasm.status_code == 200 and wasm.mimetype == "application/wasm" and wasm.data[:4] == b"\0asm"
    assert client.get("/vendor/mediapipe/vision_bundle.js").mimetype == "text/javascript"
    assert client.get("/model_float32.tflite").data == _model().read_bytes()
    static = client.get("/model.json").get_json()  # the web app's own copy of what /model says
    assert static["variant"] == info["variant"] and static["labels"] == info["labels"]
    assert "sw.js" in client.get("/sw.js").get_data(as_text=True)
    assert client.get("/manifest.webmanifest").status_code == 200
    assert client.get("/%2e%2e/%2e%2e/serve/app.py").status_code == 404


def test_classify_several_images_like_kft_predict(client, tmp_path):
    from kft.predict import classify_files, open_model

    t = trained()
    files = []
    for i, img in enumerate(t.test_x[::10]):
        files.append(tmp_path / f"img{i}.png")
        Image.fromarray(img.repeat(7, 0).repeat(7, 1)).save(files[-1])
    response = client.post("/classify", data={"file": [(f.open("rb"), f.name) for f in files]})
    assert response.status_code == 200
    got = response.get_json()["results"]
    want = classify_files(open_model(_model()), files, 3)
    assert [r["image"] for r in got] == [f.name for f in files]
    for g, w in zip(got, want):
        assert [c["label"] for c in g["top_k"]] == [c["label"] for c in w["top_k"]]
        assert [c["probability"] for c in g["top_k"]] == pytest.approx([c["probability"] for c in w["top_k"]], abs=1e-5)
        assert g["ms"] > 0


@pytest.mark.parametrize("name,payload,code,words", [
    ("notes.png", b"this is not a picture", 400, "not an image"),
    ("empty.jpg", b"", 400, "empty"),
    ("cut.png", None, 400, "unreadable"),
    ("huge.png", "huge", 400, "too large"),
    ("big.bin", b"\0" * (10 * 2**20 + 1), 413, "larger than 10 MB"),
])
def test_bad_uploads_get_a_4xx_naming_the_file_and_the_server_keeps_serving(client, name, payload, code, words):
    good = _png(trained().test_x[0])
    if payload is None:
        payload = good[:60]
    elif payload == "huge":  # a valid header claiming 9000x9000 pixels (81 MP), no pixel data
        payload = _huge_png(9000, 9000)
    response = client.post("/classify", data={"file": (io.BytesIO(payload), name)})
    assert response.status_code == code, response.get_json()
    assert response.get_json()["error"].startswith(name) and words in response.get_json()["error"]
    ok = client.post("/classify", data={"file": [(io.BytesIO(good), "good.png"), (io.BytesIO(payload), name)]})
    assert ok.status_code == 200  # one good image: the request succeeds, the bad one reports its error
    assert "top_k" in ok.get_json()["results"][0] and "error" in ok.get_json()["results"][1]
    assert client.get("/health").status_code == 200


def test_no_file_is_a_400(client):
    response = client.post("/classify", data={})
    assert response.status_code == 400 and "multipart field 'file'" in response.get_json()["error"]


def test_concurrent_requests_all_succeed():
    from werkzeug.serving import make_server

    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from kft.serve import create_app

    server = make_server("127.0.0.1", 0, create_app(_model()), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    body, boundary = _multipart(_png(trained().test_x[0].repeat(7, 0).repeat(7, 1)), "x.png")

    def post(_):
        req = urllib.request.Request(f"http://127.0.0.1:{server.server_port}/classify", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status

    try:
        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(post, range(40))) == [200] * 40
    finally:
        server.shutdown()


def test_pick_model_and_cli_errors(tmp_path, capsys):
    from kft.cli import main
    from kft.serve import pick_model

    assert pick_model(exported().out_dir).name == "model_int8.tflite"  # the smallest variant there
    assert pick_model(exported().out_dir, "float16").name == "model_float16.tflite"
    with pytest.raises(SystemExit) as e:
        main(["serve", str(tmp_path / "nope")])
    assert e.value.code == 2 and "no such export folder" in capsys.readouterr().err


def _huge_png(w: int, h: int) -> bytes:
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _multipart(data: bytes, name: str):
    boundary = "kftboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, boundary


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (bash .ci/run installs Debian's chromium)")
def test_the_page_classifies_photos_in_a_real_browser_like_kft_predict(tmp_path):
    """The web app runs the model in the page (MediaPipe, wasm) on real photo files (full size, camera-frame and
    thumbnail copies: the photo set of kft.bench.clients); the labels read off the page equal kft
    predict's wherever neither top-1 is a tie, and no request leaves 127.0.0.1."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (test extra) is not installed")
    from werkzeug.serving import make_server

    from kft.bench.clients import agreement, kft_scores
    from kft.serve import create_app

    model = _model()
    try:
        from kft.bench.clients import write_photo_set

        photos = write_photo_set(tmp_path / "photos")  # 70 files
    except ImportError:
        photos = _photos(tmp_path)
    ours = kft_scores(model, photos)  # kft predict's path
    server = make_server("127.0.0.1", 0, create_app(model), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    outside, page_errors = [], []
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            context = browser.new_context()

            def route(r):
                if r.request.url.startswith(url):
                    r.continue_()
                else:  # nothing may leave the machine: record and refuse
                    outside.append(r.request.url)
                    r.abort()

            context.route("**/*", route)
            page = context.new_page()
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.goto(url)
            page.wait_for_selector('#status:not([data-state="loading"])', timeout=120_000)
            assert page.get_attribute("#status", "data-state") == "ready", page.inner_text("#status")
            page.set_input_files("#files", [str(p) for p in photos])
            page.wait_for_selector(f".result.photo >> nth={len(photos) - 1}", timeout=120_000)
            cards = {c.get_attribute("data-image"): c for c in page.query_selector_all(".result.photo")}
            theirs = np.zeros_like(ours)
            labels = trained().class_names
            for i, photo in enumerate(photos):
                card = cards[photo.name]
                assert card.get_attribute("data-error") is None
                assert float(card.get_attribute("data-ms")) > 0
                for bar in card.query_selector_all(".bar"):
                    theirs[i, labels.index(bar.get_attribute("data-label"))] = float(bar.get_attribute("data-score"))
                assert card.get_attribute("data-top1") == labels[theirs[i].argmax()]
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "serve_test.png"), full_page=True)
            browser.close()
    finally:
        server.shutdown()
    assert not outside, outside
    assert not page_errors, page_errors
    a = agreement(ours, theirs, 0.05)  # the page lists the top 3 only: enough for the top-1 margin
    assert a.decided >= len(photos) // 2 and a.rate >= 0.97, a


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (bash .ci/run installs Debian's chromium)")
def test_the_webcam_classifies_live_frames(tmp_path):
    """Chromium's fake camera stands in for a webcam: frames are classified live, in the page."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (test extra) is not installed")
    from werkzeug.serving import make_server

    from kft.serve import create_app

    server = make_server("127.0.0.1", 0, create_app(_model()), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS + [
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_port}/")
            page.wait_for_selector('#status[data-state="ready"]', timeout=120_000)
            page.click("#start-camera")
            page.wait_for_selector("#live .bar", timeout=60_000)
            labels = [b.get_attribute("data-label") for b in page.query_selector_all("#live .bar")]
            assert len(labels) == 3 and set(labels) == set(trained().class_names)
            assert page.get_attribute("#live", "data-image") == "camera"
            assert page.get_attribute("#live", "data-top1") in trained().class_names
            assert re.fullmatch(r"\d+ ms", page.inner_text("#live .ms"))
            browser.close()
    finally:
        server.shutdown()
