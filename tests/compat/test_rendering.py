"""The rendering plugin side by side with Orthanc: decoded pixel values (±1), previews,
renderings, raw frames, numpy and MATLAB exports of the same files.

Each file is sent to both servers, compared, then deleted from both (several of
pydicom's samples hold the same SOP instance in different transfer syntaxes).
Known, deliberate differences are not compared here: files Orthanc cannot decode (JPEG
2000 without its GDCM plugin, uncompressed YBR_FULL) and the MATLAB text of non-square
colour images (Orthanc swaps their dimensions).
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from tests.conftest import sample
from tests.plugins.rendering.samples import SYNTHETIC, synthetic

from .compare import Pair

pytestmark = pytest.mark.orthanc

GRAYSCALE = ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm",
             "MR_small_jpeg_ls_lossless.dcm", "MR_small_bigendian.dcm", "JPGExtended.dcm",
             "examples_overlay.dcm", "liver_1frame.dcm", "image_dfl.dcm"]
COLOUR = ["SC_rgb_rle_2frame.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm",
          "examples_palette.dcm", "examples_ybr_color.dcm"]
# Lossy 12-bit JPEG: libjpeg (pylibjpeg) and DCMTK's IJG round some samples differently.
LOSSY_DECODE = {"JPGExtended.dcm"}
# Orthanc 1.10 answers 415 for uncompressed YBR_FULL, that Isengard converts to RGB.
ORTHANC_CANNOT = {"ybr_full"}
FILES = [*GRAYSCALE, *COLOUR,
         *(f"synthetic:{name}" for name in SYNTHETIC if name not in ORTHANC_CANNOT)]

IMAGE_ROUTES = ["preview", "image-uint8", "image-uint16", "image-int16", "rendered",
                "rendered?window-center=100&window-width=300",
                "rendered?width=37&smooth=1", "rendered?height=50"]


def _bytes_of(name: str) -> bytes:
    if name.startswith("synthetic:"):
        return synthetic(name.split(":", 1)[1])
    return sample(name)


@pytest.fixture
def uploaded(pair: Pair, request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """Send the file to both servers; yield (instance ID, frame count); delete it."""
    ours, theirs = pair.post("/instances", content=_bytes_of(request.param))
    assert (ours.status_code, theirs.status_code) == (200, 200), (ours.text, theirs.text)
    instance_id = theirs.json()["ID"]
    assert ours.json()["ID"] == instance_id
    frames = pair.orthanc.get(f"/instances/{instance_id}/frames").json()
    yield instance_id, len(frames)
    pair.delete(f"/instances/{instance_id}")


def _pixels(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content))).astype(np.int64)


@pytest.mark.parametrize("uploaded", FILES, indirect=True)
def test_decoded_images_match(pair: Pair, uploaded: tuple[str, int], request):
    instance_id, frames = uploaded
    name = request.node.callspec.params["uploaded"]
    tolerance = 1
    for frame in sorted({0, frames - 1}):
        for route in IMAGE_ROUTES:
            path = f"/instances/{instance_id}/frames/{frame}/{route}"
            ours, theirs = pair.get(path)
            # Colour images have no image-uint8/16/int16: 415 on both sides.
            assert ours.status_code == theirs.status_code, (path, ours.text)
            if theirs.status_code != 200:
                assert ours.json()["HttpStatus"] == ours.status_code
                continue
            assert ours.headers["content-type"] == theirs.headers["content-type"]
            a, b = _pixels(ours.content), _pixels(theirs.content)
            assert a.shape == b.shape, path
            difference = int(np.abs(a - b).max())
            assert difference <= tolerance, f"{name} {path}: differs by {difference}"
            if name not in LOSSY_DECODE and "width" not in route and "height" not in route:
                assert difference == 0, f"{name} {path}: differs by {difference}"


@pytest.mark.parametrize("uploaded", FILES, indirect=True)
def test_exports_match(pair: Pair, uploaded: tuple[str, int], request):
    instance_id, frames = uploaded
    name = request.node.callspec.params["uploaded"]
    base = f"/instances/{instance_id}"
    assert pair.get(f"{base}/frames")[0].json() == pair.get(f"{base}/frames")[1].json()
    last = frames - 1
    for path in (f"{base}/frames/{last}/raw", f"{base}/frames/0/raw.gz"):
        ours, theirs = pair.get(path)
        assert ours.status_code == theirs.status_code == 200
        assert ours.headers["content-type"] == theirs.headers["content-type"], path
        if path.endswith("raw"):
            assert ours.content == theirs.content, path
    for path in (f"{base}/numpy", f"{base}/frames/{last}/numpy?rescale=false"):
        ours, theirs = pair.get(path)
        assert ours.status_code == theirs.status_code == 200
        a, b = np.load(io.BytesIO(ours.content)), np.load(io.BytesIO(theirs.content))
        assert (a.dtype, a.shape) == (b.dtype, b.shape), path
        assert np.abs(a.astype(np.float64) - b.astype(np.float64)).max() <= 1, path
        if name not in LOSSY_DECODE:
            assert ours.content == theirs.content, path  # byte for byte, header included
    ours, theirs = pair.get(f"{base}/frames/{last}/matlab")
    square = name in GRAYSCALE or name.startswith("synthetic:") or name in (
        "SC_rgb_rle_2frame.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm")
    if square and name not in LOSSY_DECODE:
        assert ours.text == theirs.text


@pytest.mark.parametrize("uploaded", ["CT_small.dcm", "SC_rgb_rle_2frame.dcm"], indirect=True)
def test_jpeg_and_pam_answers_are_identical(pair: Pair, uploaded: tuple[str, int]):
    instance_id, _ = uploaded
    for accept in ("image/jpeg", "image/x-portable-arbitrarymap"):
        for route in ("preview", "rendered?quality=50"):
            ours, theirs = pair.get(f"/instances/{instance_id}/{route}",
                                    headers={"Accept": accept})
            assert ours.status_code == theirs.status_code == 200
            assert ours.headers["content-type"] == theirs.headers["content-type"] == accept
            assert ours.content == theirs.content, (route, accept)
