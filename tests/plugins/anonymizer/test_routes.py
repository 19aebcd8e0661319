"""The REST routes on a running server."""

from __future__ import annotations

import io
import re
import time

import pydicom

from isengard_sdk.testing import DicomFactory, RunningServer


def _read(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def _load_study(server: RunningServer, factory: DicomFactory, count: int = 3,
                **tags: str) -> dict:
    answers = [server.upload(f) for f in factory.series(count, **tags)]
    return answers[0]


def _files(server: RunningServer, level: str, resource_id: str) -> list[pydicom.Dataset]:
    instances = server.get(f"/{level}/{resource_id}/instances").json()
    return [_read(server.get(f"/instances/{i['ID']}/file").content) for i in instances]


def _wait_job(server: RunningServer, job_id: str) -> dict:
    while True:  # readiness wait, bounded by the test runner's timeout
        job = server.get(f"/jobs/{job_id}").json()
        if job["State"] in ("Success", "Failure"):
            return job
        time.sleep(0.05)


def test_instance_anonymize_answers_the_file_without_storing_it(
        isengard_server: RunningServer, ct_small: bytes) -> None:
    instance = isengard_server.upload(ct_small)["ID"]
    r = isengard_server.post(f"/instances/{instance}/anonymize", json={})
    assert r.status_code == 200 and r.headers["content-type"] == "application/dicom"
    ds = _read(r.content)
    assert ds.PatientName == "Anonymized1" and ds.PatientIdentityRemoved == "YES"
    assert re.fullmatch(r"[0-9a-f-]{36}", ds.PatientID)
    assert isengard_server.get("/instances").json() == [instance]
    again = _read(isengard_server.post(f"/instances/{instance}/anonymize", json={}).content)
    assert again.PatientName == "Anonymized2"  # Orthanc's counter, kept in the index
    modified = isengard_server.post(f"/instances/{instance}/modify",
                                    json={"Replace": {"PatientName": "New^Name"}})
    assert _read(modified.content).PatientName == "New^Name"


def test_instance_transcode(isengard_server: RunningServer, ct_small: bytes) -> None:
    instance = isengard_server.upload(ct_small)["ID"]
    r = isengard_server.post(f"/instances/{instance}/modify",
                             json={"Transcode": "1.2.840.10008.1.2"})
    assert r.status_code == 200
    assert _read(r.content).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"


def test_study_anonymization_keeps_the_hierarchy(isengard_server: RunningServer,
                                                 dicom_factory: DicomFactory) -> None:
    first = _load_study(isengard_server, dicom_factory, PatientID="P-STUDY")
    r = isengard_server.post(f"/studies/{first['ParentStudy']}/anonymize", json={})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["Type"] == "Study" and answer["InstancesCount"] == 3
    assert answer["IsAnonymization"] is True and answer["Path"] == f"/studies/{answer['ID']}"
    files = _files(isengard_server, "studies", answer["ID"])
    assert len({d.StudyInstanceUID for d in files}) == len({d.SeriesInstanceUID
                                                            for d in files}) == 1
    assert len({d.SOPInstanceUID for d in files}) == 3
    assert all(d.PatientName == files[0].PatientName != "Test^Patient" for d in files)
    study = isengard_server.get(f"/studies/{answer['ID']}").json()
    assert study["AnonymizedFrom"] == first["ParentStudy"]
    assert study["ParentPatient"] == answer["PatientID"]
    metadata = isengard_server.get(f"/studies/{answer['ID']}/metadata?expand").json()
    assert metadata["AnonymizedFrom"] == first["ParentStudy"]
    # The source is kept by default.
    assert isengard_server.get(f"/studies/{first['ParentStudy']}").status_code == 200


def test_patient_anonymization_maps_each_study_consistently(
        isengard_server: RunningServer, dicom_factory: DicomFactory) -> None:
    one = _load_study(isengard_server, dicom_factory, count=2, PatientID="P-MANY")
    _load_study(isengard_server, dicom_factory, count=2, PatientID="P-MANY")
    r = isengard_server.post(f"/patients/{one['ParentPatient']}/anonymize", json={})
    assert r.status_code == 200, r.text
    patient = isengard_server.get(f"/patients/{r.json()['ID']}").json()
    assert len(patient["Studies"]) == 2
    for study in patient["Studies"]:
        files = _files(isengard_server, "studies", study)
        assert len(files) == 2 and len({d.StudyInstanceUID for d in files}) == 1
    assert patient["AnonymizedFrom"] == one["ParentPatient"]


def test_series_modification_stays_in_its_study(isengard_server: RunningServer,
                                                dicom_factory: DicomFactory) -> None:
    first = _load_study(isengard_server, dicom_factory, count=2)
    r = isengard_server.post(f"/series/{first['ParentSeries']}/modify",
                             json={"Replace": {"SeriesDescription": "Modified"}})
    assert r.status_code == 200, r.text
    series = isengard_server.get(f"/series/{r.json()['ID']}").json()
    assert series["ModifiedFrom"] == first["ParentSeries"]
    assert series["MainDicomTags"]["SeriesDescription"] == "Modified"
    assert series["ParentStudy"] == first["ParentStudy"]
    # The unchanged study is not marked as modified (as Orthanc).
    assert "ModifiedFrom" not in isengard_server.get(
        f"/studies/{first['ParentStudy']}").json()


def test_keep_source_false_deletes_the_source(isengard_server: RunningServer,
                                              dicom_factory: DicomFactory) -> None:
    first = _load_study(isengard_server, dicom_factory, count=2)
    r = isengard_server.post(f"/studies/{first['ParentStudy']}/modify",
                             json={"Replace": {"StudyDescription": "Moved"},
                                   "KeepSource": False})
    assert r.status_code == 200, r.text
    assert isengard_server.get(f"/studies/{first['ParentStudy']}").status_code == 404
    assert isengard_server.get("/studies").json() == [r.json()["ID"]]


def test_asynchronous_modification_is_a_job(isengard_server: RunningServer,
                                            dicom_factory: DicomFactory) -> None:
    first = _load_study(isengard_server, dicom_factory, count=2)
    r = isengard_server.post(f"/studies/{first['ParentStudy']}/anonymize",
                             json={"Asynchronous": True})
    assert r.status_code == 200, r.text
    assert sorted(r.json()) == ["ID", "Path"] and r.json()["Path"] == f"/jobs/{r.json()['ID']}"
    job = _wait_job(isengard_server, r.json()["ID"])
    assert job["State"] == "Success" and job["Type"] == "ResourceModification"
    content = job["Content"]
    assert sorted(content) == ["Description", "FailedInstancesCount", "ID", "InstancesCount",
                               "IsAnonymization", "Path", "PatientID", "Type"]
    assert isengard_server.get(content["Path"]).status_code == 200


def test_errors_are_json(isengard_server: RunningServer, dicom_factory: DicomFactory) -> None:
    first = _load_study(isengard_server, dicom_factory, count=1)
    cases = [
        (f"/instances/{first['ID']}/modify", {"Replace": {"SOPInstanceUID": "1.2.3"}}, 400),
        (f"/studies/{first['ParentStudy']}/modify",
         {"Replace": {"StudyInstanceUID": "1.2.3"}}, 400),
        (f"/patients/{first['ParentPatient']}/modify", {"Replace": {"PatientName": "X"}},
         400),
        ("/studies/0000/anonymize", {}, 404),
        ("/instances/0000/modify", {}, 404),
    ]
    for path, body, status in cases:
        r = isengard_server.post(path, json=body)
        assert r.status_code == status, (path, r.text)
        assert r.json()["HttpStatus"] == status and r.json()["Details"]
    for raw in (b"{broken", b"[]", b""):
        r = isengard_server.post(f"/studies/{first['ParentStudy']}/modify", content=raw)
        assert r.status_code == 400 and r.json()["OrthancStatus"] == 15


def test_generate_uid(isengard_server: RunningServer) -> None:
    uids = {isengard_server.get(f"/tools/generate-uid?level={level}").text
            for level in ("study", "series", "instance")}
    assert len(uids) == 3 and all(re.fullmatch(r"2\.25\.\d+", u) for u in uids)
    patient = isengard_server.get("/tools/generate-uid?level=patient")
    assert re.fullmatch(r"[0-9a-f-]{36}", patient.text)
    bad = isengard_server.get("/tools/generate-uid?level=galaxy")
    assert bad.status_code == 404 and "level" in bad.json()["Details"]
