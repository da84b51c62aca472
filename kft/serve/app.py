"""The Flask app behind ``kft serve`` (see the package docstring)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from kft.errors import KftError

_log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
PREFERRED_VARIANTS = ("int8", "float16", "dynamic", "float32")  # smallest first that the export kept
MAX_FILE_BYTES = 10 * 2**20  # per uploaded image
MAX_REQUEST_BYTES = 8 * MAX_FILE_BYTES
MAX_FILES = 32
MAX_UPLOAD_PIXELS = 40_000_000  # a 40-megapixel photo; larger ones are refused before decoding
TOP_K = 3
# Same origin only; wasm compilation needs 'wasm-unsafe-eval'; images and the camera come as blob:.
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; "
       "img-src 'self' blob: data:; media-src 'self' blob: mediastream:; connect-src 'self'; "
       "style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
MIME = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css",
        ".html": "text/html; charset=utf-8", ".tflite": "application/octet-stream"}


def pick_model(target: str | os.PathLike, variant: str | None = None) -> Path:
    """The .tflite to serve: ``target`` itself, or from an export folder the requested
    ``variant`` or else the first of ``PREFERRED_VARIANTS`` that is there."""
    target = Path(target)
    if target.is_file():
        if target.suffix != ".tflite":
            raise KftError(f"{target}: expected a .tflite model or an export folder")
        return target
    if not target.is_dir():
        raise KftError(f"{target}: no such export folder or .tflite file")
    names = [variant] if variant else PREFERRED_VARIANTS
    for name in names:
        path = target / f"model_{name}.tflite"
        if path.is_file():
            return path
    raise KftError(f"{target}: no {' or '.join(f'model_{n}.tflite' for n in names)} in this folder")


def model_info(path: Path) -> dict:
    """What the page and ``GET /model`` show: variant, size, input, labels, the export's accuracy."""
    from kft.runtime import Classifier

    clf = Classifier(path, num_threads=1)
    variant = path.stem.removeprefix("model_")
    info = {"file": path.name, "variant": variant, "size_bytes": path.stat().st_size,
            "input_size": list(clf.input_size), "input_dtype": clf.input_dtype.name, "labels": clf.labels,
            "accuracy": None, "scored_on": None}
    report = path.parent / "export_report.json"
    if report.is_file():
        try:
            data = json.loads(report.read_text())
            row = next((r for r in data.get("rows", []) if r.get("file") == path.name), None)
            info["accuracy"] = row.get("accuracy") if row else None
            info["scored_on"] = data.get("scored_on")
        except (OSError, ValueError):
            pass
    return info


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


def create_app(model_path: str | os.PathLike):
    """The Flask app serving ``model_path`` (a .tflite file)."""
    from flask import Flask, Response, jsonify, request
    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

    model_path = Path(model_path)
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
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/")
    def index():
        return _file(STATIC / "index.html")

    @app.get("/static/<path:name>")
    def static_file(name):
        path = (STATIC / name).resolve()
        if STATIC.resolve() not in path.parents:
            return jsonify(error=f"{name}: not found"), 404
        return _file(path)

    @app.get("/model.tflite")
    def model_file():
        return _file(model_path)

    @app.get("/favicon.ico")
    def favicon():
        return Response(status=204)

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    @app.get("/model")
    def model():
        return jsonify(info)

    @app.post("/classify")
    def classify():
        from kft.images import ImageError, decode_rgb
        from kft.predict import top_k

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
    app = create_app(path)
    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as e:
        raise KftError(f"cannot listen on {host}:{port} ({e.strerror})") from None
    _log.info(f"serving {path} on http://{host}:{server.server_port}/ (Ctrl-C to stop)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        _log.warning(f"warning: listening on {host}: other machines on the network can reach the API")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
