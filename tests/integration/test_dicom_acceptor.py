"""Our own acceptor (:mod:`isengard.dimse_acceptor`) serves storage and Verification
associations: it answers as pynetdicom did, counts associations with pynetdicom's, and
ends an association it cannot go on with by an A-ABORT, leaving the server serving."""

from __future__ import annotations

import logging
import socket
import struct

import pytest
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    AsynchronousOperationsWindowNegotiation,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
    UserIdentityNegotiation,
)

from isengard.dimse_fast import encode_c_store_rq
from isengard.store_association import (
    PeerError,
    StoreAssociation,
    _associate_rq,
    _read_pdu,
    send_buffers,
)
from tests.conftest import dataset_bytes
from tests.integration.dicom_helpers import (
    CT_IMAGE,
    EXPLICIT_LE,
    associate,
    p_data_pdu,
    pdv,
    request_command,
    store_ct,
    wait_for,
)

MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
VERIFICATION = "1.2.840.10008.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
JPEG_2000 = "1.2.840.10008.1.2.4.91"
RELEASE_RQ = b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"


def _connect(port: int, request: bytes) -> tuple[socket.socket, int, bytearray]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(request)
    pdu_type, pdu = _read_pdu(sock, "isengard")
    return sock, pdu_type, pdu


def _release(sock: socket.socket) -> None:
    sock.sendall(RELEASE_RQ)
    assert _read_pdu(sock, "isengard")[0] == 0x06
    sock.close()


def _request_with_extras(called: str) -> bytes:
    """An A-ASSOCIATE-RQ with the user information items pynetdicom ignores when no
    handler is bound: user identity (a response asked for), an asynchronous operations
    window, SOP class extended and common extended negotiation."""
    request = A_ASSOCIATE_RQ()
    request.decode(_associate_rq("SOMEONE", called, [(CT_IMAGE, [EXPLICIT_LE]),
                                                     (VERIFICATION, [IMPLICIT_LE])]))
    primitive = request.to_primitive()
    identity = UserIdentityNegotiation()
    identity.user_identity_type = 2
    identity.positive_response_requested = True
    identity.primary_field = b"someone"
    identity.secondary_field = b"secret"
    window = AsynchronousOperationsWindowNegotiation()
    window.maximum_number_operations_invoked = 4
    window.maximum_number_operations_performed = 4
    extended = SOPClassExtendedNegotiation()
    extended.sop_class_uid = CT_IMAGE
    extended.service_class_application_information = b"\x02\x00\x01\x00"
    common = SOPClassCommonExtendedNegotiation()
    common.sop_class_uid = CT_IMAGE
    common.service_class_uid = "1.2.840.10008.4.2"
    primitive.user_information += [identity, window, extended, common]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())


@pytest.mark.parametrize("request_for", [
    lambda called: _associate_rq("SOMEONE", called, [
        (CT_IMAGE, [EXPLICIT_LE, IMPLICIT_LE]), (VERIFICATION, [IMPLICIT_LE])]),
    # unknown transfer syntax, unknown SOP class, a compressed syntax proposed first
    lambda called: _associate_rq("SOMEONE", called, [
        (CT_IMAGE, ["1.2.3.4"]), ("1.2.3.999", [EXPLICIT_LE]),
        (MR_IMAGE, [JPEG_2000, EXPLICIT_LE]), (VERIFICATION, [EXPLICIT_LE, IMPLICIT_LE])]),
    _request_with_extras,
], ids=["plain", "unsupported", "ignored-items"])
def test_the_answer_is_pynetdicoms_byte_for_byte(isengard_server, caplog, request_for):
    s = isengard_server
    request = request_for(s.aet)
    sock, pdu_type, ours = _connect(s.dicom_port, request)
    assert pdu_type == 0x02
    wait_for(lambda: _established(s) == (1, 0), "our acceptor to serve the association")
    _release(sock)
    # The same request again: decided once (decoded, negotiated, answer encoded), the
    # decision reused — the same answer.
    decided = s.server.dicom._acceptor.requests
    assert list(decided) == [request]
    sock, _, again = _connect(s.dicom_port, request)
    _release(sock)
    assert again == ours and list(decided) == [request]
    # With pynetdicom's DEBUG logging on, every association goes its way.
    caplog.set_level(logging.DEBUG, logger="pynetdicom")
    sock, pdu_type, theirs = _connect(s.dicom_port, request)
    _release(sock)
    assert "Accept Parameters" in caplog.text  # pynetdicom's dump: it did answer
    assert ours == theirs
    # and with it off again, ours again (the handing over was not remembered)
    caplog.set_level(logging.INFO, logger="pynetdicom")
    sock, _, again = _connect(s.dicom_port, request)
    wait_for(lambda: _established(s) == (1, 0), "our acceptor to serve the association")
    _release(sock)
    assert again == ours


def _associate(server, *, find: bool = False) -> StoreAssociation:
    contexts = [(CT_IMAGE, [EXPLICIT_LE]), (VERIFICATION, [EXPLICIT_LE])]
    if find:  # then pynetdicom runs the association
        contexts.append((STUDY_ROOT_FIND, [EXPLICIT_LE]))
    return associate(server, contexts=contexts)


def _store_one(assoc: StoreAssociation, dicom_factory, message_id: int) -> int:
    """C-STORE a new instance on the CT context: its status."""
    ds = dicom_factory.dataset()
    return store_ct(assoc, dataset_bytes(dicom_factory.encode(ds)), str(ds.SOPInstanceUID),
                    message_id)


def _established(server) -> tuple[int, int]:
    dicom = server.server.dicom
    return (sum(1 for a in list(dicom._own) if a.established),
            sum(1 for a in dicom.ae.active_associations if a.is_acceptor))


def test_maximum_associations_counts_both_paths(isengard_factory, dicom_factory, caplog):
    s = isengard_factory(config={"dicom": {"maximum_associations": 2}})
    own = _associate(s)
    theirs = _associate(s, find=True)
    wait_for(lambda: _established(s) == (1, 1), "both associations to be established")
    try:
        for find in (False, True):
            with pytest.raises(PeerError, match="local limit exceeded"):
                _associate(s, find=find)
        assert "already 2 associations (dicom.maximum_associations)" in caplog.text
        own.release()
        wait_for(lambda: _established(s) == (0, 1), "the released association to end")
        again = _associate(s)
        assert _store_one(again, dicom_factory, 1) == 0
        again.release()
    finally:
        own.close()
        theirs.release()


def test_a_silent_association_is_aborted_after_the_timeout(isengard_factory, caplog):
    s = isengard_factory(config={"dicom": {"timeout": 1}})
    assoc = _associate(s)
    sock = assoc._sock
    assert sock is not None
    with caplog.at_level(logging.INFO, logger="isengard.dicom"):
        pdu_type, pdu = _read_pdu(sock, "isengard")  # waits for the server's A-ABORT
        assert pdu_type == 0x07
        wait_for(lambda: "aborted: 0 instance(s) stored" in caplog.text,
                 "the association's summary")
    assert "no exchange with the peer for 1 s (dicom.timeout)" in caplog.text
    assoc.close()
    assert _established(s) == (0, 0)


def _command(assoc: StoreAssociation, context_id: int, command: bytes,
             data: bytes | None = None) -> dict[int, bytes]:
    buffers: list[bytes] = [_p_data(context_id, command, command=True)]
    if data is not None:
        buffers.append(_p_data(context_id, data, command=False))
    assert assoc._sock is not None
    send_buffers(assoc._sock, buffers)
    return assoc._read_command(assoc._sock)


def _p_data(context_id: int, fragment: bytes, *, command: bool) -> bytes:
    """A P-DATA-TF PDU with the whole of a command or data set."""
    return p_data_pdu(pdv(context_id, fragment, command=command, last=True))


def _us(command: dict[int, bytes], tag: int) -> int:
    return int.from_bytes(command[tag], "little")


def test_requests_it_does_not_serve_are_answered(isengard_server, dicom_factory, caplog):
    s = isengard_server
    assoc = _associate(s)
    cx = assoc.accepted[CT_IMAGE][EXPLICIT_LE]
    try:
        # A C-FIND-RQ on a storage context: "unrecognized operation".
        answer = _command(assoc, cx, request_command(0x0020, CT_IMAGE, 5, data_set=True),
                          dataset_bytes(dicom_factory.instance()))
        assert (_us(answer, 0x00000100), _us(answer, 0x00000120),
                _us(answer, 0x00000900)) == (0x8020, 5, 0x0211)
        assert "answered 'unrecognized operation'" in caplog.text
        # A C-ECHO-RQ on the storage context, a C-STORE-RQ on the Verification one.
        echo = _command(assoc, cx, request_command(0x0030, VERIFICATION, 8))
        assert (_us(echo, 0x00000100), _us(echo, 0x00000900)) == (0x8030, 0x0211)
        verification = assoc.accepted[VERIFICATION][EXPLICIT_LE]
        ds = dicom_factory.dataset()
        answer = _command(assoc, verification,
                          encode_c_store_rq(9, CT_IMAGE, str(ds.SOPInstanceUID)),
                          dataset_bytes(dicom_factory.encode(ds)))
        assert (_us(answer, 0x00000100), _us(answer, 0x00000900)) == (0x8001, 0x0211)
        # A C-STORE-RQ that says no data set follows.
        command = bytearray(encode_c_store_rq(6, CT_IMAGE, "1.2.3.4.5"))
        at = command.index(struct.pack("<HHIH", 0, 0x0800, 2, 0x0001))
        command[at:at + 10] = struct.pack("<HHIH", 0, 0x0800, 2, 0x0101)
        answer = _command(assoc, cx, bytes(command))
        assert (_us(answer, 0x00000100), _us(answer, 0x00000900)) == (0x8001, 0xC000)
        # And the association goes on.
        assert _store_one(assoc, dicom_factory, 7) == 0
    finally:
        assoc.release()
    assert s.get("/statistics").json()["CountInstances"] == 1


@pytest.mark.parametrize("pdu, error", [
    (struct.pack(">BBI", 0x09, 0, 4) + b"\x00" * 4, "unrecognised PDU type 0x09"),
    (struct.pack(">BBI", 0x04, 0, 0x7FFFFFF0), "a PDU of 2147483632 bytes"),
    (_p_data(99, b"\x00" * 8, command=True), "presentation context 99"),
    (_associate_rq("AGAIN", "ISENGARD", [(CT_IMAGE, [EXPLICIT_LE])]),
     "unexpected PDU (type 0x01)"),
    (struct.pack(">BBI", 0x04, 0, 10) + struct.pack(">IBB", 50, 1, 3) + b"\x00" * 4,
     "do not add up"),
])
def test_protocol_errors_abort_and_the_server_goes_on(isengard_server, dicom_factory,
                                                      caplog, pdu, error):
    s = isengard_server
    assoc = _associate(s)
    assert assoc._sock is not None
    with caplog.at_level(logging.INFO, logger="isengard.dicom"):
        assoc._sock.sendall(pdu)
        assert _read_pdu(assoc._sock, "isengard")[0] == 0x07  # A-ABORT
        wait_for(lambda: "RAWSCU (127.0.0.1:" in caplog.text and " aborted: 0 instance"
                 in caplog.text, "the association's summary")
    assert error in caplog.text
    assoc.close()
    again = _associate(s)
    assert _store_one(again, dicom_factory, 1) == 0
    again.release()


def test_an_abort_from_the_peer_ends_the_association(isengard_server, dicom_factory,
                                                     caplog):
    s = isengard_server
    assoc = _associate(s)
    assert _store_one(assoc, dicom_factory, 1) == 0
    with caplog.at_level(logging.INFO, logger="isengard.dicom"):
        assoc.abort()
        wait_for(lambda: "aborted: 1 instance(s) stored" in caplog.text,
                 "the association's summary")
    wait_for(lambda: _established(s) == (0, 0) or None, "the association to end")
    assert s.get("/statistics").json()["CountInstances"] == 1
