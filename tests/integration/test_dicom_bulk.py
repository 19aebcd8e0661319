"""Many instances on one association, and several associations at once."""

from __future__ import annotations

import io
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pydicom
import pytest

from isengard_sdk.testing import dcmtk_tool
from tests.conftest import dataset_bytes
from tests.integration.dicom_helpers import (
    DCMTK_ENV,
    DCMTK_TIMEOUT,
    associate,
    run_dcmtk,
    store_ct,
    wait_for,
)


def _released_summaries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "isengard.dicom" and " released: " in r.getMessage()]


@pytest.mark.dcmtk
def test_storescu_folder_on_one_association(isengard_server, dicom_factory, tmp_path, caplog):
    storescu = dcmtk_tool("storescu")
    s = isengard_server
    folder = tmp_path / "batch"
    folder.mkdir()
    study = dicom_factory.uid()
    files = [*dicom_factory.series(30, StudyInstanceUID=study),
             *dicom_factory.series(30, StudyInstanceUID=study, Modality="MR")]
    for number, data in enumerate(files):
        (folder / f"IM{number:04d}").write_bytes(data)

    caplog.set_level("INFO", logger="isengard.dicom")
    sent = run_dcmtk(storescu, "+sd", "-aet", "BATCH", "-aec", s.aet, "127.0.0.1",
                     str(s.dicom_port), str(folder))
    assert sent.returncode == 0, sent.stderr

    stats = s.get("/statistics").json()
    assert (stats["CountPatients"], stats["CountStudies"], stats["CountSeries"],
            stats["CountInstances"]) == (1, 1, 2, 60)
    # The summary is logged once the A-RELEASE-RP is on its way: storescu may exit first.
    [summary] = wait_for(lambda: _released_summaries(caplog),
                         "the association's summary in the log")  # one carried them all
    assert "BATCH" in summary and "60 instance(s) stored" in summary


def _store_on_one_association(server, aet: str, files: list[bytes]) -> list[int]:
    assoc = associate(server, aet)
    statuses = [store_ct(assoc, dataset_bytes(data),
                         str(pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID), message_id)
                for message_id, data in enumerate(files, 1)]
    assoc.release()
    return statuses


def test_concurrent_associations(isengard_server, dicom_factory):
    # Not pynetdicom's SCU: its send_c_store() can lose a response that comes back
    # before its reactor thread has paused (pynetdicom 3.0, Association._run_reactor),
    # and then waits for it until its DIMSE timeout.
    s = isengard_server
    batches = [dicom_factory.series(15, PatientID=f"P{n}") for n in range(4)]
    with ThreadPoolExecutor(len(batches)) as pool:
        results = list(pool.map(
            lambda nb: _store_on_one_association(s, f"PEER{nb[0]}", nb[1]),
            enumerate(batches)))
    assert results == [[0] * 15] * 4
    stats = s.get("/statistics").json()
    assert (stats["CountPatients"], stats["CountStudies"], stats["CountSeries"],
            stats["CountInstances"]) == (4, 4, 4, 60)


@pytest.mark.dcmtk
def test_concurrent_storescu_processes(isengard_server, dicom_factory, tmp_path):
    storescu = dcmtk_tool("storescu")
    s = isengard_server
    folders = []
    for n in range(4):
        folder = tmp_path / f"sender{n}"
        folder.mkdir()
        for number, data in enumerate(dicom_factory.series(10, PatientID=f"P{n}")):
            (folder / f"IM{number:04d}").write_bytes(data)
        folders.append(folder)

    processes = [
        subprocess.Popen([storescu, "+sd", "-aet", f"SENDER{n}", "-aec", s.aet, "127.0.0.1",
                          str(s.dicom_port), str(folder)],
                         env=DCMTK_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
        for n, folder in enumerate(folders)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=DCMTK_TIMEOUT)
        assert process.returncode == 0, stderr

    stats = s.get("/statistics").json()
    assert (stats["CountPatients"], stats["CountInstances"]) == (4, 40)
    for n in range(4):
        found = s.post("/tools/find", json={"Level": "Instance",
                                            "Query": {"PatientID": f"P{n}"}}).json()
        assert len(found) == 10
