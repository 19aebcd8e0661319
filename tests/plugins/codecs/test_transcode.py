"""The codecs plugin, driven as users drive it: ``"Transcode"`` in
``POST /instances/{id}/modify`` (and a series modification), each target syntax from
uncompressed, compressed and multi-frame sources."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from isengard.errors import ConfigError
from tests.conftest import sample

from .conftest import pixels, psnr, read

RLE = RLELossless
J2K_LOSSLESS = JPEG2000Lossless
J2K = JPEG2000
JLS_LOSSLESS = JPEGLSLossless
JLS_NEAR = JPEGLSNearLossless
JPEG_BASELINE = JPEGBaseline8Bit
JPEG_LOSSLESS = JPEGLossless
JPEG_LOSSLESS_SV1 = JPEGLosslessSV1
EXPLICIT_LE = ExplicitVRLittleEndian
DEFLATED = DeflatedExplicitVRLittleEndian

LOSSLESS = [RLE, J2K_LOSSLESS, JLS_LOSSLESS, JPEG_LOSSLESS_SV1, JPEG_LOSSLESS]
# (file, what it covers)
SOURCES = {
    "CT_small.dcm": "16 bits signed, uncompressed",
    "image_dfl.dcm": "8-bit monochrome, deflated",
    "examples_rgb_color.dcm": "8-bit RGB, uncompressed",
    "SC_rgb_rle_2frame.dcm": "RGB, 2 frames, RLE",
    "examples_ybr_color.dcm": "YBR_FULL_422, 30 frames, JPEG baseline (lossy)",
    "MR_small_jp2klossless.dcm": "16 bits signed, JPEG 2000 lossless",
    "examples_palette.dcm": "palette colour",
}
METHODS = {J2K: "ISO_15444_1", JLS_NEAR: "ISO_14495_1", JPEG_BASELINE: "ISO_10918_1"}


def _modify(server, instance_id: str, syntax: str):
    return server.post(f"/instances/{instance_id}/modify", json={"Transcode": syntax})


@pytest.mark.parametrize("target", LOSSLESS)
@pytest.mark.parametrize("name", SOURCES)
def test_lossless_targets_keep_every_pixel(server, uploaded, name, target):
    source = read(sample(name))
    r = _modify(server, uploaded(name), target)
    assert r.status_code == 200, r.text
    ds = read(r.content)
    assert ds.file_meta.TransferSyntaxUID == target
    assert ds.get("NumberOfFrames") == source.get("NumberOfFrames")
    np.testing.assert_array_equal(pixels(ds), pixels(source))
    # Lossless: the lossy history is the source's, untouched.
    assert ds.get("LossyImageCompression") == source.get("LossyImageCompression")
    assert "LossyImageCompressionMethod" not in ds


@pytest.mark.parametrize("name, target", [
    ("image_dfl.dcm", JPEG_BASELINE), ("examples_rgb_color.dcm", JPEG_BASELINE),
    ("SC_rgb_rle_2frame.dcm", JPEG_BASELINE), ("examples_palette.dcm", JPEG_BASELINE),
    ("CT_small.dcm", J2K), ("examples_rgb_color.dcm", J2K),
    ("examples_ybr_color.dcm", J2K), ("examples_palette.dcm", J2K),
    ("image_dfl.dcm", JLS_NEAR), ("SC_rgb_rle_2frame.dcm", JLS_NEAR),
])
def test_lossy_targets_are_close_and_say_they_are_lossy(server, uploaded, name, target):
    source = read(sample(name))
    r = _modify(server, uploaded(name), target)
    assert r.status_code == 200, r.text
    ds = read(r.content)
    assert ds.file_meta.TransferSyntaxUID == target
    ours, reference = pixels(ds), pixels(source)
    assert ours.shape == reference.shape
    if target == JLS_NEAR:  # the bound JPEG-LS guarantees: NEAR (2 by default)
        assert np.abs(ours.astype(int) - reference.astype(int)).max() <= 2
    else:
        assert psnr(ours, reference) > 30
    # PS3.3 C.7.6.1.1.5: lossy once, lossy for ever; methods and ratios in step.
    assert ds.LossyImageCompression == "01"
    methods = list(ds.LossyImageCompressionMethod) if ds["LossyImageCompressionMethod"].VM > 1 \
        else [ds.LossyImageCompressionMethod]
    ratios = ds["LossyImageCompressionRatio"]
    assert methods[-1] == METHODS[target] and ratios.VM == len(methods)
    assert float(ratios.value[-1] if ratios.VM > 1 else ratios.value) > 1
    assert ds.DerivationCodeSequence[-1].CodeValue == "113040"
    predecessor = ds.SourceImageSequence[-1]
    assert predecessor.PurposeOfReferenceCodeSequence[0].CodeValue == "121320"
    assert predecessor.ReferencedSOPInstanceUID != ds.SOPInstanceUID  # a new image
    if "ImageType" in source:
        assert ds.ImageType[0] == "DERIVED"
    if target == JPEG_BASELINE:  # colour is YCbCr 4:2:2, as DCMTK writes it
        expected = "YBR_FULL_422" if ds.SamplesPerPixel == 3 else "MONOCHROME2"
        assert ds.PhotometricInterpretation == expected


def test_a_second_lossy_compression_appends_to_the_history(server, uploaded):
    # examples_ybr_color: JPEG, LossyImageCompressionRatio 19 with no method recorded.
    ds = read(_modify(server, uploaded("examples_ybr_color.dcm"), JLS_NEAR).content)
    assert list(ds.LossyImageCompressionMethod) == ["", "ISO_14495_1"]
    assert ds.LossyImageCompressionRatio[0] == 19


@pytest.mark.parametrize("name, target, reason", [
    ("CT_small.dcm", JPEG_BASELINE, "16 bits stored"),
    ("CT_small.dcm", JLS_NEAR, "signed"),
    ("examples_palette.dcm", JLS_NEAR, "PALETTE COLOR"),
    ("rtdose.dcm", RLE, "32 bits stored"),
    ("liver_1frame.dcm", JPEG_LOSSLESS_SV1, "1 bits stored"),
])
def test_impossible_targets_are_a_clear_error(server, uploaded, caplog, name, target,
                                               reason):
    caplog.set_level("WARNING", logger="isengard.plugins.codecs")
    r = _modify(server, uploaded(name), target)
    assert r.status_code == 400
    assert target in r.json()["Message"] + r.json().get("Details", "")
    logged = [rec.getMessage() for rec in caplog.records
              if rec.name == "isengard.plugins.codecs"]
    assert any(reason in m and "cannot be transcoded" in m for m in logged), logged


def test_instances_without_pixels_only_change_syntax(server, uploaded):
    ds = read(_modify(server, uploaded("rtplan.dcm"), JLS_LOSSLESS).content)
    assert ds.file_meta.TransferSyntaxUID == JLS_LOSSLESS
    assert ds.RTPlanLabel == read(sample("rtplan.dcm")).RTPlanLabel


@pytest.mark.parametrize("target", [EXPLICIT_LE, DEFLATED])
def test_decompression(server, uploaded, target):
    ds = read(_modify(server, uploaded("SC_rgb_rle_2frame.dcm"), target).content)
    assert ds.file_meta.TransferSyntaxUID == target
    np.testing.assert_array_equal(ds.pixel_array, read(sample("SC_rgb_rle_2frame.dcm"))
                                  .pixel_array)


def test_big_endian_source(server, uploaded):
    ds = read(_modify(server, uploaded("ExplVR_BigEnd.dcm"), JLS_LOSSLESS).content)
    np.testing.assert_array_equal(ds.pixel_array, read(sample("ExplVR_BigEnd.dcm"))
                                  .pixel_array)


def test_a_missing_encoder_names_the_package(server, uploaded, caplog, monkeypatch):
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # import imagecodecs fails
    r = _modify(server, uploaded("CT_small.dcm"), JPEG_LOSSLESS_SV1)
    assert r.status_code == 400
    assert any("imagecodecs" in rec.getMessage() and "pip install" in rec.getMessage()
               for rec in caplog.records)


def test_series_modification_stores_transcoded_instances(server, uploaded):
    series = server.get(f"/instances/{uploaded('SC_rgb_rle_2frame.dcm')}").json()
    r = server.post(f"/series/{series['ParentSeries']}/modify",
                    json={"Replace": {"SeriesDescription": "JPEG-LS"},
                          "Transcode": JLS_LOSSLESS})
    assert r.status_code == 200, r.text
    new = server.get(f"/series/{r.json()['ID']}").json()
    for instance in new["Instances"]:
        assert server.get(f"/instances/{instance}/metadata/TransferSyntax").text \
            == JLS_LOSSLESS
        ds = read(server.get(f"/instances/{instance}/file").content)
        np.testing.assert_array_equal(ds.pixel_array,
                                      read(sample("SC_rgb_rle_2frame.dcm")).pixel_array)


def test_quality_is_a_setting(isengard_factory):
    data = sample("examples_rgb_color.dcm")
    sizes = {}
    for quality in (50, 95):
        server = isengard_factory(config={"plugins": {"codecs": {"jpeg_quality": quality}}})
        instance = server.upload(data)["ID"]
        ds = read(_modify(server, instance, JPEG_BASELINE).content)
        assert f"quality {quality}" in ds.DerivationDescription
        sizes[quality] = len(ds.PixelData)
    assert sizes[50] < sizes[95]


@pytest.mark.parametrize("key, value", [("jpeg_quality", 0), ("jpeg_quality", 101),
                                        ("jpeg_ls_near", 0), ("jpeg2000_ratio", 0.5)])
def test_bad_settings_stop_start_up(isengard_factory, key, value):
    with pytest.raises(ConfigError, match=f"plugins.codecs.{key}"):
        isengard_factory(config={"plugins": {"codecs": {key: value}}})


def test_an_unknown_transfer_syntax_is_refused_before_any_work(server, uploaded):
    r = _modify(server, uploaded("CT_small.dcm"), "1.2.3.4")
    assert r.status_code == 400
    assert (r.json()["OrthancStatus"], "1.2.3.4" in r.json()["Details"]) == (3, True)


def test_an_impossible_target_points_at_the_log(server, uploaded):
    r = _modify(server, uploaded("CT_small.dcm"), JPEG_BASELINE)
    assert r.status_code == 400
    assert "log says why" in r.json()["Details"]
