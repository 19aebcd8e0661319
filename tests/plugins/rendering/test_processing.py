"""Unit tests of the pixel transformations and encoders (no server)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from isengard_plugins.rendering import encoding, processing
from isengard_plugins.rendering.decoding import DecodedFrame, PixelInfo
from isengard_sdk import HttpError


def _frame(pixels: np.ndarray, **info: object) -> DecodedFrame:
    defaults: dict[str, object] = dict(rows=pixels.shape[0], columns=pixels.shape[1],
                                       frames=1, photometric="MONOCHROME2", bits_stored=16,
                                       rescale=None, window=None)
    defaults.update(info)
    return DecodedFrame(pixels, PixelInfo(**defaults))  # type: ignore[arg-type]


@pytest.mark.parametrize(("size", "asked", "expected"), [
    ((800, 350), (0, 0), (800, 350)),
    ((800, 350), (400, 0), (400, 175)),
    ((800, 350), (0, 70), (160, 70)),
    ((800, 350), (80, 80), (80, 35)),
    ((64, 64), (100, 0), (100, 100)),
])
def test_target_size_keeps_the_aspect_ratio(size, asked, expected):
    assert processing.target_size(*size, *asked) == expected


def test_preview_of_a_flat_image_is_black():
    flat = _frame(np.full((4, 4), 1234, dtype=np.uint16))
    assert not processing.preview(flat).any()


def _preview_by_formula(pixels):
    """Orthanc's arithmetic applied to every sample (float32, rounded half up)."""
    low, high = int(pixels.min()), int(pixels.max())
    scaling = np.float32(255.0) / np.float32(high - low)
    values = pixels.astype(np.float32) * scaling + np.float32(-low) * scaling
    return np.clip(np.floor(values + np.float32(0.5)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("pixels", [
    np.arange(-32768, 32768, dtype=np.int16).reshape(256, 256),  # int16's whole range
    np.arange(-30000, 30000, dtype=np.int16).reshape(240, 250),  # wider than int16 / 2
    np.arange(0, 65536, dtype=np.uint16)[::-1].reshape(256, 256).copy(),
    (np.arange(512 * 512, dtype=np.int64) % 1040 + 24).astype(np.uint16).reshape(512, 512),
    (np.arange(90_000, dtype=np.int64) * 7919 % 200_001 - 100_000).astype(np.int32
                                                                          ).reshape(300, 300),
    np.array([[-5, 3], [7, 1000]], dtype=np.int16),  # more values than samples
])
def test_preview_is_the_formula_on_every_sample(pixels):
    assert np.array_equal(processing.preview(_frame(pixels)), _preview_by_formula(pixels))


def test_default_window_is_the_whole_range_of_bits_stored():
    pixels = np.array([[0, 2048, 4095]], dtype=np.uint16)
    rendered = processing.render(_frame(pixels, bits_stored=12))
    assert rendered.tolist() == [[0, 127, 254]]  # 4095 × 255 / 4096, truncated as Orthanc


def test_resize_is_nearest_neighbour_and_smoothing_blurs():
    pixels = np.zeros((4, 4), dtype=np.uint8)
    pixels[1, 1] = 255
    identity = {"center": 127.5, "width": 255.0}
    small = processing.render(_frame(pixels), size=(2, 2), **identity)
    assert small.tolist() == [[255, 0], [0, 0]]  # samples the centres: rows/columns 1, 3
    smooth = processing.render(_frame(pixels), size=(2, 2), smooth=True, **identity)
    assert smooth.tolist() == [[35, 5], [5, 0]]  # 255 × 6/16 × 6/16 = 35.9, truncated


def test_extraction_refuses_colour():
    with pytest.raises(HttpError) as caught:
        processing.extract(_frame(np.zeros((2, 2, 3), dtype=np.uint8),
                                  photometric="RGB"), "uint8")
    assert caught.value.status == 415


def test_numpy_header_is_orthancs():
    frame = _frame(np.zeros((128, 128), dtype=np.int16), rescale=(1.0, -1024.0))
    data = processing.to_numpy([frame], rescale=True, single_frame=False, compress=False)
    assert data[:10] == b"\x93NUMPY\x01\x00v\x00"
    assert data[10:128] == (b"{'descr': '<f4', 'fortran_order': False, 'shape': "
                            b"(1, 128,128,1), }" + b" " * 50 + b"\n")
    assert (np.load(io.BytesIO(data)) == -1024).all()
    rgb = _frame(np.zeros((3, 5, 3), dtype=np.uint8), photometric="RGB")
    single = processing.to_numpy([rgb], rescale=True, single_frame=True, compress=False)
    assert b"'descr': '<u1'" in single and b"'shape': (3,5,3)" in single
    assert np.load(io.BytesIO(single)).shape == (3, 5, 3)


def test_matlab_grayscale_layout():
    frame = _frame(np.array([[1, -2], [3, 4]], dtype=np.int16))
    assert processing.to_matlab(frame) == "double([ 1 -2 ; 3 4 ])"


def test_matlab_colour_puts_columns_before_rows():
    frame = _frame(np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3), photometric="RGB")
    assert processing.to_matlab(frame).endswith("], [ 3 3 2 ]), [ 3 2 1 ]))")


@pytest.mark.parametrize(("accept", "sixteen", "chosen"), [
    (None, False, encoding.PNG),
    ("*/*", False, encoding.PNG),
    ("image/*", True, encoding.PNG),
    ("image/jpeg", False, encoding.JPEG),
    ("image/png;q=0.4, image/jpeg;q=0.9", False, encoding.JPEG),
    ("image/jpeg, image/png;q=0.5", True, encoding.PNG),
    ("text/html, image/x-portable-arbitrarymap", True, encoding.PAM),
])
def test_content_negotiation(accept, sixteen, chosen):
    assert encoding.choose_format(accept, sixteen_bits=sixteen) == chosen


@pytest.mark.parametrize("accept", ["text/html", "image/jpeg;q=0", "application/json"])
def test_content_negotiation_without_a_possible_format(accept):
    with pytest.raises(HttpError) as caught:
        encoding.choose_format(accept, sixteen_bits=False)
    assert caught.value.status == 406


def _smooth_and_noisy(shape, dtype, high):
    """Half a gradient (what RLE filters well), half noise (what it does not)."""
    rng = np.random.default_rng(7)
    image = rng.integers(0, high, size=shape, dtype=np.int64)
    rows = shape[0]
    ramp = np.linspace(0, high - 1, num=shape[1]).astype(np.int64)
    image[: rows // 2] = ramp if len(shape) == 2 else ramp[:, None]
    return image.astype(dtype)


@pytest.mark.parametrize(("pixels", "mode"), [
    (_smooth_and_noisy((64, 80), np.uint8, 256), "L"),
    (_smooth_and_noisy((64, 80), np.uint16, 65536), "I;16"),
    (_smooth_and_noisy((64, 80), np.int16, 32768) - 16384, "I;16"),
    (_smooth_and_noisy((64, 80, 3), np.uint8, 256), "RGB"),
])
def test_png_is_lossless_whatever_its_compression(pixels, mode):
    from PIL import Image

    decoded = Image.open(io.BytesIO(encoding.encode(pixels, encoding.PNG)))
    assert decoded.mode == mode
    expected = pixels.view(np.uint16) if pixels.dtype == np.int16 else pixels
    assert np.array_equal(np.asarray(decoded), expected)
