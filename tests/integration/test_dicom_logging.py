"""The server log tells an administrator what happened on each association."""

from __future__ import annotations

import pytest

from isengard_sdk.testing import DicomPeer
from tests.integration.dicom_helpers import wait_for


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "isengard.dicom" and text in r.getMessage()]


def _summary(caplog: pytest.LogCaptureFixture, calling_aet: str) -> str:
    """The line logged at release (in the server's thread: wait for it)."""
    def released() -> list[str]:
        return [line for line in _lines(caplog, " released: ")
                if f"from {calling_aet} (127.0.0.1:" in line]

    [line] = wait_for(released, "the release summary")
    return line


def test_accepted_association_and_summary(isengard_server, dicom_factory, caplog):
    caplog.set_level("INFO", logger="isengard.dicom")
    s = isengard_server
    files = dicom_factory.series(3)
    assert DicomPeer(aet="LOGGED_SCU").store(s.dicom_port, files) == [0, 0, 0]

    [accepted] = _lines(caplog, " accepted")
    assert "LOGGED_SCU" in accepted and "127.0.0.1" in accepted and s.aet in accepted
    summary = _summary(caplog, "LOGGED_SCU")
    assert "3 instance(s) stored, 0 already stored, 0 rejected" in summary

    caplog.clear()
    assert DicomPeer(aet="LOGGED_SCU").store(s.dicom_port, files[:1]) == [0]
    assert "0 instance(s) stored, 1 already stored" in _summary(caplog, "LOGGED_SCU")


def test_refused_store_says_why(isengard_server, dicom_factory, caplog):
    caplog.set_level("INFO", logger="isengard.dicom")
    s = isengard_server
    ds = dicom_factory.dataset()
    del ds.SeriesInstanceUID
    statuses = DicomPeer(aet="SLOPPY_SCU").store(
        s.dicom_port, [dicom_factory.encode(ds), dicom_factory.instance()])
    assert statuses[0] != 0 and statuses[1] == 0

    [refusal] = _lines(caplog, " refused: ")
    assert "SLOPPY_SCU" in refusal and "127.0.0.1" in refusal
    assert "lacks SeriesInstanceUID" in refusal
    assert "1 instance(s) stored, 0 already stored, 1 rejected" in _summary(caplog,
                                                                            "SLOPPY_SCU")
