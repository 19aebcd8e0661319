"""A fast path for the one message every C-STORE answers with: the C-STORE response.

pynetdicom builds each response as a pydicom Dataset and encodes it with pydicom's
generic writer: about a third of the CPU of a small-instance C-STORE (py-spy, see
docs/performance.md). The response is seven fixed elements, so we encode it directly
(PS3.7 9.3.1.2 and E.1: command set, implicit VR little endian) and hand the P-DATA to
the association's DUL exactly as pynetdicom would. Anything unusual (an error comment,
offending elements, DICOM-level debug logging) goes through pynetdicom unchanged. The
bytes are identical to pynetdicom's (tests/unit/test_dimse_fast.py).
"""

from __future__ import annotations

import logging
import socket
import struct
from typing import Any

from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA

__all__ = ["encode_c_store_rsp", "install_fast_receive", "install_fast_store_response",
           "on_connection_open", "tune_connection"]

_PYNETDICOM_LOG = logging.getLogger("pynetdicom")
_OPTIONAL = ("ErrorComment", "OffendingElement", "MoveOriginatorApplicationEntityTitle",
             "MoveOriginatorMessageID")


def _uid(tag: int, uid: str) -> bytes:
    value = uid.encode("ascii")
    if len(value) % 2:
        value += b"\x00"
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


def _us(tag: int, value: int) -> bytes:
    return struct.pack("<HHIH", tag >> 16, tag & 0xFFFF, 2, value)


def encode_c_store_rsp(message_id: int, sop_class: str, sop_instance: str,
                       status: int) -> bytes:
    """The encoded command set of a C-STORE-RSP (implicit VR little endian)."""
    body = b"".join((
        _uid(0x00000002, sop_class),
        _us(0x00000100, 0x8001),  # CommandField: C-STORE-RSP
        _us(0x00000120, message_id),  # MessageIDBeingRespondedTo
        _us(0x00000800, 0x0101),  # CommandDataSetType: no data set
        _us(0x00000900, status),
        _uid(0x00001000, sop_instance),
    ))
    return struct.pack("<HHII", 0x0000, 0x0000, 4, len(body)) + body


def install_fast_store_response(assoc: Any) -> None:
    """Route this association's plain C-STORE responses through the fast encoder."""
    dimse = assoc.dimse
    original = dimse.send_msg

    def send_msg(primitive: Any, context_id: int) -> None:
        if (type(primitive) is C_STORE and primitive.MessageIDBeingRespondedTo is not None
                and primitive.Status is not None
                and not any(getattr(primitive, name, None) for name in _OPTIONAL)
                and not _PYNETDICOM_LOG.isEnabledFor(logging.DEBUG)):
            command = encode_c_store_rsp(
                int(primitive.MessageIDBeingRespondedTo), str(primitive.AffectedSOPClassUID),
                str(primitive.AffectedSOPInstanceUID), int(primitive.Status))
            pdata = P_DATA()
            # message control header 0x03: command, last fragment (PS3.8 E.2)
            pdata.presentation_data_value_list.append((context_id, b"\x03" + command))
            dimse.dul.send_pdu(pdata)
            return
        original(primitive, context_id)

    dimse.send_msg = send_msg


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def install_fast_receive(assoc: Any) -> None:
    """Read PDUs with a few large ``recv_into`` calls instead of pynetdicom's 4 KiB
    ``recv`` loop (a 256 KiB PDU was 64 calls and as many copies), and acknowledge at
    once (TCP_QUICKACK): a sender with Nagle's algorithm on waits for our ACK before
    sending its next small segment, and a delayed ACK costs it ~40 ms per message."""
    transport = getattr(assoc.dul, "socket", None)
    if transport is None or getattr(transport, "socket", None) is None:
        return

    def recv(nr_bytes: int) -> bytearray:
        raw = transport.socket
        buffer = bytearray(nr_bytes)
        view = memoryview(buffer)
        got = 0
        while got < nr_bytes:
            count = raw.recv_into(view[got:], nr_bytes - got)
            if _QUICKACK is not None:
                try:
                    raw.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                except OSError:
                    pass
            if not count:  # connection closed: what we have so far, as pynetdicom does
                view.release()
                return buffer[:got]
            got += count
        view.release()
        return buffer

    transport.recv = recv


def tune_connection(assoc: Any) -> None:
    """TCP_NODELAY and the fast receive path on an association's socket, before its
    first PDU. pynetdicom sets no TCP option on the sockets it opens: a C-STORE request
    (a command PDU, then data PDUs) then waits for the peer's delayed ACK — ~40 ms per
    instance, 25 instances/s for a C-MOVE."""
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
