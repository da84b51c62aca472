"""kft.images: every kind of photo file a user has decodes to the upright 8-bit RGB a client would see."""

import numpy as np
import pytest
from PIL import Image

from kft.images import ImageError, load_rgb

# Four flat quadrants: top-left red, top-right green, bottom-left blue, bottom-right white.
_QUAD = {"tl": (220, 20, 20), "tr": (20, 220, 20), "bl": (20, 20, 220), "br": (240, 240, 240)}


def _quadrants(h=40, w=60) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = _QUAD["tl"]
    img[: h // 2, w // 2:] = _QUAD["tr"]
    img[h // 2:, : w // 2] = _QUAD["bl"]
    img[h // 2:, w // 2:] = _QUAD["br"]
    return img


def _corner(rgb: np.ndarray, where: str) -> np.ndarray:
    h, w = rgb.shape[:2]
    y = h // 4 if where[0] == "t" else 3 * h // 4
    x = w // 4 if where[1] == "l" else 3 * w // 4
    return rgb[y, x].astype(int)


def _close(a, b, tol=12):
    return np.abs(np.asarray(a, int) - np.asarray(b, int)).max() <= tol


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_exif_orientation_is_applied(tmp_path, orientation):
    """A phone stores the sensor's pixels and an orientation tag; viewers (and kft) turn it upright."""
    upright = _quadrants()
    # What a camera writes for each tag: the upright picture turned the other way.
    stored = {1: upright, 3: np.rot90(upright, 2), 6: np.rot90(upright, 1), 8: np.rot90(upright, -1)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"phone-{orientation}.jpg"
    Image.fromarray(np.ascontiguousarray(stored)).save(path, quality=95, exif=exif)
    rgb = load_rgb(path)
    assert rgb.shape == upright.shape
    for where, colour in _QUAD.items():
        assert _close(_corner(rgb, where), colour), (orientation, where, _corner(rgb, where))


def test_sixteen_bit_greyscale_is_scaled_by_value(tmp_path):
    grey16 = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    path = tmp_path / "depth.png"
    Image.fromarray(grey16).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # really a 16-bit file
    rgb = load_rgb(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (48, 64, 3)
    expected = np.round(grey16 / 257.0)
    assert np.abs(rgb[..., 0].astype(int) - expected).max() <= 1
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert rgb.max() == 255 and rgb.min() == 0 and 120 <= rgb.mean() <= 135  # not almost white


def test_greyscale_and_bilevel_become_grey_rgb(tmp_path):
    grey = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (10, 1))
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    rgb = load_rgb(tmp_path / "grey.png")
    assert (rgb == grey[..., None]).all()
    Image.fromarray(grey > 127).save(tmp_path / "bilevel.png")
    bw = load_rgb(tmp_path / "bilevel.png")
    assert set(np.unique(bw)) <= {0, 255} and (bw[..., 0] == np.where(grey > 127, 255, 0)).all()


def test_alpha_is_composited_on_black(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[:, :10, 3] = 255  # left half opaque
    rgba[:, 10:, 3] = 0  # right half transparent
    rgba[:5, :, 3] = 128  # a half-transparent top band
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cutout.png")
    rgb = load_rgb(tmp_path / "cutout.png")
    assert (rgb[10, 2] == (200, 100, 50)).all()
    assert (rgb[10, 15] == 0).all()
    assert _close(rgb[2, 2], (100, 50, 25), tol=2)
    la = Image.fromarray(rgba[..., [0, 3]], "LA")
    la.save(tmp_path / "grey-alpha.png")
    grey = load_rgb(tmp_path / "grey-alpha.png")
    assert (grey[10, 2] == 200).all() and (grey[10, 15] == 0).all()


def test_palette_images_with_and_without_transparency(tmp_path):
    rgb = _quadrants()
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8).save(tmp_path / "pal.png")
    assert np.abs(load_rgb(tmp_path / "pal.png").astype(int) - rgb).max() <= 2
    im = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    transparent_index = im.getpixel((45, 30))  # the white quadrant's palette entry
    im.save(tmp_path / "pal-transparent.png", transparency=transparent_index)
    out = load_rgb(tmp_path / "pal-transparent.png")
    assert (out[30, 45] == 0).all()  # transparent -> black
    assert _close(_corner(out, "tl"), _QUAD["tl"], tol=2)


def test_cmyk_jpeg_gives_the_right_colours(tmp_path):
    rgb = _quadrants()
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "print.jpg", quality=95)
    with Image.open(tmp_path / "print.jpg") as im:
        assert im.mode == "CMYK"
    out = load_rgb(tmp_path / "print.jpg")
    for where, colour in _QUAD.items():
        assert _close(_corner(out, where), colour, tol=16), (where, _corner(out, where))


def test_animated_gif_and_multipage_tiff_give_the_first_frame(tmp_path):
    red = Image.new("RGB", (16, 16), (255, 0, 0))
    blue = Image.new("RGB", (16, 16), (0, 0, 255))
    red.save(tmp_path / "anim.gif", save_all=True, append_images=[blue], duration=100, loop=0)
    red.save(tmp_path / "pages.tiff", save_all=True, append_images=[blue])
    for name in ("anim.gif", "pages.tiff"):
        with Image.open(tmp_path / name) as im:
            assert getattr(im, "n_frames", 1) == 2
        out = load_rgb(tmp_path / name)
        assert _close(out[8, 8], (255, 0, 0), tol=4), name


def test_unsupported_pixel_formats_give_one_line_naming_the_file(tmp_path):
    path = tmp_path / "float.tiff"
    Image.fromarray(np.random.default_rng(0).random((8, 8)).astype(np.float32), "F").save(path)
    with pytest.raises(ImageError) as e:
        load_rgb(path)
    msg = str(e.value)
    assert msg.startswith(str(path)) and "\n" not in msg and "unsupported" in msg


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(_quadrants()).save(good, quality=90)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:200])
    for path in (cut, tmp_path / "missing.png"):
        with pytest.raises(ImageError) as e:
            load_rgb(path)
        assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_resize_to_the_declared_input_size(tmp_path):
    Image.fromarray(_quadrants(400, 600)).save(tmp_path / "big.png")
    small = load_rgb(tmp_path / "big.png", size=(32, 48))
    assert small.shape == (32, 48, 3)
    assert _close(_corner(small, "tl"), _QUAD["tl"]) and _close(_corner(small, "br"), _QUAD["br"])


def test_mediapipe_resize_samples_from_the_corner_without_antialiasing():
    """Shrinking by 2 picks every other pixel, starting at (0, 0): no averaging, no half-pixel shift."""
    from kft.images import resize_like_mediapipe

    rgb = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_like_mediapipe(rgb, (32, 48)), rgb[::2, ::2])
    assert resize_like_mediapipe(rgb, (64, 96)) is rgb


def test_mediapipe_resize_interpolates_and_replicates_the_last_row():
    from kft.images import resize_like_mediapipe

    ramp = np.tile(np.arange(0, 40, 10, dtype=np.uint8)[None, :, None], (2, 1, 3))  # 2 x 4: 0 10 20 30
    wide = resize_like_mediapipe(ramp, (2, 8))[0, :, 0]
    np.testing.assert_array_equal(wide, [0, 5, 10, 15, 20, 25, 30, 30])  # last tap clamps to the edge


def test_mediapipe_resize_matches_opencvs_warp_within_rounding(tmp_path):
    """Checked against the warp MediaPipe's CPU converter runs (OpenCV, a test-extra dependency)."""
    cv2 = pytest.importorskip("cv2", reason="opencv (a mediapipe dependency, test extra) is not installed")
    from kft.images import resize_like_mediapipe

    rng = np.random.default_rng(1)
    smooth = np.asarray(Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).resize((517, 389)))
    for h, w in ((224, 224), (96, 160), (600, 700)):
        src = np.float32([[0, smooth.shape[0]], [0, 0], [smooth.shape[1], 0], [smooth.shape[1], smooth.shape[0]]])
        dst = np.float32([[0, h], [0, 0], [w, 0], [w, h]])
        ref = cv2.warpPerspective(smooth, cv2.getPerspectiveTransform(src, dst), (w, h), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
        diff = np.abs(ref.astype(int) - resize_like_mediapipe(smooth, (h, w)).astype(int))
        assert diff.max() <= 2 and diff.mean() < 0.2, (h, w, diff.max(), diff.mean())
