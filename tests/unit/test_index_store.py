"""SQLiteIndex.store_instance: parents created once, re-opened when stable, their
deadlines only pushed later, the changes logged in Orthanc's order."""

from __future__ import annotations

import time

import pytest

from isengard.index import NewInstanceRecord, SQLiteIndex
from isengard_sdk.types import ChangeType, ResourceLevel, StoredFileInfo

P, S, SE = ResourceLevel.PATIENT, ResourceLevel.STUDY, ResourceLevel.SERIES


def _record(instance: str, series: str = "se1", *, tags: int = 3) -> NewInstanceRecord:
    return NewInstanceRecord(
        ids=("p1", "st1", series, instance),
        main_tags={P: {"PatientID": "PID", "PatientName": "Doe^J"},
                   S: {"StudyInstanceUID": "1.2"},
                   SE: {"SeriesInstanceUID": f"1.2.{series}", "Modality": "CT"},
                   ResourceLevel.INSTANCE: {f"Tag{n}": f"v{n}" for n in range(tags)}},
        file=StoredFileInfo(uuid=f"uuid-{instance}", uncompressed_size=10,
                            compressed_size=10, uncompressed_md5="m", compressed_md5="m",
                            compression=0),
        metadata={"Origin": "DicomProtocol", "RemoteAET": "SCU", "IndexInSeries": "1"},
        header=b"{}", has_pixel_data=True, series_metadata={"RemoteAET": "SCU"})


@pytest.fixture
def index(tmp_path):
    index = SQLiteIndex(tmp_path / "index.sqlite", durable=False, stable_age=30)
    yield index
    index.close()


def _deadline(index: SQLiteIndex, public_id: str) -> float | None:
    row = index.reader().execute(
        "SELECT deadline FROM unstable_resources WHERE public_id = ?", (public_id,)
    ).fetchone()
    return None if row is None else row[0]


def test_first_instance_creates_the_lineage_and_logs_changes_in_order(index):
    outcome = index.store_instance(_record("i1"), overwrite=False)
    assert outcome.status == "Success"
    changes, _, _ = index.changes(0, 100)
    assert [(c.change_type, c.id) for c in changes] == [
        (ChangeType.NEW_INSTANCE, "i1"), (ChangeType.NEW_SERIES, "se1"),
        (ChangeType.NEW_STUDY, "st1"), (ChangeType.NEW_PATIENT, "p1")]
    instance = index.lookup(ResourceLevel.INSTANCE, "i1")
    series = index.lookup(SE, "se1")
    assert instance is not None and series is not None
    assert instance.parent_id == series.internal_id
    assert index.metadata(instance.internal_id) == {
        "Origin": "DicomProtocol", "RemoteAET": "SCU", "IndexInSeries": "1"}
    assert index.metadata(series.internal_id) == {"RemoteAET": "SCU"}
    # every main tag is queryable, the study's with the patient's copied in
    identifiers = dict(index.reader().execute(
        "SELECT tag, value_norm FROM dicom_identifiers WHERE internal_id = ?",
        (index.lookup(S, "st1").internal_id,)).fetchall())
    assert identifiers == {"PatientID": "PID", "PatientName": "DOE^J",
                           "StudyInstanceUID": "1.2"}
    for public_id in ("p1", "st1", "se1"):
        assert _deadline(index, public_id) is not None


def test_second_instance_reuses_parents_and_only_logs_itself(index):
    index.store_instance(_record("i1"), overwrite=False)
    _, last, _ = index.changes(0, 100)
    index.store_instance(_record("i2", tags=40), overwrite=False)
    changes, _, _ = index.changes(last, 100)
    assert [(c.change_type, c.id) for c in changes] == [
        (ChangeType.NEW_INSTANCE, "i2")]
    assert index.lookup(ResourceLevel.INSTANCE, "i2").parent_id == \
        index.lookup(SE, "se1").internal_id
    assert index.reader().execute(
        "SELECT count(*) FROM dicom_identifiers WHERE internal_id = ?",
        (index.lookup(ResourceLevel.INSTANCE, "i2").internal_id,)).fetchone() == (40,)
    assert index.store_instance(_record("i2"), overwrite=False).status == "AlreadyStored"


def test_a_stable_series_becomes_unstable_again_with_a_new_deadline(index):
    index.store_instance(_record("i1"), overwrite=False)
    due = index.stabilize_due(now=time.time() + 3600)
    assert {public_id for _, public_id in due} == {"p1", "st1", "se1"}
    assert index.lookup(SE, "se1").is_stable
    index.store_instance(_record("i2"), overwrite=False)  # most likely the same second
    for level, public_id in ((P, "p1"), (S, "st1"), (SE, "se1")):
        assert not index.lookup(level, public_id).is_stable
        assert _deadline(index, public_id) is not None


def test_deadlines_move_later_never_earlier(index):
    index.store_instance(_record("i1"), overwrite=False)
    first = _deadline(index, "se1")
    with index.transaction() as conn:  # as if the series had been given a later one
        conn.execute("UPDATE unstable_resources SET deadline = ? WHERE public_id = ?",
                     (first + 1000, "se1"))
    index.store_instance(_record("i2"), overwrite=False)
    assert _deadline(index, "se1") == first + 1000
    with index.transaction() as conn:  # and an earlier one
        conn.execute("UPDATE unstable_resources SET deadline = ? WHERE public_id = ?",
                     (first - 1000, "se1"))
    index.store_instance(_record("i3"), overwrite=False)
    assert _deadline(index, "se1") >= first


def test_overwrite_replaces_the_instance_and_reports_its_old_file(index):
    index.store_instance(_record("i1"), overwrite=False)
    again = _record("i1")
    again = NewInstanceRecord(**{**again.__dict__, "file": StoredFileInfo(
        uuid="uuid-new", uncompressed_size=10, compressed_size=10, uncompressed_md5="m",
        compressed_md5="m", compression=0)})
    outcome = index.store_instance(again, overwrite=True)
    assert outcome.status == "Success" and outcome.replaced_files == ("uuid-i1",)
    row = index.lookup(ResourceLevel.INSTANCE, "i1")
    assert index.attachment(row.internal_id).uuid == "uuid-new"
