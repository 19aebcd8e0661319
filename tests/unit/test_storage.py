from __future__ import annotations

import hashlib
import os
import threading
import uuid

import pytest

from isengard.storage import (
    COMPRESSION_ZLIB,
    FILES_PER_FOLDER,
    PARALLEL_MD5_SIZE,
    FilesystemStorageArea,
)


def test_write_read_layout_and_md5(tmp_path):
    area = FilesystemStorageArea(tmp_path)
    info = area.write(b"hello")
    path = area.path_of(info.uuid)
    assert path == tmp_path / info.uuid[:2] / info.uuid[2:4] / info.uuid
    assert path.read_bytes() == b"hello"
    assert info.uncompressed_md5 == "5d41402abc4b2a76b9719d911017c592"
    assert area.read(info.uuid, info.compression) == b"hello"
    area.remove(info.uuid)
    assert not path.exists() and not path.parent.exists()
    area.remove(info.uuid)  # absent: ignored


def test_large_files_md5_computed_beside_the_write(tmp_path):
    area = FilesystemStorageArea(tmp_path)
    data = os.urandom(PARALLEL_MD5_SIZE + 1)
    infos = [area.write(data) for _ in range(3)]
    for info in infos:
        assert info.uncompressed_md5 == info.compressed_md5 == hashlib.md5(data).hexdigest()
        assert area.path_of(info.uuid).read_bytes() == data
    assert len({info.uuid for info in infos}) == 3


def test_compression_uses_orthanc_format(tmp_path):
    area = FilesystemStorageArea(tmp_path, compression=True)
    data = b"DICOM" * 1000
    info = area.write(data)
    raw = area.read_raw(info.uuid)
    assert info.compression == COMPRESSION_ZLIB
    assert int.from_bytes(raw[:8], "little") == len(data)  # uncompressed size prefix
    assert info.compressed_size == len(raw) < len(data)
    assert area.read(info.uuid, info.compression) == data


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    area = FilesystemStorageArea(tmp_path)

    def broken_write(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", broken_write)
    with pytest.raises(OSError, match="No space left"):
        area.write(b"x" * 100)
    monkeypatch.undo()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_leftover_temporary_files_are_cleaned(tmp_path):
    area = FilesystemStorageArea(tmp_path)
    (tmp_path / "ab" / "cd").mkdir(parents=True)
    (tmp_path / "ab" / "cd" / ".abcd.tmp").write_bytes(b"half")
    assert area.cleanup_temporary_files() == 1


def test_consecutive_files_share_a_folder_and_names_stay_uuid4(tmp_path):
    area = FilesystemStorageArea(tmp_path, sync=False)
    count = 2 * FILES_PER_FOLDER + 10
    names = [area.write(b"x").uuid for _ in range(count)]
    assert len(set(names)) == count
    for name in names:
        parsed = uuid.UUID(name)
        assert parsed.version == 4 and str(parsed) == name
    folders = [name[:4] for name in names]
    assert len(set(folders[:FILES_PER_FOLDER])) == 1
    # a new folder is drawn after each batch (the same one again: 1 chance in 65,536)
    assert len(set(folders)) >= 2
    assert sum(1 for _ in tmp_path.glob("*/*")) == len(set(folders))


def test_each_thread_writes_its_own_batch_of_files_in_its_own_folder(tmp_path, monkeypatch):
    # Creating and renaming a file lock its folder: threads storing at once must not
    # share one. uuid4 made deterministic, each draw with a new first four digits.
    draws = iter(uuid.UUID(int=(n << 112) | (0x4000 << 64) | (0x8000 << 48))
                 for n in range(1, 1000))
    monkeypatch.setattr("isengard.storage.uuid.uuid4", lambda: next(draws))
    area = FilesystemStorageArea(tmp_path, sync=False)
    first = area.write(b"a").uuid
    in_other_thread: list[str] = []
    worker = threading.Thread(target=lambda: in_other_thread.append(area.write(b"b").uuid))
    worker.start()
    worker.join()
    second = area.write(b"c").uuid
    assert first[:4] == second[:4]  # the same thread: still its batch's folder
    assert in_other_thread[0][:4] != first[:4]
