"""ResNet-18/34 in Keras vs an independent NumPy reference of torchvision's forward pass.

The reference below is written from torchvision's ``resnet.py`` (NCHW, float64,
torch's padding: symmetric zeros for convs, -inf for the max-pool) and never
calls kft's Keras code; both are fed the same random state dict, the Keras
model through ``assign_state_dict``.
"""

from __future__ import annotations

import io
import urllib.error

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from kft.backbones import registry  # noqa: E402
from kft.backbones import torch_weights as tw  # noqa: E402
from kft.errors import KftError  # noqa: E402

STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
WIDTHS = (64, 128, 256, 512)
EPS = 1e-5  # torch BatchNorm2d default
# Keras runs float32, the reference float64; with O(1) activations the float32
# rounding accumulated over 20-36 convs stays ~1e-6, while any architectural
# slip (padding offset, stride, transposed kernel) changes outputs by O(0.1).
TOL = 1e-4


# ---------------------------------------------------------------- NumPy reference


def random_state_dict(depth: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A torchvision ResNet state dict (fc and counters included) with random values.

    Conv weights are He-scaled, BatchNorms get random statistics (positive
    variances) and affine terms; residual-branch BNs are damped so activations
    stay O(1) through all blocks.
    """
    rng = np.random.default_rng(seed)
    sd: dict[str, np.ndarray] = {}

    def conv(name, o, i, k):
        sd[f"{name}.weight"] = (rng.standard_normal((o, i, k, k)) * np.sqrt(2.0 / (i * k * k))).astype(np.float32)

    def bn(name, c, gain):
        sd[f"{name}.weight"] = rng.uniform(0.5, 1.0, c).astype(np.float32) * gain
        sd[f"{name}.bias"] = (0.1 * rng.standard_normal(c)).astype(np.float32)
        sd[f"{name}.running_mean"] = (0.1 * rng.standard_normal(c)).astype(np.float32)
        sd[f"{name}.running_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        sd[f"{name}.num_batches_tracked"] = np.array(7, dtype=np.int64)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64, 1.0)
    cin = 64
    for s, (blocks, w) in enumerate(zip(STAGES[depth], WIDTHS), start=1):
        for b in range(blocks):
            p = f"layer{s}.{b}"
            conv(f"{p}.conv1", w, cin, 3)
            bn(f"{p}.bn1", w, 1.0)
            conv(f"{p}.conv2", w, w, 3)
            bn(f"{p}.bn2", w, 0.4)
            if s > 1 and b == 0:
                conv(f"{p}.downsample.0", w, cin, 1)
                bn(f"{p}.downsample.1", w, 0.7)
            cin = w
    sd["fc.weight"] = rng.standard_normal((1000, 512)).astype(np.float32)
    sd["fc.bias"] = rng.standard_normal(1000).astype(np.float32)
    return sd


def _conv(x, w, stride, pad):
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[-1]
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,ocij->nohw", win, w.astype(np.float64), optimize=True)


def _bn(x, sd, name):
    g, b, m, v = (sd[f"{name}.{k}"].astype(np.float64)[None, :, None, None]
                  for k in ("weight", "bias", "running_mean", "running_var"))
    return (x - m) / np.sqrt(v + EPS) * g + b


def _maxpool(x, k=3, stride=2, pad=1):
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return win.max(axis=(-2, -1))


def reference_forward(sd, x_nchw, depth):
    """torchvision ResNet forward up to layer4, inference mode (BN uses running stats)."""
    relu = lambda t: np.maximum(t, 0.0)  # noqa: E731
    x = relu(_bn(_conv(x_nchw.astype(np.float64), sd["conv1.weight"], 2, 3), sd, "bn1"))
    x = _maxpool(x)
    for s, blocks in enumerate(STAGES[depth], start=1):
        for b in range(blocks):
            p, stride = f"layer{s}.{b}", (2 if s > 1 and b == 0 else 1)
            y = relu(_bn(_conv(x, sd[f"{p}.conv1.weight"], stride, 1), sd, f"{p}.bn1"))
            y = _bn(_conv(y, sd[f"{p}.conv2.weight"], 1, 1), sd, f"{p}.bn2")
            if f"{p}.downsample.0.weight" in sd:
                x = _bn(_conv(x, sd[f"{p}.downsample.0.weight"], stride, 0), sd, f"{p}.downsample.1")
            x = relu(y + x)
    return x


# ---------------------------------------------------------------- helpers


def build(depth, size):
    return registry.get(f"resnet{depth}").build(size)


def run(model, x_nhwc):
    return keras.ops.convert_to_numpy(model(x_nhwc, training=False))


def weights_of(model):
    return {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("depth, params", [(18, 11_176_512), (34, 21_284_672)])
def test_parameter_count_and_shape_match_torchvision(depth, params):
    model = build(depth, 64)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert trainable == params  # torchvision's parameters() minus fc; running stats are buffers there
    assert tuple(model.output.shape) == (None, 2, 2, 512)
    assert tuple(build(depth, 45).output.shape) == (None, 2, 2, 512)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            assert layer.epsilon == EPS and layer.momentum == 0.9
        if isinstance(layer, keras.layers.Conv2D):
            assert not layer.use_bias and layer.padding == "valid"


@pytest.mark.parametrize("depth", [18, 34])
@pytest.mark.parametrize("size", [64, 45])
def test_matches_numpy_reference(depth, size):
    sd = random_state_dict(depth, seed=depth + size)
    model = build(depth, size)
    tw.assign_state_dict(model, sd)
    x = np.random.default_rng(size).standard_normal((2, 3, size, size)).astype(np.float32)
    ref = reference_forward(sd, x, depth).transpose(0, 2, 3, 1)  # NCHW -> NHWC
    out = run(model, x.transpose(0, 2, 3, 1))
    assert out.shape == ref.shape
    # activations are O(1), so an absolute tolerance is meaningful
    assert 0.3 < np.abs(ref).max() < 50 and (ref > 0).mean() > 0.2
    assert np.abs(out - ref).max() <= TOL
    assert np.abs(out.mean(axis=(1, 2)) - ref.mean(axis=(1, 2))).max() <= TOL


def test_reference_catches_same_padding():
    """The comparison can fail: Keras' asymmetric 'same' stride-2 padding is visibly different."""
    sd = random_state_dict(18)
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    ref = _conv(x, sd["conv1.weight"], 2, 3).transpose(0, 2, 3, 1)
    same = keras.ops.conv(x.transpose(0, 2, 3, 1), sd["conv1.weight"].transpose(2, 3, 1, 0),
                          strides=2, padding="same")
    assert ref.shape == same.shape and np.abs(keras.ops.convert_to_numpy(same) - ref).max() > 0.1


def test_file_round_trip_npz_and_safetensors(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    sd = random_state_dict(18, seed=3)
    model = build(18, 32)
    tw.assign_state_dict(model, sd)
    expected = weights_of(model)
    k = model.get_layer("layer2.0.downsample.0").kernel
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(k),
                                  sd["layer2.0.downsample.0.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("bn1").moving_variance),
                                  sd["bn1.running_var"])

    np.savez(tmp_path / "sd.npz", **sd)
    safetensors_numpy.save_file({f"module.{k}": v for k, v in sd.items()}, str(tmp_path / "sd.safetensors"))
    for name in ("sd.npz", "sd.safetensors"):
        read = tw.read_state_dict(tmp_path / name)
        assert not any(k.startswith(("fc.", "module.")) or "num_batches" in k for k in read)
        other = build(18, 32)
        tw.assign_state_dict(other, read)
        got = weights_of(other)
        assert got.keys() == expected.keys()
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])


def test_keras_save_and_load_keep_dotted_names(tmp_path):
    model = build(18, 32)
    tw.assign_state_dict(model, random_state_dict(18, seed=5))
    x = np.random.default_rng(0).standard_normal((1, 32, 32, 3)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    fresh = build(18, 32)
    fresh.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_allclose(run(loaded, x), run(model, x), atol=1e-6)
    np.testing.assert_allclose(run(fresh, x), run(model, x), atol=1e-6)


def test_state_dict_errors_name_the_layer(tmp_path):
    model = build(18, 32)
    before = weights_of(model)
    good = random_state_dict(18)

    bad = dict(good, **{"layer3.1.conv2.weight": np.zeros((256, 256, 1, 1), np.float32)})
    with pytest.raises(KftError, match=r"layer3\.1\.conv2.*\(256, 256, 1, 1\).*\(256, 256, 3, 3\)"):
        tw.assign_state_dict(model, bad)

    missing = {k: v for k, v in good.items() if k != "layer2.0.downsample.1.running_var"}
    with pytest.raises(KftError, match=r"layer2\.0\.downsample\.1\.running_var"):
        tw.assign_state_dict(model, missing)

    extra = dict(good, **{"layer5.0.conv1.weight": np.zeros((1, 1, 3, 3), np.float32)})
    with pytest.raises(KftError, match=r"layer5\.0\.conv1\.weight"):
        tw.assign_state_dict(model, extra)

    # resnet34 weights into resnet18: a leftover block is reported, nothing assigned
    with pytest.raises(KftError, match=r"layer1\.2\."):
        tw.assign_state_dict(model, random_state_dict(34))
    after = weights_of(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)  # all or nothing

    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(KftError, match="unsupported checkpoint"):
        tw.read_state_dict(tmp_path / "w.bin")
    with pytest.raises(KftError, match="not found"):
        tw.read_state_dict(tmp_path / "nope.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(KftError, match="cannot read"):
        tw.read_state_dict(tmp_path / "broken.npz")


def test_pth_without_torch_says_what_to_do(tmp_path):
    try:
        import torch  # noqa: F401
        pytest.skip("torch is installed")
    except ImportError:
        pass
    (tmp_path / "w.pth").write_bytes(b"x")
    with pytest.raises(KftError, match="safetensors"):
        tw.read_state_dict(tmp_path / "w.pth")


def test_download_offline_fails_cleanly(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tw.urllib.request, "urlopen", offline)
    with pytest.raises(KftError, match=r"huggingface\.co/timm/resnet18.*KFT_WEIGHTS_DIR"):
        tw.download_imagenet("resnet18", tmp_path / "w")
    assert list((tmp_path / "w").iterdir()) == []  # no half-written file left
    with pytest.raises(KftError, match="torchvision checkpoint"):
        tw.download_imagenet("resnet50", tmp_path / "w")


def test_download_converts_to_keras_weights(tmp_path, monkeypatch):
    """The download path end to end, with the network replaced by a local safetensors file."""
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    sd = random_state_dict(18, seed=11)
    payload = safetensors_numpy.save(sd)
    seen = []

    def fake_urlopen(url, timeout=None):
        seen.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(tw.urllib.request, "urlopen", fake_urlopen)
    out = tw.download_imagenet("resnet18", tmp_path)
    assert seen == [tw.IMAGENET_URLS["resnet18"]]
    assert out == tmp_path / "resnet18_imagenet_no_top.weights.h5"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    model, expected = build(18, 32), build(18, 32)
    model.load_weights(out)
    tw.assign_state_dict(expected, sd)
    want = weights_of(expected)
    for key, value in weights_of(model).items():
        np.testing.assert_array_equal(value, want[key])


@pytest.mark.parametrize("depth", [18, 34])
def test_blocks_partition_the_model(depth):
    spec = registry.get(f"resnet{depth}")
    model = build(depth, 32)
    names = [layer.name for layer in model.layers]
    mapping = registry.assign_blocks(spec, model)
    assert len(set(names)) == len(names) and set(mapping) == set(names)
    assert [n for n in names if mapping[n] == "stem"] == [
        "input", "conv1_pad", "conv1", "bn1", "relu", "maxpool_pad", "maxpool"]
    for name in names:
        if mapping[name] != "stem":
            assert name.startswith(mapping[name] + "."), name
    for s in range(2, 5):  # the boundary pad precedes the block's first conv and its shortcut
        i = names.index(f"layer{s}.0.conv1_pad")
        assert i < names.index(f"layer{s}.0.conv1") < names.index(f"layer{s}.0.downsample.0")


def test_cutting_at_each_block_input_composes_to_the_full_model():
    spec = registry.get("resnet18")
    model = build(18, 45)
    tw.assign_state_dict(model, random_state_dict(18, seed=2))
    x = np.random.default_rng(4).standard_normal((2, 45, 45, 3)).astype(np.float32)
    full = run(model, x)
    for block in spec.block_names[1:]:
        cut = registry.block_input(spec, model, block)
        head = keras.Model(model.input, cut)
        tail = keras.Model(cut, model.output)
        tail_blocks = {registry.assign_blocks(spec, model)[layer.name] for layer in tail.layers[1:]}
        assert block in tail_blocks and "stem" not in tail_blocks
        np.testing.assert_allclose(run(tail, run(head, x)), full, atol=1e-5)
