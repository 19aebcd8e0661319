"""POST /tools/find and /tools/lookup: the same queries to both servers."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pydicom
import pytest

from .compare import assert_same, error_keys

pytestmark = pytest.mark.orthanc

# (id, body). "{File:Keyword}" in a value is replaced by that tag of that sample file.
QUERIES: list[tuple[str, dict[str, Any]]] = [
    # -- patient level
    ("P-id-exact", {"Level": "Patient", "Query": {"PatientID": "SYN-A"}}),
    ("P-id-lowercase", {"Level": "Patient", "Query": {"PatientID": "syn-a"}}),
    ("P-id-star", {"Level": "Patient", "Query": {"PatientID": "SYN-*"}}),
    ("P-id-star-lower", {"Level": "Patient", "Query": {"PatientID": "syn*"}}),
    ("P-id-question", {"Level": "Patient", "Query": {"PatientID": "SYN-?"}}),
    ("P-id-list", {"Level": "Patient", "Query": {"PatientID": "SYN-A\\syn-c"}}),
    ("P-id-universal-star", {"Level": "Patient", "Query": {"PatientID": "*"}}),
    ("P-id-universal-empty", {"Level": "Patient", "Query": {"PatientID": ""}}),
    ("P-empty-query", {"Level": "Patient", "Query": {}}),
    ("P-id-hex-tag", {"Level": "Patient", "Query": {"0010,0020": "SYN-B"}}),
    ("P-name-ci", {"Level": "Patient", "Query": {"PatientName": "doe^john"}}),
    ("P-name-prefix", {"Level": "Patient", "Query": {"PatientName": "DOE*"}}),
    ("P-name-cs-miss", {"Level": "Patient", "Query": {"PatientName": "doe*"},
                        "CaseSensitive": True}),
    ("P-name-cs-hit", {"Level": "Patient", "Query": {"PatientName": "Doe*"},
                       "CaseSensitive": True}),
    ("P-name-cs-false", {"Level": "Patient", "Query": {"PatientName": "doe*"},
                         "CaseSensitive": False}),
    ("P-name-suffix", {"Level": "Patient", "Query": {"PatientName": "*anna"}}),
    ("P-name-component", {"Level": "Patient", "Query": {"PatientName": "*^JANE^*"}}),
    ("P-birth-range", {"Level": "Patient", "Query": {"PatientBirthDate": "19800101-19951231"}}),
    ("P-birth-upto", {"Level": "Patient", "Query": {"PatientBirthDate": "-19850101"}}),
    ("P-birth-from", {"Level": "Patient", "Query": {"PatientBirthDate": "19900101-"}}),
    ("P-sex", {"Level": "Patient", "Query": {"PatientSex": "F"}}),
    ("P-sex-lower", {"Level": "Patient", "Query": {"PatientSex": "f"}}),
    ("P-child-tag", {"Level": "Patient", "Query": {"StudyDate": "20240301"}}),
    ("P-id-cs", {"Level": "Patient", "Query": {"PatientID": "syn-a"}, "CaseSensitive": True}),
    ("P-sex-star", {"Level": "Patient", "Query": {"PatientSex": "*"}}),
    ("P-sex-question", {"Level": "Patient", "Query": {"PatientSex": "?"}}),
    ("P-expand", {"Level": "Patient", "Query": {"PatientName": "*"}, "Expand": True}),
    # -- study level
    ("S-date-exact", {"Level": "Study", "Query": {"StudyDate": "20230115"}}),
    ("S-date-from", {"Level": "Study", "Query": {"StudyDate": "20240101-"}}),
    ("S-date-upto", {"Level": "Study", "Query": {"StudyDate": "-20230115"}}),
    ("S-date-range", {"Level": "Study", "Query": {"StudyDate": "20230101-20231231"}}),
    ("S-date-one-day-range", {"Level": "Study", "Query": {"StudyDate": "20230115-20230115"}}),
    ("S-date-list", {"Level": "Study", "Query": {"StudyDate": "20230115\\20221231"}}),
    ("S-time-range", {"Level": "Study", "Query": {"StudyTime": "080000-150000"}}),
    ("S-accession", {"Level": "Study", "Query": {"AccessionNumber": "acc-a2"}}),
    ("S-accession-case", {"Level": "Study", "Query": {"AccessionNumber": "ACC-A2"}}),
    ("S-accession-star", {"Level": "Study", "Query": {"AccessionNumber": "ACC*"}}),
    ("S-description-ci", {"Level": "Study", "Query": {"StudyDescription": "*ct*"}}),
    ("S-description-cs", {"Level": "Study", "Query": {"StudyDescription": "*ct*"},
                          "CaseSensitive": True}),
    ("S-uid", {"Level": "Study", "Query": {"StudyInstanceUID": "{CT_small.dcm:StudyInstanceUID}"}}),
    ("S-uid-list", {"Level": "Study", "Query": {
        "StudyInstanceUID": "{CT_small.dcm:StudyInstanceUID}\\{rtplan.dcm:StudyInstanceUID}"}}),
    ("S-patient-name-cs", {"Level": "Study", "Query": {"PatientName": "doe^john"},
                           "CaseSensitive": True}),
    ("S-modalities-star", {"Level": "Study", "Query": {"ModalitiesInStudy": "*"}}),
    ("S-modalities-wildcard", {"Level": "Study", "Query": {"ModalitiesInStudy": "C*"}}),
    ("S-patient-name", {"Level": "Study", "Query": {"PatientName": "Doe^John"}}),
    ("S-patient-birth-copy", {"Level": "Study", "Query": {"PatientBirthDate": "19700101"}}),
    ("S-patient-and-date", {"Level": "Study", "Query": {"PatientID": "SYN-A",
                                                        "StudyDate": "20240101-"}}),
    ("S-modalities", {"Level": "Study", "Query": {"ModalitiesInStudy": "MR"}}),
    ("S-modalities-list", {"Level": "Study", "Query": {"ModalitiesInStudy": "CT\\US"}}),
    ("S-institution-accent", {"Level": "Study", "Query": {"InstitutionName": "Hôpital*"}}),
    ("S-institution-plain", {"Level": "Study", "Query": {"InstitutionName": "hopital*"}}),
    ("S-child-modality", {"Level": "Study", "Query": {"Modality": "US"}}),
    ("S-non-main", {"Level": "Study", "Query": {"ImageType": "DERIVED*"}}),
    ("S-expand", {"Level": "Study", "Query": {"PatientID": "SYN-A"}, "Expand": True}),
    # -- series level
    ("Se-modality", {"Level": "Series", "Query": {"Modality": "CT"}}),
    ("Se-modality-lower", {"Level": "Series", "Query": {"Modality": "ct"}}),
    ("Se-modality-lower-cs", {"Level": "Series", "Query": {"Modality": "ct"},
                              "CaseSensitive": True}),
    ("Se-child-tag", {"Level": "Series", "Query": {"InstanceNumber": "1"}}),
    ("Se-modality-list", {"Level": "Series", "Query": {"Modality": "CT\\MR"}}),
    ("Se-description", {"Level": "Series", "Query": {"SeriesDescription": "*axial*"}}),
    ("Se-number", {"Level": "Series", "Query": {"SeriesNumber": "1"}}),
    ("Se-date", {"Level": "Series", "Query": {"SeriesDate": "20230115"}}),
    ("Se-study-date", {"Level": "Series", "Query": {"StudyDate": "20240101-"}}),
    ("Se-patient-and-modality", {"Level": "Series", "Query": {"PatientID": "SYN-A",
                                                              "Modality": "CT"}}),
    ("Se-patient-birth-copy", {"Level": "Series", "Query": {"PatientBirthDate": "19700101"}}),
    ("Se-manufacturer", {"Level": "Series", "Query": {"Manufacturer": "GE*"}}),
    ("Se-non-main", {"Level": "Series", "Query": {"ImageType": "ORIGINAL*"}}),
    ("Se-expand", {"Level": "Series", "Query": {"Modality": "CT"}, "Expand": True}),
    # -- instance level
    ("I-number", {"Level": "Instance", "Query": {"InstanceNumber": "1"}}),
    ("I-sop", {"Level": "Instance", "Query": {"SOPInstanceUID": "{test-SR.dcm:SOPInstanceUID}"}}),
    ("I-series-tag", {"Level": "Instance", "Query": {"Modality": "CT"}}),
    ("I-patient-name", {"Level": "Instance", "Query": {"PatientName": "smith*"}}),
    ("I-image-type-exact", {"Level": "Instance", "Query": {"ImageType": "DERIVED\\SECONDARY"}}),
    ("I-image-type-star", {"Level": "Instance", "Query": {"ImageType": "*PRIMARY*"}}),
    ("I-image-type-one", {"Level": "Instance", "Query": {"ImageType": "AXIAL"}}),
    ("I-kvp", {"Level": "Instance", "Query": {"KVP": "120"}}),
    ("I-sop-class", {"Level": "Instance", "Query": {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.2"}}),
    ("I-rows", {"Level": "Instance", "Query": {"Rows": "128"}}),
    ("I-frames", {"Level": "Instance", "Query": {"NumberOfFrames": "15"}}),
    ("I-image-type-any", {"Level": "Instance", "Query": {"ImageType": "*"}}),
    ("I-image-type-cs", {"Level": "Instance", "Query": {"ImageType": "original*"},
                         "CaseSensitive": True}),
    ("I-bits", {"Level": "Instance", "Query": {"BitsAllocated": "16"}}),
    ("I-expand", {"Level": "Instance", "Query": {"PatientID": "syn-c"}, "Expand": True}),
    ("I-everything", {"Level": "Instance", "Query": {}}),
    ("I-level-lowercase", {"Level": "instance", "Query": {"InstanceNumber": "2"}}),
]

LIMIT_QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("I-limit", {"Level": "Instance", "Query": {}, "Limit": 5}),
    ("I-limit-since", {"Level": "Instance", "Query": {}, "Limit": 4, "Since": 3}),
    ("S-limit-non-main", {"Level": "Study", "Query": {"ImageType": "*"}, "Limit": 2}),
    ("Se-since", {"Level": "Series", "Query": {"Modality": "CT"}, "Since": 2}),
    ("P-limit-zero", {"Level": "Patient", "Query": {}, "Limit": 0}),
]

BAD_QUERIES: list[tuple[str, Any]] = [
    ("no-level", {"Query": {}}),
    ("no-query", {"Level": "Study"}),
    ("bad-level", {"Level": "Planet", "Query": {}}),
    ("unknown-tag", {"Level": "Study", "Query": {"NoSuchTag": "x"}}),
    ("not-json", "this is not JSON"),
    ("not-object", ["Level", "Study"]),
    ("wildcard-on-date", {"Level": "Study", "Query": {"StudyDate": "2024*"}}),
    ("star-on-date", {"Level": "Study", "Query": {"StudyDate": "*"}}),
    ("wildcard-on-time", {"Level": "Study", "Query": {"StudyTime": "08*"}}),
    ("wildcard-on-uid", {"Level": "Series", "Query": {"SOPInstanceUID": "*"}}),
    ("wildcard-on-us", {"Level": "Instance", "Query": {"Rows": "*"}}),
    ("wildcard-on-ds", {"Level": "Instance", "Query": {"KVP": "1*"}}),
    ("value-not-string", {"Level": "Study", "Query": {"StudyDate": 2024}}),
]

_PLACEHOLDER = re.compile(r"\{([^:{}]+):([A-Za-z]+)\}")


def resolve(loaded, body: Any) -> Any:
    """Replace ``{file:Keyword}`` placeholders with the value in that sample."""
    files = {f.name: f.data for f in loaded.files}

    def value(m: re.Match[str]) -> str:
        ds = pydicom.dcmread(io.BytesIO(files[m.group(1)]), force=True,
                             stop_before_pixels=True)
        return str(ds.data_element(m.group(2)).value)

    return json.loads(_PLACEHOLDER.sub(value, json.dumps(body)))


def by_id(value: Any) -> Any:
    return value["ID"] if isinstance(value, dict) else value


@pytest.mark.parametrize("body", [q for _, q in QUERIES], ids=[i for i, _ in QUERIES])
def test_find(loaded, body):
    ours, theirs = loaded.pair.post_json("/tools/find", resolve(loaded, body))
    # Orthanc gives no order: compare as sets (objects sorted by ID).
    assert_same(sorted(ours, key=by_id), sorted(theirs, key=by_id), json.dumps(body))


@pytest.mark.parametrize("body", [q for _, q in LIMIT_QUERIES],
                         ids=[i for i, _ in LIMIT_QUERIES])
def test_find_limit_since(loaded, body):
    ours, theirs = loaded.pair.post_json("/tools/find", body)
    everything = {k: v for k, v in body.items() if k not in ("Limit", "Since")}
    all_ours, all_theirs = loaded.pair.post_json("/tools/find", everything)
    assert sorted(all_ours) == sorted(all_theirs)
    # Which page is returned depends on each server's internal order: compare sizes and
    # that the page is made of matching resources.
    assert len(ours) == len(theirs), json.dumps(body)
    assert set(ours) <= set(all_theirs)


@pytest.mark.parametrize("body", [q for _, q in BAD_QUERIES], ids=[i for i, _ in BAD_QUERIES])
def test_find_bad_request(loaded, body):
    content = body if isinstance(body, str) else json.dumps(body)
    ours, theirs = loaded.pair.post("/tools/find", content=content)
    assert ours.status_code == theirs.status_code, (ours.text, theirs.text)
    assert error_keys(ours) == error_keys(theirs)


LOOKUPS = ["SYN-A", "syn-a", "ACC-A1", "{CT_small.dcm:StudyInstanceUID}",
           "{CT_small.dcm:SeriesInstanceUID}", "{CT_small.dcm:SOPInstanceUID}",
           "{rtstruct.dcm:PatientID}", "no-such-thing", "  SYN-B  "]


@pytest.mark.parametrize("value", LOOKUPS)
def test_lookup(loaded, value):
    ours, theirs = loaded.pair.post_json("/tools/lookup", resolve(loaded, value))
    assert_same(ours, theirs, f"lookup {value}")
