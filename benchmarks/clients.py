"""The clients: DCMTK ``storescu`` and ``findscu`` (subprocesses), REST upload and
``/tools/find`` (Python ``http.client``, persistent connections).

Every function returns wall-clock seconds measured around the whole operation, and
raises :class:`ClientError` when the server did not do what was asked, so that a broken
server never produces a flattering figure.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .data import DicomSet
from .servers import CLIENT_AET, RunningServer, dcmtk_env

__all__ = ["ClientError", "cfind_study", "connect", "count_instances", "rest_upload", "storescu",
           "store_one_per_association", "tools_find_study"]

# Always the real DCMTK tools: `storescu` on PATH may be pynetdicom's Python shim.
STORESCU = "/usr/bin/storescu"
FINDSCU = "/usr/bin/findscu"


class ClientError(RuntimeError):
    """A benchmark client failed: the figure would be meaningless."""


def connect(server: RunningServer) -> http.client.HTTPConnection:
    """A keep-alive connection with TCP_NODELAY, as curl and urllib3 (requests) set it:
    http.client writes headers and body separately, and Nagle's algorithm would hold the
    body for the server's delayed ACK (~40 ms)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=120)
    conn.connect()
    assert conn.sock is not None  # noqa: S101 - connect() sets it
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def _split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    n = len(items)
    return [list(items[i * n // parts:(i + 1) * n // parts]) for i in range(parts)]


def storescu(server: RunningServer, dataset: DicomSet, associations: int,
             nodelay: bool = True) -> float:
    """Send ``dataset`` with ``associations`` storescu processes in parallel (one
    association each); returns the seconds until the last one exits."""
    whole = len(dataset.files) == sum(1 for _ in dataset.root.glob("part*/*.dcm"))
    if whole and associations in (1, len(dataset.parts)):
        # Whole folders: no command line holding 100,000 paths.
        groups = [[str(p) for p in dataset.parts]] if associations == 1 else [
            [str(p)] for p in dataset.parts]
    else:
        groups = [[str(f) for f in chunk] for chunk in _split(dataset.files, associations)]
    env = dcmtk_env(nodelay)
    base = [STORESCU, "-aet", CLIENT_AET, "-aec", server.kind.aet, "+sd", "+r",
            "127.0.0.1", str(server.dicom_port)]
    with tempfile.TemporaryDirectory() as tmp:
        logs = [open(Path(tmp) / f"storescu-{i}.log", "w+b") for i in range(len(groups))]
        start = time.perf_counter()
        processes = [subprocess.Popen(base + group, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env)
                     for group, log in zip(groups, logs, strict=True)]
        try:
            codes = [p.wait() for p in processes]
        finally:
            for p in processes:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        elapsed = time.perf_counter() - start
        for code, log in zip(codes, logs, strict=True):
            log.seek(0)
            text = log.read().decode(errors="replace")
            log.close()
            if code != 0 or re.search(r"^[EF]: ", text, re.M):
                raise ClientError(f"storescu to {server.kind.name} failed (exit {code}):\n"
                                  + text[-2000:] + "\nthe server's log ends with:\n"
                                  + server.log_tail())
    return elapsed


def store_one_per_association(server: RunningServer, dataset: DicomSet) -> float:
    """Send every file of ``dataset`` over its own association, one after the other
    (A-ASSOCIATE, one C-STORE, A-RELEASE), as modalities that associate per image do.

    DCMTK's ``storescu`` sends all its files over one association, and a process per
    file would measure the process start-up; the client here is Isengard's own storage
    SCU (:class:`isengard.store_association.StoreAssociation`, one thread, a plain
    socket), the same for both servers, with the files read before the clock starts."""
    from isengard.store_association import PeerError, StoreAssociation

    prepared = [_data_set(path) for path in dataset.files]
    name = server.kind.name
    started = time.perf_counter()
    for sop_class, sop_instance, transfer_syntax, data_set in prepared:
        try:
            assoc = StoreAssociation.request(
                "127.0.0.1", server.dicom_port, calling_aet=CLIENT_AET,
                called_aet=server.kind.aet, contexts=[(sop_class, [transfer_syntax])],
                timeout=60, label=name)
            context_id = assoc.accepted.get(sop_class, {}).get(transfer_syntax)
            if context_id is None:
                assoc.abort()
                raise ClientError(f"{name} refused the presentation context of {sop_class}")
            assoc.send_request(context_id, sop_class, sop_instance, data_set, message_id=1)
            answer = assoc.read_response(sop_instance, message_id=1)
            assoc.release()
        except PeerError as exc:
            raise ClientError(str(exc)) from exc
        if answer.status != 0:
            raise ClientError(f"{name} answered a C-STORE with status 0x{answer.status:04X}")
    return time.perf_counter() - started


def _data_set(path: Path) -> tuple[str, str, str, bytes]:
    """(SOP class, SOP instance, transfer syntax, the data set's bytes) of a file."""
    from pydicom.filereader import read_file_meta_info

    meta = read_file_meta_info(path)
    # Preamble, "DICM", the group length element, then the rest of the group.
    data_set = path.read_bytes()[132 + 12 + int(meta.FileMetaInformationGroupLength):]
    return (str(meta.MediaStorageSOPClassUID), str(meta.MediaStorageSOPInstanceUID),
            str(meta.TransferSyntaxUID), data_set)


def rest_upload(server: RunningServer, dataset: DicomSet, threads: int) -> float:
    """POST every file of ``dataset`` to ``/instances`` from ``threads`` threads, each on
    one keep-alive connection. Files are read into memory before the clock starts."""
    chunks = [[f.read_bytes() for f in chunk] for chunk in _split(dataset.files, threads)]
    errors: list[str] = []
    barrier = threading.Barrier(threads + 1)

    def work(bodies: list[bytes]) -> None:
        conn = connect(server)
        barrier.wait()
        try:
            for body in bodies:
                conn.request("POST", "/instances", body=body,
                             headers={"Content-Type": "application/dicom"})
                response = conn.getresponse()
                answer = response.read()
                if response.status != 200:
                    errors.append(f"HTTP {response.status}: {answer[:300]!r}")
                    return
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()

    workers = [threading.Thread(target=work, args=(c,), daemon=True) for c in chunks]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise ClientError(f"REST upload to {server.kind.name} failed: {errors[0]}")
    return elapsed


def _request(server: RunningServer, method: str, path: str, body: Any = None,
             conn: http.client.HTTPConnection | None = None) -> Any:
    own = conn is None
    conn = conn or connect(server)
    try:
        payload = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=payload,
                     headers={"Content-Type": "application/json"} if payload else {})
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise ClientError(f"{method} {path} on {server.kind.name}: HTTP {response.status} "
                              f"{data[:300]!r}")
        return json.loads(data)
    finally:
        if own:
            conn.close()


def count_instances(server: RunningServer) -> int:
    return int(_request(server, "GET", "/statistics")["CountInstances"])


def tools_find_study(server: RunningServer, conn: http.client.HTTPConnection,
                     query: dict[str, str]) -> tuple[float, int]:
    """One study-level ``/tools/find`` (IDs only, as most clients ask); returns
    (seconds, number of studies)."""
    start = time.perf_counter()
    answer = _request(server, "POST", "/tools/find",
                      {"Level": "Study", "Query": query}, conn=conn)
    return time.perf_counter() - start, len(answer)


_RESPONSE = re.compile(rb"^I: Find Response: \d+ \(Pending\)", re.M)


def cfind_study(server: RunningServer, query: dict[str, str],
                nodelay: bool = True) -> tuple[float, int]:
    """One study-root, study-level C-FIND by a ``findscu`` process (association set-up
    and release included, as a PACS client pays them); returns (seconds, matches)."""
    keys = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "", "PatientID": "",
            "PatientName": "", "StudyDate": "", "AccessionNumber": "", **query}
    command = [FINDSCU, "-v", "-S", "-aet", CLIENT_AET, "-aec", server.kind.aet]
    for key, value in keys.items():
        command += ["-k", f"{key}={value}"]
    command += ["127.0.0.1", str(server.dicom_port)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, env=dcmtk_env(nodelay),
                          stdin=subprocess.DEVNULL, check=False)
    elapsed = time.perf_counter() - start
    output = done.stdout + done.stderr
    if done.returncode != 0 or b"E: " in output:
        raise ClientError(f"findscu to {server.kind.name} failed (exit {done.returncode}):\n"
                          + output[-2000:].decode(errors="replace"))
    return elapsed, len(_RESPONSE.findall(output))


MOVESCU = "/usr/bin/movescu"
STORESCP = "/usr/bin/storescp"


def get_bytes(server: RunningServer, path: str,
              conn: http.client.HTTPConnection | None = None) -> bytes:
    """GET ``path`` and read the whole answer (timed by the caller)."""
    own = conn is None
    conn = conn or connect(server)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise ClientError(f"GET {path} on {server.kind.name}: HTTP {response.status}")
        return data
    finally:
        if own:
            conn.close()


def study_id(server: RunningServer, value: str) -> str:
    """The Orthanc identifier of the study whose StudyInstanceUID is ``value``."""
    conn = connect(server)
    try:
        conn.request("POST", "/tools/lookup", body=value.encode())
        answer = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    studies = [a["ID"] for a in answer if a["Type"] == "Study"]
    if not studies:
        raise ClientError(f"{server.kind.name} does not know the study {value}")
    return str(studies[0])


def declare_modality(server: RunningServer, name: str, aet: str, port: int) -> None:
    conn = connect(server)
    try:
        body = json.dumps({"AET": aet, "Host": "127.0.0.1", "Port": port}).encode()
        conn.request("PUT", f"/modalities/{name}", body=body)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise ClientError(f"PUT /modalities/{name} on {server.kind.name}: "
                              f"HTTP {response.status}")
    finally:
        conn.close()


def cmove_study(server: RunningServer, study_uid: str, destination_aet: str) -> float:
    """movescu of one study to ``destination_aet``; returns the seconds it took."""
    command = [MOVESCU, "-aet", CLIENT_AET, "-aec", server.kind.aet, "-aem", destination_aet,
               "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
               "127.0.0.1", str(server.dicom_port)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=dcmtk_env(True),
                          timeout=600, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise ClientError(f"movescu from {server.kind.name} failed: "
                          f"{(done.stdout + done.stderr)[-500:]}")
    return elapsed
