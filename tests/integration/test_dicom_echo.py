"""C-ECHO with real peers, called AE title checks, socket options of the listener."""

from __future__ import annotations

import socket

import pytest

from isengard_sdk.testing import dcmtk_tool
from tests.integration.dicom_helpers import instance_id_of, run_dcmtk, wait_for


@pytest.mark.dcmtk
def test_dcmtk_echoscu(isengard_server):
    echoscu = dcmtk_tool("echoscu")
    s = isengard_server
    out = run_dcmtk(echoscu, "-aet", "ECHOSCU", "-aec", s.aet, "127.0.0.1", str(s.dicom_port))
    assert out.returncode == 0, out.stderr


def test_pynetdicom_echo(isengard_server, dicom_peer):
    assert dicom_peer.echo(isengard_server.dicom_port, called_aet=isengard_server.aet) == 0


def test_silent_connections_do_not_hold_up_the_others(isengard_server, dicom_peer):
    """Connections that never send their A-ASSOCIATE-RQ (probes, a stuck peer) do not
    keep the listener from accepting the next one: it reads nothing from them."""
    s = isengard_server
    silent = [socket.create_connection(("127.0.0.1", s.dicom_port)) for _ in range(3)]
    try:
        for _ in range(3):
            assert dicom_peer.echo(s.dicom_port, called_aet=s.aet) == 0
    finally:
        for connection in silent:
            connection.close()


def test_wrong_called_aet_is_accepted_by_default(isengard_server, dicom_peer, dicom_factory):
    s = isengard_server
    assert dicom_peer.echo(s.dicom_port, called_aet="SOMEONE_ELSE") == 0
    ds = dicom_factory.dataset()
    assert dicom_peer.store(s.dicom_port, [dicom_factory.encode(ds)],
                            called_aet="SOMEONE_ELSE") == [0]
    instance = instance_id_of(s, ds.SOPInstanceUID)
    # Orthanc records the title the peer called, not its own.
    assert s.get(f"/instances/{instance}/metadata/CalledAET").text == "SOMEONE_ELSE"


def test_wrong_called_aet_is_refused_when_checked(isengard_factory, dicom_peer, caplog):
    s = isengard_factory(config={"dicom": {"check_called_aet": True}})
    with pytest.raises(ConnectionError):
        dicom_peer.echo(s.dicom_port, called_aet="SOMEONE_ELSE")
    assert dicom_peer.echo(s.dicom_port, called_aet=s.aet) == 0
    refusals = [r.getMessage() for r in caplog.records
                if r.name == "isengard.dicom" and "rejected" in r.getMessage()]
    assert len(refusals) == 1
    assert "TESTSCU" in refusals[0] and "127.0.0.1" in refusals[0]
    assert "called AE title not recognised" in refusals[0]
    assert "'SOMEONE_ELSE'" in refusals[0] and "check_called_aet" in refusals[0]


@pytest.mark.dcmtk
def test_dcmtk_echoscu_wrong_called_aet_refused_when_checked(isengard_factory):
    echoscu = dcmtk_tool("echoscu")
    s = isengard_factory(config={"dicom": {"check_called_aet": True}})
    refused = run_dcmtk(echoscu, "-aec", "SOMEONE_ELSE", "127.0.0.1", str(s.dicom_port))
    assert refused.returncode != 0
    assert "Called AE Title Not Recognized" in refused.stdout + refused.stderr
    accepted = run_dcmtk(echoscu, "-aec", s.aet, "127.0.0.1", str(s.dicom_port))
    assert accepted.returncode == 0, accepted.stderr


def test_accepted_connections_do_not_use_nagle(isengard_server):
    """TCP_NODELAY is on for the server side of a connection before the first PDU."""
    s = isengard_server
    with socket.create_connection(("127.0.0.1", s.dicom_port)):
        def server_side() -> socket.socket | None:
            for association in list(s.server.dicom._own):  # our acceptor's connections
                return association.sock
            return None

        raw = wait_for(server_side, "the server to accept the connection")
        assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
