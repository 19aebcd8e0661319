from __future__ import annotations

import sqlite3

import pytest

from isengard.errors import BadRequest
from isengard.find import Constraint, parse_constraint, resolve_keyword
from isengard.identifiers import InstanceIdentifiers, format_sha1, is_valid_id
from isengard.index.query_sql import constraint_sql
from isengard.index.schema import SCHEMA


def test_orthanc_identifiers_of_ct_small():
    ids = InstanceIdentifiers("1CT1", "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322",
                              "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322",
                              "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322")
    assert ids.by_level() == (
        "fa558bce-587a86d3-ad0da9b3-9d043d9d-4f5c5718",
        "8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d",
        "93034833-163e42c3-bc9a428b-194620cf-2c5799e5",
        "f689ddd2-662f8fe1-8b18180d-ec2a2cee-937917af",
    )


def test_empty_patient_id_hashes_the_empty_string():
    assert format_sha1("") == "da39a3ee-5e6b4b0d-3255bfef-95601890-afd80709"
    assert is_valid_id(format_sha1("x")) and not is_valid_id("nope")


@pytest.mark.parametrize("keyword, value, kind, values", [
    ("PatientName", "", "universal", ()),
    ("PatientName", "*", "universal", ()),
    ("PatientName", "DOE^*", "wildcard", ("DOE^*",)),
    ("PatientID", "A?C", "wildcard", ("A?C",)),
    ("StudyDate", "20200101-20201231", "range", ("20200101", "20201231")),
    ("StudyDate", "-20201231", "range", ("", "20201231")),
    ("StudyDate", "20200101-", "range", ("20200101", "")),
    ("PatientID", "A-B", "exact", ("A-B",)),  # a dash is a range only on DA/DT/TM
    ("StudyInstanceUID", "1.2\\1.3", "list", ("1.2", "1.3")),
    ("Modality", "CT", "exact", ("CT",)),
])
def test_constraint_kinds(keyword, value, kind, values):
    c = parse_constraint(keyword, value, case_sensitive=False)
    assert (c.kind, c.values) == (kind, values)


@pytest.mark.parametrize("constraint, value, expected", [
    (Constraint("PatientName", "wildcard", ("DOE*",), False), "Doe^John", True),
    (Constraint("PatientName", "wildcard", ("DOE*",), True), "Doe^John", False),
    (Constraint("PatientName", "wildcard", ("D?E*",), False), "DOE", True),
    (Constraint("PatientName", "wildcard", ("D?E*",), False), "DE", False),
    (Constraint("PatientName", "exact", ("doe",), False), "DOE", True),
    (Constraint("PatientName", "exact", ("doe",), False), None, False),
    (Constraint("StudyDate", "range", ("20200101", "20201231"), False), "20200615", True),
    (Constraint("StudyDate", "range", ("20200101", "20201231"), False), "20210101", False),
    # a string comparison, as Orthanc's index: an empty date is before any bound
    (Constraint("StudyDate", "range", ("", "20201231"), False), "", True),
    (Constraint("StudyDate", "range", ("20200101", ""), False), "", False),
    (Constraint("StudyTime", "range", ("", "1000"), False), "095959.123", True),
    (Constraint("Modality", "list", ("CT", "MR"), False), "mr", True),
    (Constraint("PatientName", "wildcard", ("a[b]*",), False), "A[B]C", True),
])
def test_matching(constraint, value, expected):
    assert constraint.matches(value) is expected


def test_tag_names():
    assert resolve_keyword("PatientName") == "PatientName"
    assert resolve_keyword("0010,0010") == "PatientName"
    assert resolve_keyword("00100020") == "PatientID"
    with pytest.raises(BadRequest, match="unknown DICOM tag"):
        resolve_keyword("NotATag")


_STORED = ["", "2019", "20191231", "20200101", "20200101120000", "20200615", "20201231",
           "20201231.5", "2020123a", "2020ab01", "2020éÿ", "20210101", "2021", "abc", "ÿ",
           "095959.123", "1000", "100001", "0959"]


@pytest.mark.parametrize("bounds", [("20200101", "20201231"), ("", "20201231"),
                                    ("20200101", ""), ("2020", "2020"), ("", "1000"),
                                    ("0959", "100000"), ("a", "z"), ("2020a", "2020Z")])
def test_range_sql_matches_the_python_matcher(bounds):
    """The index's SQL (with its value_norm bounds for the B-tree) selects exactly what
    Constraint.matches accepts, odd stored values included."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA)
    conn.executemany("INSERT INTO dicom_identifiers(internal_id, tag, value, value_norm) "
                     "VALUES (?, 'StudyDate', ?, ?)",
                     [(i, v, v.upper()) for i, v in enumerate(_STORED)])
    constraint = Constraint("StudyDate", "range", bounds, False)
    condition, params = constraint_sql(constraint)
    selected = {v for (v,) in conn.execute(
        f"SELECT d.value FROM dicom_identifiers d WHERE d.tag = 'StudyDate' AND {condition}",
        params)}
    assert selected == {v for v in _STORED if constraint.matches(v)}
