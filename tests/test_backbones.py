"""Registry and block maps: every layer in exactly one block, cuts split the network cleanly."""

import numpy as np
import pytest

from conftest import require_env
from kft.backbones import registry
from kft.errors import KftError

ALL = ["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "resnet18", "resnet34"]


def test_registry_names():
    assert registry.names() == ALL
    with pytest.raises(KftError, match="unknown backbone 'vgg'.*mobilenet_v2"):
        registry.get("vgg")


def test_registry_is_complete_on_import_whatever_is_imported_first():
    import subprocess
    import sys

    code = "from kft.backbones.registry import names; print(','.join(names()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == ",".join(ALL), out.stderr


def test_a_taken_name_cannot_be_registered_again():
    spec = registry.get("resnet18")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(spec)
    assert registry.get("resnet18") is spec


def test_every_spec_names_its_weights_source():
    kinds = {name: registry.get(name).weights_source.kind for name in ALL}
    assert kinds == {"mobilenet_v2": "keras.applications", "mobilenet_v3_small": "keras.applications",
                     "mobilenet_v3_large": "keras.applications", "resnet18": "torchvision",
                     "resnet34": "torchvision"}
    assert [n for n in ALL if registry.get(n).reads_state_dicts] == ["resnet18", "resnet34"]
    with pytest.raises(ValueError, match="unknown weights source"):
        registry.WeightsSource("hub", "x")


@pytest.mark.parametrize("name", ALL)
def test_every_layer_in_exactly_one_block_and_cuts_split_the_model(name):
    import keras

    spec = registry.get(name)
    base = spec.build(64)
    mapping = registry.assign_blocks(spec, base)
    assert list(mapping) == [layer.name for layer in base.layers]  # every layer, each once
    assert [b for b in dict.fromkeys(mapping.values())] == list(spec.block_names)  # contiguous, in order
    x = np.random.default_rng(0).uniform(0, 1, (2, 64, 64, 3)).astype("float32")
    full = base(x, training=False).numpy()
    for block in spec.block_names[1:]:
        cut = registry.block_input(spec, base, block)
        prefix, suffix = keras.Model(base.input, cut), keras.Model(cut, base.output)
        # the suffix holds exactly the layers of this block and the later ones
        later = {n for n, b in mapping.items() if spec.block_names.index(b) >= spec.block_names.index(block)}
        assert {layer.name for layer in suffix.layers if not isinstance(layer, keras.layers.InputLayer)} <= later
        np.testing.assert_allclose(suffix(prefix(x)).numpy(), full, atol=1e-4)


def test_classifier_blocks_include_preprocess_and_head():
    from kft.model import block_layers, build_classifier

    model = build_classifier("mobilenet_v2", 10, image_size=64, input_size=32, weights="none")
    groups = block_layers(model)
    assert list(groups) == ["preprocess", "stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert [layer.name for layer in groups["head"]] == ["avg_pool", "dropout", "logits"]
    assert {layer.name for layer in groups["preprocess"]} == {"image", "upsample", "normalize"}
    assert not any(layer.weights for layer in groups["preprocess"])


def test_model_takes_raw_pixels_and_normalizes_inside():
    """MobileNetV2's normalize layer maps 0..255 to -1..1 exactly like keras' preprocess_input."""
    import keras

    from kft.model import build_classifier

    model = build_classifier("mobilenet_v2", 3, image_size=32, weights="none")
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    ours = model.get_layer("normalize")(x).numpy()
    np.testing.assert_allclose(ours, keras.applications.mobilenet_v2.preprocess_input(x.copy()), atol=1e-6)


def test_weights_file_that_does_not_fit_names_the_layer(tmp_path):
    from kft.model import build_classifier

    small = registry.get("mobilenet_v2").build(32)
    # a MobileNetV2 0.5 file is a different shape everywhere: build one and save it
    import keras

    other = keras.applications.MobileNetV2(alpha=0.5, include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "half.weights.h5"
    other.save_weights(path)
    with pytest.raises(KftError, match=r"does not fit mobilenet_v2: layer 'Conv1' expects shape \(3, 3, 3, 32\)"):
        build_classifier("mobilenet_v2", 3, image_size=32, weights=str(path))
    with pytest.raises(KftError, match="weights file not found"):
        build_classifier("mobilenet_v2", 3, image_size=32, weights=str(tmp_path / "missing.h5"))
    assert small is not None


def test_imagenet_without_local_file_or_network_is_one_clear_error(monkeypatch, tmp_path):
    from kft.backbones import weights

    monkeypatch.setenv("KFT_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(weights, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(weights, "_keras_imagenet", lambda spec, size: (_ for _ in ()).throw(OSError("offline")))
    spec = registry.get("mobilenet_v3_small")
    with pytest.raises(KftError, match="no ImageNet weights for mobilenet_v3_small.*KFT_WEIGHTS_DIR"):
        weights.load_backbone_weights(spec, spec.build(32), "imagenet", 32)


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small"])
def test_real_imagenet_features_separate_two_cifar_classes_better_than_random(name):
    """A real, failable check: nearest-class-mean accuracy on cat vs ship features."""
    require_env("KFT_WEIGHTS_DIR")
    require_env("KFT_DATA_DIR")
    from kft.data import load_few_shot
    from kft.model import build_classifier

    data = load_few_shot(samples_per_class=20, val_per_class=20, seed=0)
    keep_tr, keep_va = np.isin(data.train.y, [3, 8]), np.isin(data.val.y, [3, 8])

    def score(weights):
        model = build_classifier(name, 10, image_size=96, input_size=32, weights=weights, seed=0)
        import keras

        feats = keras.Model(model.input, model.get_layer("avg_pool").output)
        ftr = feats(data.train.x[keep_tr].astype("float32")).numpy()
        fva = feats(data.val.x[keep_va].astype("float32")).numpy()
        ytr, yva = data.train.y[keep_tr], data.val.y[keep_va]
        means = np.stack([ftr[ytr == c].mean(0) for c in (3, 8)])
        pred = np.array([3, 8])[np.argmin(((fva[:, None] - means[None]) ** 2).sum(-1), 1)]
        return (pred == yva).mean()

    real, random = score("imagenet"), score("none")
    assert real >= 0.8, real
    assert real > random + 0.1, (real, random)


def test_kft_backbones_lists_blocks_params_and_local_weights(capsys, monkeypatch, tmp_path):
    from kft.cli import main

    (tmp_path / "mobilenet_v2_1.0_imagenet_no_top.weights.h5").write_bytes(b"")
    monkeypatch.setenv("KFT_WEIGHTS_DIR", str(tmp_path))
    main(["backbones"])  # returns normally on success
    out = capsys.readouterr().out
    for name in ALL:
        assert f"{name}:" in out
    assert "mobilenet_v2: MobileNetV2 1.0 (keras.applications); 2,257,984 backbone params" in out
    assert str(tmp_path / "mobilenet_v2_1.0_imagenet_no_top.weights.h5") in out
    assert "resnet18" in out and "11,186,112 backbone params" in out  # 11,176,512 trainable + BN statistics
    assert out.count("\n    layer4 ") == len(ALL)
