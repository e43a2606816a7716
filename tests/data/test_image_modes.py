"""Every image mode Pillow decodes becomes RGB with the right values (built with known pixels, encoded
as PNG/TIFF/JPEG, decoded through the one decoder every dataset uses)."""

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from sclbench.data.records import ImageSource, decode_rgb
from sclbench.errors import DataError

SIXTEEN = np.array([[0, 257 * 100], [32768, 65535]], dtype=np.uint16)
SIXTEEN_RGB = [[0, 100], [128, 255]]  # value / 257, rounded


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _grey(data: bytes) -> list:
    rgb = np.asarray(decode_rgb(data, "test"))
    assert rgb.dtype == np.uint8 and rgb.shape[-1] == 3
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    return rgb[..., 0].tolist()


def _sixteen(mode: str) -> Image.Image:
    order = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2"}[mode]
    return Image.frombytes(mode, (2, 2), SIXTEEN.astype(order).tobytes())


@pytest.mark.parametrize("mode,fmt", [("I;16", "PNG"), ("I;16", "TIFF"), ("I;16B", "TIFF"), ("I;16L", "TIFF")])
def test_sixteen_bit_grey_is_scaled_not_clipped(mode, fmt):
    data = _encode(_sixteen(mode), fmt)
    with Image.open(io.BytesIO(data)) as img:
        assert img.mode.startswith("I;16")  # the decoder really hands back a 16-bit mode
    assert _grey(data) == SIXTEEN_RGB


def test_thirty_two_bit_integer_grey():
    in_16 = Image.fromarray(SIXTEEN.astype(np.int32))  # mode I, values within 16 bits
    assert _grey(_encode(in_16, "TIFF")) == SIXTEEN_RGB
    wide = Image.fromarray(np.array([[-1000, 0], [1000, 99000]], dtype=np.int32))
    assert _grey(_encode(wide, "TIFF")) == [[0, 3], [5, 255]]  # own range spread over 0..255
    flat = Image.fromarray(np.full((2, 2), 70000, dtype=np.int32))
    assert _grey(_encode(flat, "TIFF")) == [[0, 0], [0, 0]]


def test_float_grey():
    unit = Image.fromarray(np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32))
    assert _grey(_encode(unit, "TIFF")) == [[0, 128], [255, 64]]
    wide = Image.fromarray(np.array([[-3.0, 12.4], [300.0, np.nan]], dtype=np.float32))
    assert _grey(_encode(wide, "TIFF")) == [[0, 12], [255, 0]]


def test_one_bit_and_grey():
    one = Image.new("1", (2, 1))
    one.putpixel((1, 0), 1)
    assert _grey(_encode(one, "PNG")) == [[0, 255]]
    assert _grey(_encode(Image.new("L", (1, 1), 77), "PNG")) == [[77]]
    assert _grey(_encode(Image.new("LA", (1, 1), (100, 0)), "PNG")) == [[100]]  # alpha dropped


def test_palette_with_transparency():
    pal = Image.new("P", (2, 1))
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    pal.putpixel((1, 0), 1)
    data = _encode(pal, "PNG", transparency=0)
    with Image.open(io.BytesIO(data)) as img:
        assert img.mode == "P" and "transparency" in img.info
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the palette warning is not the caller's business
        rgb = np.asarray(decode_rgb(data, "test"))
    assert rgb.tolist() == [[[10, 20, 30], [200, 100, 50]]]


def test_palette_with_alpha_mode_pa():
    # Pillow writes no PA file; a decoder hands PA over as this in-memory image (to_rgb is what
    # decode_rgb applies to every decoded image).
    from sclbench.data.records import to_rgb

    pa = Image.new("PA", (1, 1), (1, 40))
    pa.putpalette([0, 0, 0, 9, 99, 199] + [0] * 762)
    assert np.asarray(to_rgb(pa)).tolist() == [[[9, 99, 199]]]


def test_rgba_keeps_the_stored_colour_as_the_official_convert_does():
    img = Image.new("RGBA", (2, 1), (10, 20, 30, 0))
    img.putpixel((1, 0), (200, 100, 50, 128))
    assert np.asarray(decode_rgb(_encode(img, "PNG"), "t")).tolist() == [[[10, 20, 30], [200, 100, 50]]]


@pytest.mark.parametrize("fmt", ["TIFF", "JPEG"])
def test_cmyk(fmt):
    img = Image.new("CMYK", (2, 1), (0, 0, 0, 0))
    img.putpixel((1, 0), (0, 255, 255, 0))  # no cyan, full magenta and yellow: red
    rgb = np.asarray(decode_rgb(_encode(img, fmt, **({"quality": 100} if fmt == "JPEG" else {})), "t"))
    tol = 0 if fmt == "TIFF" else 6
    assert np.abs(rgb.astype(int) - [[[255, 255, 255], [255, 0, 0]]]).max() <= tol


@pytest.mark.parametrize("mode", ["YCbCr", "LAB", "HSV", "RGBX", "RGBa", "La"])
def test_other_modes_give_rgb(mode):
    from sclbench.data.records import to_rgb

    out = to_rgb(Image.new(mode, (3, 2)))
    assert out.mode == "RGB" and out.size == (3, 2)


def test_source_open_uses_the_same_conversion(tmp_path):
    path = tmp_path / "deep.png"
    path.write_bytes(_encode(_sixteen("I;16"), "PNG"))
    assert np.asarray(ImageSource(path=path).open())[..., 0].tolist() == SIXTEEN_RGB


def test_decompression_bomb_still_refused(monkeypatch):
    data = _encode(Image.new("L", (64, 64)), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(DataError, match="decompression bomb"):
        decode_rgb(data, "bomb.png")
