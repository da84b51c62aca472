"""``mistakes.png``: a contact sheet of the misclassified held-out photos, most confident first.

Each tile is the photo as the model saw it, with its true label, the predicted label and the
model's confidence, so a person sees at a glance *why* the model is wrong: a mislabelled photo,
two classes that look alike, a class photographed only one way. Pillow + numpy only.

    write_mistakes(path, images, y_true, probs, class_names, names=files)
"""

from __future__ import annotations

import numpy as np

from kft.rundir import atomic

__all__ = ["MAX_TILES", "mistakes", "write_mistakes"]

MAX_TILES = 60  # the sheet shows the most confident mistakes; the rest are counted in its title
TILE = 128  # pixels per thumbnail
CAPTION = 46  # pixels of text under each thumbnail
COLUMNS = 6


def mistakes(y_true, probs) -> np.ndarray:
    """Rows the model got wrong, the most confident first (ties by row)."""
    y_true, probs = np.asarray(y_true), np.asarray(probs)
    pred, conf = probs.argmax(1), probs.max(1)
    wrong = np.flatnonzero(pred != y_true)
    return wrong[np.lexsort((wrong, -conf[wrong]))]


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _fit(draw, text: str, font, width: int) -> str:
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text


def write_mistakes(path, images, y_true, probs, class_names: list[str], names: list[str] | None = None,
                   title: str = "") -> int:
    """Write the sheet to ``path`` (atomically); returns how many mistakes there were. ``images``:
    uint8 (N, H, W, 3) as the model saw them (they may live on disk); ``probs``: (N, classes)."""
    from PIL import Image, ImageDraw

    order = mistakes(y_true, probs)
    shown = order[:MAX_TILES]
    cols = max(1, min(COLUMNS, len(shown)))
    rows = max(1, -(-len(shown) // cols))
    head = 34
    sheet = Image.new("RGB", (cols * TILE + (cols + 1) * 6, head + rows * (TILE + CAPTION + 6) + 6), "white")
    draw = ImageDraw.Draw(sheet)
    small, big = _font(12), _font(15)
    n = len(np.asarray(y_true))
    heading = title or f"{len(order)} of {n} held-out photos misclassified"
    if len(order) > len(shown):
        heading += f" (the {len(shown)} most confident shown)"
    if not len(order):
        heading = title or f"no mistakes on {n} held-out photos"
    draw.text((8, 9), _fit(draw, heading, big, sheet.width - 16), fill="black", font=big)
    for k, row in enumerate(shown):
        x0 = 6 + (k % cols) * (TILE + 6)
        y0 = head + (k // cols) * (TILE + CAPTION + 6)
        thumb = Image.fromarray(np.asarray(images[row], np.uint8)).convert("RGB")
        scale = TILE / max(thumb.size)  # small images grow in whole pixels, large ones shrink smoothly
        thumb = thumb.resize((max(1, round(thumb.width * scale)), max(1, round(thumb.height * scale))),
                             Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS)
        sheet.paste(thumb, (x0 + (TILE - thumb.width) // 2, y0 + (TILE - thumb.height) // 2))
        p = np.asarray(probs[row])
        lines = [f"true: {class_names[int(y_true[row])]}",
                 f"{100 * float(p.max()):.0f}% {class_names[int(p.argmax())]}"]
        if names is not None:
            lines.append(str(names[row]).rsplit("/", 1)[-1])
        for j, line in enumerate(lines):
            draw.text((x0, y0 + TILE + 2 + 14 * j), _fit(draw, line, small, TILE), font=small,
                      fill=("darkgreen", "firebrick", "gray")[j])
    with atomic.atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return len(order)
