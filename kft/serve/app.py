"""The Flask app behind ``kft serve`` (see the package docstring)."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from kft.errors import KftError
from kft.images import ImageError, decode_rgb
from kft.predict import top_k
from kft.webapp.build import CSP as PAGE_CSP
from kft.webapp.build import model_info, pick_model, write_web_app

_log = logging.getLogger(__name__)

MAX_FILE_BYTES = 10 * 2**20  # per uploaded image
MAX_REQUEST_BYTES = 8 * MAX_FILE_BYTES
MAX_FILES = 32
MAX_UPLOAD_PIXELS = 40_000_000  # a 40-megapixel photo; larger ones are refused before decoding
TOP_K = 3
# The page's own policy, plus what only a header can say (no framing).
CSP = PAGE_CSP + "; frame-ancestors 'none'"
MIME = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css",
        ".html": "text/html; charset=utf-8", ".tflite": "application/octet-stream", ".json": "application/json",
        ".webmanifest": "application/manifest+json", ".png": "image/png", ".txt": "text/plain; charset=utf-8",
        ".md": "text/markdown; charset=utf-8"}

__all__ = ["create_app", "model_info", "pick_model", "serve"]


class _Classifiers:
    """One interpreter per server thread (a TFLite interpreter is not thread-safe)."""

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()

    def get(self):
        clf = getattr(self._local, "clf", None)
        if clf is None:
            from kft.runtime import Classifier

            clf = self._local.clf = Classifier(self.path, num_threads=1)
        return clf


def create_app(model_path: str | os.PathLike, web_dir: str | os.PathLike | None = None):
    """The Flask app serving ``model_path`` (a .tflite file): the web app (``kft.webapp``, the same
    folder ``kft export --web`` writes; built into a temporary folder unless ``web_dir`` holds it)
    at ``/``, and the JSON API (``/health``, ``/model``, ``/classify``)."""
    from flask import Flask, Response, jsonify, request
    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

    model_path = Path(model_path)
    if web_dir is None:
        tmp = Path(tempfile.mkdtemp(prefix="kft-serve-"))
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        web_dir = write_web_app(model_path, tmp / "web")
    root = Path(web_dir).resolve()
    info = model_info(model_path)
    classifiers = _Classifiers(model_path)
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES

    def _file(path: Path) -> Response:
        if not path.is_file():
            return jsonify(error=f"{path.name}: not found"), 404
        return Response(path.read_bytes(), mimetype=MIME.get(path.suffix, "application/octet-stream"))

    @app.after_request
    def _headers(response):
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-cache"  # revalidate: a rebuilt app is seen at once
        return response

    @app.get("/")
    def index():
        return _file(root / "index.html")

    @app.get("/favicon.ico")
    def favicon():
        return Response(status=204)

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    @app.get("/model")
    def model():
        return jsonify(info)

    @app.get("/<path:name>")
    def app_file(name):
        path = (root / name).resolve()
        if root not in path.parents:
            return jsonify(error=f"{name}: not found"), 404
        return _file(path)

    @app.post("/classify")
    def classify():
        uploads = request.files.getlist("file")
        if not uploads:
            return jsonify(error="no images: send one or more as multipart field 'file'"), 400
        if len(uploads) > MAX_FILES:
            return jsonify(error=f"{len(uploads)} images in one request; at most {MAX_FILES}"), 413
        clf = classifiers.get()
        results, codes = [], []
        for upload in uploads:
            name = upload.filename or "upload"
            data = upload.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                results.append({"image": name, "error": f"{name}: larger than {MAX_FILE_BYTES // 2**20} MB"})
                codes.append(413)
                continue
            try:
                t = time.perf_counter()
                rgb = decode_rgb(data, name, max_pixels=MAX_UPLOAD_PIXELS)  # classify resizes
                probs = clf.classify(rgb)
                results.append({"image": name, "top_k": top_k(probs, clf.labels, min(TOP_K, len(clf.labels))),
                                "ms": round(1000 * (time.perf_counter() - t), 2)})
                codes.append(200)
            except ImageError as e:  # not an image, empty, truncated, too many pixels: names the file
                results.append({"image": name, "error": str(e)})
                codes.append(400)
        # Some good images: 200 with per-image errors; none: the (first) error's 4xx.
        code = 200 if 200 in codes else max(set(codes), key=codes.count)
        body = {"results": results}
        if code != 200:
            body["error"] = next(r["error"] for r in results if "error" in r)
        return jsonify(body), code

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(e):
        return jsonify(error=f"request larger than {MAX_REQUEST_BYTES // 2**20} MB"), 413

    @app.errorhandler(HTTPException)
    def http_error(e):
        return jsonify(error=f"{e.code} {e.name}"), e.code

    return app


def serve(target, host: str = "127.0.0.1", port: int = 8000, variant: str | None = None) -> None:
    """Serve until interrupted."""
    from werkzeug.serving import make_server

    path = pick_model(target, variant)
    with tempfile.TemporaryDirectory(prefix="kft-serve-") as tmp:
        app = create_app(path, write_web_app(path, Path(tmp) / "web"))
        try:
            server = make_server(host, port, app, threaded=True)
        except OSError as e:
            raise KftError(f"cannot listen on {host}:{port} ({e.strerror})") from None
        _log.info(f"serving {path} on http://{host}:{server.server_port}/ (Ctrl-C to stop)")
        if host not in ("127.0.0.1", "localhost", "::1"):
            _log.warning(f"warning: listening on {host}: other machines on the network can reach the API "
                         "(and the page, without a camera unless served over HTTPS)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
