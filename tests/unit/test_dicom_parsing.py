"""Parsing incoming files and converting tags to Orthanc's JSON, without sockets."""

from __future__ import annotations

import pytest

from isengard.dicom_file import parse_dicom_bytes, parse_header
from isengard.errors import InvalidDicomError
from isengard.tags_json import dataset_to_json
from isengard_sdk.types import ResourceLevel
from tests.conftest import sample


def test_header_stops_before_pixel_data():
    data = sample("CT_small.dcm")
    parsed = parse_dicom_bytes(data)
    assert parsed.pixel_data_offset == 6288 and parsed.header == data[:6288]
    assert parsed.has_pixel_data
    assert parsed.main_tags[ResourceLevel.SERIES]["ImageOrientationPatient"] == \
        "1.000000\\0.000000\\0.000000\\0.000000\\1.000000\\0.000000"
    assert "PatientWeight" not in parsed.all_main_tags()


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm", "MR_small_implicit.dcm",
                                  "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm",
                                  "MR_small_jpeg_ls_lossless.dcm", "JPEG2000.dcm",
                                  "image_dfl.dcm", "rtplan.dcm"])
def test_transfer_syntaxes_parse(name):
    parsed = parse_dicom_bytes(sample(name))
    assert parsed.ids.instance and parsed.transfer_syntax_uid


def test_same_instance_in_any_syntax_has_the_same_identifier():
    ids = {parse_dicom_bytes(sample(n)).ids.instance
           for n in ("MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm")}
    assert len(ids) == 1


def test_deflated_file_keeps_its_pixel_data_flag():
    parsed = parse_dicom_bytes(sample("image_dfl.dcm"))
    assert parsed.pixel_data_offset is None and parsed.has_pixel_data


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"x" * 200, "not a DICOM file"),
    (sample("MR_truncated.dcm"), "truncated"),
    (sample("rtplan_truncated.dcm"), "truncated"),
])
def test_invalid_files(data, message):
    with pytest.raises(InvalidDicomError, match=message):
        parse_dicom_bytes(data)


def test_tags_json_forms():
    parsed = parse_dicom_bytes(sample("CT_small.dcm"))
    ds = parse_header(parsed.header)
    full = dataset_to_json(ds, has_pixel_data=True)
    assert full["0018,0050"] == {"Name": "SliceThickness", "Type": "String",
                                 "Value": "5.000000"}
    assert full["0043,1028"]["Type"] == "Null"  # binary
    assert full["0043,1028"]["PrivateCreator"] == "GEMS_PARM_01"
    assert full["0023,1070"]["Value"] == "862399761.11107898"  # FD with 17 digits, as Orthanc
    assert full["0010,1002"]["Type"] == "Sequence"
    assert full["0010,1002"]["Value"][1]["0010,0020"]["Value"] == "1234ABCD"
    assert "fffc,fffc" not in full
    short = dataset_to_json(ds, "short")
    assert short["0008,0060"] == "CT"
    simple = dataset_to_json(ds, "simplify")
    assert simple["OtherPatientIDsSequence"][0] == {"PatientID": "ABCD1234",
                                                    "TypeOfPatientID": "TEXT"}
    meta = dataset_to_json(ds, include_meta=True)
    assert set(meta) >= {"0002,0002", "0002,0003", "0002,0010"}


def test_long_strings_are_too_long():
    parsed = parse_dicom_bytes(sample("examples_palette.dcm"))
    full = dataset_to_json(parsed.dataset)
    assert full["0018,1020"] == {"Name": "SoftwareVersions", "Type": "TooLong", "Value": None}


def test_retired_tags_are_prefixed():
    parsed = parse_dicom_bytes(sample("rtplan.dcm"))
    simple = dataset_to_json(parsed.dataset, "simplify")
    assert any(k.startswith("RETIRED_") for k in
               _walk_keys(simple)), "Orthanc names retired attributes RETIRED_<keyword>"


def _walk_keys(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield k
            yield from _walk_keys(v)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_keys(item)


def test_public_attributes_sent_as_un_are_read_with_their_dictionary_vr():
    """rtdose_rle.dcm writes StudyInstanceUID & co. with VR UN (explicit VR): Orthanc
    (DCMTK) reads them with the dictionary VR and indexes the file; so do we."""
    parsed = parse_dicom_bytes(sample("rtdose_rle.dcm"))
    assert parsed.ids.instance == parse_dicom_bytes(sample("rtdose.dcm")).ids.instance
    assert parsed.main_tags[ResourceLevel.STUDY]["StudyInstanceUID"] == \
        "1.2.999.999.99.9.9999.8888"


def _kept_headers():
    """(file name, parsed) of every bundled pydicom sample whose header ingest keeps
    (its folder read directly: CI has no network for the ones pydicom downloads)."""
    from pathlib import Path

    import pydicom.data

    folder = Path(pydicom.data.__file__).parent / "test_files"
    for path in sorted(folder.rglob("*.dcm")):
        try:
            parsed = parse_dicom_bytes(path.read_bytes())
        except InvalidDicomError:
            continue
        if parsed.header is not None:
            yield path.name, parsed


def test_kept_headers_give_the_same_tags_as_pydicoms_reader():
    """/tags re-parses the header kept in the index with the fast reader: every bundled
    PS3.10 sample answers the same JSON, in every format, as with pydicom's reader."""
    from isengard.dicom_file import read_dataset

    checked = 0
    for name, parsed in _kept_headers():
        if parsed.header[128:132] != b"DICM":
            continue
        for fmt in ("full", "short", "simplify"):
            fast = dataset_to_json(parse_header(parsed.header), fmt,
                                   has_pixel_data=parsed.has_pixel_data)
            slow = dataset_to_json(read_dataset(parsed.header, stop_before_pixels=True), fmt,
                                   has_pixel_data=parsed.has_pixel_data)
            assert fast == slow, (name, fmt)
        checked += 1
    assert checked > 50, checked


def test_numbers_read_from_raw_bytes_are_worded_as_pydicoms_values():
    """/tags reads binary numbers (US, SS, UL, SL, UV, SV, FL, FD, AT) straight from their
    bytes: the same JSON as from the values pydicom decodes, on every bundled sample."""
    import warnings

    numeric = ("US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "AT")

    def decode_numbers(ds):
        """pydicom decodes the number elements (and keeps the values), nothing else."""
        for tag in list(ds._dict):
            vr = ds._dict[tag].VR
            if vr in numeric:
                ds[tag]
            elif vr == "SQ":
                for item in ds[tag].value or []:
                    decode_numbers(item)
        return ds

    checked = numbers = 0
    for name, parsed in _kept_headers():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for fmt in ("full", "simplify"):
                raw = dataset_to_json(parse_header(parsed.header), fmt)
                decoded = dataset_to_json(decode_numbers(parse_header(parsed.header)), fmt)
                assert raw == decoded, (name, fmt)
        numbers += sum(1 for raw in parse_header(parsed.header)._dict.values()
                       if raw.VR in numeric)
        checked += 1
    assert checked > 50 and numbers > 500, (checked, numbers)
