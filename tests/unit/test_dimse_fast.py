"""The hand-encoded DIMSE messages and PDUs are byte for byte what pynetdicom would send."""

from __future__ import annotations

import logging
from io import BytesIO

import pytest
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.dimse_messages import C_ECHO_RSP, C_FIND_RSP, C_MOVE_RSP, C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_ECHO, C_FIND, C_MOVE, C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.pdu import P_DATA_TF

from isengard.dimse_fast import (
    decode_command,
    encode_c_move_rsp,
    encode_c_store_rq,
    encode_c_store_rsp,
    encode_final_response,
    p_data_tf,
    tune_connection,
)
from isengard.store_association import send_buffers


@pytest.mark.parametrize("sop_class, sop_instance, status, message_id", [
    ("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5.6", 0x0000, 1),
    ("1.2.840.10008.5.1.4.1.1.4", "1.2.3.4.5", 0xA700, 65535),  # odd length: padded
    ("1.2.840.10008.5.1.4.1.1.7", "9" * 64, 0xC000, 42),
])
def test_same_bytes_as_pynetdicom(sop_class, sop_instance, status, message_id):
    primitive = C_STORE()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.AffectedSOPInstanceUID = sop_instance
    primitive.Status = status
    message = C_STORE_RSP()
    message.primitive_to_message(primitive)
    expected = encode(message.command_set, True, True)
    assert encode_c_store_rsp(message_id, sop_class, sop_instance, status) == expected


# -- what the sender writes: C-STORE-RQ, pending C-MOVE-RSP, P-DATA-TF PDUs -------------

def _pynetdicom_c_store_rq(message_id, sop_class, sop_instance, originator, data):
    primitive = C_STORE()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.AffectedSOPInstanceUID = sop_instance
    primitive.Priority = 0
    if originator is not None:
        primitive.MoveOriginatorApplicationEntityTitle = originator[0]
        primitive.MoveOriginatorMessageID = originator[1]
    primitive.DataSet = BytesIO(data)
    message = C_STORE_RQ()
    message.primitive_to_message(primitive)
    return message


@pytest.mark.parametrize("sop_class, sop_instance, message_id, originator", [
    ("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5.6", 1, None),
    ("1.2.840.10008.5.1.4.1.1.4", "1.2.3.4.5", 65535, ("QRSCU", 7)),  # odd UID, odd AET
    ("1.2.840.10008.5.1.4.1.1.7", "9" * 64, 42, ("MOVESCU1", 65535)),
])
def test_c_store_rq_same_bytes_as_pynetdicom(sop_class, sop_instance, message_id,
                                             originator):
    message = _pynetdicom_c_store_rq(message_id, sop_class, sop_instance, originator, b"xx")
    expected = encode(message.command_set, True, True)
    assert encode_c_store_rq(message_id, sop_class, sop_instance,
                             move_originator=originator) == expected


def test_pending_c_move_rsp_same_bytes_as_pynetdicom():
    primitive = C_MOVE()
    primitive.MessageIDBeingRespondedTo = 3
    primitive.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.2"
    primitive.Status = 0xFF00
    primitive.NumberOfRemainingSuboperations = 497
    primitive.NumberOfCompletedSuboperations = 2
    primitive.NumberOfFailedSuboperations = 1
    primitive.NumberOfWarningSuboperations = 0
    message = C_MOVE_RSP()
    message.primitive_to_message(primitive)
    expected = encode(message.command_set, True, True)
    assert encode_c_move_rsp(3, "1.2.840.10008.5.1.4.1.2.2.2", 0xFF00, 497, 2, 1, 0) \
        == expected


def _final(kind, message_id, sop_class, status, **fields):
    primitive = kind()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.Status = status
    for name, value in fields.items():
        setattr(primitive, name, value)
    return primitive


@pytest.mark.parametrize("primitive, message", [
    (_final(C_FIND, 1, "1.2.840.10008.5.1.4.1.2.2.1", 0x0000), C_FIND_RSP),
    (_final(C_FIND, 65535, "1.2.840.10008.5.1.4.1.2.1.1", 0xFE00), C_FIND_RSP),  # odd UID
    (_final(C_FIND, 7, "1.2.840.10008.5.1.4.31", 0xA900), C_FIND_RSP),
    (_final(C_ECHO, 3, "1.2.840.10008.1.1", 0x0000), C_ECHO_RSP),
    (_final(C_ECHO, 4, "1.2.840.10008.1.1", 0x0124), C_ECHO_RSP),
])
def test_final_responses_same_bytes_as_pynetdicom(primitive, message):
    expected = message()
    expected.primitive_to_message(primitive)
    assert encode_final_response(primitive) == encode(expected.command_set, True, True)


@pytest.mark.parametrize("primitive", [
    _final(C_FIND, 1, "1.2.840.10008.5.1.4.1.2.2.1", 0xFF00,
           Identifier=BytesIO(b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ")),
    _final(C_FIND, 1, "1.2.840.10008.5.1.4.1.2.2.1", 0xA900, ErrorComment="bad key"),
    _final(C_FIND, 1, "1.2.840.10008.5.1.4.1.2.2.1", 0xA900, OffendingElement=[0x00100010]),
    _final(C_ECHO, 1, "1.2.840.10008.1.1", 0x0110, ErrorComment="no"),
    _final(C_MOVE, 1, "1.2.840.10008.5.1.4.1.2.2.2", 0x0000),
])
def test_final_responses_with_more_are_left_to_pynetdicom(primitive):
    assert encode_final_response(primitive) is None


def _pynetdicom_pdus(message, context_id, max_pdu) -> bytes:
    out = b""
    for primitive in message.encode_msg(context_id, max_pdu):
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        out += pdu.encode()
    return out


# 16382: pynetdicom's default; 16384: DCMTK's; odd sizes; 7: one data byte per PDU;
# 0: no limit. Data set sizes: odd, even, exact multiples of the fragment size.
@pytest.mark.parametrize("max_pdu", [0, 7, 13, 1001, 4096, 16382, 16384, 16385])
@pytest.mark.parametrize("size", [1, 2, 999, 4090, 12270, 40001])
def test_p_data_tf_same_pdus_as_pynetdicom(max_pdu, size):
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    message = _pynetdicom_c_store_rq(9, "1.2.840.10008.5.1.4.1.1.2", "1.2.3", ("A", 1), data)
    command = encode_c_store_rq(9, "1.2.840.10008.5.1.4.1.1.2", "1.2.3",
                                move_originator=("A", 1))
    buffers = p_data_tf(5, command, max_pdu, command=True) + p_data_tf(
        5, memoryview(data), max_pdu, command=False)
    assert b"".join(buffers) == _pynetdicom_pdus(message, 5, max_pdu)
    if max_pdu:  # every PDU's variable field within the peer's maximum (PS3.8 D.1)
        assert all(int.from_bytes(h[2:6], "big") <= max_pdu for h in buffers[::2])


def test_p_data_tf_copies_nothing_and_refuses_impossible_sizes():
    data = bytes(100_000)
    buffers = p_data_tf(1, data, 16384, command=False)
    assert all(isinstance(b, memoryview) and b.obj is data for b in buffers[1::2])
    with pytest.raises(ValueError, match="no room"):
        p_data_tf(1, data, 6, command=False)


def test_decode_command():
    command = encode_c_store_rsp(12, "1.2.840.10008.5.1.4.1.1.2", "1.2.3", 0xB000)
    elements = decode_command(command)
    assert elements[0x00000900] == b"\x00\xb0" and elements[0x00000120] == b"\x0c\x00"
    assert elements[0x00001000] == b"1.2.3\x00"
    with pytest.raises(ValueError, match="runs past the end"):
        decode_command(command[:-3])


class ThrottledSocket:
    """A socket whose ``sendmsg`` takes at most ``chunk`` bytes and 3 buffers a call."""

    def __init__(self, chunk: int):
        self.chunk = chunk
        self.written = bytearray()
        self.calls = 0

    def sendmsg(self, buffers):
        self.calls += 1
        budget = self.chunk
        for buffer in list(buffers)[:3]:
            part = bytes(buffer[:budget])
            self.written += part
            budget -= len(part)
            if not budget:
                break
        return self.chunk - budget


@pytest.mark.parametrize("chunk", [1, 7, 4096, 10**7])
def test_send_buffers_resumes_partial_writes(chunk):
    buffers = [bytes([i]) * (i * 37 % 101) for i in range(200)]  # empty ones included
    sock = ThrottledSocket(chunk)
    send_buffers(sock, buffers)
    assert bytes(sock.written) == b"".join(buffers)


def test_send_buffers_one_call_when_the_kernel_takes_everything():
    class Greedy:
        calls = 0

        def sendmsg(self, buffers):
            self.calls += 1
            return sum(len(b) for b in buffers)

    sock = Greedy()
    send_buffers(sock, p_data_tf(1, bytes(512 * 1024), 16384, command=False))
    assert sock.calls == 1


@pytest.mark.parametrize("level, logged", [(logging.WARNING, False), (logging.INFO, True),
                                           (logging.DEBUG, True)])
def test_pynetdicom_log_handlers_kept_only_when_their_lines_are_written(level, logged):
    logger = logging.getLogger("pynetdicom")
    before = logger.level
    logger.setLevel(level)
    try:
        assoc = Association(AE(), "acceptor")
        tune_connection(assoc)
    finally:
        logger.setLevel(before)
    for event in (evt.EVT_PDU_RECV, evt.EVT_PDU_SENT, evt.EVT_DIMSE_RECV, evt.EVT_DIMSE_SENT):
        assert bool(assoc.get_handlers(event)) is logged
