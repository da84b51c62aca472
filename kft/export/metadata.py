"""TFLite model metadata for an image classifier, so MediaPipe's ImageClassifier
(and the TFLite Support task library) can use the .tflite file alone.

Builds the ``ModelMetadata`` flatbuffer of the TFLite metadata schema
(``metadata_schema.fbs``, file identifier ``M001``) directly with the
``flatbuffers`` package, stores it in the model's ``metadata`` table under
``TFLITE_METADATA`` and appends the label file as a zip archive after the
flatbuffer, which is how TFLite packs associated files (the .tflite file is
also a valid zip holding ``labels.txt``). Mirrors what MediaPipe's
``metadata_writers.image_classifier`` writes, without needing mediapipe.

What MediaPipe needs: a float input must carry ``NormalizationOptions``; kft
models normalise inside themselves and take raw 0..255 pixels, so mean 0 and
std 1 (identity). The output tensor lists its labels as an associated file of
type ``TENSOR_AXIS_LABELS`` so results carry category names.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from kft.export import tflite_model

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
# The features used here (normalization, stats, axis labels, image properties)
# all exist since metadata schema 1.0.0.
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"

# Enum and union values of metadata_schema.fbs.
_TENSOR_AXIS_LABELS = 2
_COLOR_SPACE_RGB = 1
_CONTENT_FEATURE_PROPERTIES = 1
_CONTENT_IMAGE_PROPERTIES = 2
_PROCESS_UNIT_NORMALIZATION = 1


@dataclass(frozen=True)
class ClassifierMetadata:
    """What the metadata says about a kft image classifier."""

    labels: tuple[str, ...]
    image_size: tuple[int, int]  # (height, width)
    name: str = "kft image classifier"
    description: str = "Identify the most prominent object in the image from a known set of categories."
    version: str = ""
    author: str = "kft"
    license: str = ""


def build_metadata(meta: ClassifierMetadata) -> bytes:
    """Serialise ``meta`` as a ``ModelMetadata`` flatbuffer (identifier M001)."""
    import flatbuffers

    b = flatbuffers.Builder(1024)
    h, w = meta.image_size

    # Input: raw RGB pixels 0..255, identity normalisation.
    image_size = _table(b, [(0, "uint32", w), (1, "uint32", h)])
    image_props = _table(b, [(0, "int8", _COLOR_SPACE_RGB), (1, "offset", image_size)])
    in_content = _table(b, [(0, "uint8", _CONTENT_IMAGE_PROPERTIES), (1, "offset", image_props)])
    norm = _table(b, [(0, "offset", _float_vector(b, [0.0])), (1, "offset", _float_vector(b, [1.0]))])
    norm_unit = _table(b, [(0, "uint8", _PROCESS_UNIT_NORMALIZATION), (1, "offset", norm)])
    in_stats = _table(b, [(0, "offset", _float_vector(b, [255.0])), (1, "offset", _float_vector(b, [0.0]))])
    input_md = _table(b, [
        (0, "offset", b.CreateString("image")),
        (1, "offset", b.CreateString("Input image: RGB pixels 0..255 (normalised inside the model).")),
        (3, "offset", in_content),
        (4, "offset", _offset_vector(b, [norm_unit])),
        (5, "offset", in_stats),
    ])

    # Output: one probability per label.
    labels_file = _table(b, [
        (0, "offset", b.CreateString(LABELS_FILE)),
        (1, "offset", b.CreateString("Labels for the categories the model can recognise.")),
        (2, "int8", _TENSOR_AXIS_LABELS),
    ])
    feature_props = _table(b, [])
    out_content = _table(b, [(0, "uint8", _CONTENT_FEATURE_PROPERTIES), (1, "offset", feature_props)])
    out_stats = _table(b, [(0, "offset", _float_vector(b, [1.0])), (1, "offset", _float_vector(b, [0.0]))])
    output_md = _table(b, [
        (0, "offset", b.CreateString("probability")),
        (1, "offset", b.CreateString(f"Probabilities of the {len(meta.labels)} labels respectively.")),
        (3, "offset", out_content),
        (5, "offset", out_stats),
        (6, "offset", _offset_vector(b, [labels_file])),
    ])

    subgraph = _table(b, [
        (2, "offset", _offset_vector(b, [input_md])),
        (3, "offset", _offset_vector(b, [output_md])),
    ])
    fields = [
        (0, "offset", b.CreateString(meta.name)),
        (1, "offset", b.CreateString(meta.description)),
        (3, "offset", _offset_vector(b, [subgraph])),
        (7, "offset", b.CreateString(MIN_PARSER_VERSION)),
    ]
    for slot, text in ((2, meta.version), (4, meta.author), (5, meta.license)):
        if text:
            fields.append((slot, "offset", b.CreateString(text)))
    b.Finish(_table(b, fields), METADATA_IDENTIFIER)
    return bytes(b.Output())


def labels_text(labels) -> str:
    return "".join(f"{label}\n" for label in labels)


def attach(tflite: bytes, meta: ClassifierMetadata) -> bytes:
    """Return ``tflite`` with ``meta`` in its metadata table and ``labels.txt`` packed after it."""

    tree = tflite_model.load(tflite)
    tflite_model.set_metadata(tree, METADATA_NAME, build_metadata(meta))
    return append_files(tflite_model.dump(tree), {LABELS_FILE: labels_text(meta.labels).encode("utf-8")})


def append_files(model: bytes, files: dict[str, bytes]) -> bytes:
    """Append ``files`` as a zip archive after the flatbuffer (zip offsets stay valid
    because readers locate the archive from its end)."""
    out = io.BytesIO()
    out.write(model)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


def read_metadata(model: bytes) -> bytes | None:
    """The raw ``ModelMetadata`` flatbuffer embedded in ``model``, or None."""

    return tflite_model.get_metadata(model, METADATA_NAME)


# --- minimal flatbuffer table writing -------------------------------------------------

def _table(b, fields) -> int:
    """Write a table from ``(slot, kind, value)`` fields; children must be built already."""
    b.StartObject(max((slot for slot, _, _ in fields), default=-1) + 1)
    for slot, kind, value in fields:
        if kind == "offset":
            b.PrependUOffsetTRelativeSlot(slot, value, 0)
        elif kind == "uint32":
            b.PrependUint32Slot(slot, value, 0)
        elif kind == "uint8":
            b.PrependUint8Slot(slot, value, 0)
        elif kind == "int8":
            b.PrependInt8Slot(slot, value, 0)
        else:  # pragma: no cover - programming error
            raise ValueError(kind)
    return b.EndObject()


def _float_vector(b, values) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependFloat32(float(v))
    return b.EndVector()


def _offset_vector(b, offsets) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()
