"""A plugin can replace the storage area (the role an S3 plugin plays)."""

from __future__ import annotations

import hashlib
import threading
import uuid

import pytest

from isengard_sdk import StorageArea, StoredFileInfo, hookimpl


class MemoryStorage:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.lock = threading.Lock()

    def write(self, data: bytes, *, compress: bool | None = None) -> StoredFileInfo:
        key = str(uuid.uuid4())
        with self.lock:
            self.files[key] = bytes(data)
        md5 = hashlib.md5(data).hexdigest()
        return StoredFileInfo(key, len(data), len(data), md5, md5)

    def read(self, uuid: str, compression: int) -> bytes:
        with self.lock:
            if uuid not in self.files:
                raise FileNotFoundError(uuid)
            return self.files[uuid]

    def remove(self, uuid: str) -> None:
        with self.lock:
            self.files.pop(uuid, None)


class MemoryStoragePlugin:
    def __init__(self) -> None:
        self.storage = MemoryStorage()

    @hookimpl
    def storage_backend(self, context):
        return self.storage


def test_storage_backend_replaces_the_folder(isengard_factory, ct_small):
    plugin = MemoryStoragePlugin()
    assert isinstance(plugin.storage, StorageArea)
    server = isengard_factory({"plugins": {"memory": {}}}, plugins=[("memory", plugin)])
    answer = server.upload(ct_small)
    assert list(plugin.storage.files.values()) == [ct_small]
    assert server.get(f"/instances/{answer['ID']}/file").content == ct_small
    assert server.get("/system").json()["StorageAreaPlugin"] == "memory"
    assert not (server.data_dir / "storage").exists()
    server.delete(f"/instances/{answer['ID']}")
    assert plugin.storage.files == {}


class BrokenStoragePlugin:
    @hookimpl
    def storage_backend(self, context):
        raise ConnectionError("bucket unreachable")


def test_a_storage_that_cannot_open_stops_startup(isengard_factory):
    from isengard.errors import StartupError

    with pytest.raises(StartupError, match="plugin 'broken' failed in storage_backend"):
        isengard_factory({"plugins": {"broken": {}}}, plugins=[("broken", BrokenStoragePlugin())])
