"""Write the static phone web app for an export folder (see the package docstring).

    from kft.webapp import write_web_app
    web = write_web_app("export/mobilenet_v2-seed0")            # -> export/mobilenet_v2-seed0/web
    web = write_web_app("export/mobilenet_v2-seed0", "site", variant="float16")

TensorFlow-free: the model's input and labels are read through ``kft.runtime``
(the LiteRT interpreter), imported only when a folder is built.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from kft.errors import KftError

STATIC = Path(__file__).parent / "static"
APP_VERSION = "1"  # bump when the page's files change in a way a cached copy must not survive
VARIANTS = ("int8", "float16", "dynamic", "float32")  # smallest first: the default is the first that passed
MARKER = "model.json"  # a folder holding this with "kft_web" in it is a previous web export
ICON_SIZES = (192, 512)
APPLE_ICON = 180
# The page's Content-Security-Policy (a <meta> tag: static hosts set no headers). Same origin only;
# 'wasm-unsafe-eval' compiles MediaPipe's wasm; connect-src 'self' also blocks the bundle's telemetry
# client; images and the camera come as blob:/mediastream:.
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; "
       "img-src 'self' blob: data:; media-src 'self' blob: mediastream:; connect-src 'self'; "
       "style-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'")
# Copied as they are (relative to STATIC); index.html and sw.js are filled in.
APP_FILES = ("app.js", "style.css", "vendor/mediapipe/vision_bundle.js", "vendor/mediapipe/vision_wasm_internal.js",
             "vendor/mediapipe/vision_wasm_internal.wasm", "vendor/mediapipe/VENDOR.md")


def is_export_folder(path: str | os.PathLike) -> bool:
    """True for a folder ``kft export --tflite`` wrote: an export_report.json or a model_<variant>.tflite in it."""
    path = Path(path)
    return path.is_dir() and ((path / "export_report.json").is_file()
                              or any((path / f"model_{v}.tflite").is_file() for v in VARIANTS))


def _report(folder: Path) -> dict:
    try:
        return json.loads((folder / "export_report.json").read_text())
    except (OSError, ValueError):
        return {}


def _failed(report: dict) -> set[str]:
    """Variants the export's accuracy guard marked FAILED."""
    return {r.get("variant") for r in report.get("rows", []) if r.get("status") == "FAILED"}


def pick_model(target: str | os.PathLike, variant: str | None = None) -> Path:
    """The .tflite to serve: ``target`` itself, or from an export folder the requested ``variant``,
    else the first of ``VARIANTS`` (int8, float16, dynamic, float32) that is there and not FAILED
    in its export_report.json.

    >>> pick_model("export/run").name      # doctest: +SKIP
    'model_int8.tflite'
    """
    target = Path(target)
    if target.is_file():
        if target.suffix != ".tflite":
            raise KftError(f"{target}: expected a .tflite model or an export folder")
        return target
    if not target.is_dir():
        raise KftError(f"{target}: no such export folder or .tflite file")
    if variant is not None and variant not in VARIANTS:
        raise KftError(f"unknown variant {variant!r}; choose from: {', '.join(VARIANTS)}")
    failed = _failed(_report(target))
    if variant in failed:
        raise KftError(f"{target}: {variant} failed the export's accuracy guard (see export_report.md)")
    names = [variant] if variant else [v for v in VARIANTS if v not in failed]
    for name in names:
        path = target / f"model_{name}.tflite"
        if path.is_file():
            return path
    raise KftError(f"{target}: no {' or '.join(f'model_{n}.tflite' for n in names) or 'passing model'} "
                   "in this folder")


def model_info(path: str | os.PathLike) -> dict:
    """What the page and ``GET /model`` show about the .tflite at ``path``: ``{"name", "file", "variant",
    "size_bytes", "sha256", "input_size": [h, w], "input_dtype", "labels", "accuracy", "scored_on"}``
    (accuracy: the held-out accuracy export_report.json gives this file, or None)."""
    from kft.runtime import Classifier

    path = Path(path)
    clf = Classifier(path, num_threads=1)
    report = _report(path.parent)
    row = next((r for r in report.get("rows", []) if r.get("file") == path.name), None)
    data = path.read_bytes()
    return {"name": report.get("name") or path.parent.name, "file": path.name,
            "variant": path.stem.removeprefix("model_"), "size_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "input_size": list(clf.input_size),
            "input_dtype": clf.input_dtype.name, "labels": list(clf.labels),
            "accuracy": row.get("accuracy") if row else None,
            "scored_on": report.get("scored_on") if row and row.get("accuracy") is not None else None}


def write_web_app(export_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                  variant: str | None = None) -> Path:
    """Write the static web app for an export folder (or one .tflite file) into ``out_dir``
    (default ``<export folder>/web``); returns ``out_dir``.

    The model is ``variant``'s, or the smallest that passed the export's accuracy guard
    (``pick_model``). The folder is built beside ``out_dir`` and renamed into place, so it is
    either the previous web export or the complete new one; a folder there that is not a
    previous web export (nor empty) is refused.

    >>> write_web_app("export/run", variant="float16")      # doctest: +SKIP
    PosixPath('export/run/web')
    """
    model = pick_model(export_dir, variant)
    out = Path(out_dir) if out_dir is not None else model.parent / "web"
    if out.exists() and not _replaceable(out):
        raise KftError(f"{out}: exists and is not a kft web export; choose another `out` or remove it")
    if out.resolve() == model.parent.resolve():
        raise KftError(f"{out}: the web app needs its own folder, not the export folder itself")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        _build(tmp, model)
        tmp.chmod(0o755)  # mkdtemp makes it private; a web server may run as another user
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _replaceable(out: Path) -> bool:
    if not out.is_dir():
        return False
    if not any(out.iterdir()):
        return True
    try:
        return "kft_web" in json.loads((out / MARKER).read_text())
    except (OSError, ValueError, TypeError):
        return False


def _replace(new: Path, out: Path) -> None:
    """Move the finished folder ``new`` onto ``out`` (the old one, if any, goes away after)."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / out.name)
    try:
        os.replace(new, out)
    except BaseException:
        if old is not None:  # put the previous export back
            os.replace(old / out.name, out)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _build(dest: Path, model: Path) -> None:
    info = model_info(model)
    info["kft_web"] = APP_VERSION
    for name in APP_FILES:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(STATIC / name, dest / name)
    shutil.copyfile(model, dest / model.name)
    (dest / "labels.txt").write_text("".join(f"{label}\n" for label in info["labels"]), encoding="utf-8")
    _write_icons(dest)
    manifest = {
        "name": f"kft · {info['name']}", "short_name": "kft", "description": "On-device image classifier "
        f"({', '.join(info['labels'][:5])}{', ...' if len(info['labels']) > 5 else ''}); works offline.",
        "start_url": "./", "scope": "./", "display": "standalone", "background_color": "#10141c",
        "theme_color": "#10141c",
        "icons": [{"src": f"icon-{s}.png", "sizes": f"{s}x{s}", "type": "image/png", "purpose": p}
                  for s in ICON_SIZES for p in ("any", "maskable")],
    }
    (dest / "manifest.webmanifest").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    (dest / "index.html").write_text(page.replace("{{CSP}}", CSP), encoding="utf-8")
    (dest / "DEPLOY.md").write_text((STATIC / "DEPLOY.md").read_text(encoding="utf-8"), encoding="utf-8")
    # The cache is named by the app version and the model's hash (and, so that no change goes
    # unnoticed, every other file's): a new export changes sw.js, so browsers install it and drop the old cache.
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file() and p.name != "DEPLOY.md")
    info["cache"] = f"{APP_VERSION}-{info['sha256'][:16]}-{_digest(dest, files)[:8]}"
    (dest / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    files = ["./", MARKER] + [f for f in files if f != MARKER]
    worker = (STATIC / "sw.js").read_text(encoding="utf-8")
    worker = worker.replace('"__CACHE__"', json.dumps(info["cache"])).replace('["__FILES__"]', json.dumps(files))
    (dest / "sw.js").write_text(worker, encoding="utf-8")


def _digest(root: Path, files: list[str]) -> str:
    h = hashlib.sha256()
    for name in files:
        h.update(name.encode() + b"\0" + (root / name).read_bytes())
    return h.hexdigest()


def _write_icons(dest: Path) -> None:
    """Square PNG icons: a viewfinder on a dark field, inside the central 80% circle that a
    "maskable" icon keeps (Android crops it to its own shape), drawn with Pillow."""
    from PIL import Image, ImageDraw

    for size in (*ICON_SIZES, APPLE_ICON):
        s = 4 * size  # drawn large, then downscaled: smooth edges
        im = Image.new("RGB", (s, s), (16, 20, 28))
        d = ImageDraw.Draw(im)
        c, r = s / 2, 0.26 * s  # the viewfinder's half-width: well inside the safe circle (0.4 s)
        w, arm = round(0.045 * s), 0.11 * s
        for sx in (-1, 1):
            for sy in (-1, 1):
                x, y = c + sx * r, c + sy * r
                d.line([(x, y), (x - sx * arm, y)], fill=(255, 255, 255), width=w)
                d.line([(x, y), (x, y - sy * arm)], fill=(255, 255, 255), width=w)
                d.ellipse([x - w / 2, y - w / 2, x + w / 2, y + w / 2], fill=(255, 255, 255))
        dot = 0.1 * s
        d.ellipse([c - dot, c - dot, c + dot, c + dot], fill=(80, 200, 120))
        name = f"icon-{size}.png" if size != APPLE_ICON else "apple-touch-icon.png"
        im.resize((size, size), Image.Resampling.LANCZOS).save(dest / name, optimize=True)
