"""POST /instances: single files, ZIP archives and bad input."""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.conftest import sample

CT_ID = "f689ddd2-662f8fe1-8b18180d-ec2a2cee-937917af"


def stored_files(server) -> list:
    return [p for p in (server.data_dir / "storage").rglob("*") if p.is_file()]


def test_upload_answer_as_orthanc(isengard_server, ct_small):
    r = isengard_server.post("/instances", content=ct_small)
    assert r.status_code == 200
    assert r.json() == {
        "ID": CT_ID,
        "ParentPatient": "fa558bce-587a86d3-ad0da9b3-9d043d9d-4f5c5718",
        "ParentSeries": "93034833-163e42c3-bc9a428b-194620cf-2c5799e5",
        "ParentStudy": "8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d",
        "Path": f"/instances/{CT_ID}",
        "Status": "Success",
    }
    again = isengard_server.post("/instances", content=ct_small)
    assert again.json()["Status"] == "AlreadyStored"
    assert len(stored_files(isengard_server)) == 1
    # stored byte for byte
    assert isengard_server.get(f"/instances/{CT_ID}/file").content == ct_small


@pytest.mark.parametrize("body, detail", [
    (b"", "empty"),
    (b"hello, I am not DICOM", "not a DICOM file"),
    (sample("CT_small.dcm")[:5000], "truncated"),
    (sample("rtplan_truncated.dcm"), "truncated"),
    (b"\0" * 128 + b"DICM" + b"\x02\x00", "no data element"),
], ids=["empty", "junk", "truncated-pixels", "truncated-element", "only-preamble"])
def test_bad_upload_is_400_and_stores_nothing(isengard_server, body, detail):
    r = isengard_server.post("/instances", content=body)
    assert r.status_code == 400
    error = r.json()
    assert error["HttpStatus"] == 400
    assert error["OrthancError"] == "Bad file format"
    assert error["Uri"] == "/instances" and error["Method"] == "POST"
    assert detail in error["Details"]
    assert isengard_server.get("/statistics").json()["CountInstances"] == 0
    assert stored_files(isengard_server) == []


def test_missing_identifiers_is_a_clear_400(isengard_server, dicom_factory):
    ds = dicom_factory.dataset()
    del ds.SeriesInstanceUID
    r = isengard_server.post("/instances", content=dicom_factory.encode(ds))
    assert r.status_code == 400
    assert "SeriesInstanceUID" in r.json()["Details"]


def test_bare_dataset_without_file_meta_is_accepted(isengard_server):
    """rtstruct.dcm has neither preamble nor meta (old archives): stored as received, as
    Orthanc does (its /header is then empty)."""
    answer = isengard_server.upload(sample("rtstruct.dcm"))
    assert answer["Status"] == "Success"
    stored = isengard_server.get(f"/instances/{answer['ID']}/file").content
    assert stored == sample("rtstruct.dcm")
    assert isengard_server.get(f"/instances/{answer['ID']}/header").json() == {}
    tags = isengard_server.get(f"/instances/{answer['ID']}/simplified-tags").json()
    assert tags["PatientID"] == "tPhantom30sep"


def test_zip_upload_with_junk(isengard_server, dicom_factory):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("a/ct.dcm", sample("CT_small.dcm"))
        z.writestr("a/mr.dcm", sample("MR_small.dcm"))
        z.writestr("readme.txt", "not dicom")
        z.writestr("empty/", "")
    r = isengard_server.post("/instances", content=buffer.getvalue())
    assert r.status_code == 200
    answers = {a["Filename"]: a for a in r.json()}
    assert answers["a/ct.dcm"]["ID"] == CT_ID and answers["a/ct.dcm"]["Status"] == "Success"
    assert answers["a/mr.dcm"]["Status"] == "Success"
    assert answers["readme.txt"]["Status"] == "Failure"
    assert "not a DICOM file" in answers["readme.txt"]["Details"]
    assert isengard_server.get("/statistics").json()["CountInstances"] == 2


def test_corrupted_zip(isengard_server):
    r = isengard_server.post("/instances", content=b"PK\x03\x04" + b"garbage" * 10)
    assert r.status_code == 400
    assert "ZIP" in r.json()["Details"]


def test_storage_compression(isengard_factory, ct_small):
    server = isengard_factory({"storage": {"compression": True}})
    answer = server.upload(ct_small)
    files = stored_files(server)
    assert len(files) == 1 and files[0].stat().st_size < len(ct_small)
    assert server.get(f"/instances/{answer['ID']}/file").content == ct_small
    stats = server.get(f"/instances/{answer['ID']}/statistics").json()
    assert stats["DicomUncompressedSize"] == str(len(ct_small))
    assert int(stats["DicomDiskSize"]) == files[0].stat().st_size


@pytest.mark.parametrize("limit", [None, 1000], ids=["in-memory", "spooled-to-disk"])
def test_bodies_in_chunks_and_above_the_spool_limit(isengard_server, ct_small, monkeypatch,
                                                    limit):
    """A body sent in many chunks is stored byte for byte; past the spool limit it goes
    through a temporary file, a DICOM file as a ZIP archive."""
    from isengard.http import instances

    if limit is not None:
        monkeypatch.setattr(instances, "_SPOOL_LIMIT", limit)

    def chunked(data: bytes, size: int = 700):
        for start in range(0, len(data), size):
            yield data[start:start + size]

    r = isengard_server.post("/instances", content=chunked(ct_small))
    assert r.status_code == 200 and r.json()["ID"] == CT_ID
    assert isengard_server.get(f"/instances/{CT_ID}/file").content == ct_small
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("mr.dcm", sample("MR_small.dcm"))
    r = isengard_server.post("/instances", content=chunked(buffer.getvalue()))
    assert r.status_code == 200 and [a["Status"] for a in r.json()] == ["Success"]
    r = isengard_server.post("/instances", content=chunked(b"not DICOM at all" * 100))
    assert r.status_code == 400
    assert isengard_server.get("/statistics").json()["CountInstances"] == 2


def test_file_download_small_whole_large_streamed_and_by_ranges(isengard_server,
                                                                  dicom_factory):
    """GET /instances/{id}/file answers the stored bytes whether the file is read whole
    (small), streamed (above 1 MiB) or asked by a byte range."""
    s = isengard_server
    small = dicom_factory.instance()
    large = dicom_factory.encode(dicom_factory.dataset(rows=1024, columns=1024))
    assert len(small) < 1 << 20 < len(large)
    for data in (small, large):
        instance = s.upload(data)["ID"]
        r = s.get(f"/instances/{instance}/file")
        assert r.status_code == 200
        assert r.content == data
        assert r.headers["content-type"] == "application/dicom"
        assert r.headers["content-disposition"] == f'filename="{instance}.dcm"'
        part = s.get(f"/instances/{instance}/file", headers={"Range": "bytes=128-131"})
        assert part.status_code == 206
        assert part.content == b"DICM"
