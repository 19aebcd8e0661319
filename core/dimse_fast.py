"""Hand-encoded DIMSE messages and P-DATA-TF PDUs, for the messages sent per instance.

pynetdicom builds each message as a pydicom Dataset and encodes it with pydicom's
generic writer: about a third of the CPU of a small-instance C-STORE (py-spy, see
docs/performance.md). The command sets sent once per instance (C-STORE-RSP, C-STORE-RQ,
pending C-MOVE-RSP) are a handful of fixed elements, so we encode them directly (PS3.7
9.3 and E.1: command set, implicit VR little endian), and cut P-DATA-TF PDUs (PS3.8
9.3.5, E.2) as buffers for one ``sendmsg``. The C-STORE-RSP goes out from
:mod:`.dimse_receive`; with DICOM-level debug logging, messages go through pynetdicom
unchanged. The bytes are identical to pynetdicom's (tests/unit/test_dimse_fast.py).
"""

from __future__ import annotations

import logging
import socket
import struct
from typing import Any

from pynetdicom import evt
from pynetdicom._handlers import (
    standard_dimse_recv_handler,
    standard_dimse_sent_handler,
    standard_pdu_recv_handler,
    standard_pdu_sent_handler,
)
from pynetdicom.dimse_primitives import C_ECHO, C_FIND, C_MOVE
from pynetdicom.pdu_primitives import P_DATA

__all__ = ["command_text", "command_us", "decode_command", "encode_c_move_rsp",
           "encode_c_store_rq", "encode_c_store_rsp", "encode_final_response",
           "encode_response", "install_fast_final_responses", "install_fast_receive",
           "on_connection_open", "p_data_tf", "pdvs", "recv_exactly", "send_move_pending",
           "tune_connection"]

_PYNETDICOM_LOG = logging.getLogger("pynetdicom")


def _uid(tag: int, uid: str) -> bytes:
    value = uid.encode("ascii")
    if len(value) % 2:
        value += b"\x00"
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


def _us(tag: int, value: int) -> bytes:
    return struct.pack("<HHIH", tag >> 16, tag & 0xFFFF, 2, value)


def _ae(tag: int, aet: str) -> bytes:
    value = aet.encode("ascii", "replace")
    if len(value) % 2:
        value += b" "
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


def _command(*elements: bytes) -> bytes:
    body = b"".join(elements)
    return struct.pack("<HHII", 0x0000, 0x0000, 4, len(body)) + body  # CommandGroupLength


def encode_c_store_rq(message_id: int, sop_class: str, sop_instance: str, *,
                      priority: int = 0, move_originator: tuple[str, int] | None = None
                      ) -> bytes:
    """The encoded command set of a C-STORE-RQ with a data set (PS3.7 9.3.1.1);
    ``move_originator``: (AE title, message ID) of the C-MOVE it is a sub-operation of."""
    elements = [
        _uid(0x00000002, sop_class),
        _us(0x00000100, 0x0001),  # CommandField: C-STORE-RQ
        _us(0x00000110, message_id),
        _us(0x00000700, priority),
        _us(0x00000800, 0x0001),  # CommandDataSetType: a data set follows
        _uid(0x00001000, sop_instance),
    ]
    if move_originator is not None:
        elements += [_ae(0x00001030, move_originator[0]), _us(0x00001031, move_originator[1])]
    return _command(*elements)


def encode_c_move_rsp(message_id: int, sop_class: str, status: int, remaining: int,
                      completed: int, failed: int, warning: int) -> bytes:
    """The encoded command set of a C-MOVE-RSP without identifier (PS3.7 9.3.4.2): the
    pending responses sent after each sub-operation."""
    return _command(
        _uid(0x00000002, sop_class),
        _us(0x00000100, 0x8021),  # CommandField: C-MOVE-RSP
        _us(0x00000120, message_id),  # MessageIDBeingRespondedTo
        _us(0x00000800, 0x0101),  # CommandDataSetType: no data set
        _us(0x00000900, status),
        _us(0x00001020, remaining),
        _us(0x00001021, completed),
        _us(0x00001022, failed),
        _us(0x00001023, warning),
    )


def decode_command(data: bytes | bytearray) -> dict[int, bytes]:
    """The elements of an encoded command set (implicit VR little endian), by tag.

    Raises ValueError when an element runs past the end of ``data``."""
    elements: dict[int, bytes] = {}
    view = memoryview(data)
    position = 0
    while position + 8 <= len(view):
        group, element, length = struct.unpack_from("<HHI", view, position)
        position += 8
        if position + length > len(view):
            raise ValueError(f"command element ({group:04X},{element:04X}) of {length} "
                             f"bytes runs past the end of the command set")
        elements[(group << 16) | element] = bytes(view[position:position + length])
        position += length
    return elements


def p_data_tf(context_id: int, data: bytes | memoryview, max_pdu: int, *,
              command: bool) -> list[bytes | memoryview]:
    """A message part (its command set or its data set) as P-DATA-TF PDUs, each holding
    one PDV, as a list of buffers (headers and slices of ``data``, nothing copied).

    ``max_pdu`` is the peer's Maximum Length Received (PS3.8 D.1): the largest PDV list
    a PDU may carry, so each fragment is at most ``max_pdu - 6`` bytes (item length,
    context ID, message control header); 0 means no limit (one PDU)."""
    if 0 < max_pdu <= 6:
        raise ValueError(f"a maximum PDU length of {max_pdu} bytes leaves no room for data")
    view = memoryview(data).cast("B")
    size = len(view)
    step = max_pdu - 6 if max_pdu else max(size, 1)
    flag = 0x01 if command else 0x00  # message control header bit 0 (PS3.8 E.2)
    buffers: list[bytes | memoryview] = []
    for start in range(0, max(size, 1), step):
        fragment = view[start:start + step]
        last = 0x02 if start + step >= size else 0x00  # bit 1: last fragment
        length = len(fragment)
        buffers.append(struct.pack(">BBIIBB", 0x04, 0x00, length + 6, length + 2,
                                   context_id, flag | last))
        buffers.append(fragment)
    return buffers


def send_move_pending(assoc: Any, context_id: int, message_id: int, sop_class: str,
                      counts: tuple[int, int, int, int]) -> None:
    """Send a pending C-MOVE-RSP (``counts``: remaining, completed, failed, warning) on a
    pynetdicom association, encoded by hand when it fits in one PDU of the peer's size."""
    command = encode_c_move_rsp(message_id, sop_class, 0xFF00, *counts)
    max_pdu = int(assoc.dimse.maximum_pdu_size or 0)
    if (max_pdu and len(command) + 6 > max_pdu) or _PYNETDICOM_LOG.isEnabledFor(
            logging.DEBUG):
        response = C_MOVE()
        response.MessageIDBeingRespondedTo = message_id
        response.AffectedSOPClassUID = sop_class
        response.Status = 0xFF00
        (response.NumberOfRemainingSuboperations, response.NumberOfCompletedSuboperations,
         response.NumberOfFailedSuboperations, response.NumberOfWarningSuboperations) = counts
        assoc.dimse.send_msg(response, context_id)
        return
    pdata = P_DATA()
    pdata.presentation_data_value_list.append((context_id, b"\x03" + command))
    assoc.dul.send_pdu(pdata)


def encode_response(field: int, message_id: int, sop_class: str, status: int, *,
                    data_set: bool = False) -> bytes:
    """The command set of a response made of the usual five elements (PS3.7 9.3):
    ``field`` is its CommandField (0x8020 C-FIND-RSP, 0x8030 C-ECHO-RSP …)."""
    return _command(
        _uid(0x00000002, sop_class),
        _us(0x00000100, field),
        _us(0x00000120, message_id),  # MessageIDBeingRespondedTo
        _us(0x00000800, 0x0001 if data_set else 0x0101),  # CommandDataSetType
        _us(0x00000900, status),
    )


_FINAL_FIELDS = {C_FIND: 0x8020, C_ECHO: 0x8030}  # primitive → its response's CommandField


def encode_final_response(primitive: Any) -> bytes | None:
    """The encoded command set of a C-FIND-RSP without identifier or a C-ECHO-RSP, or
    None for anything else, or with an error comment or offending element (pynetdicom
    encodes those)."""
    field = _FINAL_FIELDS.get(type(primitive))
    if (field is None or primitive.MessageIDBeingRespondedTo is None
            or getattr(primitive, "Identifier", None) is not None
            or primitive.ErrorComment or getattr(primitive, "OffendingElement", None)
            or primitive.AffectedSOPClassUID is None):
        return None
    return encode_response(field, primitive.MessageIDBeingRespondedTo,
                           str(primitive.AffectedSOPClassUID), primitive.Status)


def install_fast_final_responses(assoc: Any) -> None:
    """Send the final C-FIND-RSP and the C-ECHO-RSP of an association we accept encoded
    by :func:`encode_final_response`: pynetdicom's message building took ~1 ms of each
    C-FIND's answer. Through the DUL's queue, as pynetdicom does: the order of PDUs is
    kept."""
    dimse = assoc.dimse
    original = dimse.send_msg

    def send_msg(primitive: Any, context_id: int) -> None:
        command = encode_final_response(primitive)
        max_pdu = int(dimse.maximum_pdu_size or 0)
        if (command is None or (max_pdu and len(command) + 6 > max_pdu)
                or _PYNETDICOM_LOG.isEnabledFor(logging.DEBUG)):
            original(primitive, context_id)
            return
        pdata = P_DATA()
        pdata.presentation_data_value_list.append((context_id, b"\x03" + command))
        assoc.dul.send_pdu(pdata)

    dimse.send_msg = send_msg


def encode_c_store_rsp(message_id: int, sop_class: str, sop_instance: str,
                       status: int, *, error_comment: str = "") -> bytes:
    """The encoded command set of a C-STORE-RSP (implicit VR little endian); an error
    comment (LO: at most 64 characters, no backslash) goes with a failure status."""
    comment = error_comment.replace("\\", "/")[:64]
    return _command(
        _uid(0x00000002, sop_class),
        _us(0x00000100, 0x8001),  # CommandField: C-STORE-RSP
        _us(0x00000120, message_id),  # MessageIDBeingRespondedTo
        _us(0x00000800, 0x0101),  # CommandDataSetType: no data set
        _us(0x00000900, status),
        _ae(0x00000902, comment) if comment else b"",  # ErrorComment, LO like AE
        _uid(0x00001000, sop_instance),
    )


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def recv_exactly(sock: socket.socket, view: memoryview) -> int:
    """Fill ``view`` from ``sock`` with as few ``recv_into`` calls as the data allow,
    acknowledging at once (TCP_QUICKACK): a sender with Nagle's algorithm on waits for
    our ACK before sending its next small segment, and a delayed ACK costs it ~40 ms per
    message. Returns the number of bytes read: fewer than asked if the peer closed."""
    got, size = 0, len(view)
    while got < size:
        count = sock.recv_into(view[got:], size - got)
        if _QUICKACK is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass
        if not count:
            break
        got += count
    return got


def install_fast_receive(assoc: Any) -> None:
    """Read PDUs with :func:`recv_exactly` instead of pynetdicom's 4 KiB ``recv`` loop (a
    256 KiB PDU was 64 calls and as many copies)."""
    transport = getattr(assoc.dul, "socket", None)
    if transport is None or getattr(transport, "socket", None) is None:
        return

    def recv(nr_bytes: int) -> bytearray:
        buffer = bytearray(nr_bytes)
        with memoryview(buffer) as view:
            got = recv_exactly(transport.socket, view)
        # connection closed: what we have so far, as pynetdicom does
        return buffer if got == nr_bytes else buffer[:got]

    transport.recv = recv


def pdvs(body: bytearray | bytes | memoryview
         ) -> list[tuple[int, int, memoryview, memoryview]] | None:
    """The PDVs of a P-DATA-TF PDU body: (context ID, message control header, data,
    the whole item), or None if the items do not tile the body (PS3.8 9.3.5)."""
    view = memoryview(body)
    size = len(view)
    items = []
    position = 0
    while position < size:
        if position + 6 > size:
            return None
        (length,) = struct.unpack_from(">L", view, position)
        end = position + 4 + length
        if length < 2 or end > size:
            return None
        items.append((view[position + 4], view[position + 5], view[position + 6:end],
                     view[position:end]))
        position = end
    return items


def command_us(value: bytes | None) -> int | None:
    """A US value of a decoded command set (:func:`decode_command`), None if absent."""
    return int.from_bytes(value, "little") if value is not None and len(value) == 2 else None


def command_text(value: bytes) -> str:
    """A UI/AE/LO value of a decoded command set, padding stripped."""
    return value.decode("ascii", "replace").rstrip("\x00 ")


# pynetdicom binds these to every association to write its INFO and DEBUG lines (a dump
# of each PDU and message); they build that text whether or not it is logged.
_LOG_HANDLERS = ((evt.EVT_DIMSE_RECV, standard_dimse_recv_handler),
                 (evt.EVT_DIMSE_SENT, standard_dimse_sent_handler),
                 (evt.EVT_PDU_RECV, standard_pdu_recv_handler),
                 (evt.EVT_PDU_SENT, standard_pdu_sent_handler))


def tune_connection(assoc: Any) -> None:
    """TCP_NODELAY and the fast receive path on an association's socket, before its
    first PDU. pynetdicom sets no TCP option on the sockets it opens: a C-STORE request
    (a command PDU, then data PDUs) then waits for the peer's delayed ACK — ~40 ms per
    instance, 25 instances/s for a C-MOVE. pynetdicom's logging handlers are unbound
    unless its logger would write their lines (``isengard serve --verbose``)."""
    if not _PYNETDICOM_LOG.isEnabledFor(logging.INFO):
        for event, handler in _LOG_HANDLERS:
            assoc.unbind(event, handler)
    raw = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if raw is None:
        return
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:
        logging.getLogger("isengard.dicom").debug("cannot set TCP_NODELAY: %s", exc)
    install_fast_receive(assoc)


def on_connection_open(event: Any) -> None:
    """An ``EVT_CONN_OPEN`` handler for associations we request (SCU, C-MOVE)."""
    tune_connection(event.assoc)
