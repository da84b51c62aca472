"""What a person should know about their photo folder before minutes of training: one line each.

    for line in folder_warnings(data): log.warning(line)
"""

from __future__ import annotations

import numpy as np

__all__ = ["FEW_PHOTOS", "IMBALANCE", "folder_warnings"]

# Below this many photos a class is learnt from a handful of examples and its held-out accuracy
# rests on two or three photos (a 95% interval of +-30 points or more): measure, but do not trust.
FEW_PHOTOS = 20
IMBALANCE = 3.0  # the largest class this many times the smallest: the model leans to the large ones


def folder_warnings(data) -> list[str]:
    """One-line warnings for a folder dataset (``kft.data.FewShotData``): small classes, unequal
    classes, unreadable files, near-duplicates kept together, no test split."""
    names = data.class_names
    parts = [d for d in (data.train, data.val, data.test) if d is not None and len(d)]
    counts = np.sum([np.bincount(d.y, minlength=len(names)) for d in parts], axis=0)
    out = []
    small = [(n, int(c)) for n, c in zip(names, counts) if c < FEW_PHOTOS]
    if small:
        listed = ", ".join(f"{n} ({c})" for n, c in small[:5]) + (" ..." if len(small) > 5 else "")
        out.append(f"few photos: {listed}; below {FEW_PHOTOS} per class the model learns a class from a handful "
                   f"of examples and its test accuracy rests on 2-4 photos: add photos if you can")
    if counts.min() > 0 and counts.max() / counts.min() > IMBALANCE:
        big, tiny = names[int(counts.argmax())], names[int(counts.argmin())]
        out.append(f"classes differ {counts.max() / counts.min():.1f}x in size ({big} {int(counts.max())}, "
                   f"{tiny} {int(counts.min())}): the model will lean to the large ones; the plan key "
                   f"class_weight: balanced weights each class equally")
    if data.skipped:
        out.append(f"{len(data.skipped)} file(s) could not be read and were skipped (listed above)")
    groups = data.split.get("near_duplicates", {}).get("groups", [])
    if groups:
        out.append(f"{len(groups)} groups of near-duplicate photos ({sum(map(len, groups))} photos: bursts, re-saves, "
                   f"re-crops) each kept on one side of the test split (split.json lists them)")
    if data.test is None and data.split.get("layout") == "split":
        out.append("no test split (test_split 0): no accuracy will be reported; nothing checks the model on "
                   "photos it never saw")
    return out
