"""Near-duplicate photos: a perceptual hash per image and groups of close ones, so a split keeps
every burst, re-save or slight re-crop of one shot on one side.

A photo folder holds bursts and re-saves of the same shot. If one copy trains and another is
held out, the held-out score measures memory, not what the phone will do. ``phash`` is the DCT
hash (Zauner 2010, as in the ``imagehash`` library): the image in grey at 32x32, its 2-D DCT, the
8x8 lowest frequencies (the DC term excluded) compared with their median: 64 bits that JPEG
re-compression, resizing and small crops or brightness changes barely move. Images whose hashes
differ in at most ``max_distance`` bits join one group (union-find; transitively, so a burst is one
group). numpy + Pillow only.

    groups = near_duplicate_groups(images, labels, max_distance=8)   # one group id per image
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_DISTANCE", "near_duplicate_groups", "phash"]

MAX_DISTANCE = 12  # of 64 bits: 99% of re-saved 6% re-crops measured <= 12; 2 of 49,500 different shots (docs/own-photos.md)
_SIZE, _LOW = 32, 8


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    m = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_D = _dct_matrix(_SIZE)


def phash(image: np.ndarray) -> int:
    """The 64-bit DCT hash of a uint8 RGB (H, W, 3) or grey (H, W) image."""
    from PIL import Image

    img = Image.fromarray(np.asarray(image, np.uint8)).convert("L").resize((_SIZE, _SIZE), Image.Resampling.LANCZOS)
    coeffs = _D @ np.asarray(img, np.float64) @ _D.T
    low = coeffs[:_LOW, :_LOW].ravel()[1:]  # the DC term says only how bright the image is
    bits = np.append(low > np.median(low), False)
    return int(np.packbits(bits).view(">u8")[0])


def _popcount(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64)
    count = np.zeros(x.shape, np.uint64)
    for shift in range(0, 64, 8):
        count += _BYTE_BITS[(x >> np.uint64(shift)) & np.uint64(0xFF)]
    return count


_BYTE_BITS = np.array([bin(b).count("1") for b in range(256)], np.uint64)


def near_duplicate_groups(images, labels=None, max_distance: int = MAX_DISTANCE, hashes=None) -> np.ndarray:
    """A group id per image (0, 1, 2 ... in order of first appearance): images whose hashes are within
    ``max_distance`` bits share one, transitively. With ``labels``, only images of one class are
    compared (a near-copy under another label is label noise, not a leak of the test split).
    ``images`` may live on disk (read one at a time); ``hashes``: precomputed ``phash`` values."""
    n = len(images) if hashes is None else len(hashes)
    h = np.array([phash(images[i]) for i in range(n)] if hashes is None else hashes, np.uint64)
    labels = np.zeros(n, np.int64) if labels is None else np.asarray(labels)
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        for k, i in enumerate(members[:-1]):
            rest = members[k + 1:]
            for j in rest[_popcount(h[rest] ^ h[i]) <= max_distance]:
                a, b = root(int(i)), root(int(j))
                if a != b:
                    parent[max(a, b)] = min(a, b)
    roots = np.array([root(i) for i in range(n)])
    _, first = np.unique(roots, return_index=True)
    order = {r: g for g, r in enumerate(roots[np.sort(first)])}
    return np.array([order[r] for r in roots], np.int64)
