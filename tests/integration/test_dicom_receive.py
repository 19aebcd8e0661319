"""C-STOREs assembled from the PDUs as they arrive, with hand-cut PDUs a toolkit would
rarely send: commands in several fragments, several PDVs per PDU, one byte per fragment;
other messages still answered; protocol errors end the association and store nothing.

Each test runs on both paths of an association: storage and Verification only, served by
our acceptor (:mod:`isengard.dimse_acceptor`), and with a query context too, run by
pynetdicom with :mod:`isengard.dimse_receive` reading its C-STOREs."""

from __future__ import annotations

import socket
import struct

import pytest

from isengard.dimse_fast import encode_c_store_rq
from isengard.store_association import PeerError, StoreAssociation, send_buffers
from tests.conftest import dataset_bytes
from tests.integration.dicom_helpers import (
    instance_id_of,
    p_data_pdu,
    pdv,
    request_command,
    split_part10,
    wait_for,
)

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
VERIFICATION = "1.2.840.10008.1.1"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


@pytest.fixture(params=["own", "pynetdicom"])
def path(request) -> str:
    return request.param


def _associate(server, path: str) -> StoreAssociation:
    contexts = [(CT_IMAGE, [EXPLICIT_LE]), (VERIFICATION, [EXPLICIT_LE])]
    if path == "pynetdicom":
        contexts.append((STUDY_ROOT_FIND, [EXPLICIT_LE]))
    assoc = StoreAssociation.request(
        "127.0.0.1", server.dicom_port, calling_aet="RAWSCU", called_aet=server.aet,
        contexts=contexts, timeout=10, label="isengard")
    dicom = server.server.dicom
    expected = (1, 0) if path == "own" else (0, 1)

    def serving() -> tuple[int, int]:
        return (sum(1 for a in list(dicom._own) if a.established),
                sum(1 for a in dicom.ae.active_associations if a.is_acceptor))

    wait_for(lambda: serving() == expected, f"the association to be served by {path}")
    return assoc


def _fragments(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


def _pdvs(context_id: int, data: bytes, size: int, *, command: bool) -> list[bytes]:
    parts = _fragments(data, size)
    return [pdv(context_id, part, command=command, last=i == len(parts) - 1)
            for i, part in enumerate(parts)]


def _instance(dicom_factory) -> tuple[str, bytes]:
    ds = dicom_factory.dataset()
    return str(ds.SOPInstanceUID), dataset_bytes(dicom_factory.encode(ds))


def test_fragmented_commands_and_data_sets_are_stored_byte_for_byte(isengard_server,
                                                                    dicom_factory, path):
    s = isengard_server
    assoc = _associate(s, path)
    cx = assoc.accepted[CT_IMAGE][EXPLICIT_LE]
    sent = {}
    try:
        for message_id, (command_size, data_size, per_pdu) in enumerate(
                [(7, 100, 1), (1, 1, 50), (1000, 10_000, 3), (16, 33, 1000)], start=1):
            uid, data = _instance(dicom_factory)
            command = encode_c_store_rq(message_id, CT_IMAGE, uid)
            pdvs = (_pdvs(cx, command, command_size, command=True)
                    + _pdvs(cx, data, data_size, command=False))
            pdus = [p_data_pdu(*pdvs[i:i + per_pdu]) for i in range(0, len(pdvs), per_pdu)]
            send_buffers(assoc._sock, pdus)
            answer = assoc.read_response(uid, message_id=message_id)
            assert (answer.status, answer.error_comment) == (0x0000, "")
            sent[uid] = data
    finally:
        assoc.release()
    for uid, data in sent.items():
        instance = instance_id_of(s, uid)
        assert instance is not None
        meta, stored = split_part10(s.get(f"/instances/{instance}/file").content)
        assert stored == data
        assert meta.SourceApplicationEntityTitle == "RAWSCU"
        assert meta.TransferSyntaxUID == EXPLICIT_LE


def test_other_messages_between_c_stores_are_answered(isengard_server, dicom_factory, path):
    s = isengard_server
    assoc = _associate(s, path)
    echo_cx = assoc.accepted[VERIFICATION][EXPLICIT_LE]
    ct_cx = assoc.accepted[CT_IMAGE][EXPLICIT_LE]
    echo = request_command(0x0030, VERIFICATION, 7)  # C-ECHO-RQ
    try:
        # A C-ECHO in two command fragments, one PDU each, between two C-STOREs.
        for message_id in (1, 3):
            uid, data = _instance(dicom_factory)
            send_buffers(assoc._sock, [p_data_pdu(*_pdvs(ct_cx, encode_c_store_rq(
                message_id, CT_IMAGE, uid), 4096, command=True)),
                p_data_pdu(*_pdvs(ct_cx, data, 4096, command=False))])
            assert assoc.read_response(uid, message_id=message_id).status == 0
            if message_id == 1:
                for item in _pdvs(echo_cx, echo, 40, command=True):
                    send_buffers(assoc._sock, [p_data_pdu(item)])
                answer = assoc._read_command(assoc._sock)
                assert int.from_bytes(answer[0x00000100], "little") == 0x8030
                assert int.from_bytes(answer[0x00000120], "little") == 7
                assert int.from_bytes(answer[0x00000900], "little") == 0
    finally:
        assoc.release()
    assert s.get("/statistics").json()["CountInstances"] == 2


def test_failures_are_answered_with_their_reason(isengard_server, dicom_factory, path):
    s = isengard_server
    assoc = _associate(s, path)
    cx = assoc.accepted[CT_IMAGE][EXPLICIT_LE]
    try:
        ds = dicom_factory.dataset()
        del ds.StudyInstanceUID
        assoc.send_request(cx, CT_IMAGE, str(ds.SOPInstanceUID),
                           dataset_bytes(dicom_factory.encode(ds)), message_id=1)
        answer = assoc.read_response(str(ds.SOPInstanceUID), message_id=1)
        assert answer.status == 0xC000
        assert "StudyInstanceUID" in answer.error_comment
        # and the association carries on
        uid, data = _instance(dicom_factory)
        assoc.send_request(cx, CT_IMAGE, uid, data, message_id=2)
        assert assoc.read_response(uid, message_id=2).status == 0
    finally:
        assoc.release()
    assert s.get("/statistics").json()["CountInstances"] == 1


def test_a_command_inside_a_data_set_aborts_and_stores_nothing(isengard_server,
                                                               dicom_factory, path):
    s = isengard_server
    assoc = _associate(s, path)
    cx = assoc.accepted[CT_IMAGE][EXPLICIT_LE]
    uid, data = _instance(dicom_factory)
    command = encode_c_store_rq(1, CT_IMAGE, uid)
    send_buffers(assoc._sock, [
        p_data_pdu(pdv(cx, command, command=True, last=True)),
        p_data_pdu(pdv(cx, data[:100], command=False, last=False)),
        p_data_pdu(pdv(cx, command, command=True, last=True)),  # a new message, too early
    ])
    with pytest.raises(PeerError, match="aborted"):
        assoc.read_response(uid, message_id=1)
    assoc.close()
    assert s.get("/statistics").json()["CountInstances"] == 0


def test_a_connection_cut_in_the_middle_of_a_data_set_stores_nothing(isengard_server,
                                                                    dicom_factory, path):
    s = isengard_server
    assoc = _associate(s, path)
    cx = assoc.accepted[CT_IMAGE][EXPLICIT_LE]
    uid, data = _instance(dicom_factory)
    send_buffers(assoc._sock, [
        p_data_pdu(pdv(cx, encode_c_store_rq(1, CT_IMAGE, uid), command=True, last=True)),
        p_data_pdu(pdv(cx, data[:100], command=False, last=False)),
        struct.pack(">BBI", 0x04, 0, 1000) + b"\x00" * 10,  # a PDU cut short
    ])
    assoc._sock.shutdown(socket.SHUT_RDWR)
    assoc.close()
    # The server carries on: a new association stores.
    again = _associate(s, path)
    try:
        uid2, data2 = _instance(dicom_factory)
        again.send_request(cx, CT_IMAGE, uid2, data2, message_id=1)
        assert again.read_response(uid2, message_id=1).status == 0
    finally:
        again.release()
    assert s.get("/statistics").json()["CountInstances"] == 1
    assert instance_id_of(s, uid) is None
