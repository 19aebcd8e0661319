"""POST /tools/create-dicom, GET /instances/{id}/pdf and the /tools informational routes."""

from __future__ import annotations

import base64
import io
import json
import re

import pydicom
import pytest
from PIL import Image

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"  # odd length: padded in DICOM


def _uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _image(mode: str, fmt: str, color=None) -> bytes:
    out = io.BytesIO()
    Image.new(mode, (4, 3), color).save(out, fmt)
    return out.getvalue()


def _create(s, body):
    return s.post("/tools/create-dicom", content=json.dumps(body))


def _dataset(s, answer) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(s.get(f"/instances/{answer['ID']}/file").content))


def test_create_without_content(isengard_server):
    s = isengard_server
    r = _create(s, {"Tags": {"PatientName": "Test^Empty", "PatientID": "E1",
                             "StudyDescription": "created"}})
    assert r.status_code == 200
    answer = r.json()
    assert set(answer) == {"ID", "ParentPatient", "ParentSeries", "ParentStudy", "Path",
                           "Status"}
    assert answer["Path"] == f"/instances/{answer['ID']}" and answer["Status"] == "Success"
    ds = _dataset(s, answer)
    assert (ds.PatientName, ds.PatientID, ds.StudyDescription) == ("Test^Empty", "E1",
                                                                   "created")
    assert ds.SpecificCharacterSet == "ISO_IR 100"
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "StudyDate",
                    "SeriesTime", "InstanceCreationDate", "ContentDate"):
        assert keyword in ds
    assert s.get(f"/instances/{answer['ID']}/metadata/Origin").text == "RestApi"
    # a patient of its own when no PatientID is given
    other = _create(s, {"Tags": {"PatientName": "No^Id"}}).json()
    assert other["ParentPatient"] != answer["ParentPatient"]


def test_png_and_jpeg_become_uncompressed_pixels(isengard_server):
    s = isengard_server
    rgb = _create(s, {"Tags": {"PatientID": "IMG"},
                      "Content": _uri("image/png", _image("RGB", "PNG", (10, 20, 30)))})
    ds = _dataset(s, rgb.json())
    assert (ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation,
            ds.BitsAllocated, ds.PlanarConfiguration) == (3, 4, 3, "RGB", 8, 0)
    assert ds.PixelData == bytes([10, 20, 30]) * 12
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    gray = _dataset(s, _create(s, {"Tags": {}, "Content": _uri("image/png",
                                                   _image("L", "PNG", 77))}).json())
    assert (gray.PhotometricInterpretation, gray.SamplesPerPixel) == ("MONOCHROME2", 1)
    assert gray.PixelData == bytes([77]) * 12
    deep = _dataset(s, _create(s, {"Tags": {}, "Content": _uri("image/png",
                                                   _image("I;16", "PNG", 1000))}).json())
    assert (deep.BitsAllocated, deep.BitsStored, deep.HighBit) == (16, 16, 15)
    assert deep.pixel_array.max() == 1000
    jpeg = _dataset(s, _create(s, {"Tags": {}, "Content": _uri("image/jpeg",
                                                   _image("RGB", "JPEG", (200, 0, 0)))}
                                   ).json())
    assert jpeg.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert (jpeg.Rows, jpeg.Columns, jpeg.PhotometricInterpretation) == (3, 4, "RGB")
    assert s.get(f"/instances/{rgb.json()['ID']}/pdf").status_code == 404


def test_pdf(isengard_server):
    s = isengard_server
    answer = _create(s, {"Tags": {"PatientName": "Test^Pdf"},
                         "Content": _uri("application/pdf", PDF)}).json()
    ds = _dataset(s, answer)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
    assert (ds.Modality, ds.ConversionType, ds.MIMETypeOfEncapsulatedDocument) == (
        "OT", "WSD", "application/pdf")
    pdf = s.get(f"/instances/{answer['ID']}/pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content == PDF  # the pad byte is gone
    assert s.get("/instances/nope/pdf").status_code == 404


def test_sequences_private_tags_and_numbers(isengard_server):
    s = isengard_server
    answer = _create(s, {"Tags": {
        "PatientID": "SEQ",
        "ReferencedStudySequence": [{"ReferencedSOPClassUID": "1.2",
                                     "ReferencedSOPInstanceUID": "1.2.3.4"}],
        "ImageType": "ORIGINAL\\PRIMARY", "0020,0013": "7", "Rows": "12",
        "0009,1001": "private value"}, "PrivateCreator": "MYCREATOR"}).json()
    ds = _dataset(s, answer)
    assert ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID == "1.2.3.4"
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY"]
    assert (ds.InstanceNumber, ds.Rows) == (7, 12)
    assert ds[0x00090010].value == "MYCREATOR"
    assert ds[0x00091001].value.rstrip(b"\0") == b"private value"


def test_parent(isengard_server, ct_small):
    s = isengard_server
    ct = s.upload(ct_small)
    for level, key in (("patient", "ParentPatient"), ("study", "ParentStudy"),
                       ("series", "ParentSeries")):
        answer = _create(s, {"Parent": ct[key], "Tags": {"SeriesDescription": level}})
        assert answer.status_code == 200, answer.text
        child = answer.json()
        assert child[key] == ct[key] and child["ParentPatient"] == ct["ParentPatient"]
        ds = _dataset(s, child)
        assert ds.PatientName == "CompressedSamples^CT1" and ds.PatientSex == "O"
        assert ("StudyID" in ds) == (level != "patient")
        assert ("Modality" in ds) == (level == "series")
    refused = _create(s, {"Parent": ct["ParentPatient"], "Tags": {"PatientName": "Other"}})
    assert refused.status_code == 400
    assert (refused.json()["OrthancStatus"], refused.json()["Details"]) == (2020,
                                                                           "PatientName")
    forced = _create(s, {"Parent": ct["ParentStudy"], "Force": True,
                         "Tags": {"StudyDescription": "forced"}})
    assert forced.status_code == 200 and forced.json()["ParentStudy"] == ct["ParentStudy"]


@pytest.mark.parametrize("body, status, code", [
    ("not json", 400, 8),
    ([], 400, 8),
    ({"Tags": {"Nope": "x"}}, 500, 27),
    ({"Tags": {"PatientName": 5}}, 400, 5),
    ({"Tags": "PatientName"}, 400, 8),
    ({"Tags": {}, "Content": "data:image/png;base64,!!!"}, 400, 15),
    ({"Tags": {}, "Content": "hello"}, 400, 15),
    ({"Tags": {}, "Content": 3}, 400, 2023),
    ({"Tags": {}, "Content": "data:image/png;base64,aGVsbG8="}, 400, 15),  # not a PNG
    ({"Tags": {}, "Content": "data:text/plain;base64,aGVsbG8="}, 500, 2),
    ({"Tags": {}, "Parent": "nope"}, 400, 2024),
    ({"Content": "hello"}, 500, 27),  # no "Tags": the body is the tags (Orthanc's v1)
    ({"PatientName": 5}, 400, 2019),
    ({"Tags": {"SOPInstanceUID": "1.2.3"}}, 400, 2020),
    ({"Tags": {"StudyInstanceUID": "1.2.3"}}, 400, 2020),
])
def test_bad_input(isengard_server, body, status, code):
    s = isengard_server
    content = body if isinstance(body, str) else json.dumps(body)
    r = s.post("/tools/create-dicom", content=content)
    assert (r.status_code, r.json()["OrthancStatus"]) == (status, code), r.text
    assert s.get("/instances").json() == []


def test_first_format(isengard_server):
    s = isengard_server
    r = _create(s, {"PatientName": "Legacy^V1", "PatientID": "LEG"})
    assert r.status_code == 200
    tags = s.get(f"/instances/{r.json()['ID']}/simplified-tags").json()
    assert tags["PatientName"] == "Legacy^V1" and "StudyDate" not in tags


def test_forced_uids(isengard_server):
    s = isengard_server
    r = _create(s, {"Force": True, "Tags": {"PatientID": "F", "StudyInstanceUID": "1.2.3",
                                            "SOPInstanceUID": "1.2.3.4"}})
    assert r.status_code == 200
    tags = s.get(f"/instances/{r.json()['ID']}/simplified-tags").json()
    assert (tags["StudyInstanceUID"], tags["SOPInstanceUID"]) == ("1.2.3", "1.2.3.4")


def test_now_and_conformance(isengard_server):
    s = isengard_server
    for path in ("/tools/now", "/tools/now-local"):
        r = s.get(path)
        assert r.headers["content-type"].startswith("text/plain")
        assert re.fullmatch(r"\d{8}T\d{6}", r.text), r.text
    text = s.get("/tools/dicom-conformance")
    assert text.headers["content-type"].startswith("text/plain")
    assert "CTImageStorage" in text.text and "| 1.2.840.10008.5.1.4.1.1.2\n" in text.text
    assert "FINDStudyRootQueryRetrieveInformationModel" in text.text
    from isengard.dimse import TRANSFER_SYNTAXES

    for uid in TRANSFER_SYNTAXES:
        assert f"| {uid}\n" in text.text
