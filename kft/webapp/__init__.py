"""The phone web app: a static folder that classifies with the rear camera, offline.

``kft export RUN --web`` (or ``write_web_app(export_dir)``) writes ``<export>/web/``:
``index.html``, the app's JS/CSS, MediaPipe Tasks Vision's wasm (vendored in
``kft/webapp/static/vendor/mediapipe``, see VENDOR.md there), one ``.tflite`` (the
smallest variant that passed the export's accuracy guard unless told), ``labels.txt``,
``model.json`` (what the page's "about" line shows), ``manifest.webmanifest`` with
icons, a service worker (``sw.js``) that caches every file on the first visit, and
DEPLOY.md. Every file is static: any HTTPS static host serves it, and a phone can
add it to its home screen. ``kft serve`` serves the same app, plus its JSON API.

The model runs in the page (MediaPipe's ``ImageClassifier``): a camera frame is
cropped to its centre square (the guide drawn over the preview), a photo file is
classified whole, as ``kft predict`` does. No TensorFlow is imported here.
"""

from __future__ import annotations

from kft.webapp.build import is_export_folder, model_info, pick_model, write_web_app

__all__ = ["is_export_folder", "model_info", "pick_model", "write_web_app"]
