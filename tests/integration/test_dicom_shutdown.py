"""Stopping the server while peers are connected: it stops, and the index stays true."""

from __future__ import annotations

import socket
import threading
from typing import Any

from pynetdicom import AE

from isengard_sdk import IncomingInstance, hookimpl
from tests.integration.dicom_helpers import (
    assert_index_matches_storage,
    storage_files,
    wait_for,
)

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
HANG_GUARD = 120  # seconds; only a hung stop() gets anywhere near this


def _stop_in_background(server: Any) -> threading.Thread:
    stopper = threading.Thread(target=server.stop, name="test-stopper", daemon=True)
    stopper.start()
    return stopper


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    except OSError:  # reset: accepted in the backlog as the listener closed
        return False
    return False


def _check_after_restart(isengard_factory, data_dir, files_after_stop) -> Any:
    """Restart on the same data: the files left at stop are exactly the indexed ones."""
    assert not [p for p in files_after_stop if p.name.endswith(".tmp")]
    again = isengard_factory(data_dir=data_dir)
    assert_index_matches_storage(again)
    assert {p.name for p in files_after_stop} == {p.name for p in storage_files(data_dir)}
    return again


def test_stop_with_open_associations(isengard_factory, dicom_factory):
    s = isengard_factory()
    ae = AE(ae_title="LINGERING")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(CT_IMAGE, ["1.2.840.10008.1.2.1"])
    busy = ae.associate("127.0.0.1", s.dicom_port, ae_title=s.aet)
    idle = ae.associate("127.0.0.1", s.dicom_port, ae_title=s.aet)
    bare = socket.create_connection(("127.0.0.1", s.dicom_port))  # no A-ASSOCIATE-RQ
    try:
        assert busy.is_established and idle.is_established
        for _ in range(3):
            assert busy.send_c_store(dicom_factory.dataset()).Status == 0

        stopper = _stop_in_background(s)
        stopper.join(HANG_GUARD)
        assert not stopper.is_alive(), "stop() hangs while associations are open"
        wait_for(lambda: not busy.is_alive() and not idle.is_alive(),
                 "the peers to see their associations end")
    finally:
        bare.close()
        for assoc in (busy, idle):
            if assoc.is_established:
                assoc.abort()

    files = storage_files(s.data_dir)
    assert len(files) == 3
    again = _check_after_restart(isengard_factory, s.data_dir, files)
    assert again.get("/statistics").json()["CountInstances"] == 3


class Gate:
    """Holds every incoming instance in the filter until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    @hookimpl
    def filter_incoming_instance(self, instance: IncomingInstance) -> None:
        self.entered.set()
        self.release.wait(HANG_GUARD)


def test_stop_during_a_c_store(isengard_factory, dicom_factory):
    gate = Gate()
    s = isengard_factory(config={"plugins": {"gate": {}}}, plugins=[("gate", gate)])
    ae = AE(ae_title="INTERRUPTED")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 5
    ae.add_requested_context(CT_IMAGE, ["1.2.840.10008.1.2.1"])
    assoc = ae.associate("127.0.0.1", s.dicom_port, ae_title=s.aet)
    assert assoc.is_established
    outcome: dict[str, Any] = {}

    def send() -> None:
        try:
            answer = assoc.send_c_store(dicom_factory.dataset())
            outcome["status"] = answer.get("Status")
        finally:
            # pynetdicom (as a client) may leave its socket open when aborted mid-wait.
            raw = getattr(getattr(assoc.dul, "socket", None), "socket", None)
            if raw is not None:
                raw.close()

    sender = threading.Thread(target=send, name="test-sender", daemon=True)
    sender.start()
    assert gate.entered.wait(HANG_GUARD)
    stopper = _stop_in_background(s)
    wait_for(lambda: _refuses_connections(s.dicom_port), "the listener to close")
    gate.release.set()  # the C-STORE in progress may now finish
    stopper.join(HANG_GUARD)
    assert not stopper.is_alive(), "stop() hangs with a C-STORE in progress"
    sender.join(HANG_GUARD)
    assert not sender.is_alive()

    files = storage_files(s.data_dir)
    assert len(files) == 1, (files, outcome)  # stop() waited for the C-STORE in progress
    again = _check_after_restart(isengard_factory, s.data_dir, files)
    assert again.get("/statistics").json()["CountInstances"] == 1
    # Stored and indexed whatever the peer heard: success, or the abort overtook the
    # answer (no status); never a failure status.
    assert outcome.get("status") in (None, 0x0000), outcome


def test_stop_does_not_abort_associations_that_ended(isengard_factory, dicom_peer, caplog):
    """Ended associations linger in memory until the garbage collector breaks their
    reference cycles: stop() must not report them as aborted."""
    import gc

    s = isengard_factory()
    gc.disable()  # keep the ended associations in memory, as a busy server often does
    try:
        for _ in range(3):
            assert dicom_peer.echo(s.dicom_port, s.aet) == 0
        wait_for(lambda: not [t for t in threading.enumerate()
                              if t.name.startswith("AcceptorThread")],
                 "the released associations' threads to end")
        with caplog.at_level("INFO", logger="isengard.dicom"):
            s.stop()
    finally:
        gc.enable()
    assert not [r for r in caplog.records if "aborting" in r.getMessage()]
