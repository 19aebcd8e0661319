"""A storage association that Isengard requests and runs itself, for sending instances.

Sending goes around pynetdicom's association machinery: ``send_c_store`` wants a pydicom
``Dataset`` (so each stored file was parsed, pixels included, and re-encoded), and every
PDU crosses the DUL thread's queues, polled every millisecond. Here one thread owns a
plain blocking socket: A-ASSOCIATE-RQ/AC/RJ are encoded and decoded with pynetdicom's
PDU classes; each C-STORE is its hand-encoded command set plus the data set bytes as
stored, cut into P-DATA-TF PDUs of the peer's maximum length and written by one
``sendmsg``; the C-STORE-RSP is read and decoded straight from the socket.

Taking over the socket of a pynetdicom association after negotiation was the other
option, but its DUL thread keeps reading that socket (it would swallow the responses)
and its state machine cannot be paused: owning the whole association is simpler and
leaves no thread behind. Every socket operation has the timeout: a peer that hangs
only ever holds the thread that talks to it.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pynetdicom.pdu import A_ABORT_RQ, A_ASSOCIATE_AC, A_ASSOCIATE_RJ, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import PresentationContext

from .dimse_fast import decode_command, encode_c_store_rq, p_data_tf
from .errors import IsengardError
from .version import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

__all__ = ["PeerError", "StoreAssociation", "StoreResponse", "send_buffers",
           "user_information"]

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"  # PS3.7 A.2.1
# What we announce as our Maximum Length Received: we only receive C-STORE responses.
LOCAL_MAX_PDU = 65536
# Larger PDUs from the peer are a protocol error (an A-ASSOCIATE-AC with many contexts
# stays far below).
_READ_LIMIT = 1 << 22
_IOV_MAX = 1024  # POSIX minimum of the iovec count per sendmsg
_RELEASE_RQ = b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"  # PS3.8 9.3.6


class PeerError(IsengardError):
    """The remote modality could not be reached or did not answer as expected."""

    def __init__(self, message: str, *, timeout: bool = False):
        super().__init__(message)
        self.timeout = timeout


@dataclass(frozen=True)
class StoreResponse:
    """A C-STORE-RSP: its status (PS3.4 B.2.3) and error comment, if any."""

    status: int
    error_comment: str = ""


def send_buffers(sock: socket.socket, buffers: Sequence[bytes | memoryview]) -> None:
    """Write every buffer (bytes, or memoryviews of format ``B``), in order, with as few
    ``sendmsg`` calls as the kernel allows (it may take part of them: the rest follows)."""
    pending = list(buffers)
    first = 0
    while first < len(pending):
        sent = sock.sendmsg(pending[first:first + _IOV_MAX])
        while sent:
            size = len(pending[first])
            if sent >= size:
                sent -= size
                first += 1
            else:
                pending[first] = memoryview(pending[first])[sent:]
                sent = 0
        while first < len(pending) and not len(pending[first]):
            first += 1


class StoreAssociation:
    """An established association with a storage SCP (use :meth:`request`).

    ``accepted`` maps each SOP class to {transfer syntax: presentation context ID} for
    the contexts the peer accepted; ``peer_max_pdu`` is its Maximum Length Received.
    """

    def __init__(self, sock: socket.socket, accepted: dict[str, dict[str, int]],
                 peer_max_pdu: int, label: str, timeout: float):
        self._sock: socket.socket | None = sock
        self.accepted = accepted
        self.peer_max_pdu = peer_max_pdu
        self.label = label
        self.timeout = timeout

    @classmethod
    def request(cls, host: str, port: int, *, calling_aet: str, called_aet: str,
                contexts: Sequence[tuple[str, Sequence[str]]], timeout: float,
                label: str) -> StoreAssociation:
        """Connect and negotiate (PS3.8 7.1). ``contexts``: (SOP class, transfer
        syntaxes) proposed in order, with IDs 1, 3, 5 … ``label`` names the peer in
        error messages. Raises :class:`PeerError` when the peer cannot be reached,
        rejects, aborts or does not answer within ``timeout`` seconds."""
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except TimeoutError as exc:
            raise PeerError(f"cannot connect to {label}: timed out", timeout=True) from exc
        except OSError as exc:
            raise PeerError(f"cannot connect to {label}: {exc.strerror or exc}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(_associate_rq(calling_aet, called_aet, contexts))
            pdu_type, pdu = _read_pdu(sock, label)
            if pdu_type == 0x02:
                try:
                    accepted, max_pdu = _accepted(pdu, [cx[0] for cx in contexts])
                except Exception as exc:  # pynetdicom's decoder on bad bytes
                    raise PeerError(f"{label} sent an A-ASSOCIATE-AC that cannot be "
                                    f"decoded: {exc}") from exc
                return cls(sock, accepted, max_pdu, label, timeout)
        except TimeoutError as exc:
            sock.close()
            raise PeerError(f"{label} did not answer the association request within "
                            f"{timeout:g} s", timeout=True) from exc
        except OSError as exc:
            sock.close()
            raise PeerError(f"the connection to {label} broke during the association "
                            f"request: {exc.strerror or exc}") from exc
        except BaseException:
            sock.close()
            raise
        sock.close()
        if pdu_type == 0x03:
            rj = A_ASSOCIATE_RJ()
            rj.decode(bytes(pdu))
            why = rj.to_primitive()
            permanence = why.result_str.split()[-1].lower()  # "Rejected Transient" …
            raise PeerError(f"{label} rejected the association ({permanence}: "
                            f"{why.reason_str.lower()})")
        if pdu_type == 0x07:
            raise PeerError(f"{label} aborted the association")
        raise PeerError(f"{label} answered the association request with an unexpected "
                        f"PDU (type 0x{pdu_type:02X})")

    def send_request(self, context_id: int, sop_class: str, sop_instance: str,
                     data: bytes | memoryview, *, message_id: int,
                     move_originator: tuple[str, int] | None = None) -> None:
        """Send one C-STORE-RQ with ``data`` (the data set, already in the context's
        transfer syntax); its response is for :meth:`read_response`, before the next
        request (one operation at a time, PS3.7 D.3.3.3). Raises :class:`PeerError` when
        the association breaks (it is then closed)."""
        command = encode_c_store_rq(message_id, sop_class, sop_instance,
                                    move_originator=move_originator)
        buffers = p_data_tf(context_id, command, self.peer_max_pdu, command=True)
        buffers += p_data_tf(context_id, data, self.peer_max_pdu, command=False)
        try:
            send_buffers(self._checked(), buffers)
        except OSError as exc:
            raise self._broken(exc, f"the C-STORE of {sop_instance}") from exc
        except PeerError:
            self.close()
            raise

    def read_response(self, sop_instance: str, *, message_id: int) -> StoreResponse:
        """Wait for the C-STORE-RSP to the request ``message_id``. The peer's failure
        statuses are answers, not errors; :class:`PeerError` means the association broke
        (it is then closed)."""
        what = f"the C-STORE of {sop_instance}"
        try:
            answer = self._read_command(self._checked())
        except OSError as exc:
            raise self._broken(exc, what) from exc
        except PeerError:
            self.close()
            raise
        field = _us(answer, 0x00000100)
        responded_to = _us(answer, 0x00000120)
        status = _us(answer, 0x00000900)
        if field != 0x8001 or responded_to != message_id or status is None:
            self.abort()
            raise PeerError(f"{self.label} answered {what} (message {message_id}) with "
                            "something else than its C-STORE-RSP")
        comment = answer.get(0x00000902, b"").rstrip(b"\x00 ").decode("ascii", "replace")
        return StoreResponse(status, comment)

    def _broken(self, exc: OSError, what: str) -> PeerError:
        """Close the association after a socket error during ``what``; the error to raise
        (plain try/except in the callers: a context manager costs more per C-STORE)."""
        if isinstance(exc, TimeoutError):
            self.abort()
            return PeerError(f"{self.label} did not answer {what} within {self.timeout:g} s",
                             timeout=True)
        self.close()
        return PeerError(f"the connection to {self.label} broke during {what}: "
                         f"{exc.strerror or exc}")

    def release(self) -> None:
        """A-RELEASE (PS3.8 7.2), then close; an abort if the peer does not reply."""
        sock = self._sock
        if sock is None:
            return
        try:
            sock.sendall(_RELEASE_RQ)
            while True:
                pdu_type, _ = _read_pdu(sock, self.label)
                if pdu_type in (0x06, 0x07):  # A-RELEASE-RP, or an abort: done
                    break
        except (OSError, PeerError):
            self.abort()
            return
        self.close()

    def abort(self) -> None:
        """A-ABORT (PS3.8 7.3.1, source: service user), then close."""
        sock = self._sock
        if sock is None:
            return
        try:
            abort = A_ABORT_RQ()
            abort.source = 0x00
            abort.reason_diagnostic = 0x00
            # Without waiting: a peer that stopped reading would hold us a timeout more.
            sock.setblocking(False)
            sock.send(abort.encode())
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _checked(self) -> socket.socket:
        if self._sock is None:
            raise PeerError(f"the association with {self.label} is closed")
        return self._sock

    def _read_command(self, sock: socket.socket) -> dict[int, bytes]:
        """Read P-DATA-TF PDUs until the last fragment of a command set (PS3.8 9.3.5)."""
        fragments: list[bytes] = []
        while True:
            pdu_type, pdu = _read_pdu(sock, self.label)
            if pdu_type == 0x07:
                raise PeerError(f"{self.label} aborted the association")
            if pdu_type != 0x04:
                raise PeerError(f"{self.label} sent an unexpected PDU (type "
                                f"0x{pdu_type:02X}) instead of a C-STORE response")
            position = 6
            while position + 6 <= len(pdu):
                (length,) = struct.unpack_from(">I", pdu, position)
                header = pdu[position + 5]
                fragment = bytes(pdu[position + 6:position + 4 + length])
                position += 4 + length
                if header & 0x01:  # command fragments only: a C-STORE-RSP has no data set
                    fragments.append(fragment)
                    if header & 0x02:
                        try:
                            return decode_command(b"".join(fragments))
                        except ValueError as exc:
                            raise PeerError(f"{self.label} sent a malformed command "
                                            f"set: {exc}") from exc


def _us(command: dict[int, bytes], tag: int) -> int | None:
    value = command.get(tag)
    return int.from_bytes(value[:2], "little") if value and len(value) >= 2 else None


def _accepted(pdu: bytearray, proposed: Sequence[str]) -> tuple[dict[str, dict[str, int]],
                                                                 int]:
    """From an A-ASSOCIATE-AC: {SOP class: {transfer syntax: context ID}} of the accepted
    contexts (``proposed``: the SOP classes of contexts 1, 3, 5 …), and the peer's
    Maximum Length Received."""
    ac = A_ASSOCIATE_AC()
    ac.decode(bytes(pdu))
    primitive = ac.to_primitive()
    accepted: dict[str, dict[str, int]] = {}
    for cx in primitive.presentation_context_definition_results_list:
        context_id = int(cx.context_id or 0)
        index = (context_id - 1) // 2
        if cx.result == 0 and context_id % 2 and 0 <= index < len(proposed) \
                and cx.transfer_syntax:
            accepted.setdefault(proposed[index], {}).setdefault(str(cx.transfer_syntax[0]),
                                                                context_id)
    return accepted, int(primitive.maximum_length_received or 0)


def user_information(maximum_length: int) -> list[Any]:
    """The user information items Isengard sends in an A-ASSOCIATE-RQ or -AC: its
    Maximum Length Received (0: no limit), Implementation Class UID and Version Name."""
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = maximum_length
    class_uid = ImplementationClassUIDNotification()
    class_uid.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    version = ImplementationVersionNameNotification()
    version.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    return [max_length, class_uid, version]


def _associate_rq(calling_aet: str, called_aet: str,
                  contexts: Sequence[tuple[str, Sequence[str]]]) -> bytes:
    primitive = A_ASSOCIATE()
    primitive.application_context_name = APPLICATION_CONTEXT
    primitive.calling_ae_title = calling_aet
    primitive.called_ae_title = called_aet
    proposed = []
    for i, (sop_class, syntaxes) in enumerate(contexts):
        cx = PresentationContext()
        cx.context_id = 2 * i + 1
        cx.abstract_syntax = sop_class
        cx.transfer_syntax = list(syntaxes)
        proposed.append(cx)
    primitive.presentation_context_definition_list = proposed
    primitive.user_information = user_information(LOCAL_MAX_PDU)
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())


def _read_pdu(sock: socket.socket, label: str) -> tuple[int, bytearray]:
    """One whole PDU (header included) and its type."""
    header = _read_exactly(sock, 6, label)
    (length,) = struct.unpack_from(">I", header, 2)
    if length > _READ_LIMIT:
        raise PeerError(f"{label} sent a PDU of {length} bytes (type 0x{header[0]:02X}): "
                        "not a DICOM peer, or a broken one")
    return header[0], header + _read_exactly(sock, length, label)


def _read_exactly(sock: socket.socket, size: int, label: str) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = sock.recv_into(view[got:], size - got)
        if not count:
            raise PeerError(f"{label} closed the connection")
        got += count
    return buffer
