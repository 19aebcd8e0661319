"""The DICOM front-end: C-ECHO, C-STORE and, through dimse_qr, query/retrieve.

pynetdicom's server accepts the connections; each gets a thread that reads its
A-ASSOCIATE-RQ. An association for storage and Verification only is served whole in
that thread (:mod:`.dimse_acceptor`); any other goes to pynetdicom's association
machinery, its C-STOREs read by :mod:`.dimse_receive`. Either way C-STORE hands the
received bytes, as received, to the ingest path and answers once the instance is durable
and indexed. A failure becomes a DICOM failure status (PS3.4 B.2.3), never a dropped
association.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import AssociationServer, ThreadedAssociationServer

from . import dimse_receive, dimse_wakeup, uid_cache
from .config import DicomSettings
from .dimse_acceptor import AcceptorSettings, Requestor, StorageAssociation
from .dimse_fast import install_fast_final_responses, tune_connection
from .dimse_qr import QR_SOP_CLASSES
from .dimse_workers import WorkerPool
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
    called_aet: str
    ip: str
    address: str  # ip:port
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
                 caller_rights: Callable[[str, str], Any] | None = None,
                 workers: WorkerPool | None = None):
        self.settings = settings
        self._ingest = ingest
        # Worker processes that storage associations move to while several run at once
        # (dimse_workers); None: every association stays in this process.
        self.workers = workers
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
        # The connections served by our own acceptor (StorageAssociation), until their
        # thread ends; and the A-ASSOCIATE-RQ of a connection being handed to pynetdicom
        # (read by _on_connection_open, in the same thread).
        self._own: set[StorageAssociation] = set()
        self._handover = threading.local()
        self.ae = self._make_ae()
        self._acceptor = AcceptorSettings(
            maximum_pdu_length=settings.maximum_pdu_length,
            timeout=settings.timeout, supported=self.ae.supported_contexts,
            fast_syntaxes=frozenset([str(Verification)] + [
                str(cx.abstract_syntax) for cx in AllStoragePresentationContexts]))

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
        # Each connection's thread reads the A-ASSOCIATE-RQ, then serves the association
        # itself or hands it to pynetdicom (_on_connection).
        server.process_request = self._on_connection  # type: ignore[method-assign,assignment]
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
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()  # no new associations
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
            own = list(self._own)
        deadline = time.monotonic() + grace
        for association in own:
            if association.established and association.requestor is not None:
                log.warning("aborting association from %s (%s) at shut-down",
                            association.requestor.calling_aet, association.requestor.ip)
            association.abort()
        for association in own:
            if association.thread is not None:
                association.thread.join(max(0.0, deadline - time.monotonic()))
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
        if self.workers is not None:
            self.workers.stop(grace)

    # -- our acceptor (dimse_acceptor.AcceptorHost) -------------------------------------

    def _on_connection(self, request: socket.socket, client_address: Any) -> None:
        """A connection accepted by pynetdicom's server (in its listening thread)."""
        association = StorageAssociation(request, client_address, self, self._acceptor)
        with self._lock:
            stopping = self._stopping
            if not stopping:
                self._own.add(association)
        if stopping:  # accepted just before the listener closed
            request.close()
            return
        association.thread = threading.Thread(
            target=self._serve_connection, args=(association,), daemon=True,
            name=f"DicomConnection-{client_address[0]}:{client_address[1]}")
        association.thread.start()

    def _serve_connection(self, association: StorageAssociation) -> None:
        try:
            association.run()
        finally:
            with self._lock:
                self._own.discard(association)
            if association.move_to is not None and not association.moved:
                cast(WorkerPool, self.workers).cancel(association.move_to)

    def resume(self, sock: socket.socket, message: dict[str, Any],
               ended: Callable[[], None]) -> None:
        """Serve an association moved here from the server's process (in a worker:
        :mod:`.dimse_workers`); ``ended`` is called when it is over."""
        association = StorageAssociation.resumed(sock, message["association"], self,
                                                 self._acceptor)
        stats = _AssociationStats(**message["stats"])
        with self._lock:
            stopping = self._stopping
            if not stopping:
                self._own.add(association)
        if stopping:
            association.abort()
            sock.close()
            ended()
            return

        def serve() -> None:
            try:
                association.run_resumed(stats)
            finally:
                with self._lock:
                    self._own.discard(association)
                ended()

        association.thread = threading.Thread(
            target=serve, daemon=True, name=f"DicomConnection-{stats.address}")
        association.thread.start()

    def rebalance(self) -> None:
        """Start workers when two or more storage associations run here, and move
        associations to them until the processes share them (dimse_workers)."""
        workers = self.workers
        if workers is None:
            return
        with self._lock:
            if self._stopping:
                return
            here = [a for a in self._own if a.established and a.move_to is None]
        if len(here) >= 2:
            workers.start_on_demand()
        workers.assign(here)

    def admit(self, requestor: Requestor) -> tuple[int, int, int] | None:
        """The checks before accepting an association, whichever path serves it."""
        reason = None
        if self.settings.check_called_aet and requestor.called_aet != self.settings.aet:
            reason = (1, 1, 7)
        else:
            with self._lock:
                ours = sum(1 for a in self._own if a.established)
            if self.workers is not None:
                ours += self.workers.active
            limit = self.settings.maximum_associations
            # pynetdicom's associations are threads: counting them enumerates every
            # thread, which the count of threads alone makes needless below the limit.
            if ours + threading.active_count() + 1 > limit:
                theirs = sum(1 for a in self.ae.active_associations if a.is_acceptor)
                if ours + theirs + 1 > limit:
                    reason = (2, 3, 2)
        if reason is not None:
            self._log_rejection(requestor.calling_aet, requestor.ip, requestor.called_aet,
                                (reason[1], reason[2]))
        return reason

    def accepted(self, association: StorageAssociation) -> _AssociationStats:
        requestor = association.requestor
        assert requestor is not None
        stats = _AssociationStats(requestor.calling_aet, requestor.called_aet, requestor.ip,
                                  f"{requestor.ip}:{requestor.port}")
        log.info("association from %s (%s) to %s accepted", stats.calling_aet,
                 stats.address, stats.called_aet)
        self.rebalance()
        return stats

    def echo(self, stats: _AssociationStats) -> int:
        return self._echo_status(stats.calling_aet, stats.ip)

    def store(self, stats: _AssociationStats, transfer_syntax: str, sop_class: str,
              sop_instance: str, fragments: list[memoryview]) -> tuple[int, str]:
        return self._receive(stats, transfer_syntax, sop_class, sop_instance, fragments)

    def closed(self, stats: _AssociationStats, how: str) -> None:
        if how != "moved":  # else the worker it moved to logs it
            _log_summary(stats, how)

    def move(self, association: StorageAssociation, stats: _AssociationStats) -> bool:
        worker = association.move_to
        moved = cast(WorkerPool, self.workers).send(
            worker, association.sock,
            {"association": association.snapshot(), "stats": asdict(stats)})
        if moved:
            log.debug("association from %s (%s) moved to storage worker %d",
                      stats.calling_aet, stats.address, worker.number)
        return moved

    def hand_over(self, sock: socket.socket, address: Any, request_pdu: bytes) -> None:
        server = self._server
        if server is None:  # stopped meanwhile
            sock.close()
            return
        self._handover.request_pdu = request_pdu
        try:
            # pynetdicom's: creates the Association (EVT_CONN_OPEN) and starts it.
            cast(ThreadedAssociationServer, server).process_request_thread(sock, address)
        finally:
            self._handover.request_pdu = None

    # -- event handlers (run in the association's thread) -------------------------------

    def _on_connection_open(self, event: Any) -> None:
        # Runs in the connection's thread before pynetdicom starts the association.
        request_pdu = getattr(self._handover, "request_pdu", None)
        self._handover.request_pdu = None
        with self._lock:
            stopping = self._stopping
            if not stopping:
                self._connections.add(event.assoc)
        if stopping:  # accepted just before the listener closed
            _close_unassociated(event.assoc)
            return
        if request_pdu is not None:
            # What pynetdicom's reader would have done with the PDU we already read.
            dul = event.assoc.dul
            pdu, dul_event = dul._decode_pdu(bytearray(request_pdu))
            dul.event_queue.put(dul_event)
            dul._recv_pdu.put(pdu)
        # Before the first PDU is read, so that A-ASSOCIATE-AC already goes out without
        # Nagle's delay. pynetdicom's AssociationSocket wraps the accepted socket.
        tune_connection(event.assoc)
        install_fast_final_responses(event.assoc)
        dimse_wakeup.install(event.assoc)
        dimse_receive.install(event.assoc, self._receive_pynetdicom)

    def _on_accepted(self, event: Any) -> None:
        stats = _stats_for(event.assoc)
        with self._lock:
            self._stats[id(event.assoc)] = stats
        log.info("association from %s (%s) to %s accepted", stats.calling_aet,
                 stats.address, stats.called_aet)

    def _on_rejected(self, event: Any) -> None:
        assoc = event.assoc
        answer = assoc.acceptor.primitive  # the A-ASSOCIATE-RJ just sent
        key = (int(getattr(answer, "result_source", 0) or 0),
               int(getattr(answer, "diagnostic", 0) or 0))
        self._log_rejection(assoc.requestor.ae_title, assoc.requestor.address,
                            _called_aet(assoc), key)

    def _log_rejection(self, calling: str, ip: str, called: str,
                       key: tuple[int, int]) -> None:
        reason = _REJECT_REASONS.get(key, f"source {key[0]}, diagnostic {key[1]}")
        if key == (1, 7):
            reason += (f": {called!r} is not {self.settings.aet!r} "
                       "(dicom.check_called_aet is on)")
        elif key == (3, 2):
            reason += (f": already {self.settings.maximum_associations} associations "
                       "(dicom.maximum_associations)")
        log.warning("association from %s (%s) to %s rejected: %s", calling, ip, called,
                    reason)

    def _on_closed(self, event: Any) -> None:
        with self._lock:
            stats = self._stats.pop(id(event.assoc), None)
        if stats is not None:
            _log_summary(stats, "released" if event.event is evt.EVT_RELEASED else "aborted")

    def _allowed(self, calling_aet: str, ip: str, right: str) -> bool:
        """Orthanc's rule: a declared modality has its Allow* rights; an unknown caller
        may echo/store only if dicom.always_allow_echo/store say so."""
        modality = (self._caller_rights(calling_aet, ip)
                    if self._caller_rights is not None else None)
        if modality is not None:
            return bool(getattr(modality, f"allow_{right}"))
        return bool(getattr(self.settings, f"always_allow_{right}"))

    def _on_echo(self, event: Any) -> int:
        requestor = event.assoc.requestor
        return self._echo_status(requestor.ae_title, requestor.address)

    def _echo_status(self, calling_aet: str, ip: str) -> int:
        if not self._allowed(calling_aet, ip, "echo"):
            log.warning("C-ECHO from %s (%s) refused: not allowed (declare it under "
                        "`modalities:` with allow_echo, or set dicom.always_allow_echo)",
                        calling_aet, ip)
            return STATUS_NOT_AUTHORIZED
        log.debug("C-ECHO from %s", calling_aet)
        return STATUS_SUCCESS

    def _on_store(self, event: Any) -> Dataset | int:
        """EVT_C_STORE: the C-STOREs that dimse_receive leaves to pynetdicom (DEBUG
        logging of pynetdicom on, a context whose abstract syntax is not the SOP class)."""
        request = event.request
        status, comment = self._receive_pynetdicom(
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

    def _receive_pynetdicom(self, assoc: Any, transfer_syntax: str, sop_class: str,
                            sop_instance: str, fragments: list[memoryview]
                            ) -> tuple[int, str]:
        """A C-STORE on an association pynetdicom runs: dimse_receive calls this on the
        association's DUL thread, or :meth:`_on_store` does."""
        stats = self._stats.get(id(assoc)) or _stats_for(assoc)
        return self._receive(stats, transfer_syntax, sop_class, sop_instance, fragments)

    def _receive(self, stats: _AssociationStats, transfer_syntax: str, sop_class: str,
                 sop_instance: str, fragments: list[memoryview]) -> tuple[int, str]:
        """One received C-STORE → (status, error comment)."""
        # CalledAET is the title the peer asked for (Orthanc records it too): with
        # check_called_aet off, a server answers to any title.
        origin = Origin(kind="DicomProtocol", remote_aet=stats.calling_aet,
                        called_aet=stats.called_aet, remote_ip=stats.ip)
        may_store = stats.may_store
        if may_store is None:
            may_store = stats.may_store = self._allowed(stats.calling_aet, stats.ip, "store")
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

    def _store(self, data: bytes, stats: _AssociationStats,
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
        stats.bytes += len(data)
        if outcome.status == "Success":
            stats.stored += 1
        else:
            stats.already += 1
        log.debug("C-STORE %s from %s: %s", parsed.sop_instance_uid, origin.remote_aet,
                  outcome.status)
        return STATUS_SUCCESS, ""

    @staticmethod
    def _failure(stats: _AssociationStats, status: int, reason: str,
                 origin: Origin) -> tuple[int, str]:
        stats.rejected += 1
        log.warning("C-STORE from %s (%s) refused: %s", origin.remote_aet, origin.remote_ip,
                    reason)
        return status, reason


def _stats_for(assoc: Any) -> _AssociationStats:
    requestor = assoc.requestor
    return _AssociationStats(requestor.ae_title, _called_aet(assoc), requestor.address,
                             f"{requestor.address}:{requestor.port}")


def _log_summary(stats: _AssociationStats, how: str) -> None:
    log.info("association from %s (%s) %s: %d instance(s) stored, %d already stored, "
             "%d rejected, %.1f MB", stats.calling_aet, stats.address, how, stats.stored,
             stats.already, stats.rejected, stats.bytes / 1e6)


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
