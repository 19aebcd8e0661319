"""Accepted associations wake their threads on work instead of polling
(:mod:`isengard.dimse_wakeup`): what it installs is undone when they end."""

from __future__ import annotations

import io
import os

from isengard import dimse_wakeup
from tests.integration.dicom_helpers import wait_for

VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


def _pipes() -> int:
    """Pipes open in this process (the server runs in it)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")
        except OSError:  # closed meanwhile
            pass
    return count


def _echo_and_store(port: int, aet: str, files: list[bytes]) -> list[int]:
    """A C-ECHO and C-STOREs on an association that pynetdicom runs (a query context is
    proposed too: storage and Verification alone are served by our acceptor)."""
    from pydicom import dcmread
    from pynetdicom import AE

    ae = AE(ae_title="WAKEUP")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for sop_class in (VERIFICATION, CT_IMAGE, STUDY_ROOT_FIND):
        ae.add_requested_context(sop_class, ["1.2.840.10008.1.2.1"])
    assoc = ae.associate("127.0.0.1", port, ae_title=aet)
    assert assoc.is_established
    try:
        assert dimse_wakeup._waits, "the association is not run by pynetdicom"
        statuses = [int(assoc.send_c_echo().Status)]
        for data in files:
            statuses.append(int(assoc.send_c_store(dcmread(io.BytesIO(data))).Status))
    finally:
        assoc.release()
    return statuses


def test_nothing_left_behind_after_many_associations(isengard_server, dicom_factory):
    s = isengard_server
    assert _echo_and_store(s.dicom_port, s.aet, []) == [0]  # warm up lazy imports
    wait_for(lambda: not dimse_wakeup._waits or None, "the first association to end")
    before = _pipes()
    for _ in range(15):
        assert _echo_and_store(s.dicom_port, s.aet, []) == [0]
    files = [dicom_factory.instance() for _ in range(5)]
    assert _echo_and_store(s.dicom_port, s.aet, files) == [0] * 6
    wait_for(lambda: not dimse_wakeup._waits or None, "every association's threads to end")
    wait_for(lambda: _pipes() <= before or None, "the wake-up pipes to be closed")
    assert s.get("/statistics").json()["CountInstances"] == 5


def test_plain_sleep_outside_registered_threads(monkeypatch):
    slept = []
    monkeypatch.setattr(dimse_wakeup.time, "sleep", slept.append)
    dimse_wakeup._TIME.sleep(0.001)
    assert slept == [0.001]
    assert dimse_wakeup._TIME.monotonic is dimse_wakeup.time.monotonic


def test_release_and_end_wake_the_reactor(isengard_server, monkeypatch):
    """With every wait of the association's threads 60 s long, a C-ECHO, the release and
    the end of the association still happen at once: each step is woken by what it
    waits for (the A-RELEASE-RQ, the end of the DUL thread), not by a timeout."""
    import threading
    import time

    from pynetdicom import AE

    def long_sleep(seconds: float) -> None:
        wait = dimse_wakeup._waits.get(threading.current_thread())
        if wait is None:
            time.sleep(seconds)
        else:
            wait(60.0)

    monkeypatch.setattr(dimse_wakeup._Time, "sleep", staticmethod(long_sleep))
    s = isengard_server
    ae = AE(ae_title="WAKEUP")
    ae.add_requested_context(VERIFICATION)
    ae.add_requested_context(STUDY_ROOT_FIND)  # else our acceptor serves it, not pynetdicom
    assoc = ae.associate("127.0.0.1", s.dicom_port, ae_title=s.aet)
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0
    released = threading.Thread(target=assoc.release, daemon=True)
    released.start()
    released.join(30)  # a hang guard: a missed wake-up would take 60 s
    assert not released.is_alive() and assoc.is_released
    wait_for(lambda: not [t for t in threading.enumerate()
                          if t.name.startswith("AcceptorThread")] or None,
             "the association's threads to end", timeout=30)
