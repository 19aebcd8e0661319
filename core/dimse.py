"""The DICOM front-end: a pynetdicom Application Entity serving C-ECHO and C-STORE.

Each association runs in its own thread (pynetdicom); C-STORE hands the received bytes,
as received, to the ingest path and answers once the instance is durable and indexed.
A failure becomes a DICOM failure status (PS3.4 B.2.3), never a dropped association.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import AssociationServer

from .config import DicomSettings
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

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700  # Refused: out of resources
STATUS_CANNOT_UNDERSTAND = 0xC000  # Error: cannot understand
STATUS_REJECTED = 0xA700


@dataclass
class _AssociationStats:
    calling_aet: str
    address: str
    stored: int = 0
    already: int = 0
    rejected: int = 0
    bytes: int = 0
    reasons: list[str] = field(default_factory=list)


class DicomServer:
    """The DICOM listener of one server."""

    def __init__(self, settings: DicomSettings, ingest: Callable[[], Ingest]):
        self.settings = settings
        self._ingest = ingest
        self._server: AssociationServer | None = None
        self._stats: dict[int, _AssociationStats] = {}
        self._lock = threading.Lock()
        self.ae = self._make_ae()

    def _make_ae(self) -> AE:
        s = self.settings
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
            ae.add_supported_context(cx.abstract_syntax, TRANSFER_SYNTAXES)
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
        handlers = [
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_RELEASED, self._on_closed),
            (evt.EVT_ABORTED, self._on_closed),
            (evt.EVT_REJECTED, self._on_rejected),
        ]
        try:
            self._server = self.ae.start_server((host, port), block=False, evt_handlers=handlers)
        except OSError as exc:
            raise StartupError(f"cannot listen for DICOM on {host}:{port}: "
                               f"{exc.strerror or exc} (is another server using port {port}? "
                               "choose another with --dicom-port)") from exc
        # Acknowledgements must not wait for Nagle's algorithm (PS3.8 doesn't care, latency does).
        self._server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        log.info("DICOM server listening on %s:%d as AE title %s", host, self.port, self.settings.aet)
        return self.port

    def stop(self, grace: float = 10.0) -> None:
        """Stop accepting associations, let running ones finish (up to ``grace``
        seconds), then abort what is left. A C-STORE in progress completes or leaves
        nothing behind: storage writes are atomic."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server = None
        deadline = time.monotonic() + grace
        for assoc in self.ae.active_associations:
            assoc.join(max(0.0, deadline - time.monotonic()))
        for assoc in self.ae.active_associations:
            log.warning("aborting association from %s at shut-down", assoc.requestor.ae_title)
            assoc.abort()
            assoc.join(2.0)

    # -- event handlers (run in the association's thread) -------------------------------

    def _on_accepted(self, event: Any) -> None:
        assoc = event.assoc
        sock = getattr(assoc.dul, "socket", None)
        raw = getattr(sock, "socket", None)
        if raw is not None:
            try:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        calling = assoc.requestor.ae_title
        address = f"{assoc.requestor.address}:{assoc.requestor.port}"
        with self._lock:
            self._stats[id(assoc)] = _AssociationStats(calling, address)
        log.info("association from %s (%s) to %s accepted", calling, address,
                 assoc.acceptor.ae_title)

    def _on_rejected(self, event: Any) -> None:
        assoc = event.assoc
        log.warning("association from %s (%s) rejected", assoc.requestor.ae_title,
                    assoc.requestor.address)

    def _on_closed(self, event: Any) -> None:
        with self._lock:
            stats = self._stats.pop(id(event.assoc), None)
        if stats is None:
            return
        how = "released" if event.event is evt.EVT_RELEASED else "aborted"
        log.info("association from %s (%s) %s: %d instance(s) stored, %d already stored, "
                 "%d rejected, %.1f MB", stats.calling_aet, stats.address, how, stats.stored,
                 stats.already, stats.rejected, stats.bytes / 1e6)

    def _on_echo(self, event: Any) -> int:
        log.debug("C-ECHO from %s", event.assoc.requestor.ae_title)
        return STATUS_SUCCESS

    def _on_store(self, event: Any) -> Dataset | int:
        assoc = event.assoc
        stats = self._stats.get(id(assoc))
        origin = Origin(kind="DicomProtocol", remote_aet=assoc.requestor.ae_title,
                        called_aet=assoc.acceptor.ae_title, remote_ip=assoc.requestor.address)
        try:
            data = event.encoded_dataset(include_meta=True)
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
        return STATUS_SUCCESS

    @staticmethod
    def _failure(stats: _AssociationStats | None, status: int, reason: str,
                 origin: Origin) -> Dataset:
        if stats is not None:
            stats.rejected += 1
        log.warning("C-STORE from %s (%s) refused: %s", origin.remote_aet, origin.remote_ip,
                    reason)
        answer = Dataset()
        answer.Status = status
        answer.ErrorComment = reason[:64]  # LO: at most 64 characters
        return answer
