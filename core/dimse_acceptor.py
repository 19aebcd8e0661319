"""Storage associations served whole by the thread of their connection.

pynetdicom runs each association it accepts on three threads (the connection's, the
association's reactor and its DUL), with queues and events between them: 1.4–1.7 ms and
~2 ms of CPU to set up an association, against Orthanc's 0.1 ms (docs/performance.md).
Modalities that open an association per image pay it per image.

Most associations a DICOM server receives carry storage and Verification only: images
from modalities and gateways, monitoring echoes. For those, :class:`StorageAssociation`
does everything in the connection's thread: reads the A-ASSOCIATE-RQ, negotiates with
pynetdicom's ``negotiate_as_acceptor`` (the contexts and transfer syntaxes accepted are
pynetdicom's), answers C-ECHO and C-STORE with hand-encoded responses, releases, aborts
on a protocol error, a silent peer (the network timeout) or the server's stop. Any
other request — query/retrieve contexts, SCP/SCU role selection (C-GET), or pynetdicom's
DEBUG logging on — is handed to pynetdicom with the A-ASSOCIATE-RQ already read
(:meth:`AcceptorHost.hand_over`).

The checks made before either path accepts (called AE title, maximum number of
associations) are the host's, so both paths count and answer alike. One operation at a
time (we negotiate no asynchronous operations window, PS3.7 D.3.3.3): each message is
answered before the next is read.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RJ, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    AsynchronousOperationsWindowNegotiation,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
    UserIdentityNegotiation,
)
from pynetdicom.presentation import PresentationContext, negotiate_as_acceptor

from .dimse_fast import (
    command_text,
    command_us,
    decode_command,
    encode_c_store_rsp,
    encode_response,
    p_data_tf,
    pdvs,
    recv_exactly,
)
from .store_association import APPLICATION_CONTEXT, send_buffers, user_information

__all__ = ["AcceptorHost", "AcceptorSettings", "Requestor", "StorageAssociation", "is_ours"]

log = logging.getLogger("isengard.dicom")
_PYNETDICOM_LOG = logging.getLogger("pynetdicom")

# The user information items we answer as pynetdicom does: the plain ones (PS3.7
# D.3.3.1–D.3.3.2), and those it ignores — no item in the answer, nothing refused — as
# long as no handler is bound to EVT_USER_ID, EVT_ASYNC_OPS, EVT_SOP_EXTENDED or
# EVT_SOP_COMMON (the server binds none; binding one means sending them to pynetdicom).
# SCP/SCU role selection (C-GET) changes the negotiation: pynetdicom's.
_PLAIN_ITEMS = (MaximumLengthNotification, ImplementationClassUIDNotification,
                ImplementationVersionNameNotification, UserIdentityNegotiation,
                AsynchronousOperationsWindowNegotiation, SOPClassExtendedNegotiation,
                SOPClassCommonExtendedNegotiation)
# Beyond the maximum length we announce (256 KiB by default), PDUs are tolerated up to
# this size, as pynetdicom did: a length read from garbage must not allocate gigabytes.
# With dicom.maximum_pdu_length 0 (no limit announced) any length goes.
_PDU_LIMIT = 1 << 26
_CACHED_REQUESTS = 64  # distinct association requests remembered (a site's modalities)
_RELEASE_RP = b"\x06\x00\x00\x00\x00\x04\x00\x00\x00\x00"  # PS3.8 9.3.7

# Command fields (PS3.7 E.1)
_C_STORE_RQ = 0x0001
_C_ECHO_RQ = 0x0030
_C_CANCEL_RQ = 0x0FFF
_NO_DATA_SET = 0x0101
_VERIFICATION = "1.2.840.10008.1.1"
# PS3.7 C.4.2 "Refused: SOP Class not supported" would name the class; a command that
# the context's service does not define is "Unrecognized Operation" (PS3.7 C.5.x).
_STATUS_UNRECOGNIZED_OPERATION = 0x0211


@dataclass(frozen=True)
class _Request:
    """What an A-ASSOCIATE-RQ decides, whoever sends it and whenever."""

    calling_aet: str
    called_aet: str
    ours: bool  # served by StorageAssociation (else handed over to pynetdicom)
    contexts: dict[int, tuple[str, str]]  # accepted: ID → (abstract, transfer syntax)
    peer_max_pdu: int
    answer: bytes  # the A-ASSOCIATE-AC, when ours


@dataclass(frozen=True)
class AcceptorSettings:
    """What every association we accept shares (built once, when the server starts)."""

    maximum_pdu_length: int  # announced in the A-ASSOCIATE-AC (0: no limit)
    timeout: float | None  # seconds without a PDU before we abort (dicom.timeout)
    supported: list[PresentationContext]  # the server's supported contexts
    fast_syntaxes: frozenset[str]  # storage and Verification SOP classes
    # What each distinct A-ASSOCIATE-RQ decided (see StorageAssociation._request).
    requests: dict[bytes, _Request] = field(default_factory=dict, compare=False,
                                            repr=False)

    @cached_property
    def supported_syntaxes(self) -> frozenset[str]:
        return frozenset(str(cx.abstract_syntax) for cx in self.supported)


@dataclass(frozen=True)
class Requestor:
    """Who asked for the association (from its A-ASSOCIATE-RQ and the connection)."""

    calling_aet: str
    called_aet: str
    ip: str
    port: int


class AcceptorHost(Protocol):
    """What the DICOM server provides to the associations it accepts itself."""

    def admit(self, requestor: Requestor) -> tuple[int, int, int] | None:
        """None to go on, or the (result, source, diagnostic) of an A-ASSOCIATE-RJ."""

    def accepted(self, association: StorageAssociation) -> Any:
        """The association is established; returns what its other calls carry."""

    def echo(self, state: Any) -> int:
        """A C-ECHO: its status."""

    def store(self, state: Any, transfer_syntax: str, sop_class: str, sop_instance: str,
              fragments: list[memoryview]) -> tuple[int, str]:
        """A C-STORE: (status, error comment)."""

    def closed(self, state: Any, how: str) -> None:
        """The association ended: ``how`` is "released" or "aborted"."""

    def hand_over(self, sock: socket.socket, address: Any, request_pdu: bytes) -> None:
        """Serve this connection with pynetdicom, its A-ASSOCIATE-RQ already read."""

    def move(self, association: StorageAssociation, state: Any) -> bool:
        """Hand the association to another process (its ``move_to``), between two
        messages; True once that process holds the connection."""


class _Closed(Exception):
    """The connection ended: closed or aborted by the peer, or shut by the server."""


class _Moved(Exception):
    """The association went on in another process (:meth:`AcceptorHost.move`)."""


class _ProtocolError(Exception):
    """Something PS3.8 does not allow here: the association is aborted."""

    def __init__(self, message: str, reason: int = 0x00):
        super().__init__(message)
        self.reason = reason  # A-ABORT reason/diagnostic with source "service provider"


def is_ours(primitive: A_ASSOCIATE, fast_syntaxes: frozenset[str],
            supported_syntaxes: frozenset[str]) -> bool:
    """Whether an association request is one :class:`StorageAssociation` serves: no
    role selection, and every proposed abstract syntax either one of
    ``fast_syntaxes`` (storage, Verification) or not supported at all (rejected the same
    by both paths)."""
    if _PYNETDICOM_LOG.isEnabledFor(logging.DEBUG):
        return False  # pynetdicom's dumps of every PDU and message, as the user asked
    if primitive.application_context_name != APPLICATION_CONTEXT:
        return False
    if any(not isinstance(item, _PLAIN_ITEMS) for item in primitive.user_information):
        return False
    for cx in primitive.presentation_context_definition_list:
        syntax = str(cx.abstract_syntax)
        if syntax not in fast_syntaxes and syntax in supported_syntaxes:
            return False
    return True


class StorageAssociation:
    """One accepted connection: :meth:`run` serves it in the calling thread."""

    def __init__(self, sock: socket.socket, address: Any, host: AcceptorHost,
                 settings: AcceptorSettings):
        # Our answers must not wait for Nagle's algorithm, from the A-ASSOCIATE-AC on.
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # reset by the peer already: run() finds it closed
        self.sock = sock
        self.address = address
        self._host = host
        self._settings = settings
        self.requestor: Requestor | None = None  # once the A-ASSOCIATE-RQ is read
        self.established = False
        self._contexts: dict[int, tuple[str, str]] = {}  # ID → (abstract, transfer syntax)
        self._peer_max_pdu = 0
        self._send_lock = threading.Lock()
        self._aborted_by_us = False
        # The thread that runs it, set by the server (its stop() joins it).
        self.thread: threading.Thread | None = None
        # Set by the host (another thread) to have the association go on in another
        # process: it moves before it reads its next PDU, between two messages.
        self.move_to: Any = None
        self.moved = False

    # -- the connection's life ----------------------------------------------------------

    def run(self) -> None:
        sock = self.sock
        handed_over = False
        try:
            sock.settimeout(self._settings.timeout)
            try:
                pdu_type, pdu = self._read_pdu()
            except (_Closed, OSError, _ProtocolError) as exc:
                log.debug("connection from %s closed before an association request: %s",
                          self.address[0], exc or type(exc).__name__)
                return
            raw = bytes(pdu)
            request = self._request(pdu_type, raw)
            if request is not None:
                self.requestor = Requestor(request.calling_aet, request.called_aet,
                                           str(self.address[0]), int(self.address[1]))
                rejection = self._host.admit(self.requestor)
                if rejection is not None:
                    self._reject(*rejection)
                    return
            if request is None or not request.ours:
                sock.settimeout(None)  # pynetdicom's sockets block
                handed_over = True
                self._host.hand_over(sock, self.address, raw)
                return
            self._associate(request, self.requestor)  # type: ignore[arg-type]
        finally:
            if self.moved:
                sock.close()  # the connection goes on: another process holds it
            elif not handed_over:
                _close(sock)

    def _request(self, pdu_type: int, pdu: bytes) -> _Request | None:
        """What the association request ``pdu`` decides; ``None`` if it is none.

        A modality sends the same A-ASSOCIATE-RQ every time (its titles, its contexts,
        its user information): decoding it with pynetdicom's PDU classes, negotiating and
        encoding the answer took a quarter of the set-up's CPU, so each distinct request
        is decided once. The decision depends on nothing but the bytes and the server's
        settings — who may associate (admit) is checked at every association.
        """
        if pdu_type != 0x01:
            return None  # pynetdicom answers whatever else a peer opens with
        debugging = _PYNETDICOM_LOG.isEnabledFor(logging.DEBUG)
        cache = self._settings.requests
        request = None if debugging else cache.get(pdu)
        if request is None:
            try:
                rq = A_ASSOCIATE_RQ()
                rq.decode(pdu)
                primitive = rq.to_primitive()
            except Exception:  # pynetdicom's decoder on bad bytes: it answers them
                return None
            request = self._decide(primitive)
            if not debugging:  # is_ours said no because of the logging: not cached
                if len(cache) >= _CACHED_REQUESTS:
                    cache.clear()
                cache[pdu] = request
        return request

    def _decide(self, primitive: A_ASSOCIATE) -> _Request:
        calling = str(primitive.calling_ae_title).strip()
        called = str(primitive.called_ae_title).strip()
        if not is_ours(primitive, self._settings.fast_syntaxes,
                       self._settings.supported_syntaxes):
            return _Request(calling, called, False, {}, 0, b"")
        results = negotiate_as_acceptor(primitive.presentation_context_definition_list,
                                        self._settings.supported, None)[0]
        accepted = [cx for cx in results if cx.result == 0x00]
        contexts = {int(cx.context_id): (str(cx.abstract_syntax),  # type: ignore[arg-type]
                                         str(cx.transfer_syntax[0]))
                    for cx in accepted}
        answer = self._accept_pdu(primitive, accepted + [cx for cx in results
                                                         if cx.result != 0x00])
        return _Request(calling, called, True, contexts,
                        int(primitive.maximum_length_received or 0), answer)

    def _associate(self, request: _Request, requestor: Requestor) -> None:
        self._contexts = dict(request.contexts)
        self._peer_max_pdu = request.peer_max_pdu
        answer = request.answer
        try:
            self._send([answer])
        except OSError as exc:
            log.warning("association from %s (%s): cannot send the A-ASSOCIATE-AC: %s",
                        requestor.calling_aet, requestor.ip, exc.strerror or exc)
            return
        self.established = True
        self.serve_established(self._host.accepted(self))

    def serve_established(self, state: Any) -> None:
        """Serve the established association until it ends (or moves); ``state`` is
        what the host's calls carry."""
        requestor = self.requestor
        assert requestor is not None
        how = "aborted"
        try:
            self._serve(state)
            how = "released"
        except _Moved:
            how = "moved"
        except _Closed as exc:
            if not self._aborted_by_us:
                log.info("association from %s (%s) ended without release: %s",
                         requestor.calling_aet, requestor.ip, exc)
        except TimeoutError:
            log.warning("association from %s (%s) aborted: no exchange with the peer for "
                        "%s s (dicom.timeout)", requestor.calling_aet, requestor.ip,
                        self._settings.timeout)
            self._abort(source=0x02, reason=0x00)
        except _ProtocolError as exc:
            log.error("association from %s (%s) aborted: %s", requestor.calling_aet,
                      requestor.ip, exc)
            self._abort(source=0x02, reason=exc.reason)
        except OSError as exc:
            if not self._aborted_by_us:
                log.warning("association from %s (%s) broke: %s", requestor.calling_aet,
                            requestor.ip, exc.strerror or exc)
        except Exception:
            log.exception("association from %s (%s) aborted: internal error",
                          requestor.calling_aet, requestor.ip)
            self._abort(source=0x02, reason=0x00)
        finally:
            self.established = False
            self._host.closed(state, how)

    # -- moving to another process -----------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """What another process needs to go on with the established association, as
        JSON: nothing else is kept between two messages (PDUs are read exactly, so no
        byte of the next one is buffered here)."""
        requestor = self.requestor
        assert requestor is not None
        return {"requestor": [requestor.calling_aet, requestor.called_aet, requestor.ip,
                              requestor.port],
                "contexts": [[cx_id, abstract, transfer]
                             for cx_id, (abstract, transfer) in self._contexts.items()],
                "peer_max_pdu": self._peer_max_pdu}

    @classmethod
    def resumed(cls, sock: socket.socket, snapshot: dict[str, Any], host: AcceptorHost,
                settings: AcceptorSettings) -> StorageAssociation:
        """The association another process moved here (:meth:`snapshot`)."""
        calling, called, ip, port = snapshot["requestor"]
        association = cls(sock, (ip, port), host, settings)
        association.requestor = Requestor(calling, called, ip, port)
        association._contexts = {int(cx_id): (abstract, transfer)
                                 for cx_id, abstract, transfer in snapshot["contexts"]}
        association._peer_max_pdu = int(snapshot["peer_max_pdu"])
        association.established = True
        return association

    def run_resumed(self, state: Any) -> None:
        """Serve an association :meth:`resumed` here, in the calling thread (it does not
        move again: only the server's process has workers)."""
        try:
            self.sock.settimeout(self._settings.timeout)
            self.serve_established(state)
        finally:
            _close(self.sock)

    def abort(self) -> None:
        """A-ABORT the association from another thread (the server stops), or close a
        connection that has not asked for one yet; :meth:`run` then ends."""
        if self.established:
            self._aborted_by_us = True
            self._abort(source=0x00, reason=0x00)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes run() in its recv
        except OSError:
            pass

    # -- messages -----------------------------------------------------------------------

    @property
    def _caller(self) -> str:
        """The calling AE title, for log lines (set once the request is read)."""
        return self.requestor.calling_aet if self.requestor else "?"

    def _serve(self, state: Any) -> None:
        """Read and answer messages until the peer releases (returns) or something ends
        the association (raises)."""
        command_parts: list[memoryview] = []
        data: list[memoryview] = []
        command: dict[int, bytes] | None = None
        context_id = 0
        while True:
            if self.move_to is not None and command is None and not command_parts:
                if self._host.move(self, state):
                    self.moved = True
                    raise _Moved
                self.move_to = None
            pdu_type, pdu = self._read_pdu()
            if pdu_type == 0x05:  # A-RELEASE-RQ
                if command is not None or command_parts:
                    log.warning("association from %s released in the middle of a message",
                                self._caller)
                self._send([_RELEASE_RP])
                return
            if pdu_type == 0x07:  # A-ABORT
                raise _Closed("the peer aborted it")
            if pdu_type != 0x04:
                raise _ProtocolError(f"unexpected PDU (type 0x{pdu_type:02X}) while the "
                                     "association is established", reason=0x02)
            items = pdvs(memoryview(pdu)[6:])
            if items is None:
                raise _ProtocolError("a P-DATA-TF PDU whose items do not add up to its "
                                     "length", reason=0x06)
            for cx_id, control, fragment, _ in items:
                if cx_id not in self._contexts:
                    raise _ProtocolError(f"a message on presentation context {cx_id}, "
                                         "which was not accepted", reason=0x06)
                if command_parts or command is not None:
                    if cx_id != context_id:
                        raise _ProtocolError("a message whose fragments come on two "
                                             "presentation contexts", reason=0x06)
                context_id = cx_id
                if control & 0x01:  # a command fragment
                    if command is not None:
                        raise _ProtocolError("a command set in the middle of a data set",
                                             reason=0x06)
                    command_parts.append(fragment)
                    if not control & 0x02:
                        continue
                    try:
                        command = decode_command(b"".join(command_parts))
                    except ValueError as exc:
                        raise _ProtocolError(f"a malformed command set: {exc}",
                                             reason=0x06) from exc
                    command_parts = []
                    if command_us(command.get(0x00000800)) != _NO_DATA_SET:
                        continue  # its data set follows
                else:
                    if command is None:
                        raise _ProtocolError("a data set fragment before its command set",
                                             reason=0x06)
                    data.append(fragment)
                    if not control & 0x02:
                        continue
                self._answer(state, context_id, command, data)
                command, data = None, []

    def _answer(self, state: Any, context_id: int, command: dict[int, bytes],
                data: list[memoryview]) -> None:
        field = command_us(command.get(0x00000100))
        message_id = command_us(command.get(0x00000110))
        abstract_syntax, transfer_syntax = self._contexts[context_id]
        sop_class = command_text(command.get(0x00000002, b"")) or abstract_syntax
        if field == _C_CANCEL_RQ:
            return  # nothing of ours can be cancelled: C-STORE and C-ECHO answer once
        if message_id is None or field is None:
            raise _ProtocolError("a command set without its Message ID or Command Field",
                                 reason=0x06)
        verification = abstract_syntax == _VERIFICATION
        if field == _C_STORE_RQ and not verification:
            sop_instance = command_text(command.get(0x00001000, b""))
            if not sop_instance or not data:
                status, comment = 0xC000, ("the C-STORE request has no data set" if not data
                                           else "the C-STORE request has no Affected SOP "
                                           "Instance UID")
                log.warning("C-STORE from %s (%s) refused: %s", self._caller,
                            self.address[0], comment)
            else:
                status, comment = self._host.store(state, transfer_syntax, sop_class,
                                                   sop_instance, data)
            response = encode_c_store_rsp(message_id, sop_class, sop_instance, status,
                                          error_comment=comment)
        elif field == _C_ECHO_RQ and verification:
            response = encode_response(0x8030, message_id, sop_class,
                                       self._host.echo(state))
        elif field < 0x8000:
            log.warning("association from %s: command 0x%04X on a context for %s is not "
                        "served here: answered 'unrecognized operation' (0x0211)",
                        self._caller, field, abstract_syntax)
            response = encode_response(field | 0x8000, message_id, sop_class,
                                       _STATUS_UNRECOGNIZED_OPERATION)
        else:
            log.warning("association from %s: unexpected response (command field "
                        "0x%04X) ignored", self._caller, field)
            return
        self._send(p_data_tf(context_id, response, self._peer_max_pdu, command=True))

    # -- PDUs ---------------------------------------------------------------------------

    def _read_pdu(self) -> tuple[int, bytearray]:
        """One whole PDU, header included, and its type."""
        header = self._read_exactly(6)
        pdu_type = header[0]
        (length,) = struct.unpack_from(">I", header, 2)
        if pdu_type not in (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07):
            raise _ProtocolError(f"unrecognised PDU type 0x{pdu_type:02X}", reason=0x01)
        if length > _PDU_LIMIT and self._settings.maximum_pdu_length:
            raise _ProtocolError(f"a PDU of {length} bytes (type 0x{pdu_type:02X})",
                                 reason=0x06)
        buffer = bytearray(6 + length)
        buffer[:6] = header
        self._read_into(memoryview(buffer)[6:])
        return pdu_type, buffer

    def _read_exactly(self, size: int) -> bytearray:
        buffer = bytearray(size)
        self._read_into(memoryview(buffer))
        return buffer

    def _read_into(self, view: memoryview) -> None:
        if recv_exactly(self.sock, view) < len(view):
            raise _Closed("the connection was closed")

    def _send(self, buffers: list[bytes | memoryview]) -> None:
        with self._send_lock:
            send_buffers(self.sock, buffers)

    def _accept_pdu(self, request: A_ASSOCIATE,
                    results: list[PresentationContext]) -> bytes:
        primitive = A_ASSOCIATE()
        primitive.application_context_name = APPLICATION_CONTEXT
        primitive.calling_ae_title = request.calling_ae_title
        primitive.called_ae_title = request.called_ae_title
        primitive.result = 0x00
        primitive.result_source = 0x01
        primitive.presentation_context_definition_results_list = results
        primitive.user_information = user_information(self._settings.maximum_pdu_length)
        pdu = A_ASSOCIATE_AC()
        pdu.from_primitive(primitive)
        return bytes(pdu.encode())

    def _reject(self, result: int, source: int, diagnostic: int) -> None:
        primitive = A_ASSOCIATE()
        primitive.result = result
        primitive.result_source = source
        primitive.diagnostic = diagnostic
        pdu = A_ASSOCIATE_RJ()
        pdu.from_primitive(primitive)
        try:
            self._send([bytes(pdu.encode())])
            # The requestor closes the connection once it has read the answer (PS3.8
            # 7.1.1.8); closing first could reset it before the answer is read.
            self.sock.settimeout(min(self._settings.timeout or 5.0, 5.0))
            while self.sock.recv(4096):
                pass
        except OSError:
            pass

    def _abort(self, *, source: int, reason: int) -> None:
        """Send an A-ABORT (PS3.8 9.3.8) without waiting: a peer that stopped reading
        must not hold the thread (or the server's stop) a timeout more."""
        pdu = struct.pack(">BBIBBBB", 0x07, 0x00, 4, 0, 0, source,
                          reason if source == 0x02 else 0x00)
        if not self._send_lock.acquire(timeout=1.0):
            return  # a response is stuck in a full socket buffer: closing is enough
        try:
            self.sock.setblocking(False)
            self.sock.send(pdu)
        except OSError:
            pass
        finally:
            self._send_lock.release()


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
