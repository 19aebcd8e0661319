"""ZIP archives and DICOMDIR media: the same entries as Orthanc for the same request."""

from __future__ import annotations

import io
import zipfile

import pydicom
import pytest

from isengard_sdk.testing import DicomFactory

pytestmark = pytest.mark.orthanc


def entries(response) -> list[tuple[str, int]]:
    """(name, CRC) of every entry, in order: same names and same bytes."""
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return [(i.filename, i.CRC) for i in archive.infolist()]


def test_create_archive_of_everything(loaded):
    pair = loaded.pair
    patients = pair.orthanc.get("/patients").json()
    ours, theirs = pair.post("/tools/create-archive", json={"Resources": patients})
    assert entries(ours) == entries(theirs)
    assert ours.headers["content-disposition"] == theirs.headers["content-disposition"]


@pytest.mark.parametrize("level", ["patients", "studies", "series"])
def test_archive_of_each_resource(loaded, level):
    pair = loaded.pair
    for resource in pair.orthanc.get(f"/{level}").json():
        ours, theirs = pair.get(f"/{level}/{resource}/archive")
        assert entries(ours) == entries(theirs), resource
        assert ours.headers["content-disposition"] == theirs.headers["content-disposition"]


def test_instances_keep_their_storage_order(loaded):
    """Uploaded in reverse InstanceNumber order, and not in the order of their IDs."""
    pair = loaded.pair
    factory = DicomFactory()
    for _ in range(1000):  # UIDs unlike those of the sample set (same root, same counter)
        factory.uid()
    files = factory.series(4, PatientID="ORDER", Modality="MR",
                           SeriesDescription="reverse", SeriesNumber="9")
    for data in reversed(files):
        ours, theirs = pair.post("/instances", content=data)
    study = theirs.json()["ParentStudy"]
    ours, theirs = pair.get(f"/studies/{study}/archive")
    assert entries(ours) == entries(theirs)
    ours, theirs = pair.post("/tools/create-archive", json=[
        i["ID"] for i in pair.orthanc.get(f"/studies/{study}/instances").json()[::-1]])
    assert entries(ours) == entries(theirs)


def media_records(response) -> list[tuple[str, ...]]:
    """The DICOMDIR's records (type, keys, referenced file and instance) and the files."""
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = [n for n in archive.namelist() if n != "DICOMDIR"]
        dicomdir = pydicom.dcmread(io.BytesIO(archive.read("DICOMDIR")))
        records = [(r.DirectoryRecordType,
                    str(r.get("PatientID", r.get("StudyInstanceUID",
                                                 r.get("SeriesInstanceUID", "")))),
                    "/".join(r.get("ReferencedFileID", [])),
                    str(r.get("ReferencedSOPInstanceUIDInFile", "")))
                   for r in dicomdir.DirectoryRecordSequence]
        return [("files", *names), *records]


@pytest.mark.parametrize("extended", [False, True])
def test_create_media(loaded, extended):
    pair = loaded.pair
    # Orthanc 1.10 cannot put rtstruct.dcm (no file meta) in a DICOMDIR: it answers a
    # truncated ZIP. Isengard can; the comparison leaves that patient out.
    patients = [p for p in pair.orthanc.get("/patients").json()
                if pair.orthanc.get(f"/patients/{p}").json()["MainDicomTags"]
                .get("PatientID") != "tPhantom30sep"]
    body = {"Resources": patients, "Extended": extended}
    ours, theirs = pair.post("/tools/create-media", json=body)
    assert media_records(ours) == media_records(theirs)


def test_study_media(loaded):
    pair = loaded.pair
    for study in pair.orthanc.get("/studies").json()[:6]:
        ours, theirs = pair.get(f"/studies/{study}/media")
        if "tPhantom30sep" in pair.orthanc.get(f"/studies/{study}").text:
            continue
        assert media_records(ours) == media_records(theirs), study


@pytest.mark.parametrize("path", ["/studies/unknown/archive", "/patients/unknown/media",
                                  "/instances/unknown/archive"])
def test_unknown_resource(loaded, path):
    ours, theirs = loaded.pair.get(path)
    assert ours.status_code == theirs.status_code == 404


def test_unknown_resource_in_create_archive(loaded):
    ours, theirs = loaded.pair.post("/tools/create-archive", json={"Resources": ["nope"]})
    assert ours.status_code == theirs.status_code == 404
    assert ours.json()["OrthancStatus"] == theirs.json()["OrthancStatus"]
