"""The DICOM front-end: a pynetdicom Application Entity serving C-ECHO and C-STORE.

Each association runs in its own thread (pynetdicom); C-STORE hands the received bytes,
as received, to the ingest path and answers once the instance is durable and indexed.
A failure becomes a DICOM failure status (PS3.4 B.2.3), never a dropped association.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import AssociationServer, ThreadedAssociationServer

from . import dimse_receive, dimse_wakeup, uid_cache
from .config import DicomSettings
from .dimse_fast import install_fast_final_responses, tune_connection
from .dimse_qr import QR_SOP_CLASSES
from .errors import InstanceRejected, InvalidDicomError, StartupError
from .ingest import Ingest, Origin
from .version import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

__all__ = ["DicomServer", "TRANSFER_SYNTAXES"]

log = logging.getLogger("isengard.dicom")

# What we accept, preferred first (PS3.5 Annex A, PS3.6 Table A-1).
TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still sent by old devices)
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline (Process 1)
    "1.2.840.10008.1.2.4.51",  # JPEG Extended (Process 2 & 4)
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless (Process 14)
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.201",  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.203",  # HTJ2K
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.4.100",  # MPEG2 Main Profile
    "1.2.840.10008.1.2.4.102",  # MPEG-4 AVC/H.264
    "1.2.840.10008.1.2.4.110",  # JPEG XL Lossless
]

# C-STORE statuses, PS3.4 B.2.3 (Table B.2-1).
STATUS_SUCCESS = 0x0000
# "Refused: Out of Resources" (A7xx): the instance was not stored; the sender may retry
# later (storage failure, shut-down in progress).
STATUS_OUT_OF_RESOURCES = 0xA700
# "Error: Cannot understand" (Cxxx): the data set cannot be parsed or lacks the
# identifiers the index needs; sending it again will not help.
STATUS_CANNOT_UNDERSTAND = 0xC000
# A filter plugin vetoed the instance. PS3.4 has no "refused by policy" status for
# C-STORE; like Orthanc we answer "Refused: Out of Resources" (A700).
STATUS_REJECTED = 0xA700
# PS3.7 C.5.x general status "Refused: Not Authorized": the caller lacks the right.
STATUS_NOT_AUTHORIZED = 0x0124

# A-ASSOCIATE-RJ (source, diagnostic) → reason, PS3.8 9.3.4 (Table 9-21).
_REJECT_REASONS = {
    (1, 1): "no reason given",
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognised",
    (1, 7): "called AE title not recognised",
    (2, 1): "no reason given (ACSE)",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded",
}


@dataclass
class _AssociationStats:
    calling_aet: str
    address: str
    stored: int = 0
    already: int = 0
    rejected: int = 0
    bytes: int = 0
    reasons: list[str] = field(default_factory=list)
    # Whether the caller may store, decided at its first C-STORE: the caller does not
    # change during an association (a modality edited meanwhile applies to the next).
    may_store: bool | None = None


class DicomServer:
    """The DICOM listener of one server."""

    def __init__(self, settings: DicomSettings, ingest: Callable[[], Ingest],
                 query_retrieve: Callable[[], list[Any]] | None = None,
                 caller_rights: Callable[[str, str], Any] | None = None):
        self.settings = settings
        self._ingest = ingest
        # (calling AET, address) -> the declared modality it is, or None (unknown caller)
        self._caller_rights = caller_rights
        # C-FIND / C-MOVE / C-GET handlers (dimse_qr), built once the kernel is open.
        self._query_retrieve = query_retrieve
        self._server: AssociationServer | None = None
        self._stats: dict[int, _AssociationStats] = {}
        self._lock = threading.Lock()
        # Shut-down bookkeeping: C-STORE handlers running the ingest path, and whether
        # new ones are still allowed (both guarded by ``_lock``).
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._stopping = False
        # Every connection accepted (from EVT_CONN_OPEN, before pynetdicom starts the
        # association's thread, so ae.active_associations may not list it yet). Finished
        # associations drop out by themselves.
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self.ae = self._make_ae()

    def _make_ae(self) -> AE:
        s = self.settings
        uid_cache.install()
        ae = AE(ae_title=s.aet)
        ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
        ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
        ae.maximum_pdu_size = s.maximum_pdu_length
        ae.network_timeout = s.timeout
        ae.acse_timeout = s.timeout
        ae.dimse_timeout = s.timeout
        ae.maximum_associations = s.maximum_associations
        ae.require_called_aet = s.check_called_aet
        ae.add_supported_context(Verification, TRANSFER_SYNTAXES[:3])
        for cx in AllStoragePresentationContexts:
            if cx.abstract_syntax is not None:
                # scp_role: a C-GET requester may act as storage SCP (PS3.4 C.4.3, PS3.7
                # D.3.3.4 role selection) on the same association.
                ae.add_supported_context(cx.abstract_syntax, TRANSFER_SYNTAXES,
                                         scu_role=False, scp_role=True)
        for sop_class in QR_SOP_CLASSES:
            ae.add_supported_context(sop_class, TRANSFER_SYNTAXES[:3])
        return ae

    @property
    def port(self) -> int:
        if self._server is None:
            return self.settings.port
        return int(self._server.server_address[1])

    def start(self, host: str | None = None, port: int | None = None) -> int:
        """Listen (non-blocking). Raises :class:`StartupError` if the port is taken."""
        host = self.settings.host if host is None else host
        port = self.settings.port if port is None else port
        handlers: list[Any] = [
            (evt.EVT_CONN_OPEN, self._on_connection_open),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_RELEASED, self._on_closed),
            (evt.EVT_ABORTED, self._on_closed),
            (evt.EVT_REJECTED, self._on_rejected),
        ]
        if self._query_retrieve is not None:
            handlers += self._query_retrieve()
        with self._lock:
            self._stopping = False
        try:
            # With block=False pynetdicom always returns the (running) server.
            server = cast(AssociationServer, self.ae.start_server(
                (host, port), block=False, evt_handlers=handlers))
        except OSError as exc:
            raise StartupError(f"cannot listen for DICOM on {host}:{port}: "
                               f"{exc.strerror or exc} (is another server using port {port}? "
                               "choose another with --dicom-port)") from exc
        # Acknowledgements must not wait for Nagle's algorithm (PS3.8 doesn't care, latency
        # does). Linux copies the option to accepted sockets; _on_connection_open sets it on
        # each of them anyway, for the platforms that do not.
        if server.socket is not None:
            server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server.contexts = _SharedContexts(server.contexts)
        # pynetdicom starts a thread per connection whose only work is to create the
        # Association and start its two threads (~0.3 ms of each association's set-up):
        # the accepting thread does it itself. It reads nothing from the peer there
        # (with TLS it would: the handshake happens when the socket is wrapped).
        if isinstance(server, ThreadedAssociationServer):
            server.process_request = server.process_request_thread  # type: ignore[method-assign]
        self._server = server
        log.info("DICOM server listening on %s:%d as AE title %s", host, self.port,
                 self.settings.aet)
        return self.port

    def stop(self, grace: float = 10.0) -> None:
        """Stop accepting associations, let the C-STOREs being ingested finish (up to
        ``grace`` seconds), then abort the open associations.

        An association may stay open for hours (a modality keeping it idle, a batch of
        thousands of files): waiting for peers to release would make shut-down as slow as
        the slowest of them. What matters is that no instance is half-ingested when the
        index closes: a C-STORE being ingested when ``stop()`` begins is stored and
        indexed (its answer may be overtaken by the abort: a retry then gets success,
        already stored); one that arrives later is refused (A700, the sender may retry)
        and leaves nothing behind.
        """
        if self._server is None:
            return
        self._server.shutdown()  # no new associations
        self._server = None
        with self._idle:
            # From here on, new connections close themselves (_on_connection_open) and
            # new C-STOREs are refused (_on_store).
            self._stopping = True
            # Ended associations stay in the set until the garbage collector breaks
            # their reference cycles: only those not started yet or still running count.
            acceptors = [a for a in self._connections if a.ident is None or a.is_alive()]
            if not self._idle.wait_for(lambda: self._in_flight == 0, timeout=grace):
                log.warning("%d C-STORE(s) still being stored after %.0f s at shut-down",
                            self._in_flight, grace)
        deadline = time.monotonic() + grace
        for assoc in acceptors:
            if assoc.requestor.primitive is None:
                _close_unassociated(assoc)
                continue
            log.warning("aborting association from %s (%s) at shut-down",
                        assoc.requestor.ae_title, assoc.requestor.address)
            assoc.abort()
        for assoc in acceptors:
            if assoc.ident is not None:  # else not started yet: it will end at once
                assoc.join(max(0.0, deadline - time.monotonic()))

    # -- event handlers (run in the association's thread) -------------------------------

    def _on_connection_open(self, event: Any) -> None:
        # Runs in the connection's thread before pynetdicom starts the association.
        with self._lock:
            stopping = self._stopping
            if not stopping:
                self._connections.add(event.assoc)
        if stopping:  # accepted just before the listener closed
            _close_unassociated(event.assoc)
            return
        # Before the first PDU is read, so that A-ASSOCIATE-AC already goes out without
        # Nagle's delay. pynetdicom's AssociationSocket wraps the accepted socket.
        tune_connection(event.assoc)
        install_fast_final_responses(event.assoc)
        dimse_wakeup.install(event.assoc)
        dimse_receive.install(event.assoc, self._receive)

    def _on_accepted(self, event: Any) -> None:
        assoc = event.assoc
        calling = assoc.requestor.ae_title
        address = f"{assoc.requestor.address}:{assoc.requestor.port}"
        with self._lock:
            self._stats[id(assoc)] = _AssociationStats(calling, address)
        log.info("association from %s (%s) to %s accepted", calling, address,
                 _called_aet(assoc))

    def _on_rejected(self, event: Any) -> None:
        assoc = event.assoc
        answer = assoc.acceptor.primitive  # the A-ASSOCIATE-RJ just sent
        key = (int(getattr(answer, "result_source", 0) or 0),
               int(getattr(answer, "diagnostic", 0) or 0))
        reason = _REJECT_REASONS.get(key, f"source {key[0]}, diagnostic {key[1]}")
        called = _called_aet(assoc)
        if key == (1, 7):
            reason += (f": {called!r} is not {self.settings.aet!r} "
                       "(dicom.check_called_aet is on)")
        elif key == (3, 2):
            reason += (f": already {self.settings.maximum_associations} associations "
                       "(dicom.maximum_associations)")
        log.warning("association from %s (%s) to %s rejected: %s", assoc.requestor.ae_title,
                    assoc.requestor.address, called, reason)

    def _on_closed(self, event: Any) -> None:
        with self._lock:
            stats = self._stats.pop(id(event.assoc), None)
        if stats is None:
            return
        how = "released" if event.event is evt.EVT_RELEASED else "aborted"
        log.info("association from %s (%s) %s: %d instance(s) stored, %d already stored, "
                 "%d rejected, %.1f MB", stats.calling_aet, stats.address, how, stats.stored,
                 stats.already, stats.rejected, stats.bytes / 1e6)

    def _allowed(self, assoc: Any, right: str) -> bool:
        """Orthanc's rule: a declared modality has its Allow* rights; an unknown caller
        may echo/store only if dicom.always_allow_echo/store say so."""
        requestor = assoc.requestor
        modality = (self._caller_rights(requestor.ae_title, requestor.address)
                    if self._caller_rights is not None else None)
        if modality is not None:
            return bool(getattr(modality, f"allow_{right}"))
        return bool(getattr(self.settings, f"always_allow_{right}"))

    def _on_echo(self, event: Any) -> int:
        requestor = event.assoc.requestor
        if not self._allowed(event.assoc, "echo"):
            log.warning("C-ECHO from %s (%s) refused: not allowed (declare it under "
                        "`modalities:` with allow_echo, or set dicom.always_allow_echo)",
                        requestor.ae_title, requestor.address)
            return STATUS_NOT_AUTHORIZED
        log.debug("C-ECHO from %s", requestor.ae_title)
        return STATUS_SUCCESS

    def _on_store(self, event: Any) -> Dataset | int:
        """EVT_C_STORE: the C-STOREs that dimse_receive leaves to pynetdicom (DEBUG
        logging of pynetdicom on, a context whose abstract syntax is not the SOP class)."""
        request = event.request
        status, comment = self._receive(
            event.assoc, str(event.context.transfer_syntax), str(request.AffectedSOPClassUID),
            str(request.AffectedSOPInstanceUID),
            [memoryview(event.encoded_dataset(include_meta=False))])
        if status == STATUS_SUCCESS:
            return status
        answer = Dataset()
        answer.Status = status
        # LO (PS3.5 6.2): at most 64 characters, a backslash would split the value.
        answer.ErrorComment = comment.replace("\\", "/")[:64]
        return answer

    def _receive(self, assoc: Any, transfer_syntax: str, sop_class: str, sop_instance: str,
                 fragments: list[memoryview]) -> tuple[int, str]:
        """One received C-STORE → (status, error comment). Called by dimse_receive on
        the association's DUL thread, or by :meth:`_on_store`."""
        stats = self._stats.get(id(assoc))
        # CalledAET is the title the peer asked for (Orthanc records it too): with
        # check_called_aet off, a server answers to any title.
        origin = Origin(kind="DicomProtocol", remote_aet=assoc.requestor.ae_title,
                        called_aet=_called_aet(assoc), remote_ip=assoc.requestor.address)
        may_store = stats.may_store if stats is not None else None
        if may_store is None:
            may_store = self._allowed(assoc, "store")
            if stats is not None:
                stats.may_store = may_store
        if not may_store:
            return self._failure(stats, STATUS_NOT_AUTHORIZED,
                                 f"{origin.remote_aet} may not store here: declare it under "
                                 "`modalities:` with allow_store, or set "
                                 "dicom.always_allow_store", origin)
        with self._lock:
            stopping = self._stopping
            if not stopping:
                self._in_flight += 1
        if stopping:
            return self._failure(stats, STATUS_OUT_OF_RESOURCES,
                                 "the server is shutting down: send the instance again later",
                                 origin)
        try:
            data = _part10_bytes(sop_class, sop_instance, transfer_syntax, origin.remote_aet,
                                 fragments)
            return self._store(data, stats, origin)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _store(self, data: bytes, stats: _AssociationStats | None,
               origin: Origin) -> tuple[int, str]:
        try:
            outcome, parsed = self._ingest().ingest(data, origin)
        except InvalidDicomError as exc:
            return self._failure(stats, STATUS_CANNOT_UNDERSTAND, str(exc), origin)
        except InstanceRejected as exc:
            return self._failure(stats, STATUS_REJECTED, str(exc), origin)
        except Exception as exc:
            log.exception("C-STORE from %s failed", origin.remote_aet)
            return self._failure(stats, STATUS_OUT_OF_RESOURCES,
                                 f"cannot store the instance: {type(exc).__name__}: {exc}", origin)
        if stats is not None:
            stats.bytes += len(data)
            if outcome.status == "Success":
                stats.stored += 1
            else:
                stats.already += 1
        log.debug("C-STORE %s from %s: %s", parsed.sop_instance_uid, origin.remote_aet,
                  outcome.status)
        return STATUS_SUCCESS, ""

    @staticmethod
    def _failure(stats: _AssociationStats | None, status: int, reason: str,
                 origin: Origin) -> tuple[int, str]:
        if stats is not None:
            stats.rejected += 1
        log.warning("C-STORE from %s (%s) refused: %s", origin.remote_aet, origin.remote_ip,
                    reason)
        return status, reason


def _called_aet(assoc: Any) -> str:
    """The AE title the peer called (from its A-ASSOCIATE-RQ), ours if unknown."""
    request = assoc.requestor.primitive
    called = getattr(request, "called_ae_title", None) if request is not None else None
    return str(called).strip() if called else str(assoc.acceptor.ae_title)


def _close_unassociated(assoc: Any) -> None:
    """Close a connection whose peer has not sent its A-ASSOCIATE-RQ yet (a port probe,
    a load balancer's health check).

    There is no association to abort: A-ABORT is not a valid event before the request
    (PS3.8 9.2, state Sta2). Closing the transport moves the state machine back to idle;
    pynetdicom's reactor, which waits for the request until acse_timeout, is woken by an
    empty item in its queue (its "nothing received" answer) and ends the thread.
    """
    raw = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if raw is not None:
        try:
            raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the peer
    assoc.dul.to_user_queue.put(None)


class _SharedContexts(list):  # type: ignore[type-arg]
    """The supported presentation contexts, shared by every association.

    pynetdicom deep-copies them for each incoming association: with every storage SOP
    class in 18 transfer syntaxes that took ~30 ms before the A-ASSOCIATE-AC. Negotiation
    only reads them, so a shallow copy is enough."""

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return list(self)


def _part10_bytes(sop_class: str, sop_instance: str, transfer_syntax: str,
                  calling_aet: str, fragments: list[memoryview]) -> bytes:
    """The received data set, untouched, behind a PS3.10 preamble and file meta.

    The meta takes the SOP class and instance from the C-STORE request and the transfer
    syntax from the presentation context; we name this server as the writer
    (Implementation Class UID, PS3.10 7.1) and, as DCMTK's storescp does, the sender as
    Source Application Entity Title. Encoded by hand: it is on the hot path of every
    C-STORE, and pydicom's generic writer costs about a millisecond. The fragments are
    joined once, into the file's bytes.
    """
    meta = encode_file_meta_group(sop_class, sop_instance, transfer_syntax, calling_aet)
    return b"".join((b"\x00" * 128, b"DICM", meta, *fragments))


def _element(tag: int, vr: bytes, value: bytes, pad: bytes) -> bytes:
    if len(value) % 2:
        value += pad
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value


_META_VERSION = struct.pack("<HH2sHI", 0x0002, 0x0001, b"OB", 0, 2) + b"\x00\x01"


def encode_file_meta_group(sop_class: str, sop_instance: str, transfer_syntax: str,
                           source_aet: str = "") -> bytes:
    """The File Meta Information group (PS3.10 7.1), explicit VR little endian."""
    body = b"".join((
        _META_VERSION,
        _element(0x00020002, b"UI", sop_class.encode("ascii"), b"\x00"),
        _element(0x00020003, b"UI", sop_instance.encode("ascii"), b"\x00"),
        _element(0x00020010, b"UI", transfer_syntax.encode("ascii"), b"\x00"),
        _element(0x00020012, b"UI", IMPLEMENTATION_CLASS_UID.encode("ascii"), b"\x00"),
        _element(0x00020013, b"SH", IMPLEMENTATION_VERSION_NAME.encode("ascii"), b" "),
        _element(0x00020016, b"AE", source_aet.encode("ascii", "replace"), b" ")
        if source_aet else b"",
    ))
    return _element(0x00020000, b"UL", struct.pack("<I", len(body)), b"") + body
