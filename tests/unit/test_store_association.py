"""The hand-run storage association, fed canned PDUs through a fake socket."""

from __future__ import annotations

import struct

import pytest
from pynetdicom.pdu import A_ASSOCIATE_AC
from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
from pynetdicom.presentation import PresentationContext

from isengard.dimse_fast import encode_c_store_rsp
from isengard.store_association import PeerError, StoreAssociation, _accepted

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
RLE = "1.2.840.10008.1.2.5"


class FakeSocket:
    """Answers ``recv_into`` from canned bytes; records what is sent."""

    def __init__(self, incoming: bytes):
        self.incoming = bytearray(incoming)
        self.sent = bytearray()
        self.closed = False

    def recv_into(self, view, size):
        count = min(size, len(self.incoming), 5)  # a few bytes at a time
        view[:count] = self.incoming[:count]
        del self.incoming[:count]
        return count

    def sendmsg(self, buffers):
        data = b"".join(bytes(b) for b in buffers)
        self.sent += data
        return len(data)

    def send(self, data):
        self.sent += data
        return len(data)

    def setblocking(self, flag):
        pass

    def close(self):
        self.closed = True


def pdu(*pdvs: tuple[int, bytes]) -> bytes:
    """A P-DATA-TF PDU of (message control header, fragment) PDVs on context 1."""
    body = b"".join(struct.pack(">IBB", len(f) + 2, 1, header) + f for header, f in pdvs)
    return struct.pack(">BBI", 4, 0, len(body)) + body


def test_accepted_contexts_from_a_pynetdicom_ac():
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = "ME"
    primitive.called_ae_title = "PEER"
    primitive.result = 0
    results = []
    for context_id, result, syntax in [(1, 0, RLE), (3, 0, EXPLICIT_LE), (5, 3, EXPLICIT_LE)]:
        cx = PresentationContext()
        cx.context_id, cx.result, cx.transfer_syntax = context_id, result, [syntax]
        results.append(cx)
    primitive.presentation_context_definition_results_list = results
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = 16383
    primitive.user_information = [max_length]
    ac = A_ASSOCIATE_AC()
    ac.from_primitive(primitive)
    accepted, max_pdu = _accepted(bytearray(ac.encode()), [CT, CT, MR])
    assert accepted == {CT: {RLE: 1, EXPLICIT_LE: 3}} and max_pdu == 16383


def test_a_response_in_several_fragments_and_pdus():
    response = encode_c_store_rsp(4, CT, "1.2.3", 0xB007)
    sock = FakeSocket(pdu((0x01, response[:10])) + pdu((0x01, response[10:30]),
                                                        (0x03, response[30:])))
    assoc = StoreAssociation(sock, {CT: {EXPLICIT_LE: 1}}, 1000, "peer", 5)
    assoc.send_request(1, CT, "1.2.3", b"\x08\x00" * 999, message_id=4)
    answer = assoc.read_response("1.2.3", message_id=4)
    assert answer.status == 0xB007 and not sock.closed
    assert len(sock.sent) > 1998 and sock.sent[0] == 0x04


def test_a_response_to_another_request_aborts():
    sock = FakeSocket(pdu((0x03, encode_c_store_rsp(9, CT, "1.2.3", 0))))
    assoc = StoreAssociation(sock, {}, 0, "peer", 5)
    with pytest.raises(PeerError, match="something else than its C-STORE-RSP"):
        assoc.read_response("1.2.3", message_id=4)
    assert sock.closed and sock.sent[:1] == b"\x07"  # A-ABORT


@pytest.mark.parametrize("incoming, message", [
    (b"\x07\x00\x00\x00\x00\x04\x00\x00\x02\x00", "aborted the association"),
    (b"", "closed the connection"),
    (b"\x04\x00\xff\xff\xff\xff", "not a DICOM peer"),
    (b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00", "unexpected PDU"),
])
def test_a_broken_association(incoming, message):
    sock = FakeSocket(incoming)
    assoc = StoreAssociation(sock, {}, 0, "peer", 5)
    with pytest.raises(PeerError, match=message):
        assoc.read_response("1.2.3", message_id=1)
    assert sock.closed
    with pytest.raises(PeerError, match="is closed"):
        assoc.send_request(1, CT, "1.2.3", b"", message_id=2)
