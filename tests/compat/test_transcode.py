"""``"Transcode"`` side by side with Orthanc 1.10: for the transfer syntaxes both servers
produce, the same instances are accepted or refused, and the decoded pixels agree —
equal for lossless targets. Deliberate differences are listed (docs/compatibility.md)
and checked to stay what they are."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
)

from tests.conftest import sample
from tests.plugins.test_hooks import wait_for

pytestmark = pytest.mark.orthanc

JLS_LOSSLESS = JPEGLSLossless
JLS_NEAR = JPEGLSNearLossless
JPEG_BASELINE = JPEGBaseline8Bit
JPEG_LOSSLESS = JPEGLossless
JPEG_LOSSLESS_SV1 = JPEGLosslessSV1
EXPLICIT_LE = ExplicitVRLittleEndian
DEFLATED = DeflatedExplicitVRLittleEndian
# What Debian's Orthanc 1.10 (DCMTK, no JPEG 2000 nor RLE encoder) and Isengard both make.
TARGETS = [JLS_LOSSLESS, JLS_NEAR, JPEG_BASELINE, JPEG_LOSSLESS, JPEG_LOSSLESS_SV1,
           EXPLICIT_LE, DEFLATED]
LOSSLESS = {JLS_LOSSLESS, JPEG_LOSSLESS, JPEG_LOSSLESS_SV1, EXPLICIT_LE, DEFLATED}

# No two of these hold the same SOP instance (pydicom's MR_small* and SC_rgb* do).
SOURCES = {
    "CT_small.dcm": "16 bits signed",
    "MR_small_jpeg_ls_lossless.dcm": "16 bits signed, JPEG-LS",
    "examples_rgb_color.dcm": "8-bit RGB",
    "SC_rgb_rle_16bit_2frame.dcm": "16-bit RGB, 2 frames, RLE (no JPEG baseline)",
    "examples_ybr_color.dcm": "30 frames, JPEG baseline YBR_FULL_422",
    "examples_palette.dcm": "palette colour",
    "image_dfl.dcm": "8-bit monochrome, deflated",
    "examples_overlay.dcm": "12 bits stored",
    "rtdose.dcm": "32 bits, 15 frames",
    "liver_1frame.dcm": "1 bit",
    "rtplan.dcm": "no pixel data",
    "ExplVR_BigEnd.dcm": "big endian RGB",
    "SC_ybr_full_422_uncompressed.dcm": "uncompressed YBR_FULL_422",
    "JPEG2000.dcm": "JPEG 2000",
    "JPEG-lossy.dcm": "JPEG extended, 12 bits",
}
# Sources already lossy: the two servers' JPEG decoders round YCbCr differently.
DECODER_TOLERANCE = {"examples_ybr_color.dcm": 4}

# Deliberate differences: (file, target) -> (the server that accepts, why).
DIFFERENCES = {
    ("SC_ybr_full_422_uncompressed.dcm", JLS_LOSSLESS):
        ("isengard", "the samples are kept exactly (as YBR_FULL); DCMTK refuses"),
    ("SC_ybr_full_422_uncompressed.dcm", JLS_NEAR):
        ("isengard", "the RGB image is encoded; DCMTK refuses"),
    **{("JPEG2000.dcm", t): ("isengard", "Orthanc 1.10 from Debian decodes no JPEG 2000")
       for t in LOSSLESS},
    **{("JPEG-lossy.dcm", t): ("orthanc", "pydicom's decoders cannot read this 12-bit "
                                          "JPEG; DCMTK can")
       for t in TARGETS if t != JPEG_BASELINE},
}


@pytest.fixture(scope="module")
def ids(pair) -> dict[str, str]:
    out = {}
    for name in SOURCES:
        ours, theirs = pair.post("/instances", content=sample(name))
        assert (ours.status_code, theirs.status_code) == (200, 200), name
        assert ours.json()["ID"] == theirs.json()["ID"]
        out[name] = theirs.json()["ID"]
    return out


def _read(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def _pixels(ds: pydicom.Dataset) -> np.ndarray:
    return ds.pixel_array.astype(np.int64)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", SOURCES)
def test_same_targets_same_pixels(pair, ids, name, target):
    ours, theirs = pair.post(f"/instances/{ids[name]}/modify", json={"Transcode": target})
    accepted = (ours.status_code == 200, theirs.status_code == 200)
    if (name, target) in DIFFERENCES:
        who, why = DIFFERENCES[name, target]
        assert accepted == (who == "isengard", who == "orthanc"), f"{name} → {target}: {why}"
        return
    assert accepted[0] == accepted[1], (
        f"{name} → {target}: Isengard {ours.status_code}, Orthanc {theirs.status_code}\n"
        f"{ours.text[:300]}")
    if not accepted[0]:
        return
    a, b = _read(ours.content), _read(theirs.content)
    assert a.file_meta.TransferSyntaxUID == b.file_meta.TransferSyntaxUID == target
    if "PixelData" not in b:
        return
    assert a.PhotometricInterpretation == b.PhotometricInterpretation
    assert a.get("LossyImageCompression") == b.get("LossyImageCompression")
    pa, pb = _pixels(a), _pixels(b)
    assert pa.shape == pb.shape
    if target in LOSSLESS:
        assert np.abs(pa - pb).max() <= DECODER_TOLERANCE.get(name, 0)
    elif target == JPEG_BASELINE:  # same IJG quality (90), same 4:2:2 sampling
        assert np.abs(pa - pb).mean() <= 1.0
    else:  # JPEG-LS near-lossless: both within NEAR = 2 of the source (as each decodes it)
        source = _pixels(_read(sample(name)))
        assert np.abs(pa - source).max() <= 2
        assert np.abs(pb - source).max() <= 2 + DECODER_TOLERANCE.get(name, 0)


def _zip_syntaxes(response) -> dict[str, str]:
    """Entry name → transfer syntax of each DICOM file of the ZIP."""
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {n: str(pydicom.dcmread(archive.open(n), stop_before_pixels=True)
                       .file_meta.TransferSyntaxUID)
                for n in archive.namelist() if n != "DICOMDIR"}


@pytest.mark.parametrize("target", [JLS_LOSSLESS, JPEG_BASELINE])
def test_archive_files_as_orthanc_writes_them(pair, ids, target):
    # Files that cannot be transcoded (rtdose, the CT to JPEG baseline) go as stored.
    resources = [ids[n] for n in ("CT_small.dcm", "examples_rgb_color.dcm", "rtdose.dcm",
                                  "image_dfl.dcm")]
    ours, theirs = pair.post("/tools/create-archive",
                             json={"Resources": resources, "Transcode": target})
    assert _zip_syntaxes(ours) == _zip_syntaxes(theirs)
    ours, theirs = pair.post("/tools/create-media",
                             json={"Resources": resources, "Transcode": target})
    assert _zip_syntaxes(ours) == _zip_syntaxes(theirs)


def test_get_archive_with_transcode(pair, ids):
    study = pair.orthanc.get(f"/instances/{ids['CT_small.dcm']}").json()["ParentSeries"]
    ours, theirs = pair.get(f"/series/{study}/archive", params={"transcode": JLS_LOSSLESS})
    assert _zip_syntaxes(ours) == _zip_syntaxes(theirs)


def _finished(server, path: str) -> dict:
    wait_for(lambda: server.get(path).json()["State"] in ("Success", "Failure"), timeout=60)
    return server.get(path).json()


def test_asynchronous_archive_job_content(pair, ids):
    body = {"Resources": [ids["CT_small.dcm"]], "Transcode": JLS_LOSSLESS,
            "Asynchronous": True}
    ours, theirs = pair.post("/tools/create-archive", json=body)
    a = _finished(pair.isengard, ours.json()["Path"])
    b = _finished(pair.orthanc, theirs.json()["Path"])
    assert a["State"] == b["State"] == "Success"
    assert a["Content"]["Transcode"] == b["Content"]["Transcode"] == JLS_LOSSLESS
    assert sorted(a["Content"]) == sorted(b["Content"])


@pytest.mark.parametrize("value", ["1.2.3.4", "", "1.2.840.10008.5.1.4.1.1.2", 7])
def test_bad_transcode_values(pair, ids, value):
    body = {"Resources": [ids["CT_small.dcm"]], "Transcode": value}
    ours, theirs = pair.post("/tools/create-archive", json=body)
    assert ours.status_code == theirs.status_code == 400
    assert ours.json()["OrthancStatus"] == theirs.json()["OrthancStatus"]
