"""Scoring: flip test-time augmentation averages an image with its mirror, and only on request."""

from kft.evaluate import evaluate_model, predict_logits, softmax
from kft.model import build_classifier


def test_flip_tta_averages_each_image_with_its_mirror(tiny_data):
    model = build_classifier("mobilenet_v3_small", 3, image_size=32, weights="none", seed=1)
    x, y = tiny_data.test.x, tiny_data.test.y
    plain = evaluate_model(model, x, y, 3)
    tta = evaluate_model(model, x, y, 3, tta=True)
    assert "tta" not in plain and tta["tta"] == "flip"
    expected = (softmax(predict_logits(model, x)) + softmax(predict_logits(model, x[:, :, ::-1].copy()))).argmax(1)
    assert tta["accuracy"] == float((expected == y).mean())
