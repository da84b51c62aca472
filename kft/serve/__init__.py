"""``kft serve``: a page that classifies images *in the browser* with the exported .tflite, plus a JSON API.

The page runs the model on the device through MediaPipe Tasks Vision for Web
(WebAssembly; the same ``ImageClassifier`` API and metadata as the Android demo,
so the browser feeds it full photos and camera frames exactly as a phone would).
Its JS and wasm are vendored in ``kft/serve/static/vendor/mediapipe`` (see the
VENDOR.md there), so it works offline; every response carries a strict
Content-Security-Policy, so nothing the page loads can reach another origin (the
MediaPipe bundle holds a telemetry client; the CSP blocks it).

The JSON API classifies through ``kft.runtime`` (no TensorFlow in this process):
``GET /health``, ``GET /model``, ``POST /classify`` (multipart field ``file``, one
or more). Bad uploads get a 4xx JSON error naming the file and the server keeps
serving. Binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

from kft.serve.app import create_app, model_info, pick_model, serve

__all__ = ["create_app", "model_info", "pick_model", "serve"]
