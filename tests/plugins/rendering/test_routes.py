"""The rendering plugin's routes on a running server: formats, pixel values (checked
against pydicom's own decoding), frames, and the Orthanc-style errors."""

from __future__ import annotations

import gzip
import io
import zipfile

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.pixels import apply_color_lut

from isengard_sdk.testing import DicomFactory, RunningServer
from tests.conftest import sample

from .samples import synthetic


def _image(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)))


def _pixels(data: bytes, frame: int | None = None) -> np.ndarray:
    ds = pydicom.dcmread(io.BytesIO(data))
    return pydicom.pixels.pixel_array(ds, index=frame)


def _assert_orthanc_error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["HttpStatus"] == status
    assert body["Method"] == "GET"
    assert body["Uri"] == response.request.url.path
    assert {"Details", "Message", "OrthancError", "OrthancStatus"} <= set(body)
    return body


@pytest.fixture
def server(isengard_server: RunningServer) -> RunningServer:
    return isengard_server


def upload(server: RunningServer, data: bytes) -> str:
    return str(server.upload(data)["ID"])


# -- the plugin is there out of the box ---------------------------------------------------


def test_enabled_by_default_and_can_be_disabled(isengard_factory):
    enabled = isengard_factory()
    iid = upload(enabled, sample("CT_small.dcm"))
    assert enabled.get(f"/instances/{iid}/preview").status_code == 200
    disabled = isengard_factory(config={"plugins": {"rendering": False}})
    upload(disabled, sample("CT_small.dcm"))
    assert disabled.get(f"/instances/{iid}/preview").status_code == 404


# -- frames -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "count"), [("CT_small.dcm", 1),
                                             ("SC_rgb_rle_2frame.dcm", 2),
                                             ("examples_ybr_color.dcm", 30)])
def test_frames_lists_the_indices(server, name, count):
    iid = upload(server, sample(name))
    r = server.get(f"/instances/{iid}/frames")
    assert r.status_code == 200
    assert r.json() == list(range(count))


def test_frame_lists_its_operations(server):
    iid = upload(server, sample("CT_small.dcm"))
    assert server.get(f"/instances/{iid}/frames/0").json() == [
        "image-int16", "image-uint16", "image-uint8", "matlab", "numpy", "preview", "raw",
        "raw.gz", "rendered"]


# -- decoded values -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm",
                                  "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                  "MR_small_bigendian.dcm", "JPEG2000.dcm"])
def test_image_uint16_is_the_stored_values(server, name):
    data = sample(name)
    iid = upload(server, data)
    r = server.get(f"/instances/{iid}/image-uint16")
    assert r.headers["content-type"] == "image/png"
    expected = np.clip(_pixels(data).astype(np.int64), 0, 65535)
    assert np.array_equal(_image(r).astype(np.int64), expected)


def test_image_uint8_saturates_and_int16_keeps_the_sign(server):
    data = synthetic("signed_ct")
    iid = upload(server, data)
    stored = _pixels(data).astype(np.int64)
    uint8 = _image(server.get(f"/instances/{iid}/image-uint8"))
    assert uint8.dtype == np.uint8
    assert np.array_equal(uint8, np.clip(stored, 0, 255))
    # a 16-bit PNG of the two's complement pattern, as Orthanc writes signed samples
    int16 = _image(server.get(f"/instances/{iid}/frames/0/image-int16"))
    assert np.array_equal(int16.astype(np.uint16).view(np.int16), stored)
    wide = synthetic("wide_uint16")
    wid = upload(server, wide)
    clipped = _image(server.get(f"/instances/{wid}/image-int16")).astype(np.uint16)
    assert clipped.view(np.int16).max() == 32767


def test_preview_stretches_min_max_and_inverts_monochrome1(server):
    data = sample("CT_small.dcm")
    stored = _pixels(data).astype(np.float64)
    iid = upload(server, data)
    preview = _image(server.get(f"/instances/{iid}/preview")).astype(np.int64)
    expected = np.floor((stored - stored.min()) * 255 / (stored.max() - stored.min()) + 0.5)
    assert np.abs(preview - expected).max() <= 1
    assert (preview.min(), preview.max()) == (0, 255)

    mono1 = synthetic("monochrome1")
    mid = upload(server, mono1)
    raw = _pixels(mono1)
    inverted = _image(server.get(f"/instances/{mid}/preview"))
    assert inverted[np.unravel_index(raw.argmin(), raw.shape)] == 255
    assert inverted[np.unravel_index(raw.argmax(), raw.shape)] == 0


def test_rendered_uses_the_window_in_the_file_then_the_arguments(server):
    data = sample("MR_small.dcm")  # WindowCenter 600, WindowWidth 1600
    stored = _pixels(data).astype(np.float64)
    iid = upload(server, data)

    def windowed(center: float, width: float) -> np.ndarray:
        return np.clip(np.floor((stored - (center - width / 2)) * 255 / width), 0, 255)

    default = _image(server.get(f"/instances/{iid}/rendered")).astype(np.int64)
    assert np.abs(default - windowed(600, 1600)).max() <= 1
    custom = _image(server.get(f"/instances/{iid}/rendered",
                               params={"window-center": "1000", "window-width": "500"}))
    assert np.abs(custom.astype(np.int64) - windowed(1000, 500)).max() <= 1


def test_rendered_applies_rescale_and_first_window_value(server):
    data = synthetic("signed_ct")  # intercept -1024, windows 40/400 and 400/1500
    iid = upload(server, data)
    hu = _pixels(data).astype(np.float64) - 1024
    rendered = _image(server.get(f"/instances/{iid}/rendered")).astype(np.int64)
    expected = np.clip(np.floor((hu - (40 - 200)) * 255 / 400), 0, 255)
    assert np.abs(rendered - expected).max() <= 1


def test_rendered_default_window_covers_bits_stored_of_rescaled_values(server):
    data = synthetic("gray8_rescaled")  # 8 bits, slope 2, intercept -100, no window
    iid = upload(server, data)
    rescaled = _pixels(data).astype(np.float64) * 2 - 100
    rendered = _image(server.get(f"/instances/{iid}/rendered")).astype(np.int64)
    assert np.array_equal(rendered, np.clip(np.floor(rescaled * 255 / 256), 0, 255))


def test_rendered_resizes_keeping_the_aspect_ratio(server):
    iid = upload(server, sample("examples_palette.dcm"))  # 800 × 350
    assert _image(server.get(f"/instances/{iid}/rendered?width=400")).shape == (175, 400, 3)
    assert _image(server.get(f"/instances/{iid}/rendered?height=70&smooth=1")).shape == \
        (70, 160, 3)
    assert _image(server.get(f"/instances/{iid}/rendered?width=80&height=80")).shape == \
        (35, 80, 3)


def test_rgb_and_multi_frame(server):
    data = sample("SC_rgb_rle_2frame.dcm")
    iid = upload(server, data)
    for frame in (0, 1):
        preview = _image(server.get(f"/instances/{iid}/frames/{frame}/preview"))
        assert preview.shape == (100, 100, 3)
        assert np.array_equal(preview, _pixels(data, frame))
    first, second = (_pixels(data, i) for i in (0, 1))
    assert not np.array_equal(first, second)


def test_ybr_is_converted_to_rgb(server):
    data = synthetic("ybr_full")
    iid = upload(server, data)
    ds = pydicom.dcmread(io.BytesIO(data))
    stored = pydicom.pixels.pixel_array(ds, raw=True)  # still YBR
    expected = pydicom.pixels.convert_color_space(stored, "YBR_FULL", "RGB")
    assert np.array_equal(_image(server.get(f"/instances/{iid}/preview")), expected)
    jpeg = sample("examples_ybr_color.dcm")  # JPEG baseline, YBR_FULL_422
    jid = upload(server, jpeg)
    frame = _image(server.get(f"/instances/{jid}/frames/29/preview")).astype(np.int64)
    assert np.abs(frame - _pixels(jpeg, 29).astype(np.int64)).max() <= 3


def test_palette_colour_is_looked_up(server):
    data = sample("examples_palette.dcm")
    iid = upload(server, data)
    ds = pydicom.dcmread(io.BytesIO(data))
    expected = (apply_color_lut(ds.pixel_array, ds) >> 8).astype(np.uint8)  # 16-bit LUT
    assert np.array_equal(_image(server.get(f"/instances/{iid}/preview")), expected)


def test_one_bit_images_are_0_or_255(server):
    iid = upload(server, sample("liver_1frame.dcm"))
    assert set(np.unique(_image(server.get(f"/instances/{iid}/image-uint8")))) <= {0, 255}


# -- formats --------------------------------------------------------------------------------


def test_accept_chooses_the_format(server):
    iid = upload(server, sample("CT_small.dcm"))
    jpeg = server.get(f"/instances/{iid}/preview", headers={"Accept": "image/jpeg"})
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert jpeg.content[:2] == b"\xff\xd8"
    small = server.get(f"/instances/{iid}/rendered?quality=10",
                       headers={"Accept": "image/jpeg"})
    assert len(small.content) < len(jpeg.content)
    preferred = server.get(f"/instances/{iid}/image-uint8",
                           headers={"Accept": "image/png;q=0.5, image/jpeg"})
    assert preferred.headers["content-type"] == "image/jpeg"
    # JPEG cannot hold 16 bits: the next acceptable format wins, or 406
    sixteen = server.get(f"/instances/{iid}/image-uint16",
                         headers={"Accept": "image/jpeg, image/png;q=0.1"})
    assert sixteen.headers["content-type"] == "image/png"
    refused = server.get(f"/instances/{iid}/image-uint16", headers={"Accept": "image/jpeg"})
    assert "image/png" in _assert_orthanc_error(refused, 406)["Details"]
    pam = server.get(f"/instances/{iid}/preview",
                     headers={"Accept": "image/x-portable-arbitrarymap"})
    assert pam.content.startswith(b"P7\nWIDTH 128\nHEIGHT 128\nDEPTH 1\nMAXVAL 255\n")


def test_raw_frames(server):
    ct = sample("CT_small.dcm")
    iid = upload(server, ct)
    raw = server.get(f"/instances/{iid}/frames/0/raw")
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.content == pydicom.dcmread(io.BytesIO(ct)).PixelData
    assert gzip.decompress(server.get(f"/instances/{iid}/frames/0/raw.gz").content) == \
        raw.content
    jpeg = sample("SC_rgb_jpeg_dcmtk.dcm")
    jid = upload(server, jpeg)
    frame = server.get(f"/instances/{jid}/frames/0/raw")
    assert frame.headers["content-type"] == "image/jpeg"
    assert frame.content[:2] == b"\xff\xd8"
    rle = sample("SC_rgb_rle_2frame.dcm")
    rid = upload(server, rle)
    frames = list(pydicom.encaps.generate_frames(pydicom.dcmread(io.BytesIO(rle)).PixelData,
                                                 number_of_frames=2))
    assert server.get(f"/instances/{rid}/frames/1/raw").content == frames[1]


def test_raw_of_big_endian_is_little_endian(server):
    data = sample("MR_small_bigendian.dcm")
    iid = upload(server, data)
    raw = server.get(f"/instances/{iid}/frames/0/raw").content
    assert raw == _pixels(data).astype("<i2").tobytes()


def test_numpy(server):
    data = sample("CT_small.dcm")  # slope 1, intercept -1024
    iid = upload(server, data)
    stored = _pixels(data)
    whole = np.load(io.BytesIO(server.get(f"/instances/{iid}/numpy").content))
    assert whole.dtype == np.float32 and whole.shape == (1, 128, 128, 1)
    assert np.array_equal(whole[0, :, :, 0], stored.astype(np.float32) - 1024)
    raw = np.load(io.BytesIO(server.get(f"/instances/{iid}/frames/0/numpy?rescale=0").content))
    assert raw.dtype == np.int16 and raw.shape == (128, 128, 1)
    assert np.array_equal(raw[:, :, 0], stored)
    npz = server.get(f"/instances/{iid}/numpy?compress=true").content
    assert zipfile.ZipFile(io.BytesIO(npz)).testzip() is None
    assert np.array_equal(np.load(io.BytesIO(npz))["arr_0"], whole)
    rgb = sample("SC_rgb_rle_2frame.dcm")
    rid = upload(server, rgb)
    frames = np.load(io.BytesIO(server.get(f"/instances/{rid}/numpy").content))
    assert frames.dtype == np.uint8 and frames.shape == (2, 100, 100, 3)
    assert np.array_equal(frames[1], _pixels(rgb, 1))


def test_matlab(server):
    iid = upload(server, sample("SC_rgb_small_odd.dcm"))  # 3 × 3 RGB
    text = server.get(f"/instances/{iid}/matlab")
    assert text.headers["content-type"] == "text/plain"
    assert text.text == (
        "double(permute(reshape([ 166 141 52 166 141 52 166 141 52 63 87 176 63 87 176 63 "
        "87 176 158 158 158 158 158 158 158 158 158 ], [ 3 3 3 ]), [ 3 2 1 ]))")
    gray = sample("CT_small.dcm")
    gid = upload(server, gray)
    matlab = server.get(f"/instances/{gid}/frames/0/matlab").text
    assert matlab.startswith("double([ 175 180 166 ") and matlab.endswith(" 909 ])")
    rows = matlab[len("double([ "):-len("])")].split("; ")
    assert [list(map(int, row.split())) for row in rows] == _pixels(gray).tolist()


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["frames/1/preview", "frames/1/rendered", "frames/1/raw",
                                   "frames/1/numpy", "frames/1/matlab",
                                   "frames/1/image-uint8", "frames/x/preview"])
def test_frame_out_of_range_is_404(server, route):
    iid = upload(server, sample("CT_small.dcm"))
    _assert_orthanc_error(server.get(f"/instances/{iid}/{route}"), 404)


@pytest.mark.parametrize("route", ["preview", "frames", "frames/0/raw", "numpy"])
def test_unknown_instance_is_404(server, route):
    _assert_orthanc_error(server.get(f"/instances/0000-unknown/{route}"), 404)


@pytest.mark.parametrize("query", ["quality=0", "quality=abc", "width=-1", "height=x",
                                   "window-center=abc", "smooth=maybe"])
def test_bad_arguments_are_400(server, query):
    iid = upload(server, sample("CT_small.dcm"))
    _assert_orthanc_error(server.get(f"/instances/{iid}/rendered?{query}"), 400)


def test_bad_boolean_argument_of_numpy_is_400(server):
    iid = upload(server, sample("CT_small.dcm"))
    body = _assert_orthanc_error(server.get(f"/instances/{iid}/numpy?compress=abc"), 400)
    assert body["Details"] == 'Expected a Boolean for GET argument "compress", found: abc'


def test_colour_images_have_no_grayscale_extraction(server):
    iid = upload(server, sample("SC_rgb_rle.dcm"))
    body = _assert_orthanc_error(server.get(f"/instances/{iid}/image-uint8"), 415)
    assert "RGB" in body["Details"]


def test_instance_without_pixel_data_is_415(server):
    iid = upload(server, sample("rtplan.dcm"))
    assert server.get(f"/instances/{iid}/frames").json() == [0]  # as Orthanc
    for route in ("preview", "frames/0/raw", "numpy"):
        body = _assert_orthanc_error(server.get(f"/instances/{iid}/{route}"), 415)
        assert "no pixel data" in body["Details"]


def _corrupted(factory: DicomFactory, fragment: bytes, syntax: str) -> bytes:
    ds = factory.dataset(rows=16, columns=16, bits=8)
    ds.PixelData = pydicom.encaps.encapsulate([fragment])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    return factory.encode(ds)


@pytest.mark.parametrize(("fragment", "syntax"), [
    (b"\xff\xd8\xff\xdb\x00\x43" + bytes(range(40)) + b"\xff\xd9", "1.2.840.10008.1.2.4.50"),
    (b"\xff\x4f\xff\x51" + b"\x00" * 30, "1.2.840.10008.1.2.4.90"),
    ((3).to_bytes(4, "little") + (64).to_bytes(4, "little") + b"\x00" * 56 + b"\x7f\x01",
     "1.2.840.10008.1.2.5"),
])
def test_corrupted_frame_is_a_json_error_and_the_server_goes_on(server, dicom_factory,
                                                                 fragment, syntax):
    iid = upload(server, _corrupted(dicom_factory, fragment, syntax))
    body = _assert_orthanc_error(server.get(f"/instances/{iid}/preview"), 415)
    assert "cannot be decoded" in body["Details"]
    assert server.get(f"/instances/{iid}/frames/0/raw").content == fragment + b"\x00" * (
        len(fragment) % 2)
    good = upload(server, sample("CT_small.dcm"))
    assert server.get(f"/instances/{good}/preview").status_code == 200


def test_missing_decoder_names_the_package(server, monkeypatch):
    from isengard_plugins.rendering import decoding

    class Unavailable:
        is_available = False
        available_plugins: tuple[str, ...] = ()

    monkeypatch.setattr(decoding, "get_decoder", lambda syntax: Unavailable())
    real_find_spec = decoding.find_spec
    monkeypatch.setattr(decoding, "find_spec",
                        lambda name: None if name == "openjpeg" else real_find_spec(name))
    iid = upload(server, sample("JPEG2000.dcm"))
    body = _assert_orthanc_error(server.get(f"/instances/{iid}/preview"), 415)
    assert "pylibjpeg-openjpeg" in body["Details"]
    assert "pip install" in body["Details"]
