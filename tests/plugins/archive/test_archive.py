"""GET|POST /{level}/{id}/archive and POST /tools/create-archive."""

from __future__ import annotations

import json
import zipfile

import pydicom
import pytest

from tests.conftest import sample
from tests.plugins.test_hooks import wait_for

from .conftest import open_zip, sop_uid


@pytest.fixture
def study(isengard_server, dicom_factory):
    """One study of two series (CT ×3, SR ×1) and what was uploaded, by SOPInstanceUID."""
    study_uid = dicom_factory.uid()
    files = dicom_factory.series(3, StudyInstanceUID=study_uid, PatientID="PAT-1",
                                 PatientName="Doe^Jane", AccessionNumber="A-42",
                                 StudyDescription="Chest", SeriesDescription="Axial")
    files += dicom_factory.series(1, StudyInstanceUID=study_uid, PatientID="PAT-1",
                                  PatientName="Doe^Jane", AccessionNumber="A-42",
                                  StudyDescription="Chest", Modality="SR",
                                  SeriesDescription="")
    answers = [isengard_server.upload(f) for f in files]
    return isengard_server, answers[0]["ParentStudy"], {sop_uid(f): f for f in files}


def test_study_archive_tree_and_bytes(study):
    server, study_id, uploaded = study
    r = server.get(f"/studies/{study_id}/archive")
    assert r.headers["content-disposition"] == f'filename="{study_id}.zip"'
    archive = open_zip(r)
    assert archive.namelist() == sorted(archive.namelist(), key=archive.namelist().index)
    assert sorted(archive.namelist()) == [
        "PAT1 Doe Jane/A42 Chest/CT Axial/CT000000.dcm",
        "PAT1 Doe Jane/A42 Chest/CT Axial/CT000001.dcm",
        "PAT1 Doe Jane/A42 Chest/CT Axial/CT000002.dcm",
        "PAT1 Doe Jane/A42 Chest/SR/SR000000.dcm",
    ]
    # Files as received; stored (no compression) by default.
    for info in archive.infolist():
        data = archive.read(info)
        assert uploaded[sop_uid(data)] == data
        assert info.compress_type == zipfile.ZIP_STORED
    # Instances in the order they were stored (InstanceNumber 1, 2, 3).
    numbers = [int(pydicom.dcmread(archive.open(n)).InstanceNumber)
               for n in archive.namelist() if "/CT Axial/" in n]
    assert numbers == [1, 2, 3]


def test_patient_and_series_archives(study):
    server, study_id, _ = study
    body = server.get(f"/studies/{study_id}").json()
    patient_zip = open_zip(server.get(f"/patients/{body['ParentPatient']}/archive"))
    assert len(patient_zip.namelist()) == 4
    series_id = next(s for s in body["Series"]
                     if server.get(f"/series/{s}").json()["MainDicomTags"]["Modality"] == "SR")
    series_zip = open_zip(server.get(f"/series/{series_id}/archive"))
    assert series_zip.namelist() == ["PAT1 Doe Jane/A42 Chest/SR/SR000000.dcm"]


def test_post_on_a_resource_is_synchronous(study):
    server, study_id, _ = study
    for body in ({}, {"Synchronous": True}, {"Synchronous": True, "Priority": 3}):
        r = server.post(f"/studies/{study_id}/archive", json=body)
        assert len(open_zip(r).namelist()) == 4
    assert server.post(f"/studies/{study_id}/archive", content=b"").status_code == 400


def test_create_archive_mixes_levels_without_duplicates(isengard_server, study, ct_small):
    server, study_id, _ = study
    ct = isengard_server.upload(ct_small)
    series = server.get(f"/studies/{study_id}").json()["Series"]
    instances = server.get(f"/series/{series[0]}").json()["Instances"]
    ids = [ct["ID"], series[0], instances[1], study_id]  # the study supersedes the rest
    for body in ({"Resources": ids, "Synchronous": True}, ids):  # current and older form
        r = server.post("/tools/create-archive", content=json.dumps(body))
        assert r.headers["content-disposition"] == 'filename="Archive.zip"'
        names = open_zip(r).namelist()
        assert len(names) == 5 == len(set(names))
        assert "1CT1 CompressedSamples CT1/e1/CT/CT000000.dcm" in names


def test_create_archive_of_single_instances_keeps_request_order(study):
    server, study_id, _ = study
    series = server.get(f"/studies/{study_id}").json()["Series"]
    ct_series = next(s for s in series
                     if server.get(f"/series/{s}").json()["MainDicomTags"]["Modality"] == "CT")
    instances = server.get(f"/series/{ct_series}").json()["Instances"]
    r = server.post("/tools/create-archive", json={"Resources": [instances[2], instances[0]]})
    archive = open_zip(r)
    assert [n.rsplit("/", 1)[1] for n in archive.namelist()] == ["CT000000.dcm",
                                                                  "CT000001.dcm"]
    first = pydicom.dcmread(archive.open(archive.namelist()[0]))
    assert first.InstanceNumber == 3


def test_same_folder_names_are_numbered(isengard_server, dicom_factory):
    for _ in range(2):  # two studies without accession number nor description
        isengard_server.upload(dicom_factory.instance(PatientID="P", AccessionNumber="",
                                                      StudyDescription=""))
    patient = isengard_server.get("/patients").json()[0]
    names = open_zip(isengard_server.get(f"/patients/{patient}/archive")).namelist()
    assert sorted(n.split("/")[1] for n in names) == ["Unknown Study", "Unknown Study-2"]


def test_empty_list_gives_an_empty_zip(isengard_server):
    assert open_zip(isengard_server.post("/tools/create-archive",
                                         json={"Resources": []})).namelist() == []


@pytest.mark.parametrize("path", ["/studies/0000/archive", "/patients/0000/media",
                                  "/series/0000/archive"])
def test_unknown_resource_is_404_json(isengard_server, path):
    r = isengard_server.get(path)
    assert r.status_code == 404
    assert r.json()["HttpStatus"] == 404 and r.json()["OrthancStatus"] == 17


def test_unknown_id_in_create_archive_is_404(isengard_server, ct_small):
    ct = isengard_server.upload(ct_small)
    r = isengard_server.post("/tools/create-archive", json={"Resources": [ct["ID"], "nope"]})
    assert r.status_code == 404
    assert "nope" in r.json()["Details"]


@pytest.mark.parametrize("async_flag", [{"Asynchronous": True}, {"Synchronous": False}])
def test_asynchronous_archive_is_a_job(study, async_flag):
    """Orthanc's asynchronous mode: a job, then the ZIP from GET /jobs/{id}/archive —
    the same entries as the synchronous answer."""
    isengard_server, study_id, _ = study
    body = {"Resources": [study_id], **async_flag}
    answer = isengard_server.post("/tools/create-archive", json=body).json()
    assert answer["Path"] == f"/jobs/{answer['ID']}"
    wait_for(lambda: isengard_server.get(answer["Path"]).json()["State"] == "Success",
             timeout=60)
    job = isengard_server.get(answer["Path"]).json()
    assert job["Type"] == "Archive" and job["Progress"] == 100
    assert job["Content"]["InstancesCount"] == 4
    archived = isengard_server.get(f"{answer['Path']}/archive")
    assert archived.status_code == 200
    assert int(job["Content"]["ArchiveSize"]) == len(archived.content)
    synchronous = isengard_server.post("/tools/create-archive",
                                       json={"Resources": [study_id]})
    assert sorted(open_zip(archived).namelist()) == sorted(open_zip(synchronous).namelist())
    assert isengard_server.get("/jobs/nope/archive").status_code == 404


def test_asynchronous_media_of_a_resource(study):
    isengard_server, study_id, _ = study
    answer = isengard_server.post(f"/studies/{study_id}/media",
                                  json={"Asynchronous": True}).json()
    wait_for(lambda: isengard_server.get(answer["Path"]).json()["State"] == "Success",
             timeout=60)
    names = open_zip(isengard_server.get(f"{answer['Path']}/archive")).namelist()
    assert "DICOMDIR" in names


@pytest.mark.parametrize("body", [b"garbage", b"{\"Resources\": 3}", b"[1, 2]", b"",
                                  b"\"text\""])
def test_bad_bodies_are_400(isengard_server, body):
    r = isengard_server.post("/tools/create-archive", content=body)
    assert r.status_code == 400
    assert r.json()["OrthancStatus"] == 15


def test_compression_can_be_enabled(isengard_factory, ct_small):
    server = isengard_factory(config={"plugins": {"archive": {"compress": True}}})
    ct = server.upload(ct_small)
    archive = open_zip(server.get(f"/patients/{ct['ParentPatient']}/archive"))
    info = archive.infolist()[0]
    assert info.compress_type == zipfile.ZIP_DEFLATED
    assert info.compress_size < info.file_size
    assert archive.read(info) == sample("CT_small.dcm")


def test_plugin_can_be_disabled(isengard_factory, ct_small):
    server = isengard_factory(config={"plugins": {"archive": False}})
    ct = server.upload(ct_small)
    assert server.get(f"/patients/{ct['ParentPatient']}/archive").status_code == 404


def test_enabled_by_default(isengard_server):
    assert "archive" in isengard_server.get("/plugins").json()
