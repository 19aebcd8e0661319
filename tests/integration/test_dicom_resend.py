"""Sending an instance that is already stored (Orthanc's OverwriteInstances)."""

from __future__ import annotations

from tests.integration.dicom_helpers import (
    assert_index_matches_storage,
    instance_id_of,
    split_part10,
    storage_files,
)


def _file_uuid(server, instance: str) -> str:
    uuid: str = server.get(f"/instances/{instance}").json()["FileUuid"]
    return uuid


def test_resend_is_success_and_keeps_the_first_file(isengard_server, dicom_peer,
                                                     dicom_factory):
    s = isengard_server
    ds = dicom_factory.dataset()
    first = dicom_factory.encode(ds)
    assert dicom_peer.store(s.dicom_port, [first]) == [0]
    instance = instance_id_of(s, ds.SOPInstanceUID)
    uuid = _file_uuid(s, instance)

    ds.PatientName = "Changed^Name"  # same identifiers, other content
    assert dicom_peer.store(s.dicom_port, [dicom_factory.encode(ds), first]) == [0, 0]

    assert s.get("/statistics").json()["CountInstances"] == 1
    assert _file_uuid(s, instance) == uuid  # AlreadyStored: the file was not rewritten
    assert s.get(f"/instances/{instance}/simplified-tags").json()["PatientName"] == (
        "Test^Patient")
    assert_index_matches_storage(s)


def test_resend_replaces_the_file_with_overwrite_instances(isengard_factory, dicom_peer,
                                                           dicom_factory):
    s = isengard_factory(config={"overwrite_instances": True})
    ds = dicom_factory.dataset()
    assert dicom_peer.store(s.dicom_port, [dicom_factory.encode(ds)]) == [0]
    instance = instance_id_of(s, ds.SOPInstanceUID)
    uuid = _file_uuid(s, instance)

    ds.PatientName = "Changed^Name"
    second = dicom_factory.encode(ds)
    assert dicom_peer.store(s.dicom_port, [second]) == [0]

    assert s.get("/statistics").json()["CountInstances"] == 1
    assert _file_uuid(s, instance) != uuid
    assert split_part10(s.get(f"/instances/{instance}/file").content)[1] == (
        split_part10(second)[1])
    assert s.get(f"/instances/{instance}/simplified-tags").json()["PatientName"] == (
        "Changed^Name")
    assert len(storage_files(s.data_dir)) == 1  # the replaced file is gone
    assert_index_matches_storage(s)
