"""Archives are streamed: memory stays bounded whatever their size, ZIP64 when needed."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

from isengard_plugins.archive.zipstream import ZipEntry, zip_stream

MB = 1 << 20


def test_large_study_is_streamed_with_bounded_memory(isengard_server, dicom_factory,
                                                     tmp_path):
    # ~335 MB: ten 4096×4096 16-bit instances (a few big files, as CT/MR multi-frames).
    study_uid, series_uid = dicom_factory.uid(), dicom_factory.uid()
    study = ""
    for number in range(1, 11):
        data = dicom_factory.instance(rows=4096, columns=4096, StudyInstanceUID=study_uid,
                                      SeriesInstanceUID=series_uid,
                                      InstanceNumber=str(number))
        study = isengard_server.upload(data)["ParentStudy"]
        del data
    total = sum(i["FileSize"]
                for i in isengard_server.get(f"/studies/{study}/instances").json())
    assert total > 300 * MB

    target = tmp_path / "study.zip"
    tracemalloc.start()  # the server runs in this process: its threads are traced too
    try:
        with isengard_server.client.stream("GET", f"/studies/{study}/archive") as r, \
                target.open("wb") as out:
            assert r.status_code == 200
            assert "content-length" not in r.headers  # streamed, not built first
            for chunk in r.iter_raw():
                out.write(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert target.stat().st_size > total
    # Less than half of one instance: no file, let alone the archive, is held whole.
    assert peak < 16 * MB, f"peak {peak / MB:.1f} MB for a {total / MB:.0f} MB archive"
    with zipfile.ZipFile(target) as archive:
        assert len(archive.namelist()) == 10
        assert sum(i.file_size for i in archive.infolist()) == total
        assert archive.testzip() is None  # every CRC checks


def test_zip64_for_many_entries():
    """More than 65535 entries need ZIP64 end records, written while streaming too."""
    count = 70_000
    entries = (ZipEntry(f"f{i}", 1, [b"x"]) for i in range(count))
    data = b"".join(zip_stream(entries))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert len(archive.infolist()) == count
        assert archive.read("f69999") == b"x"
    assert b"PK\x06\x06" in data[-200:]  # the ZIP64 end of central directory record


def test_unknown_size_entries_reserve_zip64():
    entries = [ZipEntry("a", 0, [b"abc", b"def"]), ZipEntry("b", 3, [b"xyz"])]
    with zipfile.ZipFile(io.BytesIO(b"".join(zip_stream(entries)))) as archive:
        assert archive.read("a") == b"abcdef"
        assert archive.read("b") == b"xyz"


def test_memory_of_the_generator_alone():
    """The ZIP writer keeps about one chunk, whatever the total (here 200 MB)."""
    chunk = b"\0" * MB

    def chunks():
        for _ in range(50):
            yield chunk

    entries = (ZipEntry(f"e{i}", 50 * MB, chunks()) for i in range(4))
    tracemalloc.start()
    try:
        size = sum(len(part) for part in zip_stream(entries))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > 200 * MB
    assert peak < 8 * MB, f"peak {peak / MB:.1f} MB"
