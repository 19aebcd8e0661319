"""Side-by-side fixtures: a real Orthanc (one per session, emptied before each module)
and a fresh Isengard per module, both on 127.0.0.1 with free ports."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from isengard.config import settings_from_mapping
from isengard.server import Server
from isengard_sdk.testing import RunningServer

from .compare import Pair
from .orthanc import STABLE_AGE, OrthancProcess, orthanc_binary
from .samples import SampleFile, sample_set


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancProcess]:
    binary = orthanc_binary()
    if binary is None:
        pytest.skip("Orthanc is not installed (apt-get install orthanc)")
    process = OrthancProcess(binary, tmp_path_factory.mktemp("orthanc"))
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def isengard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A fresh Isengard per module (``isengard_factory`` is function-scoped; this is the
    same construction at module scope), with Orthanc's stability delay."""
    tmp = tmp_path_factory.mktemp("isengard-compat")
    settings = settings_from_mapping({
        "data_dir": str(tmp),
        "http": {"host": "127.0.0.1", "port": 0},
        "dicom": {"host": "127.0.0.1", "port": 0},
        "storage": {"sync": False},
        "stable_age": STABLE_AGE,
    }, "compat test configuration")
    server = Server(settings, use_entry_points=True)
    server.start()
    running = RunningServer(server, server.http_url, server.dicom_port, settings.dicom.aet,
                            tmp)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def pair(isengard: RunningServer, orthanc: OrthancProcess) -> Pair:
    """Both servers, empty: Orthanc is shared by the session, so it is wiped first."""
    orthanc.reset()
    return Pair(isengard, orthanc)


@dataclass
class Loaded:
    """Both servers after receiving :func:`sample_set` in the same order."""

    pair: Pair
    files: list[SampleFile]
    # file name → (Isengard's answer, Orthanc's answer) to POST /instances
    answers: dict[str, tuple[httpx.Response, httpx.Response]]

    def instance_ids(self) -> dict[str, str]:
        """file name → instance ID (as Orthanc answered)."""
        return {name: theirs.json()["ID"] for name, (_, theirs) in self.answers.items()
                if theirs.status_code == 200}


@pytest.fixture(scope="module")
def loaded(pair: Pair) -> Loaded:
    files = sample_set()
    answers = {f.name: pair.post("/instances", content=f.data) for f in files}
    return Loaded(pair, files, answers)
