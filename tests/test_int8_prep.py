"""int8 preparation: depthwise bias correction, the int8 grid TFLite uses, folded normalisation."""

import numpy as np

from conftest import require_env
from export_fixtures import exported, trained


def _op_names(buf):
    from ai_edge_litert.interpreter import Interpreter

    return [op["op_name"] for op in Interpreter(model_content=buf)._get_ops_details()]


def _depthwise_model(kernel, bias_shift=0.0):
    """image (6, 6, 2) -> DepthwiseConv2D 3x3 valid -> BatchNormalization (non-trivial statistics)."""
    import keras

    x = keras.Input((6, 6, 2))
    conv = keras.layers.DepthwiseConv2D(3, use_bias=False, name="dw")
    bn = keras.layers.BatchNormalization(epsilon=1e-3, name="bn")
    model = keras.Model(x, bn(conv(x), training=False))
    conv.kernel.assign(kernel)
    bn.set_weights([np.array([1.5, 0.5], np.float32), np.array([0.2 + bias_shift, -0.1], np.float32),
                    np.array([0.3, -0.2], np.float32), np.array([0.04, 2.0], np.float32)])
    return model, conv, bn


def test_bias_correction_keeps_the_mean_output_of_a_rounded_depthwise_kernel():
    """A zero-sum edge filter with one large tap on a nearly constant input (what ImageNet
    MobileNetV2 has in its first block): rounding to int8 shifts the output by
    (W_q - W) . E[x]; the corrected bias cancels exactly that shift."""
    from kft.export.int8_prep import correct_depthwise_bias, fold_batchnorm, snap_to_int8_grid

    rng = np.random.default_rng(0)
    k = rng.normal(0, 0.05, (3, 3, 2, 1))
    k[1, 1, 0, 0] = 40.0
    k[..., 0, 0] -= k[..., 0, 0].mean()  # zero sum: the output ignores the constant input
    kernel = k.astype(np.float32)
    images = np.stack([np.full((6, 6), 2.1), np.full((6, 6), -0.7)], -1)[None] + rng.normal(0, 0.005, (64, 6, 6, 2))
    images = images.astype(np.float32)
    input_mean = images.mean(axis=(0, 1, 2))

    def prepared(mean):
        model, conv, bn = _depthwise_model(kernel)
        folded, _ = fold_batchnorm(conv, bn)
        correct_depthwise_bias(conv, bn, mean)
        return model, conv, folded

    original = _depthwise_model(kernel)[0].predict(images, verbose=0)
    model, conv, folded = prepared(input_mean)
    corrected = model.predict(images, verbose=0)
    step = np.abs(folded).max(axis=(0, 1), keepdims=True) / 127
    q = conv.kernel.numpy() / step
    assert np.allclose(q, np.round(q), atol=1e-3)  # the folded kernel is on the int8 grid
    assert np.allclose(conv.kernel.numpy(), snap_to_int8_grid(folded, (0, 1)), rtol=1e-6)
    assert np.allclose(corrected.mean(axis=(0, 1, 2)), original.mean(axis=(0, 1, 2)), atol=1e-3)
    assert np.abs(corrected - original).max() < 0.1 * original[..., 0].std() + 1e-3

    # Rounding without the correction (E[x] taken as 0): channel 0 moves by many times its spread.
    rounded = prepared(np.zeros(2))[0].predict(images, verbose=0)
    shift = np.abs(rounded.mean(axis=(0, 1, 2)) - original.mean(axis=(0, 1, 2)))
    assert shift[0] > 3 * original[..., 0].std()


def test_converted_depthwise_weights_are_the_prepared_grid():
    """The correction is computed against ``snap_to_int8_grid``: the int8 file must hold
    exactly those weights (TFLite re-quantizing them loses nothing) and the folded bias."""
    from ai_edge_litert.interpreter import Interpreter

    from kft.export.int8_prep import depthwise_batchnorm_pairs, prepare_for_int8

    from kft.export import calibration_subset

    t = trained()
    int8_file = exported().out_dir / "model_int8.tflite"
    prepared = prepare_for_int8(t.model, calibration_subset(t.train_x, 48, 0))  # as exported() calibrates
    pairs = depthwise_batchnorm_pairs(prepared.get_layer("backbone"))
    interp = Interpreter(model_path=str(int8_file))
    ops = [op for op in interp._get_ops_details() if op["op_name"] == "DEPTHWISE_CONV_2D"]
    assert len(ops) == len(pairs) > 0
    details = {d["index"]: d for d in interp.get_tensor_details()}
    for op, (conv, bn) in zip(ops, pairs):
        w_index, b_index = op["inputs"][1], op["inputs"][2]
        w = interp.get_tensor(w_index).astype(np.float64)
        scales = details[w_index]["quantization_parameters"]["scales"]
        ours = conv.kernel.numpy().reshape(w.shape)
        assert np.allclose(w * scales, ours, rtol=1e-5, atol=1e-7 * np.abs(ours).max()), conv.name
        b = interp.get_tensor(b_index).astype(np.float64)
        b_scales = details[b_index]["quantization_parameters"]["scales"]
        assert np.all(np.abs(b * b_scales - bn.beta.numpy()) <= b_scales * 0.51 + 1e-6), bn.name


def _tiny_mobilenet_v2():
    """MobileNetV2 (random init) at 32 px from 16 px inputs, BatchNorm statistics from one batch."""
    import keras

    from kft.model import build_classifier

    model = build_classifier("mobilenet_v2", num_classes=3, image_size=32, input_size=16, weights="none", seed=0)
    images = np.random.default_rng(1).integers(0, 256, (16, 16, 16, 3)).astype(np.float32)
    backbone = model.get_layer("backbone")
    norms = [la for la in backbone.layers if isinstance(la, keras.layers.BatchNormalization)]
    for la in norms:
        la.momentum = 0.0
    x = model.get_layer("normalize")(model.get_layer("upsample")(images))
    backbone(x, training=True)
    return model, images


def test_normalization_is_folded_into_the_first_conv():
    """x / 127.5 - 1 becomes x - 128 (exact in int8) with the scale in Conv1: the int8
    model has no MUL re-quantizing the image, and the float function only changes where
    Conv1 pads (grey 128 instead of 127.5)."""
    import keras

    from kft.export.convert import QuantizationConfig, convert
    from kft.export.int8_prep import fold_normalization, prepare_for_int8

    model, images = _tiny_mobilenet_v2()
    norm = prepare_for_int8(model, images).get_layer("normalize")
    assert list(norm.scale) == [1.0] * 3 and list(norm.offset) == [-128.0] * 3
    assert list(model.get_layer("normalize").offset) == [-1.0] * 3  # the caller's model is untouched
    folded = keras.models.clone_model(model)
    folded.set_weights(model.get_weights())
    assert fold_normalization(folded)

    def conv1_out(m):
        base = m.get_layer("backbone")
        x = m.get_layer("normalize")(m.get_layer("upsample")(images))
        return keras.Model(base.inputs, base.get_layer("bn_Conv1").output)(x).numpy()

    a, b = conv1_out(model), conv1_out(folded)
    # Conv1: 3x3 stride 2 "same" on 32 px pads one row/column at the bottom/right only.
    assert np.allclose(a[:, :-1, :-1], b[:, :-1, :-1], atol=1e-4 * np.abs(a).max())
    assert np.abs(a - b).max() < 0.02 * np.abs(a).max()

    def ops_before_first_conv(prepare):
        ops = _op_names(convert(model, QuantizationConfig.for_int8(images, prepare=prepare), input_size=16))
        return ops[:ops.index("CONV_2D")]

    assert ops_before_first_conv(True) == ["QUANTIZE", "RESIZE_BILINEAR", "ADD"]
    assert "MUL" in ops_before_first_conv(False)  # what the converter does on its own


def test_int8_mobilenet_v2_with_imagenet_weights_tracks_keras():
    """Real weights, real images: plain conversion agrees ~0.76 with Keras (top-1, 200 CIFAR-10
    test images, 96 px, least-squares head); prepared, ~0.88 and the same accuracy."""
    data_dir = require_env("KFT_DATA_DIR")
    require_env("KFT_WEIGHTS_DIR")
    import keras

    from kft.data import load_few_shot
    from kft.evaluate import predict_logits
    from kft.export.convert import QuantizationConfig, convert, to_input_size
    from kft.export.int8_prep import fold_normalization
    from kft.model import build_classifier
    from kft.runtime import Classifier

    data = load_few_shot(data_dir=data_dir, samples_per_class=20, val_per_class=0, seed=0, limit_test=200)
    model = build_classifier("mobilenet_v2", num_classes=10, image_size=96, input_size=32, weights="imagenet")
    pooled = keras.Model(model.inputs, model.get_layer("avg_pool").output)
    f = pooled.predict(data.train.x.astype(np.float32), batch_size=50, verbose=0).astype(np.float64)
    mean = f.mean(0)
    w = np.linalg.solve((f - mean).T @ (f - mean) + np.eye(f.shape[1]), (f - mean).T @ (np.eye(10)[data.train.y] - 0.1))
    model.get_layer("logits").set_weights([(5 * w).astype(np.float32), (-5 * mean @ w).astype(np.float32)])
    logits = predict_logits(model, data.test.x)
    keras_acc = float((logits.argmax(1) == data.test.y).mean())
    assert keras_acc > 0.4  # a real classifier, not chance
    folded = keras.models.clone_model(model)
    folded.set_weights(model.get_weights())
    assert fold_normalization(folded)  # changes the float logits only through Conv1's padded border
    assert np.abs(predict_logits(folded, data.test.x) - logits).max() < 0.05

    tflite = convert(model, QuantizationConfig.for_int8(data.train.x[:100]))
    pred = Classifier(tflite, num_threads=1).classify(to_input_size(data.test.x, 224)).argmax(1)
    assert (pred == logits.argmax(1)).mean() >= 0.84
    assert (pred == data.test.y).mean() >= keras_acc - 0.02
