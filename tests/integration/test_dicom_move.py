"""C-MOVE as a server: the sub-operations send the stored bytes to the destination, with
counts, per-instance failures, cancel, timeouts and conversions, against pynetdicom and
DCMTK destinations."""

from __future__ import annotations

import subprocess
import threading
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.presentation import AllStoragePresentationContexts

from isengard_sdk.testing import dcmtk_tool
from tests.conftest import dataset_bytes, sample
from tests.integration.dicom_helpers import DCMTK_ENV, free_port, split_part10
from tests.integration.test_dicom_qr import _listening, c_find
from tests.plugins.test_hooks import wait_for

STUDY_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
ALL_SYNTAXES = [EXPLICIT_LE, "1.2.840.10008.1.2", "1.2.840.10008.1.2.2",
                "1.2.840.10008.1.2.5"]


class Destination:
    """A pynetdicom storage SCP recording what it receives, as the C-MOVE destination.

    ``statuses`` answers chosen SOP instances with another status; ``hold`` makes the
    C-STORE of the n-th instance wait until ``release`` is set; ``abort_at`` aborts the
    association on the n-th instance."""

    def __init__(self, *, max_pdu: int = 16382, syntaxes: list[str] | None = None,
                 statuses: dict[str, int] | None = None, hold: int = 0, abort_at: int = 0,
                 calling_aets: list[str] | None = None):
        self.received: list[dict[str, Any]] = []
        self.statuses = statuses or {}
        self.hold, self.abort_at = hold, abort_at
        self.holding = threading.Event()
        self.release = threading.Event()
        ae = AE(ae_title="DEST")
        ae.maximum_pdu_size = max_pdu
        if calling_aets is not None:
            ae.require_calling_aet = calling_aets
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, syntaxes or ALL_SYNTAXES)
        self.server = ae.start_server(("127.0.0.1", 0), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self.on_store)])
        self.port = self.server.server_address[1]

    def on_store(self, event: Any) -> int:
        request = event.request
        uid = str(request.AffectedSOPInstanceUID)
        number = len(self.received) + 1
        self.received.append({
            "uid": uid, "syntax": str(event.context.transfer_syntax),
            "dataset": request.DataSet.getvalue(),
            "originator": (request.MoveOriginatorApplicationEntityTitle,
                           request.MoveOriginatorMessageID)})
        if number == self.abort_at:
            event.assoc.abort()
            return 0xA700
        if number == self.hold:
            self.holding.set()
            self.release.wait(60)
        return self.statuses.get(uid, 0x0000)

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()


@pytest.fixture
def destinations():
    started: list[Destination] = []

    def start(**options: Any) -> Destination:
        started.append(Destination(**options))
        return started[-1]

    yield start
    for destination in started:
        destination.stop()


def pacs_with(isengard_factory, destination: Destination, files: list[bytes],
              **modality: Any) -> Any:
    server = isengard_factory({"modalities": {
        "qrscu": ["QRSCU", "127.0.0.1", free_port()],
        "dest": {"aet": "DEST", "host": "127.0.0.1", "port": destination.port, **modality}}})
    for data in files:
        server.upload(data)
    return server


def c_move(port: int, study_uid: str, destination: str = "DEST", aet: str = "QRSCU",
           on_pending: Any = None) -> list[tuple[Dataset, Dataset | None]]:
    ae = AE(ae_title=aet)
    ae.add_requested_context(STUDY_MOVE)
    assoc = ae.associate("127.0.0.1", port, ae_title="ISENGARD")
    assert assoc.is_established
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    responses = []
    for status, identifier in assoc.send_c_move(query, destination, STUDY_MOVE, msg_id=7):
        responses.append((status, identifier))
        if on_pending is not None and status.Status == 0xFF00:
            on_pending(assoc)
    assoc.release()
    return responses


def failed_uids(identifier: Dataset) -> list[str]:
    value = identifier.FailedSOPInstanceUIDList
    return sorted([value] if isinstance(value, str) else value)


def counts(status: Dataset) -> tuple[int, int, int]:
    return (int(status.NumberOfCompletedSuboperations),
            int(status.NumberOfFailedSuboperations),
            int(status.NumberOfWarningSuboperations))


@pytest.fixture
def study(dicom_factory):
    """Three instances of one study, one spanning many PDUs (a 300×301 8-bit image)."""
    uid = dicom_factory.uid()
    files = [dicom_factory.instance(StudyInstanceUID=uid, InstanceNumber=str(i),
                                    rows=rows, columns=columns, bits=bits)
             for i, (rows, columns, bits) in enumerate([(8, 8, 16), (300, 301, 8),
                                                        (5, 7, 8)], start=1)]
    return uid, files


@pytest.mark.parametrize("max_pdu", [0, 1001, 4096, 16384])
def test_move_sends_the_stored_bytes(isengard_factory, destinations, study, max_pdu):
    uid, files = study
    destination = destinations(max_pdu=max_pdu)
    pacs = pacs_with(isengard_factory, destination, files)
    responses = c_move(pacs.dicom_port, uid)
    final = responses[-1][0]
    assert final.Status == 0x0000 and counts(final) == (3, 0, 0)
    pending = [int(s.NumberOfRemainingSuboperations) for s, _ in responses[:-1]]
    assert pending == [2, 1]
    assert sorted(r["dataset"] for r in destination.received) == sorted(
        dataset_bytes(f) for f in files)
    assert {r["originator"] for r in destination.received} == {("QRSCU", 7)}


def test_move_counts_failures_and_warnings(isengard_factory, destinations, dicom_factory):
    uid = dicom_factory.uid()
    files = [dicom_factory.instance(StudyInstanceUID=uid, SOPInstanceUID=f"1.2.3.{i}")
             for i in range(1, 5)]
    destination = destinations(statuses={"1.2.3.2": 0xA700, "1.2.3.3": 0xB000,
                                         "1.2.3.4": 0xC123})
    pacs = pacs_with(isengard_factory, destination, files)
    status, identifier = c_move(pacs.dicom_port, uid)[-1]
    assert status.Status == 0xB000 and counts(status) == (1, 2, 1)
    assert failed_uids(identifier) == ["1.2.3.2", "1.2.3.4"]


def test_move_where_every_sub_operation_fails(isengard_factory, destinations, dicom_factory):
    uid = dicom_factory.uid()
    files = [dicom_factory.instance(StudyInstanceUID=uid, SOPInstanceUID=f"1.2.4.{i}")
             for i in range(1, 3)]
    destination = destinations(statuses={"1.2.4.1": 0xA700, "1.2.4.2": 0xA700})
    pacs = pacs_with(isengard_factory, destination, files)
    status, identifier = c_move(pacs.dicom_port, uid)[-1]
    assert status.Status == 0xA702 and counts(status) == (0, 2, 0)
    assert failed_uids(identifier) == ["1.2.4.1", "1.2.4.2"]


def test_move_with_a_missing_file_fails_that_instance_only(isengard_factory, destinations,
                                                           study):
    uid, files = study
    destination = destinations()
    pacs = pacs_with(isengard_factory, destination, files)
    first = pacs.get("/instances").json()[0]
    uuid = pacs.get(f"/instances/{first}").json()["FileUuid"]
    pacs.server.kernel.storage.path_of(uuid).unlink()
    status, identifier = c_move(pacs.dicom_port, uid)[-1]
    assert status.Status == 0xB000 and counts(status) == (2, 1, 0)
    assert len(failed_uids(identifier)) == 1 and len(destination.received) == 2


def test_move_can_be_cancelled(isengard_factory, destinations, dicom_factory):
    uid = dicom_factory.uid()
    files = [dicom_factory.instance(StudyInstanceUID=uid) for _ in range(5)]
    destination = destinations(hold=2)
    pacs = pacs_with(isengard_factory, destination, files)

    def cancel_once(assoc):
        if destination.release.is_set():
            return
        assoc.send_c_cancel(7, query_model=STUDY_MOVE)
        wait_for(lambda: any(a.dimse.cancel_req
                             for a in pacs.server.dicom.ae.active_associations))
        destination.release.set()

    status, _ = c_move(pacs.dicom_port, uid, on_pending=cancel_once)[-1]
    assert status.Status == 0xFE00
    assert counts(status) == (2, 0, 0) and int(status.NumberOfRemainingSuboperations) == 3
    assert len(destination.received) == 2


def test_move_to_a_destination_that_refuses_or_is_down(isengard_factory, destinations,
                                                       study, caplog):
    uid, files = study
    refusing = destinations(calling_aets=["SOMEONE"])
    pacs = pacs_with(isengard_factory, refusing, files)
    assert c_move(pacs.dicom_port, uid)[-1][0].Status == 0xA801
    assert "rejected the association" in caplog.text
    pacs.put("/modalities/down", json={"AET": "DOWN", "Host": "127.0.0.1",
                                       "Port": free_port()})
    assert c_move(pacs.dicom_port, uid, "DOWN")[-1][0].Status == 0xA801
    assert "cannot connect" in caplog.text


def test_move_to_a_destination_that_aborts(isengard_factory, destinations, study):
    uid, files = study
    destination = destinations(abort_at=2)
    pacs = pacs_with(isengard_factory, destination, files)
    status, identifier = c_move(pacs.dicom_port, uid)[-1]
    assert status.Status == 0xB000 and counts(status) == (1, 2, 0)
    assert len(failed_uids(identifier)) == 2


def test_a_hanging_destination_times_out_without_blocking_others(isengard_factory,
                                                                 destinations, study):
    uid, files = study
    destination = destinations(hold=1)
    pacs = pacs_with(isengard_factory, destination, files, timeout=1)
    result: list[Any] = []
    mover = threading.Thread(target=lambda: result.extend(c_move(pacs.dicom_port, uid)))
    mover.start()
    assert destination.holding.wait(30)
    statuses, answers = c_find(pacs.dicom_port, "STUDY", StudyInstanceUID=uid)
    assert statuses[-1] == 0 and len(answers) == 1  # served while the move waits
    mover.join(60)
    status = result[-1][0]
    assert status.Status == 0xA702 and counts(status) == (0, 3, 0)


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm",  # converted by the kernel
                                  "MR_small_RLE.dcm"])  # by the codecs plugin
def test_move_converts_what_the_destination_does_not_accept(isengard_factory, destinations,
                                                            name):
    destination = destinations(syntaxes=[EXPLICIT_LE])
    pacs = pacs_with(isengard_factory, destination, [sample(name)])
    study = pacs.get("/studies").json()[0]
    uid = pacs.get(f"/studies/{study}").json()["MainDicomTags"]["StudyInstanceUID"]
    assert c_move(pacs.dicom_port, uid)[-1][0].Status == 0x0000
    assert [r["syntax"] for r in destination.received] == [EXPLICIT_LE]


def test_move_refused_to_a_caller_without_the_right(isengard_factory, destinations, study):
    uid, files = study
    destination = destinations()
    pacs = pacs_with(isengard_factory, destination, files)
    pacs.put("/modalities/qrscu", json={"AET": "QRSCU", "Host": "127.0.0.1",
                                        "Port": free_port(), "AllowMove": False})
    assert c_move(pacs.dicom_port, uid)[-1][0].Status == 0x0124
    assert c_move(pacs.dicom_port, uid, aet="STRANGER")[-1][0].Status == 0x0124
    assert destination.received == []


@pytest.mark.dcmtk
@pytest.mark.parametrize("max_pdu", [4097, 16384])
def test_dcmtk_storescp_receives_the_stored_data_sets(isengard_factory, study, tmp_path,
                                                      max_pdu):
    """movescu asks, storescp receives (bit-preserving): the same data set bytes."""
    movescu, storescp = dcmtk_tool("movescu"), dcmtk_tool("storescp")
    uid, files = study
    port = free_port()
    out_dir = tmp_path / "received"
    out_dir.mkdir()
    scp = subprocess.Popen([storescp, "-aet", "STORESCP", "+B", "--max-pdu", str(max_pdu),
                            "-od", str(out_dir), str(port)], env=DCMTK_ENV,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pacs = isengard_factory({"modalities": {
            "qrscu": ["QRSCU", "127.0.0.1", free_port()],
            "storescp": ["STORESCP", "127.0.0.1", port]}})
        for data in files:
            pacs.upload(data)
        wait_for(lambda: _listening(port))
        out = subprocess.run([movescu, "-aet", "QRSCU", "-aec", "ISENGARD", "-aem",
                              "STORESCP", "-S", "-k", "QueryRetrieveLevel=STUDY", "-k",
                              f"StudyInstanceUID={uid}", "127.0.0.1", str(pacs.dicom_port)],
                             capture_output=True, text=True, env=DCMTK_ENV, timeout=120,
                             check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        wait_for(lambda: len(list(out_dir.iterdir())) == len(files))
    finally:
        scp.terminate()
        scp.wait(10)
    received = sorted(split_part10(p.read_bytes())[1] for p in out_dir.iterdir())
    assert received == sorted(dataset_bytes(f) for f in files)
