"""Pytest fixtures for plugin authors (and Isengard's own tests).

Installed as a pytest plugin (entry point ``pytest11``), so these fixtures are available
in any project that has ``isengard`` installed:

- ``isengard_server`` — a running server on free loopback ports with a temporary data
  folder, stopped after the test;
- ``isengard_factory`` — the same, configurable: ``isengard_factory(config={...},
  plugins=[("name", module_or_object)])``;
- ``dicom_factory`` — deterministic DICOM files (bytes) built with pydicom + numpy;
- ``dicom_peer`` — a pynetdicom client: ``echo(port)``, ``store(port, files)``.

Example::

    def test_my_plugin(isengard_factory, dicom_factory):
        server = isengard_factory(plugins=[("my_plugin", my_plugin)])
        server.post("/instances", content=dicom_factory.instance())
"""

from __future__ import annotations

import io
import itertools
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "DicomFactory",
    "DicomPeer",
    "RunningServer",
    "dcmtk_tool",
    "dicom_factory",
    "dicom_peer",
    "isengard_factory",
    "isengard_server",
]

UID_ROOT = "1.2.826.0.1.3680043.8.498.7"  # a test root; every UID below is derived from it


@dataclass
class RunningServer:
    """A started server and convenient HTTP helpers (``get``, ``post``, ``delete``)."""

    server: Any
    url: str
    dicom_port: int
    aet: str
    data_dir: Path
    _client: Any = field(default=None, repr=False)

    @property
    def client(self) -> Any:
        if self._client is None:
            import httpx

            self._client = httpx.Client(base_url=self.url, timeout=60)
        return self._client

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.client.post(path, **kw)

    def put(self, path: str, **kw: Any) -> Any:
        return self.client.put(path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.client.delete(path, **kw)

    def upload(self, data: bytes) -> dict[str, Any]:
        """POST one file to /instances, assert success, return Orthanc's answer."""
        r = self.post("/instances", content=data)
        if r.status_code != 200:
            raise AssertionError(f"upload failed: {r.status_code} {r.text}")
        answer: dict[str, Any] = r.json()
        return answer

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.server.stop()


def _make_server(tmp: Path, config: Mapping[str, Any] | None,
                 plugins: Iterable[tuple[str, Any]], use_entry_points: bool) -> RunningServer:
    from isengard.config import settings_from_mapping
    from isengard.server import Server

    base: dict[str, Any] = {
        "data_dir": str(tmp),
        "http": {"host": "127.0.0.1", "port": 0},
        "dicom": {"host": "127.0.0.1", "port": 0},
        "storage": {"sync": False},  # tests do not need fsync; durability has its own test
    }
    for key, value in (config or {}).items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    settings = settings_from_mapping(base, "test configuration")
    server = Server(settings, extra_plugins=list(plugins), use_entry_points=use_entry_points)
    server.start()
    return RunningServer(server, server.http_url, server.dicom_port, settings.dicom.aet,
                         tmp)


@pytest.fixture
def isengard_factory(tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[Callable[..., RunningServer]]:
    """Start servers on demand; all are stopped at the end of the test."""
    started: list[RunningServer] = []

    def factory(config: Mapping[str, Any] | None = None,
                plugins: Iterable[tuple[str, Any]] = (), *,
                use_entry_points: bool = True, data_dir: Path | None = None) -> RunningServer:
        tmp = data_dir or tmp_path_factory.mktemp("isengard")
        running = _make_server(tmp, config, plugins, use_entry_points)
        started.append(running)
        return running

    yield factory
    for running in reversed(started):
        running.stop()


@pytest.fixture
def isengard_server(isengard_factory: Callable[..., RunningServer]) -> RunningServer:
    """A running server with the default configuration."""
    return isengard_factory()


class DicomFactory:
    """Deterministic synthetic DICOM files.

    ``instance(**tags)`` returns the bytes of one PS3.10 file; identifiers default to
    fresh UIDs derived from a counter, so two calls give two instances of two studies
    unless you pass the same ``StudyInstanceUID`` / ``SeriesInstanceUID``.
    """

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def uid(self) -> str:
        return f"{UID_ROOT}.{next(self._counter)}"

    def dataset(self, *, rows: int = 8, columns: int = 8, bits: int = 16,
                sop_class_uid: str = "1.2.840.10008.5.1.4.1.1.2", **tags: Any) -> Any:
        import numpy as np
        from pydicom.dataset import Dataset, FileMetaDataset
        from pydicom.uid import ExplicitVRLittleEndian

        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID = sop_class_uid
        ds.SOPInstanceUID = self.uid()
        ds.PatientName = "Test^Patient"
        ds.PatientID = "TEST-0001"
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "O"
        ds.StudyInstanceUID = self.uid()
        ds.SeriesInstanceUID = self.uid()
        ds.StudyDate = "20240102"
        ds.StudyTime = "101010"
        ds.StudyID = "1"
        ds.AccessionNumber = "ACC1"
        ds.StudyDescription = "Synthetic study"
        ds.Modality = "CT"
        ds.SeriesNumber = "1"
        ds.SeriesDescription = "Synthetic series"
        ds.InstanceNumber = "1"
        ds.Rows = rows
        ds.Columns = columns
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = bits
        ds.BitsStored = bits
        ds.HighBit = bits - 1
        ds.PixelRepresentation = 0
        for key, value in tags.items():
            setattr(ds, key, value)
        rng = np.random.default_rng(int(str(ds.SOPInstanceUID).rsplit(".", 1)[-1]))
        dtype = np.uint16 if bits == 16 else np.uint8
        pixels = rng.integers(0, 4000 if bits == 16 else 255, size=(rows, columns),
                              dtype=dtype)
        ds.PixelData = pixels.tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        return ds

    def instance(self, **tags: Any) -> bytes:
        return self.encode(self.dataset(**tags))

    @staticmethod
    def encode(ds: Any) -> bytes:
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        return buffer.getvalue()

    def series(self, count: int, **tags: Any) -> list[bytes]:
        """``count`` instances of one series (numbered 1..count)."""
        tags.setdefault("StudyInstanceUID", self.uid())
        tags.setdefault("SeriesInstanceUID", self.uid())
        return [self.instance(InstanceNumber=str(i + 1), **tags) for i in range(count)]


@pytest.fixture
def dicom_factory() -> DicomFactory:
    return DicomFactory()


class DicomPeer:
    """A pynetdicom SCU talking to a server on loopback."""

    def __init__(self, aet: str = "TESTSCU"):
        self.aet = aet

    def _ae(self, contexts: Sequence[tuple[str, Sequence[str]]]) -> Any:
        from pynetdicom import AE

        ae = AE(ae_title=self.aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        for sop_class, syntaxes in contexts:
            ae.add_requested_context(sop_class, list(syntaxes))
        return ae

    def echo(self, port: int, called_aet: str = "ISENGARD") -> int:
        ae = self._ae([("1.2.840.10008.1.1", ["1.2.840.10008.1.2"])])
        assoc = ae.associate("127.0.0.1", port, ae_title=called_aet)
        if not assoc.is_established:
            raise ConnectionError(f"association to 127.0.0.1:{port} was not established")
        status = assoc.send_c_echo()
        assoc.release()
        return int(status.Status)

    def store(self, port: int, files: Sequence[bytes], called_aet: str = "ISENGARD"
              ) -> list[int]:
        """Send files on one association; return the status of each C-STORE."""
        import pydicom

        datasets = [pydicom.dcmread(io.BytesIO(f)) for f in files]
        contexts: dict[str, set[str]] = {}
        for ds in datasets:
            contexts.setdefault(str(ds.SOPClassUID), set()).add(
                str(ds.file_meta.TransferSyntaxUID))
        ae = self._ae([(k, sorted(v)) for k, v in contexts.items()])
        assoc = ae.associate("127.0.0.1", port, ae_title=called_aet)
        if not assoc.is_established:
            raise ConnectionError(f"association to 127.0.0.1:{port} was not established")
        statuses = []
        try:
            for ds in datasets:
                status = assoc.send_c_store(ds)
                statuses.append(int(status.Status) if "Status" in status else -1)
        finally:
            assoc.release()
        return statuses


@pytest.fixture
def dicom_peer() -> DicomPeer:
    return DicomPeer()


def dcmtk_tool(name: str) -> str:
    """The path of a DCMTK tool (``storescu`` …), or skip the test saying how to get it.

    Other packages (pynetdicom's apps) install commands with the same names: only a
    binary that reports itself as DCMTK counts.
    """
    for candidate in (f"/usr/bin/{name}", shutil.which(name)):
        if not candidate or not Path(candidate).exists():
            continue
        try:
            out = subprocess.run([candidate, "--version"], capture_output=True, text=True,
                                 timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if "dcmtk" in (out.stdout + out.stderr).lower():
            return candidate
    pytest.skip(f"DCMTK's {name} is not installed (apt-get install dcmtk)")
    raise AssertionError("unreachable")
