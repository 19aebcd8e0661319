"""Helpers shared by the DICOM-network integration tests (``test_dicom_*.py``)."""

from __future__ import annotations

import io
import os
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydicom.dataset import FileMetaDataset
from pydicom.filereader import _read_file_meta_info, read_preamble

from isengard.store_association import StoreAssociation

T = TypeVar("T")

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"

# DCMTK tools: Nagle off (REFERENCE.md), and never wait forever on a broken peer.
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
DCMTK_TIMEOUT = 120


def run_dcmtk(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK command line tool, capturing its output."""
    return subprocess.run([tool, *args], capture_output=True, text=True, env=DCMTK_ENV,
                          timeout=DCMTK_TIMEOUT, check=False)


def split_part10(data: bytes) -> tuple[FileMetaDataset, bytes]:
    """A PS3.10 file → (its file meta information, the data set bytes that follow it)."""
    stream = io.BytesIO(data)
    read_preamble(stream, False)
    meta = _read_file_meta_info(stream)
    return meta, data[stream.tell():]


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Poll ``probe`` until it returns something truthy (a readiness wait, not a sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def instance_id_of(server: Any, sop_instance_uid: str) -> str | None:
    """The Orthanc ID of the instance with this SOPInstanceUID, if stored."""
    found = server.post("/tools/lookup", content=sop_instance_uid).json()
    ids = [f["ID"] for f in found if f["Type"] == "Instance"]
    return ids[0] if ids else None


def storage_files(data_dir: Path) -> list[Path]:
    """Every file under the storage folder (temporary ones included)."""
    return sorted(p for p in (data_dir / "storage").rglob("*") if p.is_file())


def assert_index_matches_storage(server: Any) -> None:
    """Every indexed instance has its file, and no file lacks an index row."""
    indexed = {server.get(f"/instances/{i}").json()["FileUuid"]
               for i in server.get("/instances").json()}
    on_disk = {p.name for p in storage_files(server.data_dir)}
    assert on_disk == indexed


def pdv(context_id: int, fragment: bytes, *, command: bool, last: bool) -> bytes:
    """One presentation data value item (PS3.8 9.3.5.1), hand-cut."""
    control = (0x01 if command else 0x00) | (0x02 if last else 0x00)
    return struct.pack(">IBB", len(fragment) + 2, context_id, control) + fragment


def p_data_pdu(*pdvs: bytes) -> bytes:
    """A P-DATA-TF PDU carrying these items (PS3.8 9.3.5)."""
    body = b"".join(pdvs)
    return struct.pack(">BBI", 0x04, 0x00, len(body)) + body


def request_command(field: int, sop_class: str, message_id: int, *,
                    data_set: bool = False) -> bytes:
    """The command set of a request (PS3.7 9.3, implicit VR little endian): its
    CommandField (0x0030 C-ECHO-RQ, 0x0020 C-FIND-RQ …); a request with a data set gets a
    Priority (medium) too, as C-FIND-RQ requires."""
    uid = sop_class.encode("ascii")
    uid += b"\x00" * (len(uid) % 2)
    elements = [struct.pack("<HHI", 0, 0x0002, len(uid)) + uid,
                struct.pack("<HHIH", 0, 0x0100, 2, field),
                struct.pack("<HHIH", 0, 0x0110, 2, message_id)]
    if data_set:
        elements.append(struct.pack("<HHIH", 0, 0x0700, 2, 0))
    elements.append(struct.pack("<HHIH", 0, 0x0800, 2, 0x0001 if data_set else 0x0101))
    body = b"".join(elements)
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def associate(server: Any, aet: str = "RAWSCU",
              contexts: Sequence[tuple[str, Sequence[str]]] = ((CT_IMAGE, (EXPLICIT_LE,)),)
              ) -> StoreAssociation:
    """An association to ``server`` with Isengard's storage SCU (a plain socket, one
    operation at a time)."""
    return StoreAssociation.request("127.0.0.1", server.dicom_port, calling_aet=aet,
                                    called_aet=server.aet, contexts=contexts, timeout=30,
                                    label="isengard")


def store_ct(assoc: StoreAssociation, data_set: bytes, sop_instance: str,
             message_id: int) -> int:
    """C-STORE a CT data set (explicit VR little endian) on ``assoc``: its status."""
    assoc.send_request(assoc.accepted[CT_IMAGE][EXPLICIT_LE], CT_IMAGE, sop_instance,
                       data_set, message_id=message_id)
    return assoc.read_response(sop_instance, message_id=message_id).status
