"""Start, probe and stop the servers under test, each in a fresh folder.

Both servers run as subprocesses on loopback with a SQLite index, no compression and
synchronous storage (a file is flushed before it is acknowledged). :class:`Launcher`
tracks what it started and stops all of it on exit, Ctrl-C included.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ISENGARD", "ORTHANC", "SERVERS", "Launcher", "RunningServer", "ServerKind",
           "dcmtk_env", "free_port"]

# The AE title the DCMTK tools call from; Orthanc must know it to answer C-FIND.
CLIENT_AET = "BENCHSCU"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dcmtk_env(nodelay: bool) -> dict[str, str]:
    """The environment of Orthanc and the DCMTK tools: ``TCP_NODELAY=1`` or not at all."""
    env = {k: v for k, v in os.environ.items() if k != "TCP_NODELAY"}
    if nodelay:
        env["TCP_NODELAY"] = "1"
    return env


@dataclass(frozen=True)
class ServerKind:
    """How to run one product. ``supports_cfind`` gates the C-FIND rows."""

    name: str
    aet: str
    supports_cfind: bool

    def command(self, folder: Path, http_port: int, dicom_port: int,
                isengard_dicom: Mapping[str, Any] | None = None) -> list[str]:
        """``isengard_dicom``: keys added to Isengard's ``dicom:`` section (an option
        Orthanc has no equivalent of)."""
        if self.name == "Isengard":
            return self._isengard(folder, http_port, dicom_port, isengard_dicom or {})
        return self._orthanc(folder, http_port, dicom_port)

    def _isengard(self, folder: Path, http_port: int, dicom_port: int,
                  dicom: Mapping[str, Any]) -> list[str]:
        config = folder / "isengard.yaml"
        # YAML is a superset of JSON: no YAML writer needed.
        config.write_text(json.dumps({
            "data_dir": str(folder / "data"),
            "http": {"host": "127.0.0.1", "port": http_port},
            "dicom": {"aet": self.aet, "host": "127.0.0.1", "port": dicom_port, **dicom},
            "storage": {"compression": False, "sync": True},
            "modalities": {"bench": [CLIENT_AET, "127.0.0.1", 11112]},
        }, indent=2))
        return [sys.executable, "-m", "isengard", "serve", "--config", str(config)]

    def _orthanc(self, folder: Path, http_port: int, dicom_port: int) -> list[str]:
        config = folder / "orthanc.json"
        config.write_text(json.dumps({
            "Name": "OrthancBench",
            "HttpPort": http_port,
            "DicomPort": dicom_port,
            "DicomAet": self.aet,
            "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "index"),
            "StorageCompression": False,
            "SyncStorageArea": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [],
            "DicomModalities": {"bench": [CLIENT_AET, "127.0.0.1", 11112]},
        }, indent=2))
        return ["Orthanc", str(config)]


ISENGARD = ServerKind("Isengard", "ISENGARD", supports_cfind=True)
ORTHANC = ServerKind("Orthanc", "ORTHANC", supports_cfind=True)
SERVERS = (ISENGARD, ORTHANC)


@dataclass
class RunningServer:
    kind: ServerKind
    process: subprocess.Popen[bytes]
    folder: Path
    http_port: int
    dicom_port: int
    startup_s: float = 0.0
    log_path: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def _processes(self) -> list[int]:
        """The server's process and its descendants (Isengard's storage workers)."""
        found, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as f:
                        todo += [int(child) for child in f.read().split()]
            except OSError:
                pass  # ended meanwhile
        return found

    def _status_kb(self, key: str) -> int:
        """``key`` of /proc/PID/status summed over the server's processes."""
        total = 0
        for pid in self._processes():
            try:
                with open(f"/proc/{pid}/status") as f:
                    total += next(int(line.split()[1]) for line in f
                                  if line.startswith(key + ":"))
            except (OSError, StopIteration):
                if pid == self.pid:
                    raise RuntimeError(f"{key} missing from /proc/{pid}/status") from None
        return total

    def cpu_seconds(self) -> float:
        """CPU time the server has used so far, user and system (``/proc/PID/stat``), its
        worker processes' included: those running, and those ended (reaped by it)."""
        ticks = 0
        for pid in self._processes():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])
            if pid == self.pid:
                ticks += int(fields[13]) + int(fields[14])  # children it waited for
        return ticks / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        """Resident memory now (VmRSS), in MB, worker processes included."""
        return self._status_kb("VmRSS") / 1024

    def peak_rss_mb(self) -> float:
        """Highest resident memory so far (VmHWM), in MB; with worker processes running,
        the sum of each one's peak (at least the peak of the sum)."""
        return self._status_kb("VmHWM") / 1024

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Launcher:
    """Starts servers in fresh folders under ``workdir`` and guarantees they stop."""

    def __init__(self, workdir: Path | None = None, keep: bool = False):
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="isengard-bench-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._running: list[RunningServer] = []
        self._count = 0

    def start(self, kind: ServerKind, *, nodelay: bool = True, timeout: float = 60.0,
              isengard_dicom: Mapping[str, Any] | None = None) -> RunningServer:
        """Start ``kind`` in a new folder; returns once HTTP answers and the DICOM port
        accepts connections. ``startup_s`` is the time from spawn to the first HTTP
        answer."""
        self._count += 1
        folder = self.workdir / f"{self._count:03d}-{kind.name.lower()}"
        folder.mkdir()
        http_port, dicom_port = free_port(), free_port()
        command = kind.command(folder, http_port, dicom_port, isengard_dicom)
        log_path = folder / "server.log"
        with open(log_path, "wb") as log:
            start = time.perf_counter()
            # A session of its own: Ctrl-C reaches the harness only, which stops the
            # servers in order (and still kills them if anything goes wrong).
            process = subprocess.Popen(command, cwd=folder, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=dcmtk_env(nodelay), start_new_session=True)
        server = RunningServer(kind, process, folder, http_port, dicom_port,
                               log_path=log_path)
        self._running.append(server)
        server.startup_s = _wait_http(server, start, timeout)
        _wait_tcp(server, dicom_port, timeout)
        return server

    def stop(self, server: RunningServer) -> None:
        """Stop ``server``; its folder stays until :meth:`close`.

        Deleting it at once would slow down the next server: on ext4 without a journal
        (this benchmark's usual machine) creating a file skips every inode of its block
        group freed less than 60 s ago (up to 6 min), reading each one's inode table
        block: right after a folder was deleted, 16-25 % of the next server's CPU went
        into that scan (``perf``: ``recently_deleted``, ``find_get_block_common``).
        """
        if server not in self._running:
            return
        self._running.remove(server)
        _terminate(server.process)

    def close(self) -> None:
        for server in list(self._running):
            self.stop(server)
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wait_http(server: RunningServer, start: float, timeout: float) -> float:
    url = server.url + "/system"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return time.perf_counter() - start
        except urllib.error.HTTPError:  # any answer counts as "up"
            return time.perf_counter() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        _check_alive(server, start, timeout)
        time.sleep(0.005)


def _wait_tcp(server: RunningServer, port: int, timeout: float) -> None:
    start = time.perf_counter()
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            pass
        _check_alive(server, start, timeout)
        time.sleep(0.005)


def _check_alive(server: RunningServer, start: float, timeout: float) -> None:
    if server.process.poll() is not None:
        raise RuntimeError(f"{server.kind.name} exited with status {server.process.returncode} "
                           f"during start-up; its log ends with:\n{server.log_tail()}")
    if time.perf_counter() - start > timeout:
        raise RuntimeError(f"{server.kind.name} did not answer within {timeout:.0f} s; "
                           f"its log ends with:\n{server.log_tail()}")


def _terminate(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    if process.poll() is not None:
        return
    try:
        process.send_signal(signal.SIGTERM)
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
    except KeyboardInterrupt:  # a second Ctrl-C while stopping: no more waiting
        process.kill()
        process.wait(5)
        raise
