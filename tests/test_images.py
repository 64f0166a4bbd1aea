"""Valid but unusual images are converted like the reference (PIL .convert("RGB")), not skipped."""
import numpy as np
import pytest
from PIL import Image

from grounding.data.images import to_pil_rgb


def _expected(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "LA", "1"])
def test_pil_modes_convert_like_reference(tmp_path, mode):
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    im = rgb.convert(mode)
    ext = "jpg" if mode in ("L", "CMYK") else "png"
    if mode == "1":
        ext = "png"
    p = tmp_path / f"x.{ext}"
    im.save(p)
    out = to_pil_rgb(p)
    assert out.mode == "RGB" and out.size == (30, 20)
    with Image.open(p) as ref:
        np.testing.assert_array_equal(np.asarray(out), _expected(ref))


def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    arr = np.linspace(0, 65535, 20 * 30).reshape(20, 30).astype(np.uint16)
    p = tmp_path / "deep.png"
    Image.fromarray(arr).save(p)
    out = np.asarray(to_pil_rgb(p))
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    assert out[..., 0].min() == 0 and out[..., 0].max() == 255  # full range kept, not saturated at 255
    assert np.all(np.diff(out[..., 0].ravel().astype(int)) >= 0)  # monotone


def test_arrays():
    g = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.asarray(to_pil_rgb(g)).shape == (3, 4, 3)
    rgba = np.zeros((3, 4, 4), np.uint8)
    assert np.asarray(to_pil_rgb(rgba)).shape == (3, 4, 3)
    f = np.ones((3, 4, 3)) * 0.5
    assert np.asarray(to_pil_rgb(f))[0, 0, 0] == 128
    with pytest.raises(ValueError, match="shape"):
        to_pil_rgb(np.zeros((3, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        to_pil_rgb(np.zeros((3, 4, 3), np.int64) + 300)


def test_truncated_jpeg_raises_clear_error(tmp_path):
    p = tmp_path / "t.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(p, quality=95)
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(OSError):
        to_pil_rgb(p)


@pytest.fixture(scope="module")
def toy_loc():
    from grounding.api import Localizer

    return Localizer("toy", "ours")


@pytest.mark.parametrize("size", [(5, 7), (1, 1), (16, 3)])
def test_images_smaller_than_a_patch_are_localised(toy_loc, size):
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : max(1, w // 2)] = (230, 20, 20)
    out = toy_loc(img, "the red square")
    x1, y1, x2, y2 = out.box
    assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h


def test_very_large_image(toy_loc, tmp_path):
    img = np.full((6000, 8000, 3), 128, np.uint8)
    img[1000:3000, 2000:5000] = (20, 20, 230)
    p = tmp_path / "big.jpg"
    Image.fromarray(img).save(p, quality=80)
    out = toy_loc(p, "a blue rectangle")
    from grounding.evaluation.evaluator import box_iou

    assert box_iou(out.box, [2000, 1000, 5000, 3000]) > 0.7


def test_non_ascii_phrase(toy_loc):
    img = np.full((64, 64, 3), 128, np.uint8)
    out = toy_loc(img, "un carré rouge — 赤い四角 🟥")
    assert np.isfinite(out.score_map).all()
