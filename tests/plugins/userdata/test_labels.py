"""Labels of resources (Orthanc 1.12's API; Orthanc 1.10, the compatibility oracle,
has none, so these run against Isengard alone)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def two_patients(isengard_server, dicom_factory):
    s = isengard_server
    first = s.upload(dicom_factory.instance(PatientID="P1"))
    second = s.upload(dicom_factory.instance(PatientID="P2"))
    return s, first, second


def _find(s, level, **extra):
    body = {"Level": level, "Query": {}, **extra}
    r = s.post("/tools/find", content=json.dumps(body))
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("level, key", [("patients", "ParentPatient"),
                                        ("studies", "ParentStudy"),
                                        ("series", "ParentSeries"), ("instances", "ID")])
def test_labels_on_every_level(two_patients, level, key):
    s, first, _ = two_patients
    path = f"/{level}/{first[key]}"
    assert s.get(f"{path}/labels").json() == []
    assert "Labels" not in s.get(path).json()  # answered as Orthanc 1.10 without labels
    for label in ("urgent", "Reviewed_by-2", "urgent"):
        r = s.put(f"{path}/labels/{label}")
        assert (r.status_code, r.text) == (200, "")
    assert s.get(f"{path}/labels").json() == ["Reviewed_by-2", "urgent"]
    assert s.get(f"{path}/labels/urgent").status_code == 200
    assert s.get(path).json()["Labels"] == ["Reviewed_by-2", "urgent"]
    assert s.delete(f"{path}/labels/urgent").status_code == 200
    assert s.delete(f"{path}/labels/urgent").status_code == 200  # idempotent
    assert s.get(f"{path}/labels/urgent").status_code == 404
    assert s.get(f"{path}/labels").json() == ["Reviewed_by-2"]


def test_tools_labels_and_expand(two_patients):
    s, first, second = two_patients
    s.put(f"/patients/{first['ParentPatient']}/labels/b")
    s.put(f"/studies/{second['ParentStudy']}/labels/a")
    s.put(f"/studies/{first['ParentStudy']}/labels/a")
    assert s.get("/tools/labels").json() == ["a", "b"]
    expanded = s.get("/patients?expand").json()
    assert [p.get("Labels") for p in expanded] == [["b"], None]
    s.delete(f"/patients/{first['ParentPatient']}")
    assert s.get("/tools/labels").json() == ["a"]  # labels go with their resource


def test_find_by_labels(two_patients):
    s, first, second = two_patients
    p1, p2 = first["ParentPatient"], second["ParentPatient"]
    s.put(f"/patients/{p1}/labels/red")
    s.put(f"/patients/{p1}/labels/blue")
    s.put(f"/patients/{p2}/labels/red")
    assert _find(s, "Patient", Labels=["red"]) == [p1, p2]
    assert _find(s, "Patient", Labels=["red", "blue"]) == [p1]  # All by default
    assert _find(s, "Patient", Labels=["red", "blue"], LabelsConstraint="All") == [p1]
    assert _find(s, "Patient", Labels=["blue", "green"], LabelsConstraint="Any") == [p1]
    assert _find(s, "Patient", Labels=["blue"], LabelsConstraint="None") == [p2]
    assert _find(s, "Patient", Labels=[]) == [p1, p2]
    assert _find(s, "Study", Labels=["red"]) == []  # labels belong to one level
    assert _find(s, "Patient", Labels=["red"], Query={"PatientID": "P2"}) == [p2]
    assert _find(s, "Patient", Labels=["red"], Limit=1, Since=1) == [p2]
    expanded = _find(s, "Patient", Labels=["blue"], Expand=True)
    assert expanded[0]["Labels"] == ["blue", "red"]


@pytest.mark.parametrize("label", ["with space", "a" * 65, "accent-é", "dot.ted"])
def test_invalid_labels_are_refused(two_patients, label):
    s, first, _ = two_patients
    r = s.put(f"/patients/{first['ParentPatient']}/labels/{label}")
    assert r.status_code == 400 and r.json()["HttpStatus"] == 400
    r = s.post("/tools/find", content=json.dumps({"Level": "Patient", "Query": {},
                                                   "Labels": [label]}))
    assert r.status_code == 400


def test_label_errors(two_patients):
    s, first, _ = two_patients
    assert s.put(f"/patients/{'a' * 64}/labels/ok").status_code == 404
    assert s.put(f"/patients/{first['ParentPatient']}/labels/{'a' * 64}").status_code == 200
    for bad in ({"Labels": "red"}, {"Labels": [1]}, {"Labels": ["red"],
                                                      "LabelsConstraint": "Some"}):
        body = {"Level": "Patient", "Query": {}, **bad}
        assert s.post("/tools/find", content=json.dumps(body)).status_code == 400, bad
