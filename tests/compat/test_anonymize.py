"""Modification and anonymization side by side with Orthanc: the same request on the same
file must remove, empty, replace and keep the same tags (generated values differ, which
values changed must not), and the result must be as valid as Orthanc's (``dciodvfy``)."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pydicom
import pytest

from isengard_sdk.testing import DicomFactory
from tests.conftest import sample
from tests.plugins.anonymizer.sequences import flat, sequence_dataset

from .compare import Pair, error_keys

pytestmark = pytest.mark.orthanc

FILES = ["CT_small.dcm", "MR_small.dcm", "rtstruct.dcm", "rtplan.dcm", "test-SR.dcm",
         "ExplVR_BigEnd.dcm", "JPEG2000.dcm"]
ANONYMIZE_BODIES = [
    {},
    {"DicomVersion": "2017c"},
    {"DicomVersion": "2008", "KeepPrivateTags": True},
    {"Keep": ["StudyDescription", "SeriesDescription", "PatientName"],
     "Remove": ["Manufacturer"], "Replace": {"InstitutionName": "Somewhere"}},
]
MODIFY_BODIES = [
    {"Replace": {"PatientName": "Modified^Name", "StudyDescription": "Changed"},
     "Remove": ["SeriesDescription"]},
    {"RemovePrivateTags": True, "Replace": {"StudyInstanceUID": "1.2.3.4"}, "Force": True},
    {"Keep": ["SOPInstanceUID"], "Force": True, "Replace": {"InstanceNumber": "42"}},
]


def _signature(dataset: pydicom.Dataset, original: pydicom.Dataset,
               path: str = "") -> dict[str, str]:
    """tag path → "removed" | "emptied" | "changed" | "kept" | "added", at any depth."""
    out: dict[str, str] = {}
    for element in original:
        key = f"{path}{element.tag:08X}"
        if element.tag.element == 0:
            # Known difference: group lengths (retired, PS3.5 7.2) are recomputed by
            # Orthanc and dropped by Isengard (pydicom).
            continue
        if element.tag not in dataset:
            out[key] = "removed"
            continue
        new = dataset[element.tag]
        if element.VR == "SQ":
            if not new.value and element.value:
                out[key] = "emptied"
                continue
            out[key] = "kept" if len(new.value) == len(element.value) else "changed"
            for i, (a, b) in enumerate(zip(new.value, element.value, strict=False)):
                out.update(_signature(a, b, f"{key}[{i}]."))
            continue
        if new.value in (None, "", b"") and element.value not in (None, "", b""):
            out[key] = "emptied"
        else:
            out[key] = "kept" if new.value == element.value else "changed"
    for element in dataset:
        if element.tag not in original and element.tag.element != 0:
            out[f"{path}{element.tag:08X}"] = "added"
    return out


def _read(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data), force=True)


def _dciodvfy_errors(data: bytes, tmp: Path) -> set[str]:
    """The error lines of dciodvfy, without the values they quote."""
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy is not installed (apt-get install dicom3tools)")
    path = tmp / "checked.dcm"
    path.write_bytes(data)
    run = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    return {re.sub(r"(<[^>]*>|\[[^\]]*\])", "…", line) for line in lines
            if line.startswith("Error")}


def _diff(ours: dict[str, str], theirs: dict[str, str]) -> dict[str, tuple[Any, Any]]:
    return {k: (ours.get(k), theirs.get(k)) for k in sorted(set(ours) | set(theirs))
            if ours.get(k) != theirs.get(k)}


@pytest.fixture(scope="module")
def uploaded(pair: Pair) -> dict[str, str]:
    """file name → instance ID (the same on both servers)."""
    ids = {}
    for name in FILES:
        ours, theirs = pair.post("/instances", content=sample(name))
        assert (ours.status_code, theirs.status_code) == (200, 200), name
        assert ours.json()["ID"] == theirs.json()["ID"]
        ids[name] = theirs.json()["ID"]
    return ids


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("action,body", [("anonymize", b) for b in ANONYMIZE_BODIES]
                         + [("modify", b) for b in MODIFY_BODIES])
def test_instance_answer_changes_the_same_tags(pair: Pair, uploaded: dict[str, str],
                                               name: str, action: str, body: dict[str, Any],
                                               tmp_path: Path) -> None:
    path = f"/instances/{uploaded[name]}/{action}"
    ours, theirs = pair.post(path, content=json.dumps(body))
    assert (ours.status_code, theirs.status_code) == (200, 200), (ours.text, theirs.text)
    assert ours.headers["content-type"] == theirs.headers["content-type"] \
        == "application/dicom"
    original = _read(sample(name))
    ours_ds, theirs_ds = _read(ours.content), _read(theirs.content)
    assert _diff(_signature(ours_ds, original), _signature(theirs_ds, original)) == {}
    assert ours_ds.file_meta.TransferSyntaxUID == theirs_ds.file_meta.TransferSyntaxUID
    assert ours_ds.file_meta.MediaStorageSOPInstanceUID == ours_ds.SOPInstanceUID
    if action == "anonymize":
        assert str(ours_ds.PatientIdentityRemoved) == "YES"
    # As valid as Orthanc's result: no dciodvfy error that Orthanc's file does not have.
    assert _dciodvfy_errors(ours.content, tmp_path) <= \
        _dciodvfy_errors(theirs.content, tmp_path)


def _study_files(pair: Pair, answer: dict[str, Any], server: Any) -> list[pydicom.Dataset]:
    instances = server.get(f"/studies/{answer['ID']}/instances").json()
    files = [_read(server.get(f"/instances/{i['ID']}/file").content) for i in instances]
    return sorted(files, key=lambda d: int(d.InstanceNumber))


@pytest.mark.parametrize("action,body", [
    ("anonymize", {}),
    ("modify", {"Replace": {"StudyDescription": "Study level"}, "Remove": ["StudyID"]}),
])
def test_study_level_changes_the_same_tags_and_metadata(pair: Pair, action: str,
                                                        body: dict[str, Any]) -> None:
    factory = DicomFactory()
    files = factory.series(3, PatientID=f"CMP-{action}")
    for data in files:
        pair.post("/instances", content=data)
    study = pair.orthanc.get("/studies").json()
    study_id = next(s for s in study if pair.orthanc.get(f"/studies/{s}").json()
                    ["PatientMainDicomTags"].get("PatientID") == f"CMP-{action}")
    ours, theirs = pair.post(f"/studies/{study_id}/{action}", content=json.dumps(body))
    assert (ours.status_code, theirs.status_code) == (200, 200), (ours.text, theirs.text)
    assert sorted(ours.json()) == sorted(theirs.json())
    assert ours.json()["Type"] == "Study" and ours.json()["InstancesCount"] == 3
    originals = [_read(d) for d in files]
    results = {}
    for label, server, answer in (("ours", pair.isengard, ours.json()),
                                  ("theirs", pair.orthanc, theirs.json())):
        got = _study_files(pair, answer, server)
        results[label] = got
        assert len({d.StudyInstanceUID for d in got}) == 1
        assert len({d.SeriesInstanceUID for d in got}) == 1
        assert len({d.SOPInstanceUID for d in got}) == 3
    for mine, orthancs, original in zip(results["ours"], results["theirs"], originals,
                                        strict=True):
        assert _diff(_signature(mine, original), _signature(orthancs, original)) == {}
    # The same levels carry AnonymizedFrom / ModifiedFrom.
    for level in ("patients", "studies"):
        mine = pair.isengard.get(f"/studies/{ours.json()['ID']}").json()
        orthancs = pair.orthanc.get(f"/studies/{theirs.json()['ID']}").json()
        if level == "patients":
            mine = pair.isengard.get(f"/patients/{mine['ParentPatient']}").json()
            orthancs = pair.orthanc.get(f"/patients/{orthancs['ParentPatient']}").json()
        key = "AnonymizedFrom" if action == "anonymize" else "ModifiedFrom"
        assert (key in mine) == (key in orthancs), level


@pytest.mark.parametrize("path,body", [
    ("/instances/{i}/modify", {"Replace": {"StudyInstanceUID": "1.2.3"}}),
    ("/instances/{i}/modify", {"Remove": ["SOPInstanceUID"]}),
    ("/studies/{s}/anonymize", {"Keep": ["SeriesInstanceUID"]}),
    ("/patients/{p}/modify", {"Replace": {"PatientName": "X"}}),
    ("/instances/{i}/anonymize", {"DicomVersion": "2020"}),
    ("/instances/{i}/modify", {"Force": "yes"}),
    ("/instances/{i}/modify", {"Replace": {"PatientName": 3}}),
    ("/instances/{i}/modify", "[1, 2]"),
    ("/instances/{i}/modify", "{not json"),
    ("/studies/unknown/modify", {}),
    ("/instances/{i}/modify", {"Replace": {"Rows": "abc"}}),
    # paths into sequences
    ("/instances/{i}/modify", {"Remove": ["ReferencedImageSequence.InstitutionName"]}),
    ("/instances/{i}/modify", {"Remove": ["[0].InstitutionName"]}),
    ("/instances/{i}/modify", {"Remove": ["ReferencedImageSequence[0.InstitutionName"]}),
    ("/instances/{i}/anonymize", {"Keep": ["ReferencedImageSequence[-1].InstitutionName"]}),
    ("/instances/{i}/modify", {"Replace": {"ReferencedImageSequence[a].CodeValue": "x"}}),
    ("/instances/{i}/modify", {"Replace": {"ReferencedImageSequence[0].CodeValue": ["a"]}}),
    ("/instances/{i}/modify", {"Replace": {"ReferencedImageSequence[3].Rows": "abc"}}),
    ("/instances/{i}/modify",
     {"Replace": {"ReferencedImageSequence[0].PurposeOfReferenceCodeSequence": "a"}}),
    ("/instances/{i}/modify",
     {"Replace": {"ReferencedImageSequence[0].PurposeOfReferenceCodeSequence": ["a"]}}),
])
def test_errors_have_orthancs_status(pair: Pair, uploaded: dict[str, str], path: str,
                                     body: Any) -> None:
    instance = pair.orthanc.get(f"/instances/{uploaded['CT_small.dcm']}").json()
    series = pair.orthanc.get(f"/series/{instance['ParentSeries']}").json()
    study = pair.orthanc.get(f"/studies/{series['ParentStudy']}").json()
    url = path.format(i=instance["ID"], s=series["ParentStudy"], p=study["ParentPatient"])
    content = body if isinstance(body, str) else json.dumps(body)
    ours, theirs = pair.post(url, content=content)
    assert ours.status_code == theirs.status_code, (ours.text, theirs.text)
    assert error_keys(ours) == error_keys(theirs)
    assert ours.json()["OrthancStatus"] == theirs.json()["OrthancStatus"]


@pytest.mark.parametrize("body", [
    {"Remove": ["NoSuchKeyword"]},
    {"Remove": ["ReferencedImageSequence[0].NoSuchKeyword"]},
    {"Keep": ["ReferencedImageSequence[0]"]},
    {"Replace": {"ReferencedImageSequence[*]": "x"}},
])
def test_unknown_tags_are_400_not_500(pair: Pair, uploaded: dict[str, str],
                                      body: dict[str, Any]) -> None:
    """Deliberate difference (docs/compatibility.md): Orthanc answers an unknown tag, or a
    path ending with an item index, with HTTP 500; Isengard with 400, same OrthancStatus."""
    ours, theirs = pair.post(f"/instances/{uploaded['CT_small.dcm']}/modify",
                             content=json.dumps(body))
    assert (ours.status_code, theirs.status_code) == (400, 500), (ours.text, theirs.text)
    assert ours.json()["OrthancStatus"] == theirs.json()["OrthancStatus"] == 27


# -- paths into sequences ---------------------------------------------------------------

RIS = "ReferencedImageSequence"
SYNTHETIC = "sequences (synthetic)"
PATH_CASES: list[tuple[str, str, dict[str, Any]]] = [
    (SYNTHETIC, "modify", {"Replace": {
        f"{RIS}[1].ReferencedSOPInstanceUID": "9.9.9",
        "0008,1140[*].0040,a170[0].0008,0100": "ALL",
        f"{RIS}[0].ReferencedFrameNumber": "3",
        f"{RIS}[5].InstitutionName": "out of range", "PatientName[0].CodeValue": "x",
        "ReferencedPatientSequence[0].ReferencedSOPInstanceUID": "1.2"}}),
    (SYNTHETIC, "modify", {
        "Remove": [f"{RIS}[*].InstitutionName", f"{RIS}[1].PurposeOfReferenceCodeSequence",
                   "SourceImageSequence[0].SeriesInstanceUID", f"{RIS}[0].00091001"],
        "Replace": {"SourceImageSequence[0].StudyInstanceUID": "1.2.3"}}),
    (SYNTHETIC, "modify", {
        "Replace": {RIS: [{"CodeValue": "A", "CodeMeaning": "M"}],
                    f"{RIS}[0].InstitutionName": "x", f"{RIS}[0].CodeValue": "B"},
        "Remove": [f"{RIS}[0].CodeMeaning", f"{RIS}[0].CodeValue"],
        "Keep": [f"{RIS}[0].InstitutionName"]}),
    (SYNTHETIC, "modify", {"Replace": {
        f"{RIS}[0].PurposeOfReferenceCodeSequence": [{"CodeValue": "Z"}],
        f"{RIS}[1].PurposeOfReferenceCodeSequence[0].00091001": "private"}}),
    (SYNTHETIC, "anonymize", {}),
    (SYNTHETIC, "anonymize", {"Keep": [
        f"{RIS}[0].InstitutionName", f"{RIS}[*].ReferencedSOPInstanceUID",
        "SourceImageSequence[0].StudyInstanceUID", "SourceImageSequence[0].PatientID"]}),
    (SYNTHETIC, "anonymize", {"Keep": [
        f"{RIS}[1].PurposeOfReferenceCodeSequence", "SourceImageSequence",
        f"{RIS}[0].00091001", "PurposeOfReferenceCodeSequence"]}),
    (SYNTHETIC, "anonymize", {"Keep": [RIS, "ReferencedStudySequence[0].ReferencedSOPClassUID",
                                       "StudyInstanceUID"], "Force": True}),
    (SYNTHETIC, "anonymize", {
        "Replace": {f"{RIS}[0].ReferencedSOPInstanceUID": "1.2.3.4.2",
                    f"{RIS}[0].InstitutionName": "Replaced",
                    "SourceImageSequence[0].PatientID": "Someone"},
        "Remove": [f"{RIS}[1].ReferencedSOPClassUID", "SourceImageSequence[0].PatientID"],
        "Keep": [f"{RIS}[1].ReferencedSOPClassUID"]}),
    (SYNTHETIC, "anonymize", {"Replace": {RIS: [
        {"InstitutionName": "M", "StudyDate": "20200101", "CodeValue": "A",
         "ReferencedSOPInstanceUID": "1.2.3.4.1", "00090010": "CREATOR",
         "00091001": "pv"}]}}),
    ("rtplan.dcm", "modify", {
        "Replace": {"BeamSequence[0].BeamLimitingDeviceSequence[*].NumberOfLeafJawPairs": "2",
                    "FractionGroupSequence[0].ReferencedBeamSequence[0].BeamMeterset": "12.5"},
        "Remove": ["DoseReferenceSequence[1].DoseReferenceDescription"]}),
    ("rtplan.dcm", "anonymize", {"Keep": [
        "BeamSequence[0].InstitutionName",
        "ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID"]}),
    ("test-SR.dcm", "modify", {
        "Replace": {"ContentSequence[*].ConceptNameCodeSequence[0].CodeMeaning": "M"},
        "Remove": ["VerifyingObserverSequence[*].VerifyingObserverName"]}),
    ("test-SR.dcm", "anonymize", {
        "Keep": ["PredecessorDocumentsSequence"],
        "Replace": {"VerifyingObserverSequence[1].VerifyingOrganization": "Org"}}),
    ("CT_small.dcm", "anonymize", {"Keep": ["OtherPatientIDsSequence[1].PatientID"]}),
]
# Values each server generates its own way: UIDs (Orthanc's root, or 2.25), PatientID
# (a UUID), PatientName (Anonymized<N>), DeidentificationMethod (the product's name).
_GENERATED = [
    (re.compile(r"^(2\.25\.\d+|1\.2\.276\.0\.7230010\.3\.[\d.]+)$"), "<new UID>"),
    (re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"), "<UUID>"),
    (re.compile(r"^Anonymized\d+$"), "<Anonymized N>"),
    (re.compile(r"^(Orthanc|Isengard) [\d.]+ - "), "<method>"),
]


def _normalised(ds: pydicom.Dataset) -> dict[str, Any]:
    """:func:`flat` with generated values replaced by a placeholder."""
    out = {}
    for key, value in flat(ds).items():
        for pattern, placeholder in _GENERATED:
            if isinstance(value, str) and pattern.search(value):
                value = placeholder
        out[key] = value
    return out


@pytest.fixture(scope="module")
def with_sequences(pair: Pair, uploaded: dict[str, str]) -> dict[str, tuple[str, bytes]]:
    """file name → (instance ID, original bytes), the synthetic sequence file included."""
    data = DicomFactory.encode(sequence_dataset(DicomFactory()))
    ours, theirs = pair.post("/instances", content=data)
    assert (ours.status_code, theirs.status_code) == (200, 200)
    assert ours.json()["ID"] == theirs.json()["ID"]
    files = {name: (instance, sample(name)) for name, instance in uploaded.items()}
    files[SYNTHETIC] = (theirs.json()["ID"], data)
    return files


@pytest.mark.parametrize("name,action,body", PATH_CASES)
def test_paths_change_the_same_tags_to_the_same_values(
        pair: Pair, with_sequences: dict[str, tuple[str, bytes]], name: str, action: str,
        body: dict[str, Any]) -> None:
    instance, data = with_sequences[name]
    ours, theirs = pair.post(f"/instances/{instance}/{action}", content=json.dumps(body))
    assert (ours.status_code, theirs.status_code) == (200, 200), (ours.text, theirs.text)
    original, ours_ds, theirs_ds = _read(data), _read(ours.content), _read(theirs.content)
    assert _diff(_signature(ours_ds, original), _signature(theirs_ds, original)) == {}
    mine, orthancs = _normalised(ours_ds), _normalised(theirs_ds)
    assert _diff(mine, orthancs) == {}


def test_generate_uid(pair: Pair) -> None:
    for level in ("patient", "study", "series", "instance"):
        ours, theirs = pair.get(f"/tools/generate-uid?level={level}")
        assert (ours.status_code, theirs.status_code) == (200, 200)
        if level == "patient":  # a UUID on both
            assert re.fullmatch(r"[0-9a-f-]{36}", ours.text)
        else:
            assert re.fullmatch(r"[0-9.]{1,64}", ours.text)
    ours, theirs = pair.get("/tools/generate-uid?level=nope")
    assert ours.status_code == theirs.status_code == 404
