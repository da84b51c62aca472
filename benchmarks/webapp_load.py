"""The phone web app (`kft export --web`) in headless Chromium: its size, its load time on a slow
network, and the page's milliseconds per image for each variant on MediaPipe's CPU and GPU delegates.

    python benchmarks/webapp_load.py EXPORT_DIR [--photos 5] [--repeat 2] [--no-throttle] [--no-gpu]
    python benchmarks/webapp_load.py EXPORT_DIR --screenshot docs/phone.png --camera-photo chelsea.png

Prints, for the web folder of the default variant:
  - its size by file;
  - first load (fresh browser profile: page, service worker caching every file, model loaded) and the
    offline reload (service worker only), on a "fast 3G"-like link: 1.6 Mbit/s down shared by all
    requests and 150 ms before each response. The link is emulated in the static server here, not
    with CDP's Network.emulateNetworkConditions: that throttles the page's own requests only, and on
    a first visit the service worker's downloads (the 13 MB wasm, the model) are most of the bytes;
  - for every variant in the export folder: ms per image as the page reports it (MediaPipe's resize of
    the whole photo plus inference; median over the photos of the last of --repeat passes), forced on
    the CPU (wasm, XNNPACK) and on the GPU (WebGL; headless Chromium here draws WebGL on SwiftShader,
    its software renderer, so these GPU numbers are a CPU emulating a GPU, not a phone's GPU), and
    which delegate the page's own measurement picks, with its probe timings.
Each browser page runs on this machine's CPU: say how many cores and how loaded it was.
--screenshot: a phone-sized portrait screenshot (Pixel 7; saved 540 px wide, 256 colours) with the
fake camera showing --camera-photo.
Only loopback traffic.
"""

from __future__ import annotations

import argparse
import http.server
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
DOWN_BITS = 1.6e6
LATENCY_S = 0.150


class _Link:
    """One shared downlink: bytes leave at ``rate`` bytes/s in total, whatever the connection."""

    def __init__(self, rate: float | None):
        self.rate = rate
        self.lock = threading.Lock()
        self.free_at = 0.0

    def wait(self, n: int) -> None:
        if not self.rate:
            return
        with self.lock:
            start = max(time.perf_counter(), self.free_at)
            self.free_at = start + n / self.rate
            done = self.free_at
        time.sleep(max(0.0, done - time.perf_counter()))


GZIP_TYPES = (".wasm", ".js", ".css", ".html", ".json", ".webmanifest", ".txt", ".md")  # not .tflite, .png


def _server(root: Path, link: _Link, latency: float, gzip: bool = False):
    """A threaded static server over ``root``: ``latency`` s before each response, bytes paced by
    ``link``; ``gzip``: text, JS and wasm sent gzip-compressed to a browser that accepts it (as hosts
    that compress them do), other files as they are."""
    import gzip as gz
    import io

    packed: dict[Path, bytes] = {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def send_head(self):
            if latency:
                time.sleep(latency)
            path = Path(self.translate_path(self.path))
            if path.is_dir():
                path = path / "index.html"
            if not (gzip and path.suffix in GZIP_TYPES and path.is_file()
                    and "gzip" in self.headers.get("Accept-Encoding", "")):
                return super().send_head()
            if path not in packed:
                packed[path] = gz.compress(path.read_bytes(), 6)
            body = packed[path]
            self.send_response(200)
            self.send_header("Content-Type", self.guess_type(str(path)))
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return io.BytesIO(body)

        def copyfile(self, source, outputfile):
            while chunk := source.read(16384):
                link.wait(len(chunk))
                outputfile.write(chunk)

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            if not isinstance(sys.exc_info()[1], ConnectionError):  # a browser dropping a connection is normal
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _ready(page, timeout=600_000):
    page.wait_for_selector('#status[data-state="ready"], #status[data-state="error"]', timeout=timeout)
    if page.get_attribute("#status", "data-state") != "ready":
        raise SystemExit(f"the page failed: {page.inner_text('#status')}")


def _load_times(browser, url: str) -> tuple[float, float, float]:
    """(first load s, online reload s, offline reload s) in a fresh context."""
    ctx = browser.new_context()
    page = ctx.new_page()
    t = time.perf_counter()
    page.goto(url)
    _ready(page)
    first = time.perf_counter() - t
    assert page.evaluate("navigator.serviceWorker.controller !== null")
    t = time.perf_counter()
    page.reload()
    _ready(page)
    online = time.perf_counter() - t
    ctx.set_offline(True)
    t = time.perf_counter()
    page.reload()
    _ready(page)
    offline = time.perf_counter() - t
    ctx.close()
    return first, online, offline


def _open_page(browser, url: str):
    """A page at ``url``, ready, with what its about line says about the delegate."""
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(url)
    _ready(page)
    about = {k: page.get_attribute("#about", f"data-{k}") for k in ("delegate", "reason", "cpu-ms", "gpu-ms")}
    return page, about


def _pass(page, photos: list[Path]) -> list[float]:
    """Classify ``photos`` once in ``page``; the ms the page reports for each."""
    n = len(page.query_selector_all(".result.photo"))
    page.set_input_files("#files", [str(p) for p in photos])
    page.wait_for_selector(f".result.photo >> nth={n + len(photos) - 1}", timeout=600_000)
    return [float(c.get_attribute("data-ms")) for c in page.query_selector_all(".result.photo")[:len(photos)]]


def _interleaved(pages: dict, photos: list[Path], repeat: int) -> dict:
    """Median ms per image for each page, over passes 2..repeat, the pages taking turns within each
    pass (so a shared machine's changing load falls on all of them alike); pass 1 is warm-up."""
    ms = {key: [] for key in pages}
    for i in range(repeat):
        for key, page in pages.items():
            got = _pass(page, photos)
            if i > 0 or repeat == 1:
                ms[key] += got
    return {key: statistics.median(v) for key, v in ms.items()}


def _y4m(photo: Path, out: Path, size=(1280, 720)) -> None:
    """The photo, cropped to the frame's shape and scaled, as a one-frame .y4m for Chromium's fake camera."""
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(photo) as im:
        rgb = np.asarray(ImageOps.fit(im.convert("RGB"), size, Image.Resampling.BICUBIC), np.float32)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    u = -0.168736 * rgb[..., 0] - 0.331264 * rgb[..., 1] + 0.5 * rgb[..., 2] + 128
    v = 0.5 * rgb[..., 0] - 0.418688 * rgb[..., 1] - 0.081312 * rgb[..., 2] + 128
    sub = lambda c: c.reshape(c.shape[0] // 2, 2, c.shape[1] // 2, 2).mean((1, 3))  # noqa: E731
    planes = [np.clip(np.rint(p), 0, 255).astype(np.uint8).tobytes() for p in (y, sub(u), sub(v))]
    header = f"YUV4MPEG2 W{size[0]} H{size[1]} F30:1 Ip A1:1 C420jpeg\n".encode()
    out.write_bytes(header + b"FRAME\n" + b"".join(planes))


def _screenshot(p, web_root: Path, variant: str, path: Path, camera_photo: Path, photo: Path) -> None:
    frame = web_root / "camera.y4m"
    _y4m(camera_photo, frame)
    browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS + [
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={frame}"])
    server = _server(web_root, _Link(None), 0)
    try:
        phone = {k: v for k, v in p.devices["Pixel 7"].items() if k != "default_browser_type"}
        ctx = browser.new_context(**phone, permissions=["camera"])
        page = ctx.new_page()
        page.goto(f"http://127.0.0.1:{server.server_port}/{variant}/")
        _ready(page)
        page.tap("#start-camera")
        page.wait_for_selector('#live[data-top1]:not([data-top1=""])', timeout=60_000)
        page.set_input_files("#files", [str(photo)])
        page.wait_for_selector(".result.photo", timeout=60_000)
        page.evaluate("window.scrollTo(0, 0)")
        time.sleep(1.0)
        path.parent.mkdir(parents=True, exist_ok=True)
        import io

        from PIL import Image

        # Docs-sized: 540 px wide (the phone's 412 css px at 1.31x), 256 colours: ~130 kB, not ~900.
        im = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
        im = im.resize((540, round(im.height * 540 / im.width)), Image.Resampling.LANCZOS)
        im.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
        print(f"screenshot: {path} (live: {page.get_attribute('#live', 'data-top1')})")
    finally:
        server.shutdown()
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export_dir")
    ap.add_argument("--photos", type=int, default=5, help="scikit-image sample photos classified per pass")
    ap.add_argument("--repeat", type=int, default=2, help="passes over the photos; the last one counts")
    ap.add_argument("--no-throttle", action="store_true", help="skip the slow-network load timing")
    ap.add_argument("--no-gpu", action="store_true", help="skip the GPU delegate")
    ap.add_argument("--variants", help="comma-separated (default: every variant that passed the export's guard)")
    ap.add_argument("--screenshot", type=Path, help="also save a phone-sized portrait screenshot here")
    ap.add_argument("--camera-photo", default="chelsea.png",
                    help="what the fake camera shows for --screenshot (a file, or a scikit-image sample name)")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from kft.bench.clients import PHOTOS, photo_dir
    from kft.errors import KftError
    from kft.webapp import pick_model, write_web_app
    from kft.webapp.build import VARIANTS

    photos = [photo_dir() / n for n in PHOTOS[:args.photos]]
    export = Path(args.export_dir)
    if args.variants:
        variants = args.variants.split(",")
    else:
        variants = []
        for v in VARIANTS:
            try:
                pick_model(export, v)
                variants.append(v)
            except KftError:
                pass
    root = Path(tempfile.mkdtemp(prefix="kft-webapp-load-"))
    try:
        for v in variants:
            write_web_app(export, root / v, v)
        default = pick_model(export).stem.removeprefix("model_")
        if default not in variants:
            write_web_app(export, root / default, default)
        web = root / default
        print(f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}; "
              f"Chromium {CHROMIUM}; date {time.strftime('%Y-%m-%d')}")
        files = sorted((p for p in web.rglob("*") if p.is_file()), key=lambda p: -p.stat().st_size)
        total = sum(p.stat().st_size for p in files)
        print(f"\nweb folder ({default}, the default variant): {len(files)} files, {total / 1e6:.2f} MB")
        for p in files:
            print(f"  {p.stat().st_size / 1e3:10.1f} kB  {p.relative_to(web)}")

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            if not args.no_throttle:
                print(f"\nload on {DOWN_BITS / 1e6:g} Mbit/s shared, {1000 * LATENCY_S:.0f} ms before each response "
                      f"({default}; CPU delegate, so no delegate timing in these numbers):")
                for gzip in (False, True):
                    server = _server(root, _Link(DOWN_BITS / 8), LATENCY_S, gzip)
                    try:
                        first, online, offline = _load_times(
                            browser, f"http://127.0.0.1:{server.server_port}/{default}/?delegate=cpu")
                    finally:
                        server.shutdown()
                    how = "gzip (.wasm/.js/text)" if gzip else "uncompressed"
                    print(f"  {how:22} first visit {first:5.1f} s (every file cached for offline use, model "
                          f"ready); reload {online:.2f} s; offline reload {offline:.2f} s", flush=True)
            server = _server(root, _Link(None), 0)
            base = f"http://127.0.0.1:{server.server_port}"
            try:
                pages, abouts = {}, {}
                for v in variants:
                    for d in ("cpu",) if args.no_gpu else ("cpu", "gpu", "auto"):
                        query = "" if d == "auto" else f"?delegate={d}"
                        pages[v, d], abouts[v, d] = _open_page(browser, f"{base}/{v}/{query}")
                timed = {k: page for k, page in pages.items()  # the forced pages whose delegate came up
                         if k[1] != "auto" and abouts[k]["delegate"] == k[1].upper()}
                ms = _interleaved(timed, photos, args.repeat)
            finally:
                server.shutdown()
            print(f"\nms per image in the page (median over {len(photos)} photos x {max(1, args.repeat - 1)} passes, "
                  "the pages taking turns; GPU = WebGL on SwiftShader, a software renderer):")
            print(f"  {'variant':8} {'size':>8} {'CPU ms':>8} {'GPU ms':>8}  "
                  "the page's own pick (its probe: CPU / GPU ms)")
            for v in variants:
                size = (root / v / f"model_{v}.tflite").stat().st_size
                gpu = "-" if args.no_gpu else (f"{ms[v, 'gpu']:.1f}" if (v, "gpu") in ms else "fails")
                pick = "-"
                if not args.no_gpu:
                    auto = abouts[v, "auto"]
                    pick = f"{auto['delegate']} ({auto['cpu-ms'] or '-'} / {auto['gpu-ms'] or '-'})"
                    if not auto["gpu-ms"]:
                        pick += f" [{' '.join(auto['reason'].split())[:90]}]"
                print(f"  {v:8} {size / 1e6:6.2f}MB {ms[v, 'cpu']:8.1f} {gpu:>8}  {pick}")
            browser.close()
            if args.screenshot:
                camera = Path(args.camera_photo)
                if not camera.is_file():
                    camera = photo_dir() / args.camera_photo
                _screenshot(p, root, default, args.screenshot, camera, photo_dir() / PHOTOS[1])
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
