"""Every backbone exports to all four TFLite variants and each agrees with its Keras model.

MobileNetV3-Large and ResNet-18/34 have no ImageNet weights on the CI machine, so these use
random weights with BatchNorm statistics set from a batch and a briefly trained head (see
``export_fixtures.trained``): numeric agreement with Keras, not accuracy, is what is checked.
"""

import numpy as np
import pytest

from export_fixtures import decisive, run_tflite, trained

QUANTS = ["float32", "float16", "dynamic", "int8"]


@pytest.mark.parametrize("backbone", [pytest.param("mobilenet_v3_large", marks=pytest.mark.slow), "resnet18",
                                      pytest.param("resnet34", marks=pytest.mark.slow)])
def test_four_variants_convert_run_and_agree_with_keras(backbone, tmp_path):
    from kft.evaluate import predict_logits
    from kft.export import export_model

    t = trained(backbone)
    result = export_model(t.model, t.class_names, QUANTS, tmp_path, calibration_samples=48,
                          train_images=t.train_x, test_images=t.test_x, test_labels=t.test_y,
                          input_size=32, max_accuracy_drop=100.0)  # agreement here, not accuracy or the input contract
    ref = predict_logits(t.model, t.test_x).astype(np.float64)
    ref_probs = np.exp(ref - ref.max(1, keepdims=True))
    ref_probs /= ref_probs.sum(1, keepdims=True)
    sizes = {}
    for q in QUANTS:
        path = result.out_dir / f"model_{q}.tflite"
        sizes[q] = path.stat().st_size
        probs, inp, _ = run_tflite(path, t.test_x)
        assert probs.shape == ref.shape, q
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=0.02, err_msg=q)
        if q in ("float32", "float16"):  # the same arithmetic, rounded: close everywhere
            tol = 1e-4 if q == "float32" else 0.1  # measured: 3e-5 / 0.045 (MobileNetV3-Large)
            assert np.abs(probs - ref_probs).max() <= tol, q
            sure = decisive(ref_probs, 2 * tol)  # top-1 is compared only where rounding cannot flip it
            assert np.array_equal(probs.argmax(1)[sure], ref.argmax(1)[sure]), q
        else:  # 8-bit weights (and activations): the same decisions on most images, far above chance (1/3)
            agreement = float((probs.argmax(1) == ref.argmax(1)).mean())
            assert agreement >= 0.75, (q, agreement)  # measured: 0.8-1.0 with random weights
    assert sizes["float16"] < 0.6 * sizes["float32"]
    assert sizes["dynamic"] < 0.4 * sizes["float32"] and sizes["int8"] < 0.4 * sizes["float32"]
