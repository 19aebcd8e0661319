"""GET|POST /{level}/{id}/media and /tools/create-media: a ZIP holding a DICOMDIR."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.fileset import FileSet

from .conftest import open_zip, sop_uid


@pytest.fixture
def loaded(isengard_server, dicom_factory):
    study_uid = dicom_factory.uid()
    files = dicom_factory.series(2, StudyInstanceUID=study_uid, PatientID="P1",
                                 SeriesDescription="Axial", InstitutionName="Hôpital")
    files += dicom_factory.series(1, PatientID="P2", PatientName="Smith^Anna",
                                  Modality="MR", SeriesNumber="7")
    answers = [isengard_server.upload(f) for f in files]
    return isengard_server, answers, files


def load_file_set(archive, folder):
    """Extract the media and read it back with pydicom's FileSet (the staging folder
    FileSet creates is removed explicitly: warnings are errors here)."""
    archive.extractall(folder)
    fs = FileSet(folder / "DICOMDIR")
    return fs


def close_file_set(fs):
    fs._stage["t"].cleanup()


def test_study_media_is_a_readable_file_set(loaded, tmp_path):
    server, answers, files = loaded
    r = server.get(f"/studies/{answers[0]['ParentStudy']}/media")
    assert r.headers["content-disposition"] == f'filename="{answers[0]["ParentStudy"]}.zip"'
    archive = open_zip(r)
    assert archive.namelist() == ["IMAGES/IM0", "IMAGES/IM1", "DICOMDIR"]
    fs = load_file_set(archive, tmp_path)
    try:
        assert fs.ID == "ISENGARD_MEDIA"
        assert len(fs) == 2
        for instance in fs:  # each record points at its file, with its SOP instance
            path = instance.path
            assert path.replace("\\", "/").rsplit("/", 2)[-2:] in (["IMAGES", "IM0"],
                                                                   ["IMAGES", "IM1"])
            assert pydicom.dcmread(path).SOPInstanceUID == instance.SOPInstanceUID
        assert {i.SOPInstanceUID for i in fs} == {sop_uid(f) for f in files[:2]}
    finally:
        close_file_set(fs)


def test_dicomdir_records(loaded):
    server, answers, files = loaded
    r = server.post("/tools/create-media",
                    json={"Resources": [a["ParentPatient"] for a in answers]})
    archive = open_zip(r)
    assert archive.namelist() == ["IMAGES/IM0", "IMAGES/IM1", "IMAGES/IM2", "DICOMDIR"]
    dicomdir = pydicom.dcmread(io.BytesIO(archive.read("DICOMDIR")))
    records = dicomdir.DirectoryRecordSequence
    assert [r.DirectoryRecordType for r in records].count("PATIENT") == 2
    assert [r.DirectoryRecordType for r in records].count("IMAGE") == 3
    by_file = {"/".join(r.ReferencedFileID): r for r in records
               if r.DirectoryRecordType == "IMAGE"}
    for name in ("IMAGES/IM0", "IMAGES/IM1", "IMAGES/IM2"):
        record = by_file[name]
        assert record.ReferencedSOPInstanceUIDInFile == sop_uid(archive.read(name))
        assert record.ReferencedTransferSyntaxUIDInFile == "1.2.840.10008.1.2.1"
        assert record.ReferencedSOPClassUIDInFile == "1.2.840.10008.5.1.4.1.1.2"
    series = [r for r in records if r.DirectoryRecordType == "SERIES"]
    assert {r.Modality for r in series} == {"CT", "MR"}
    assert all("SeriesDescription" not in r for r in series)  # only in extended media
    patient = next(r for r in records if r.DirectoryRecordType == "PATIENT"
                   and r.PatientID == "P2")
    assert patient.PatientName == "Smith^Anna"


@pytest.mark.parametrize("how", ["get", "post", "tools"])
def test_extended_media_adds_series_description(loaded, how):
    server, answers, _ = loaded
    study = answers[0]["ParentStudy"]
    if how == "get":
        r = server.get(f"/studies/{study}/media", params={"extended": ""})
    elif how == "post":
        r = server.post(f"/studies/{study}/media", json={"Extended": True})
    else:
        r = server.post("/tools/create-media-extended", json={"Resources": [study]})
    dicomdir = pydicom.dcmread(io.BytesIO(open_zip(r).read("DICOMDIR")))
    series = [r for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "SERIES"]
    assert [r.SeriesDescription for r in series] == ["Axial"]


def test_non_ascii_values_keep_their_character_set(isengard_server, dicom_factory):
    answer = isengard_server.upload(dicom_factory.instance(PatientName="Müller^Jürgen"))
    archive = open_zip(isengard_server.get(f"/patients/{answer['ParentPatient']}/media"))
    dicomdir = pydicom.dcmread(io.BytesIO(archive.read("DICOMDIR")))
    patient = dicomdir.DirectoryRecordSequence[0]
    assert patient.SpecificCharacterSet == "ISO_IR 100"
    assert str(patient.PatientName) == "Müller^Jürgen"


def test_media_of_files_without_meta_header(isengard_server):
    from tests.conftest import sample

    answer = isengard_server.upload(sample("rtstruct.dcm"))  # no preamble nor file meta
    archive = open_zip(isengard_server.get(f"/patients/{answer['ParentPatient']}/media"))
    dicomdir = pydicom.dcmread(io.BytesIO(archive.read("DICOMDIR")))
    image = dicomdir.DirectoryRecordSequence[-1]
    assert image.ReferencedFileID == ["IMAGES", "IM0"]
    assert image.ReferencedSOPClassUIDInFile == "1.2.840.10008.5.1.4.1.1.481.3"
