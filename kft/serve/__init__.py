"""``kft serve``: the kft web app over HTTP (classifying *in the browser*), plus a JSON API.

The page is the same static app ``kft export --web`` writes (``kft.webapp``: the
model runs on the device through MediaPipe Tasks Vision for Web, WebAssembly, with
the same ``ImageClassifier`` API and metadata as the Android demo; camera frames by
their centre square, photo files whole). It is built into a temporary folder and
served at ``/``; every response carries a strict Content-Security-Policy, so nothing
the page loads can reach another origin (the MediaPipe bundle holds a telemetry
client; the CSP blocks it).

The JSON API classifies through ``kft.runtime`` (no TensorFlow in this process):
``GET /health``, ``GET /model``, ``POST /classify`` (multipart field ``file``, one
or more). Bad uploads get a 4xx JSON error naming the file and the server keeps
serving. Binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

from kft.serve.app import create_app, model_info, pick_model, serve

__all__ = ["create_app", "model_info", "pick_model", "serve"]
