"""User metadata and attachments on every level (Orthanc's PUT/DELETE /metadata and
/attachments), their change log entries and their files in the storage area."""

from __future__ import annotations

import hashlib

import pytest

CT = {
    "patients": "fa558bce-587a86d3-ad0da9b3-9d043d9d-4f5c5718",
    "studies": "8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d",
    "series": "93034833-163e42c3-bc9a428b-194620cf-2c5799e5",
    "instances": "f689ddd2-662f8fe1-8b18180d-ec2a2cee-937917af",
}
CONFIG = {"user_metadata": {"Sample": 1024, "Other": 1025},
          "user_content_types": {"report": 1030}}


@pytest.fixture
def server(isengard_factory, ct_small):
    s = isengard_factory(CONFIG)
    s.upload(ct_small)
    return s


def _storage_files(s) -> set[str]:
    return {p.name for p in (s.data_dir / "storage").rglob("*") if p.is_file()}


@pytest.mark.parametrize("level", list(CT))
def test_metadata_put_get_delete_on_every_level(server, level):
    s, path = server, f"/{level}/{CT[level]}/metadata"
    r = s.put(f"{path}/Sample", content=b"hello")
    assert (r.status_code, r.text) == (200, "")
    assert s.get(f"{path}/Sample").text == "hello"
    assert s.get(f"{path}/1024").text == "hello"  # by its number, as Orthanc
    assert s.get(f"{path}?expand").json()["Sample"] == "hello"
    assert s.put(f"{path}/1025", content=b"by number").status_code == 200
    assert s.get(f"{path}/Other").text == "by number"
    assert s.put(f"{path}/2000", content=b"undeclared").status_code == 200
    assert s.get(f"{path}/2000").text == "undeclared"
    assert s.delete(f"{path}/Sample").status_code == 200
    assert s.get(f"{path}/Sample").status_code == 404
    assert s.delete(f"{path}/Sample").json()["OrthancStatus"] == 17


def test_metadata_writes_log_updated_metadata(server):
    s = server
    last = s.get("/changes?last").json()["Last"]
    s.put(f"/series/{CT['series']}/metadata/Sample", content=b"1")
    s.delete(f"/series/{CT['series']}/metadata/Sample")
    changes = s.get(f"/changes?since={last}").json()["Changes"]
    assert [(c["ChangeType"], c["ID"], c["ResourceType"]) for c in changes] == [
        ("UpdatedMetadata", CT["series"], "Series")] * 2


def test_metadata_names_are_checked(server):
    s, path = server, f"/instances/{CT['instances']}/metadata"
    unknown = s.put(f"{path}/Nope", content=b"x")
    assert unknown.status_code == 404
    assert (unknown.json()["OrthancStatus"], unknown.json()["Message"]) == (
        7, "Accessing an inexistent item")
    assert s.delete(f"{path}/Nope").status_code == 404
    for system in ("Origin", "RemoteAET", "1023", "65536", "3"):
        assert s.put(f"{path}/{system}", content=b"x").status_code == 403, system
        assert s.delete(f"{path}/{system}").status_code == 403, system
    assert s.get(f"{path}/Origin").text == "RestApi"  # unchanged
    missing = s.put("/instances/nope/metadata/Sample", content=b"x")
    assert missing.status_code == 404 and missing.json()["HttpStatus"] == 404


def test_attachment_lifecycle(server):
    s, base = server, f"/instances/{CT['instances']}/attachments"
    assert s.get(base).json() == ["dicom"]
    assert s.put(f"{base}/report", content=b"hello report").json() == {}
    assert s.get(base).json() == ["dicom", "report"]
    assert s.get(f"{base}?full").json() == {"dicom": 1, "report": 1030}
    assert "verify-md5" in s.get(f"{base}/report").json()
    info = s.get(f"{base}/report/info").json()
    md5 = hashlib.md5(b"hello report").hexdigest()
    assert info == {"CompressedMD5": md5, "CompressedSize": 12, "ContentType": 1030,
                    "UncompressedMD5": md5, "UncompressedSize": 12, "Uuid": info["Uuid"]}
    data = s.get(f"{base}/report/data")
    assert data.content == b"hello report"
    assert data.headers["content-type"] == "application/octet-stream"
    assert s.get(f"{base}/report/size").text == "12"
    assert s.get(f"{base}/report/md5").text == md5
    assert s.get(f"{base}/report/is-compressed").text == "0"
    # compress, read back, uncompress
    assert s.post(f"{base}/report/compress").json() == {}
    assert s.get(f"{base}/report/is-compressed").text == "1"
    compressed = s.get(f"{base}/report/compressed-data").content
    assert int(s.get(f"{base}/report/compressed-size").text) == len(compressed)
    assert s.get(f"{base}/report/compressed-md5").text == hashlib.md5(compressed).hexdigest()
    assert s.get(f"{base}/report/data").content == b"hello report"
    assert s.post(f"{base}/report/verify-md5").json() == {}
    assert s.post(f"{base}/report/uncompress").json() == {}
    assert s.get(f"{base}/report/info").json()["CompressedSize"] == 12
    # replace, then delete: the storage area keeps only the DICOM file
    s.put(f"{base}/report", content=b"second")
    assert s.get(f"{base}/report/data").content == b"second"
    assert len(_storage_files(s)) == 2
    assert s.delete(f"{base}/report").status_code == 200
    assert s.get(f"{base}/report/data").status_code == 404
    assert s.delete(f"{base}/report").status_code == 404
    assert len(_storage_files(s)) == 1


def test_dicom_attachment(server, ct_small):
    s, base = server, f"/instances/{CT['instances']}/attachments/dicom"
    data = s.get(f"{base}/data")
    assert data.content == ct_small and data.headers["content-type"] == "application/dicom"
    assert s.get(f"{base}/md5").text == hashlib.md5(ct_small).hexdigest()
    assert s.put(base, content=b"x").status_code == 403
    assert s.delete(base).status_code == 403
    assert s.post(f"{base}/compress").status_code == 200  # allowed, as in Orthanc
    assert s.get(f"{base}/is-compressed").text == "1"
    assert s.get(f"/instances/{CT['instances']}/file").content == ct_small
    assert s.post(f"{base}/verify-md5").status_code == 200


def test_attachment_names_and_errors(server):
    s, base = server, f"/patients/{CT['patients']}/attachments"
    assert s.get(base).json() == []
    assert s.put(f"{base}/unknown", content=b"x").json()["OrthancStatus"] == 7
    assert s.get(f"{base}/unknown/data").json()["OrthancStatus"] == 7
    assert s.get(f"{base}/report/data").json()["OrthancStatus"] == 17  # declared, absent
    assert s.put(f"{base}/1040", content=b"numbered").status_code == 200
    assert s.get(base).json() == ["1040"]
    for system in ("dicom-as-json", "2", "1023", "65536"):
        assert s.put(f"{base}/{system}", content=b"x").status_code == 403, system
    assert s.get("/patients/nope/attachments").status_code == 404
    assert s.get("/instances/nope/attachments/dicom/data").json()["HttpStatus"] == 404


def test_attachments_log_updated_attachment(server):
    s, base = server, f"/studies/{CT['studies']}/attachments/report"
    last = s.get("/changes?last").json()["Last"]
    s.put(base, content=b"x")
    s.post(f"{base}/compress")
    s.post(f"{base}/verify-md5")  # not a change
    s.delete(base)
    changes = s.get(f"/changes?since={last}").json()["Changes"]
    assert [c["ChangeType"] for c in changes] == ["UpdatedAttachment"] * 3
    assert {c["ID"] for c in changes} == {CT["studies"]}


def test_corrupted_attachment_fails_verify_md5(server):
    s, base = server, f"/series/{CT['series']}/attachments/report"
    s.put(base, content=b"a report that will be damaged")
    uuid = s.get(f"{base}/info").json()["Uuid"]
    path = s.data_dir / "storage" / uuid[:2] / uuid[2:4] / uuid
    damaged = bytearray(path.read_bytes())
    damaged[3] ^= 0xFF
    path.write_bytes(bytes(damaged))
    r = s.post(f"{base}/verify-md5")
    assert r.status_code == 400 and "corrupted" in r.json()["Details"]
    # a compressed file whose bytes are damaged too
    s.put(base, content=b"compressed then damaged" * 10)
    s.post(f"{base}/compress")
    uuid = s.get(f"{base}/info").json()["Uuid"]
    path = s.data_dir / "storage" / uuid[:2] / uuid[2:4] / uuid
    path.write_bytes(path.read_bytes()[:-3] + b"XYZ")
    assert s.post(f"{base}/verify-md5").status_code == 400


@pytest.mark.parametrize("level", ["patients", "studies", "series", "instances"])
def test_deleting_a_resource_removes_its_attachments(server, level):
    s = server
    for lvl, rid in CT.items():
        s.put(f"/{lvl}/{rid}/attachments/report", content=lvl.encode())
    assert len(_storage_files(s)) == 5
    assert s.delete(f"/{level}/{CT[level]}").status_code == 200
    # deleting the only instance empties every level above it
    assert _storage_files(s) == set()


def test_overwriting_an_instance_removes_its_attachments(isengard_factory, ct_small):
    """With overwrite_instances the old instance goes, with its attachments (as
    Orthanc's OverwriteInstances deletes the old instance): none of its files stay."""
    s = isengard_factory({**CONFIG, "overwrite_instances": True})
    s.upload(ct_small)
    s.put(f"/instances/{CT['instances']}/attachments/report", content=b"old report")
    s.put(f"/series/{CT['series']}/attachments/report", content=b"series report")
    assert len(_storage_files(s)) == 3
    assert s.upload(ct_small)["Status"] == "Success"
    assert s.get(f"/instances/{CT['instances']}/attachments").json() == ["dicom"]
    assert s.get(f"/series/{CT['series']}/attachments").json() == ["report"]
    # the new DICOM file and the series' report
    assert len(_storage_files(s)) == 2
