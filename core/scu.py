"""Isengard as a DICOM client (SCU): C-ECHO, C-STORE, C-FIND and C-MOVE to modalities.

Failures of the peer (refused, unreachable, timed out, aborted) raise
:class:`PeerError`, which the REST layer answers with 502 or 504 and jobs record.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.association import Association

from . import uid_cache
from .dimse_fast import on_connection_open
from .modalities import Modality
from .store_association import PeerError
from .store_sender import (
    EXPLICIT_LE,
    IMPLICIT_LE,
    UNCOMPRESSED,
    OutgoingInstance,
    Transcoder,
    reencode,
    send_instances,
)
from .version import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

__all__ = ["UNCOMPRESSED", "OutgoingInstance", "PeerError", "StoreReport", "Transcoder",
           "echo", "find", "move", "reachable", "store"]

log = logging.getLogger("isengard.scu")

VERIFICATION = "1.2.840.10008.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
_UNIQUE_KEYS = {"PATIENT": ["PatientID"], "STUDY": ["StudyInstanceUID"],
                "SERIES": ["StudyInstanceUID", "SeriesInstanceUID"],
                "IMAGE": ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]}
_reencode = reencode  # kept under its old name: kernel.transcode imports it from here


def _ae(local_aet: str, timeout: int) -> AE:
    uid_cache.install()
    ae = AE(ae_title=local_aet)
    ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    ae.maximum_pdu_size = 0
    return ae


def reachable(host: str, port: int, timeout: float) -> str | None:
    """``None`` if a TCP connection to host:port opens, else why not.

    Checked before associating: pynetdicom leaks the socket of a connection that fails
    (its shutdown raises on an unconnected socket, so close is never called)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except TimeoutError:
        return "timed out"
    except OSError as exc:
        return exc.strerror or str(exc)


def _associate(ae: AE, modality: Modality, contexts: Sequence[Any] | None = None
               ) -> Association:
    where = f"{modality.aet} at {modality.host}:{modality.port}"
    problem = reachable(modality.host, modality.port, ae.connection_timeout or 30)
    if problem is not None:
        raise PeerError(f"cannot connect to modality {modality.name!r} ({where}): {problem}",
                        timeout=problem == "timed out")
    kwargs: dict[str, Any] = {"ae_title": modality.aet,
                              "evt_handlers": [(evt.EVT_CONN_OPEN, on_connection_open)]}
    if contexts is not None:
        kwargs["contexts"] = list(contexts)
    started = time.monotonic()
    assoc = ae.associate(modality.host, modality.port, **kwargs)
    if assoc.is_established:
        return assoc
    if time.monotonic() - started >= (ae.acse_timeout or 30) * 0.9:
        # pynetdicom aborts when its ACSE timer expires: report it as a timeout
        raise PeerError(f"modality {modality.name!r} ({where}) did not answer the "
                        f"association request within {ae.acse_timeout} s", timeout=True)
    if assoc.is_rejected:
        raise PeerError(f"modality {modality.name!r} ({where}) rejected the association")
    if assoc.is_aborted:
        raise PeerError(f"modality {modality.name!r} ({where}) aborted the association")
    raise PeerError(f"cannot connect to modality {modality.name!r} ({where}): connection "
                    "refused or timed out", timeout=True)


def echo(modality: Modality, local_aet: str, timeout: int) -> None:
    ae = _ae(local_aet, timeout)
    ae.add_requested_context(VERIFICATION, [IMPLICIT_LE])
    assoc = _associate(ae, modality)
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    if "Status" not in status:
        raise PeerError(f"modality {modality.name!r} did not answer the C-ECHO in time",
                        timeout=True)
    if status.Status != 0:
        raise PeerError(f"modality {modality.name!r} answered C-ECHO with status "
                        f"0x{status.Status:04X}")


@dataclass
class StoreReport:
    sent: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)


def store(modality: Modality, local_aet: str, timeout: int,
          instances: Sequence[OutgoingInstance], *, transcoder: Transcoder | None = None,
          progress: Callable[[int, int], None] | None = None,
          move_originator: tuple[str, int] | None = None) -> StoreReport:
    """Send instances on one association (several when more than 128 contexts), as
    stored when the peer accepts their transfer syntax (see :mod:`.store_sender`).

    Each SOP class is proposed in the instance's own transfer syntax plus explicit and
    implicit little endian; when the peer accepts none of the stored ones, the file is
    converted (uncompressed syntaxes by pydicom, compressed ones through ``transcoder``).
    Raises :class:`PeerError` when the peer cannot be reached or breaks the association.
    """
    report = StoreReport()
    sending = send_instances(modality, instances, calling_aet=local_aet, timeout=timeout,
                             transcoder=transcoder, move_originator=move_originator)
    try:
        for sub in sending:
            if sub.category == "Failure":
                report.failed += 1
                report.failures.append(f"{sub.instance.public_id}: {sub.error}")
                log.warning("C-STORE of %s to %s failed: %s", sub.instance.public_id,
                            modality.name, sub.error)
            else:
                report.sent += 1
            if progress is not None:
                progress(report.sent + report.failed, len(instances))
    except PeerError as exc:
        if not report.sent + report.failed:
            raise
        raise PeerError(f"{exc} (after {report.sent} instance(s) sent)",
                        timeout=exc.timeout) from exc
    return report


def find(modality: Modality, local_aet: str, timeout: int, level: str,
         query: Mapping[str, str]) -> list[Dataset]:
    """C-FIND with the Study Root model (Patient Root at patient level)."""
    model = PATIENT_ROOT_FIND if level == "PATIENT" else STUDY_ROOT_FIND
    ae = _ae(local_aet, timeout)
    ae.add_requested_context(model, [EXPLICIT_LE, IMPLICIT_LE])
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level
    identifier.SpecificCharacterSet = "ISO_IR 192"
    for keyword, value in query.items():
        setattr(identifier, keyword, value)
    for keyword in _UNIQUE_KEYS[level]:  # always ask for the keys that identify answers
        if keyword not in identifier:
            setattr(identifier, keyword, "")
    assoc = _associate(ae, modality)
    answers: list[Dataset] = []
    try:
        for status, answer in assoc.send_c_find(identifier, model):
            if "Status" not in status:
                raise PeerError(f"modality {modality.name!r} stopped answering the C-FIND",
                                timeout=True)
            if status.Status in (0xFF00, 0xFF01) and answer is not None:
                answers.append(answer)
            elif status.Status not in (0x0000, 0xFF00, 0xFF01):
                raise PeerError(f"modality {modality.name!r} answered the C-FIND with "
                                f"status 0x{status.Status:04X}")
    finally:
        if assoc.is_established:
            assoc.release()
    return answers


def move(modality: Modality, local_aet: str, timeout: int, level: str,
         identifiers: Sequence[Mapping[str, str]], target_aet: str) -> dict[str, int]:
    """C-MOVE the given resources from ``modality`` to ``target_aet``."""
    model = PATIENT_ROOT_MOVE if level == "PATIENT" else STUDY_ROOT_MOVE
    ae = _ae(local_aet, timeout)
    ae.add_requested_context(model, [EXPLICIT_LE, IMPLICIT_LE])
    assoc = _associate(ae, modality)
    totals = {"completed": 0, "failed": 0, "warning": 0}
    try:
        for ident in identifiers:
            ds = Dataset()
            ds.QueryRetrieveLevel = level
            for keyword, value in ident.items():
                setattr(ds, keyword, value)
            last: Dataset | None = None
            for status, _ in assoc.send_c_move(ds, target_aet, model):
                if "Status" not in status:
                    raise PeerError(f"modality {modality.name!r} stopped answering the "
                                    "C-MOVE", timeout=True)
                last = status
            if last is None:
                raise PeerError(f"modality {modality.name!r} gave no C-MOVE answer")
            code = int(last.Status)
            totals["completed"] += int(last.get("NumberOfCompletedSuboperations", 0) or 0)
            totals["failed"] += int(last.get("NumberOfFailedSuboperations", 0) or 0)
            totals["warning"] += int(last.get("NumberOfWarningSuboperations", 0) or 0)
            if code == 0xA801:
                raise PeerError(f"modality {modality.name!r} does not know the move "
                                f"destination {target_aet!r} (status 0xA801)")
            if code not in (0x0000, 0xB000):
                raise PeerError(f"modality {modality.name!r} answered the C-MOVE with "
                                f"status 0x{code:04X}")
    finally:
        if assoc.is_established:
            assoc.release()
    return totals
