"""Orthanc's naming rules for the folders and files of an archive (no server)."""

from __future__ import annotations

import pytest

from isengard_plugins.archive.naming import (
    UniqueNames,
    folder_name,
    instance_file_name,
    keep_alphanumeric,
    media_file_id,
)
from isengard_sdk import ResourceLevel


@pytest.mark.parametrize("raw, expected", [
    ("SYN-A Doe^John", "SYNA Doe John"),
    ("11-05-25-142825 OB^^^^", "110525142825 OB"),
    ("acc-a2 chest ct follow-up", "acca2 chest ct followup"),
    ("  a \t\t b  ", "a b"),
    ("Hôpital Saint-Éloi", "Hpital Saintloi"),
    ("x/y\\z:*?", "xyz"),
    ("CT000001.dcm", "CT000001.dcm"),
    ("under_score", "under_score"),
])
def test_keep_alphanumeric(raw, expected):
    assert keep_alphanumeric(raw) == expected


def test_folder_names_fall_back_to_unknown():
    assert folder_name(ResourceLevel.PATIENT, {"PatientID": "P1", "PatientName": "Doe^J"}) \
        == "P1 Doe^J"
    assert folder_name(ResourceLevel.STUDY, {}) == "Unknown Study"
    assert folder_name(ResourceLevel.STUDY, {"StudyDescription": "Head"}) == "Head"
    assert folder_name(ResourceLevel.SERIES, {"Modality": "CT"}) == "CT"
    assert folder_name(ResourceLevel.SERIES, {"SeriesDescription": "é"}) == "Unknown Series"


@pytest.mark.parametrize("modality, index, expected", [
    ("CT", 0, "CT000000.dcm"),
    ("RTDOSE", 12, "RT000012.dcm"),
    ("m", 3, "M0000003.dcm"),
    ("", 7, "00000007.dcm"),
    ("MR", 1234567, "MR1234567.dcm"),
])
def test_instance_file_names(modality, index, expected):
    assert instance_file_name(modality, index) == expected


def test_repeated_names_get_a_counter():
    names = UniqueNames()
    assert [names.claim(n) for n in ("Unknown Study", "Unknown Study", "Unknown^Study",
                                     "Other")] == \
        ["Unknown Study", "Unknown Study-2", "Unknown Study-3", "Other"]


def test_media_file_ids_are_short():
    assert media_file_id(0) == ["IMAGES", "IM0"]
    assert media_file_id(10_000) == ["IMAGES", "IM10000"]
