"""Tag paths into sequences in ``Replace``, ``Remove`` and ``Keep``, over REST (the
behaviour was read off Orthanc 1.10.1; ``tests/compat/test_anonymize.py`` checks it side
by side)."""

from __future__ import annotations

import io
import time
from typing import Any

import pydicom
import pytest

from isengard_sdk.testing import DicomFactory, RunningServer

from .sequences import flat, sequence_dataset

RIS = "ReferencedImageSequence"
# Tags that an instance-level modification or any anonymization always changes.
GENERATED = {"SOPInstanceUID"}


@pytest.fixture
def loaded(isengard_server: RunningServer, dicom_factory: DicomFactory
           ) -> tuple[RunningServer, str, dict[str, Any]]:
    """The server, the ID of the uploaded sequence instance, its flattened tags."""
    ds = sequence_dataset(dicom_factory)
    instance = isengard_server.upload(dicom_factory.encode(ds))["ID"]
    return isengard_server, instance, flat(ds)


def _post(server: RunningServer, instance: str, action: str, body: dict[str, Any]
          ) -> dict[str, Any]:
    r = server.post(f"/instances/{instance}/{action}", json=body)
    assert r.status_code == 200, r.text
    return flat(pydicom.dcmread(io.BytesIO(r.content)))


def _changes(before: dict[str, Any], after: dict[str, Any],
             ignore: set[str] = GENERATED) -> dict[str, tuple[Any, Any]]:
    return {k: (before.get(k), after.get(k)) for k in sorted(set(before) | set(after))
            if k not in ignore and before.get(k) != after.get(k)}


@pytest.mark.parametrize("path", [
    f"{RIS}[1].ReferencedSOPInstanceUID",
    "0008,1140[1].0008,1155",
    "00081140[1].00081155",
    "(0008,1140)[1].ReferencedSOPInstanceUID",
    f" {RIS} [ +1 ] . ReferencedSOPInstanceUID ",
])
def test_modify_replaces_exactly_the_element_of_the_path(loaded: Any, path: str) -> None:
    server, instance, before = loaded
    after = _post(server, instance, "modify", {"Replace": {path: "9.9.9"}})
    assert _changes(before, after) == {
        f"{RIS}[1].ReferencedSOPInstanceUID": ("1.2.3.4.2", "9.9.9")}


def test_wildcards_nesting_and_insertion(loaded: Any) -> None:
    server, instance, before = loaded
    after = _post(server, instance, "modify", {"Replace": {
        f"{RIS}[*].PurposeOfReferenceCodeSequence[*].CodeValue": "ALL",
        f"{RIS}[0].ReferencedFrameNumber": "3",  # absent from the item: inserted
    }})
    assert _changes(before, after) == {
        f"{RIS}[0].PurposeOfReferenceCodeSequence[0].CodeValue": ("C0", "ALL"),
        f"{RIS}[1].PurposeOfReferenceCodeSequence[0].CodeValue": ("C1", "ALL"),
        f"{RIS}[0].ReferencedFrameNumber": (None, "3"),
    }


def test_a_path_that_reaches_nothing_changes_nothing(loaded: Any) -> None:
    """An index out of range, a path through a non-sequence or an absent sequence is
    ignored (Orthanc answers 200 with the file unchanged)."""
    server, instance, before = loaded
    after = _post(server, instance, "modify", {
        "Replace": {f"{RIS}[2].InstitutionName": "x", "PatientName[0].CodeValue": "x",
                    "ReferencedPatientSequence[0].ReferencedSOPInstanceUID": "1.2",
                    "ReferencedPatientSequence[*].ReferencedSOPInstanceUID": "1.2"},
        "Remove": [f"{RIS}[7].InstitutionName", "StudyDate[0].InstitutionName"]})
    assert _changes(before, after) == {}


def test_replace_a_nested_sequence_by_a_list_of_objects(loaded: Any) -> None:
    server, instance, before = loaded
    after = _post(server, instance, "modify", {"Replace": {
        f"{RIS}[0].PurposeOfReferenceCodeSequence": [{"CodeValue": "Z"}]}})
    nested = f"{RIS}[0].PurposeOfReferenceCodeSequence[0]."
    assert _changes(before, after) == {
        nested + "CodeValue": ("C0", "Z"), nested + "CodingSchemeDesignator": ("DCM", None),
        nested + "CodeMeaning": ("Meaning 0", None),
        nested + "InstitutionName": ("Deep 0", None),
        nested + "ReferencedSOPInstanceUID": ("1.2.3.5.0", None)}


def test_remove_a_path(loaded: Any) -> None:
    server, instance, before = loaded
    after = _post(server, instance, "modify", {"Remove": [
        f"{RIS}[*].InstitutionName", f"{RIS}[1].PurposeOfReferenceCodeSequence"]})
    changes = _changes(before, after)
    assert changes.pop(f"{RIS}[0].InstitutionName") == ("Nested 0", None)
    assert changes.pop(f"{RIS}[1].InstitutionName") == ("Nested 1", None)
    assert changes.pop(f"{RIS}[1].PurposeOfReferenceCodeSequence") == ("SQ1", None)
    assert all(k.startswith(f"{RIS}[1].PurposeOfReferenceCodeSequence[0].")
               and new is None for k, (_, new) in changes.items())
    assert after["InstitutionName"] == "Top hospital"  # the top-level tag is untouched


def test_order_of_paths_and_top_level_operations(loaded: Any) -> None:
    """Top-level operations first, then path removals, then path replacements; ``Keep``
    of a path does not cancel a replacement of it (as Orthanc)."""
    server, instance, before = loaded
    name = f"{RIS}[0].InstitutionName"
    after = _post(server, instance, "modify", {
        "Remove": [name, f"{RIS}[1].InstitutionName", f"{RIS}[0].CodeMeaning"],
        "Replace": {name: "replaced", RIS: [{"CodeValue": "A", "CodeMeaning": "M"}]},
        "Keep": [name]})
    assert after[f"{RIS}"] == "SQ1" and after[f"{RIS}[0].CodeValue"] == "A"
    assert f"{RIS}[0].CodeMeaning" not in after  # removed after the sequence was replaced
    assert after[name] == "replaced"
    removed_first = _post(server, instance, "modify", {
        "Remove": [RIS], "Replace": {name: "x"}})
    assert RIS not in removed_first


def test_identifiers_in_sequences_need_no_force(loaded: Any) -> None:
    server, instance, before = loaded
    after = _post(server, instance, "modify", {
        "Replace": {"SourceImageSequence[0].StudyInstanceUID": "1.2.3"},
        "Remove": ["SourceImageSequence[0].SeriesInstanceUID"]})
    assert _changes(before, after) == {
        "SourceImageSequence[0].StudyInstanceUID": (before["StudyInstanceUID"], "1.2.3"),
        "SourceImageSequence[0].SeriesInstanceUID": (before["SeriesInstanceUID"], None)}


ANONYMIZED = {"PatientID", "PatientName", "StudyInstanceUID", "SeriesInstanceUID",
              "SOPInstanceUID"}


def test_anonymize_keeps_a_path(loaded: Any) -> None:
    server, instance, before = loaded
    plain = _post(server, instance, "anonymize", {})
    assert f"{RIS}[0].InstitutionName" not in plain
    assert plain[f"{RIS}[0].ReferencedSOPInstanceUID"] != "1.2.3.4.1"
    after = _post(server, instance, "anonymize", {"Keep": [
        f"{RIS}[0].InstitutionName", f"{RIS}[*].ReferencedSOPInstanceUID",
        "SourceImageSequence[0].StudyInstanceUID"]})
    assert after[f"{RIS}[0].InstitutionName"] == "Nested 0"
    assert f"{RIS}[1].InstitutionName" not in after
    assert after[f"{RIS}[1].ReferencedSOPInstanceUID"] == "1.2.3.4.2"
    assert after["SourceImageSequence[0].StudyInstanceUID"] == before["StudyInstanceUID"]
    assert after["StudyInstanceUID"] != before["StudyInstanceUID"]
    # The rest is anonymized as without the Keep.
    assert f"{RIS}[0].PurposeOfReferenceCodeSequence[0].InstitutionName" not in after
    assert after["SourceImageSequence[0].PatientID"] == after["PatientID"] != "SEQ-PATHS"


def test_anonymize_keeps_a_whole_sequence(loaded: Any) -> None:
    """Keeping a sequence (by path, or by name at the top level) leaves everything in it
    alone: removals, emptied tags, private tags, UIDs and identifiers."""
    server, instance, before = loaded
    after = _post(server, instance, "anonymize", {"Keep": [
        f"{RIS}[1].PurposeOfReferenceCodeSequence", "SourceImageSequence"]})
    deep = f"{RIS}[1].PurposeOfReferenceCodeSequence[0]."
    assert {k: v for k, v in after.items() if k.startswith(deep)} == \
        {k: v for k, v in before.items() if k.startswith(deep)}
    assert {k: v for k, v in after.items() if k.startswith("SourceImageSequence")} == \
        {k: v for k, v in before.items() if k.startswith("SourceImageSequence")}
    assert f"{RIS}[0].PurposeOfReferenceCodeSequence[0].InstitutionName" not in after
    whole = _post(server, instance, "anonymize", {"Keep": [RIS]})
    assert {k: v for k, v in whole.items() if k.startswith(RIS)} == \
        {k: v for k, v in before.items() if k.startswith(RIS)}


def test_anonymize_replace_and_remove_paths_come_last(loaded: Any) -> None:
    server, instance, before = loaded
    after = _post(server, instance, "anonymize", {
        "Replace": {f"{RIS}[0].ReferencedSOPInstanceUID": "1.2.3.4.2",
                    f"{RIS}[0].InstitutionName": "Replaced",
                    "SourceImageSequence[0].StudyInstanceUID": before["StudyInstanceUID"]},
        "Remove": [f"{RIS}[1].ReferencedSOPClassUID"],
        "Keep": [f"{RIS}[1].ReferencedSOPClassUID"]})
    # Neither the profile nor the UID map touch what a path replaced.
    assert after[f"{RIS}[0].ReferencedSOPInstanceUID"] == "1.2.3.4.2"
    assert after[f"{RIS}[1].ReferencedSOPInstanceUID"] not in ("1.2.3.4.2", "1.2.3.4.1")
    assert after[f"{RIS}[0].InstitutionName"] == "Replaced"
    assert after["SourceImageSequence[0].StudyInstanceUID"] == before["StudyInstanceUID"]
    assert f"{RIS}[1].ReferencedSOPClassUID" not in after  # Remove wins over Keep


def test_anonymize_processes_a_replaced_sequence(loaded: Any) -> None:
    """Orthanc applies the profile inside sequences after the top-level replacements."""
    server, instance, before = loaded
    after = _post(server, instance, "anonymize", {"Replace": {RIS: [
        {"InstitutionName": "M", "StudyDate": "20200101", "CodeValue": "A",
         "ReferencedSOPInstanceUID": "1.2.3.4.1"}]}})
    assert f"{RIS}[0].InstitutionName" not in after and after[f"{RIS}[0].StudyDate"] == ""
    assert after[f"{RIS}[0].CodeValue"] == "A"
    assert after[f"{RIS}[0].ReferencedSOPInstanceUID"] != "1.2.3.4.1"


def _wait_job(server: RunningServer, job_id: str) -> dict[str, Any]:
    while True:  # readiness wait, bounded by the test runner's timeout
        job = server.get(f"/jobs/{job_id}").json()
        if job["State"] in ("Success", "Failure"):
            return job
        time.sleep(0.05)


def test_study_modification_job_applies_paths(loaded: Any) -> None:
    server, instance, before = loaded
    study = server.get(f"/instances/{instance}/study").json()["ID"]
    r = server.post(f"/studies/{study}/modify", json={
        "Replace": {f"{RIS}[*].InstitutionName": "Everywhere"},
        "Remove": [f"{RIS}[0].PurposeOfReferenceCodeSequence"], "Asynchronous": True})
    assert r.status_code == 200, r.text
    job = _wait_job(server, r.json()["ID"])
    assert job["State"] == "Success", job
    files = server.get(f"{job['Content']['Path']}/instances").json()
    after = flat(pydicom.dcmread(io.BytesIO(
        server.get(f"/instances/{files[0]['ID']}/file").content)))
    assert after[f"{RIS}[0].InstitutionName"] == after[f"{RIS}[1].InstitutionName"] \
        == "Everywhere"
    assert f"{RIS}[0].PurposeOfReferenceCodeSequence" not in after
    assert after[f"{RIS}[1].PurposeOfReferenceCodeSequence"] == "SQ1"


@pytest.mark.parametrize("section,path,orthanc_status,words", [
    ("Remove", f"{RIS}.InstitutionName", 3, "item index"),
    ("Remove", f"{RIS}[0]..InstitutionName", 3, "item index"),
    ("Remove", "[0].InstitutionName", 3, "no sequence"),
    ("Remove", f"{RIS}[a].InstitutionName", 3, "'a'"),
    ("Remove", f"{RIS}[0][1].InstitutionName", 3, "'0][1'"),
    ("Keep", f"{RIS}[-1].InstitutionName", 3, "negative"),
    ("Keep", f"{RIS}[0.InstitutionName", 3, "]"),
    ("Remove", f"{RIS}[0]", 27, "ends with an item index"),
    ("Remove", f"{RIS}[*]", 27, "ends with an item index"),
    ("Remove", f"{RIS}[0].", 27, "ends with"),
    ("Remove", f"{RIS}[0].NoSuchKeyword", 27, "NoSuchKeyword"),
    ("Remove", "NoSuchSequence[0].InstitutionName", 27, "NoSuchSequence"),
])
def test_bad_paths_are_400_naming_the_path(loaded: Any, section: str, path: str,
                                           orthanc_status: int, words: str) -> None:
    server, instance, _ = loaded
    body: dict[str, Any] = {section: [path]}
    for action in ("modify", "anonymize"):
        r = server.post(f"/instances/{instance}/{action}", json=body)
        assert r.status_code == 400, r.text
        error = r.json()
        assert error["OrthancStatus"] == orthanc_status
        assert path.strip() in error["Details"] and words in error["Details"], error


@pytest.mark.parametrize("value,orthanc_status,words", [
    ({f"{RIS}[0].CodeValue": ["a"]}, 5, "a string"),
    ({f"{RIS}[7].CodeValue": 3}, 5, "Bad Parameter type"),  # checked even if absent
    ({f"{RIS}[0].PurposeOfReferenceCodeSequence": "a"}, 15, "list of objects"),
    ({f"{RIS}[0].PurposeOfReferenceCodeSequence": ["a"]}, 5, "list of objects"),
    ({f"{RIS}[9].Rows": "abc"}, 15, "not a valid US value"),
])
def test_bad_replacement_values_name_the_path(loaded: Any, value: dict[str, Any],
                                              orthanc_status: int, words: str) -> None:
    server, instance, _ = loaded
    r = server.post(f"/instances/{instance}/modify", json={"Replace": value})
    assert r.status_code == 400, r.text
    assert r.json()["OrthancStatus"] == orthanc_status
    assert next(iter(value)) in r.json()["Details"] and words in r.json()["Details"]
