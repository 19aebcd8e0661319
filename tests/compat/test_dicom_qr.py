"""Query/retrieve between Isengard and Orthanc, in both directions, and the same C-FIND
answered by both."""

from __future__ import annotations

import time

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE

from tests.conftest import sample

pytestmark = pytest.mark.orthanc

FILES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm"]


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.05)


@pytest.fixture
def linked(orthanc, isengard_factory):
    """An empty Orthanc and an empty Isengard, each declared as a modality of the other."""
    orthanc.reset()
    isengard = isengard_factory({
        "dicom": {"aet": "ISENGARD"},
        "modalities": {"orthanc": ["ORTHANC", "127.0.0.1", orthanc.dicom_port]}})
    r = orthanc.client.put("/modalities/isengard", json={
        "AET": "ISENGARD", "Host": "127.0.0.1", "Port": isengard.dicom_port})
    assert r.status_code == 200
    yield isengard, orthanc
    orthanc.client.delete("/modalities/isengard")


def test_isengard_queries_and_retrieves_from_orthanc(linked):
    isengard, orthanc = linked
    for name in FILES:
        orthanc.post("/instances", content=sample(name))
    assert isengard.post("/modalities/orthanc/echo", json={}).status_code == 200
    query = isengard.post("/modalities/orthanc/query",
                          json={"Level": "Study", "Query": {"PatientID": "*",
                                                            "StudyDescription": ""}}).json()
    answers = isengard.get(f"{query['Path']}/answers").json()
    assert len(answers) == len(orthanc.get("/studies").json())
    content = isengard.get(f"{query['Path']}/answers/0/content?simplify").json()
    assert "StudyInstanceUID" in content
    job = isengard.post(f"{query['Path']}/retrieve", json={"TargetAet": "ISENGARD"})
    assert job.status_code == 200, job.text
    assert sorted(isengard.get("/instances").json()) == sorted(orthanc.get("/instances").json())
    # child query of one answer
    series = isengard.post(f"{query['Path']}/answers/0/query-series", json={}).json()
    assert isengard.get(f"{series['Path']}/answers").json()


def test_orthanc_queries_and_retrieves_from_isengard(linked):
    isengard, orthanc = linked
    for name in FILES:
        isengard.upload(sample(name))
    assert orthanc.post("/modalities/isengard/echo", json={}).status_code == 200
    r = orthanc.post("/modalities/isengard/query",
                     json={"Level": "Study", "Query": {"PatientName": "*"}})
    assert r.status_code == 200, r.text
    query = r.json()
    answers = orthanc.get(f"/queries/{query['ID']}/answers").json()
    assert len(answers) == len(isengard.get("/studies").json())
    r = orthanc.post(f"/queries/{query['ID']}/retrieve", json={"TargetAet": "ORTHANC"})
    assert r.status_code == 200, r.text
    wait_for(lambda: len(orthanc.get("/instances").json()) == len(FILES) - 0)
    assert sorted(orthanc.get("/instances").json()) == sorted(isengard.get("/instances").json())


def c_find(port: int, aet_called: str, level: str, keys: dict[str, str]) -> list[Dataset]:
    ae = AE(ae_title="ISENGARD")  # a caller both servers know
    ae.add_requested_context("1.2.840.10008.5.1.4.1.2.2.1")
    query = Dataset()
    query.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    assoc = ae.associate("127.0.0.1", port, ae_title=aet_called)
    assert assoc.is_established
    answers = [ds for status, ds in assoc.send_c_find(query, "1.2.840.10008.5.1.4.1.2.2.1")
               if ds is not None]
    assoc.release()
    return answers


QUERIES = [
    ("STUDY", {"PatientID": "", "StudyInstanceUID": "", "StudyDate": "", "PatientName": ""}),
    ("STUDY", {"PatientName": "compressed*", "StudyInstanceUID": "",
               "NumberOfStudyRelatedInstances": "", "ModalitiesInStudy": ""}),
    ("STUDY", {"StudyDate": "20040101-20041231", "StudyInstanceUID": "",
               "AccessionNumber": "", "StudyDescription": ""}),
    ("STUDY", {"ModalitiesInStudy": "CT\\MR", "StudyInstanceUID": ""}),
    ("SERIES", {"Modality": "MR", "SeriesInstanceUID": "", "SeriesNumber": "",
                "NumberOfSeriesRelatedInstances": ""}),
    ("IMAGE", {"SOPInstanceUID": "", "InstanceNumber": "", "SOPClassUID": ""}),
]


@pytest.mark.parametrize("level, keys", QUERIES, ids=[f"{q[0]}-{i}" for i, q in
                                                      enumerate(QUERIES)])
def test_same_cfind_same_answers(linked, level, keys):
    isengard, orthanc = linked
    for name in FILES:
        isengard.upload(sample(name))
        orthanc.post("/instances", content=sample(name))
    # Isengard must accept C-FIND from its own AE title used as the caller here
    isengard.put("/modalities/self", json={"AET": "ISENGARD", "Host": "127.0.0.1",
                                           "Port": isengard.dicom_port})
    ours = c_find(isengard.dicom_port, "ISENGARD", level, keys)
    theirs = c_find(orthanc.dicom_port, "ORTHANC", level, keys)
    unique = {"STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID",
              "IMAGE": "SOPInstanceUID"}[level]
    by_uid = {str(d.get(unique)): d for d in ours}
    assert set(by_uid) == {str(d.get(unique)) for d in theirs}
    for answer in theirs:
        mine = by_uid[str(answer.get(unique))]
        expected = {e.keyword for e in answer if e.keyword != "RetrieveAETitle"}
        assert {e.keyword for e in mine} >= expected - {"SpecificCharacterSet"}
        for keyword in keys:
            if keyword in answer and answer[keyword].value not in (None, ""):
                assert str(mine[keyword].value) == str(answer[keyword].value), keyword
