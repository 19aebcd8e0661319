"""A real Orthanc (Debian's ``orthanc`` package) run as a subprocess, the oracle of the
compatibility suite."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

__all__ = ["OrthancProcess", "free_port", "orthanc_binary"]

# Long enough that no resource becomes stable while a test session runs: stability is
# timing, and these tests never depend on timing. Isengard is configured the same.
STABLE_AGE = 100_000
READY_TIMEOUT = 60.0


def orthanc_binary() -> str | None:
    return shutil.which("Orthanc") or (
        "/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (bind port 0, read it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OrthancProcess:
    """Orthanc with its own configuration, storage and index in ``workdir``."""

    def __init__(self, binary: str, workdir: Path):
        self.binary = binary
        self.workdir = workdir
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None

    def config(self) -> dict[str, Any]:
        return {
            "Name": "OrthancCompat",
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": "ORTHANC",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [],
            "StableAge": STABLE_AGE,
        }

    def start(self) -> None:
        path = self.workdir / "orthanc.json"
        path.write_text(json.dumps(self.config(), indent=2))
        log = (self.workdir / "orthanc.log").open("wb")
        env = {**os.environ, "TCP_NODELAY": "1"}
        self._process = subprocess.Popen([self.binary, str(path)], stdout=log,
                                         stderr=subprocess.STDOUT, env=env)
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        with httpx.Client(timeout=2) as probe:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise RuntimeError(
                        f"Orthanc exited with code {self._process.returncode} at start-up; "
                        f"see {self.workdir / 'orthanc.log'}")
                try:
                    if probe.get(self.url + "/system").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)  # polling interval of the readiness wait, not a delay
        self.stop()
        raise RuntimeError(f"Orthanc did not answer /system within {READY_TIMEOUT} s; "
                           f"see {self.workdir / 'orthanc.log'}")

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, timeout=60)
        return self._client

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.post(path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.delete(path, **kw)

    def reset(self) -> None:
        """Delete every patient and clear the change log: a blank index again."""
        for patient in self.get("/patients").json():
            self.delete(f"/patients/{patient}")
        self.delete("/changes")

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
