"""Incoming C-STOREs served on the thread that reads them, around pynetdicom's layers.

pynetdicom's way for a received message: its DUL thread decodes each P-DATA-TF PDU into
objects and runs them through its state machine; the DIMSE provider copies the
fragments into ``BytesIO`` buffers and decodes the command set into a pydicom Dataset;
the association's own thread picks the message up from a queue (a thread switch),
builds a service class and triggers ``EVT_C_STORE``; the response goes back through the
DUL thread's queue. For a small instance that was about 60% of the CPU of a C-STORE
(py-spy, docs/performance.md).

:func:`install` replaces the PDU reader of one association we accept. While the
association is established (state Sta6) it reads each P-DATA-TF PDU itself, cuts it into
its PDVs and assembles the messages: a C-STORE-RQ on an accepted storage context goes,
command elements and data set fragments, to the ``store`` callback right there, and its
C-STORE-RSP, encoded by hand, straight to the socket. Everything else — other messages
(C-ECHO, C-FIND, C-MOVE, C-GET, C-CANCEL, the responses to our C-GET sub-operations),
other PDUs, any other state — goes to pynetdicom as before, re-encoded as the P-DATA-TF
it arrived in. Without asynchronous operations (we negotiate none) messages do not
interleave, so each message belongs to one side from its first command fragment to its
last fragment. With pynetdicom's DEBUG logging on, every message takes its usual way.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any

from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

from .dimse_fast import (
    command_text,
    command_us,
    decode_command,
    encode_c_store_rsp,
    p_data_tf,
    pdvs,
)
from .store_association import send_buffers

__all__ = ["StoreCallback", "install"]

log = logging.getLogger("isengard.dicom")
_PYNETDICOM_LOG = logging.getLogger("pynetdicom")

# store(assoc, transfer syntax, sop class, sop instance, data set fragments)
#   → (status, error comment); the fragments are the data set, in order, as received.
StoreCallback = Callable[[Any, Any, str, str, list[memoryview]], tuple[int, str]]

_C_STORE_RQ = 0x0001
_NO_DATA_SET = 0x0101  # CommandDataSetType (PS3.7 E.1)
_COMMAND_FIELD = 0x00000100
_MESSAGE_ID = 0x00000110
_DATA_SET_TYPE = 0x00000800
_AFFECTED_SOP_CLASS = 0x00000002
_AFFECTED_SOP_INSTANCE = 0x00001000


class _Message:
    """The message being received: pynetdicom's (``ours`` False), ours (True), or not
    known until its command set is complete (None)."""

    __slots__ = ("context_id", "ours", "command_parts", "items", "command", "data")

    def __init__(self, context_id: int):
        self.context_id = context_id
        self.ours: bool | None = None
        self.command_parts: list[memoryview] = []
        self.items: list[memoryview] = []  # raw PDV items, kept until the side is known
        self.command: dict[int, bytes] = {}
        self.data: list[memoryview] = []


class _Reader:
    def __init__(self, assoc: Any, store: StoreCallback):
        self.assoc = assoc
        self.dul = assoc.dul
        self.store = store
        self.original = self.dul._read_pdu_data
        self.message: _Message | None = None

    # -- the PDU reader (replaces DULServiceProvider._read_pdu_data) ---------------------

    def read_pdu_data(self) -> None:
        dul = self.dul
        if dul.state_machine.current_state != "Sta6":
            self.message = None
            self.original()
            return
        transport = dul.socket
        try:
            header = transport.recv(6)
            if len(header) < 6:
                dul.event_queue.put("Evt17")  # transport connection closed
                return
            pdu_type, _, length = struct.unpack(">BBL", header)
            if pdu_type not in (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07):
                log.error("unknown PDU type 0x%02X received", pdu_type)
                dul.event_queue.put("Evt19")  # unrecognised PDU: A-ABORT
                return
            body = transport.recv(length)
        except (OSError, TimeoutError) as exc:
            log.error("connection closed before the whole PDU was received: %s", exc)
            dul.event_queue.put("Evt17")
            return
        if len(body) != length:
            log.error("the received PDU is shorter than announced (%d of %d bytes)",
                      len(body), length)
            dul.event_queue.put("Evt17")
            return
        items = pdvs(body) if pdu_type == 0x04 else None
        if items is None:  # not P-DATA-TF, or malformed: pynetdicom's decoder judges
            self._to_pynetdicom(bytes(header) + bytes(body))
            return
        self._p_data(items)

    def _to_pynetdicom(self, pdu_bytes: bytes) -> None:
        """What pynetdicom's reader does with the PDU it read."""
        dul = self.dul
        try:
            pdu, event = dul._decode_pdu(bytearray(pdu_bytes))
        except Exception:
            log.exception("cannot decode the received PDU")
            dul.event_queue.put("Evt19")
            return
        dul.event_queue.put(event)
        dul._recv_pdu.put(pdu)

    def _forward(self, items: list[memoryview]) -> None:
        if items:
            body = b"".join(items)
            self._to_pynetdicom(struct.pack(">BBL", 0x04, 0, len(body)) + body)

    # -- message assembly ---------------------------------------------------------------

    def _p_data(self, pdvs: list[tuple[int, int, memoryview, memoryview]]) -> None:
        forward: list[memoryview] = []
        for context_id, control, data, item in pdvs:
            message = self.message
            if message is None:
                message = self.message = _Message(context_id)
            is_command, last = control & 0x01, control & 0x02
            if message.ours is False:
                forward.append(item)
                if is_command:
                    message.command_parts.append(data)
                    if last:
                        message.command = _decode(message.command_parts)
                        if command_us(message.command.get(_DATA_SET_TYPE)) == _NO_DATA_SET:
                            self.message = None
                elif last:
                    self.message = None
                continue
            if message.ours is None:
                message.items.append(item)
                if not is_command:  # a data set before the command: not ours to judge
                    self._give_away(message, forward)
                    if last:
                        self.message = None
                    continue
                message.command_parts.append(data)
                if not last:
                    continue
                message.command = _decode(message.command_parts)
                message.ours = self._is_ours(message)
                if not message.ours:
                    self._give_away(message, forward)
                    if command_us(message.command.get(_DATA_SET_TYPE)) == _NO_DATA_SET:
                        self.message = None
                continue
            # ours: the data set of a C-STORE-RQ
            if is_command:
                log.error("DIMSE protocol error: a command set in the middle of a C-STORE "
                          "data set; aborting the association")
                self.message = None
                self._forward(forward)
                self.dul.event_queue.put("Evt19")
                return
            message.data.append(data)
            if last:
                self.message = None
                self._forward(forward)
                forward = []
                self._serve(message)
        self._forward(forward)

    def _give_away(self, message: _Message, forward: list[memoryview]) -> None:
        message.ours = False
        forward.extend(message.items)
        message.items = []

    def _is_ours(self, message: _Message) -> bool:
        command = message.command
        if (command_us(command.get(_COMMAND_FIELD)) != _C_STORE_RQ
                or command_us(command.get(_DATA_SET_TYPE)) in (None, _NO_DATA_SET)
                or command_us(command.get(_MESSAGE_ID)) is None
                or _AFFECTED_SOP_INSTANCE not in command
                or _PYNETDICOM_LOG.isEnabledFor(logging.DEBUG)
                or self.assoc._sent_release):
            return False
        context = self.assoc._accepted_cx.get(message.context_id)
        sop_class = command_text(command.get(_AFFECTED_SOP_CLASS, b""))
        if context is None or context.abstract_syntax != sop_class:
            return False
        try:
            return uid_to_service_class(sop_class) is StorageServiceClass
        except Exception:
            return False

    def _serve(self, message: _Message) -> None:
        command = message.command
        context = self.assoc._accepted_cx[message.context_id]
        sop_class = command_text(command[_AFFECTED_SOP_CLASS])
        sop_instance = command_text(command[_AFFECTED_SOP_INSTANCE])
        status, comment = self.store(self.assoc, str(context.transfer_syntax[0]), sop_class,
                                     sop_instance, message.data)
        response = encode_c_store_rsp(command_us(command[_MESSAGE_ID]) or 0, sop_class,
                                      sop_instance, status, error_comment=comment)
        max_pdu = int(self.assoc.dimse.maximum_pdu_size or 0)
        try:
            send_buffers(self.dul.socket.socket,
                         p_data_tf(message.context_id, response, max_pdu, command=True))
        except (OSError, AttributeError) as exc:
            log.warning("cannot send the C-STORE response for %s: %s", sop_instance, exc)
            self.dul.event_queue.put("Evt17")


def _decode(parts: list[memoryview]) -> dict[int, bytes]:
    try:
        return decode_command(b"".join(parts))
    except ValueError:
        return {}  # not ours: pynetdicom will report the malformed command


def install(assoc: Any, store: StoreCallback) -> None:
    """Serve the C-STOREs of an association we accept with ``store``. Call it on
    ``EVT_CONN_OPEN``, before the association's DUL thread starts."""
    dul = assoc.dul
    if not assoc.is_acceptor or dul.is_alive() or getattr(dul, "socket", None) is None:
        return
    dul._read_pdu_data = _Reader(assoc, store).read_pdu_data
