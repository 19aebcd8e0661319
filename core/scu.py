"""Isengard as a DICOM client (SCU): C-ECHO, C-STORE, C-FIND and C-MOVE to modalities.

Failures of the peer (refused, unreachable, timed out, aborted) raise
:class:`PeerError`, which the REST layer answers with 502 or 504 and jobs record.
"""

from __future__ import annotations

import array
import io
import logging
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID
from pynetdicom import AE, evt
from pynetdicom.association import Association

from .dimse_fast import on_connection_open
from .errors import IsengardError
from .modalities import Modality
from .version import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

__all__ = ["PeerError", "StoreReport", "Transcoder", "echo", "find", "move", "store"]

log = logging.getLogger("isengard.scu")

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
UNCOMPRESSED = (EXPLICIT_LE, IMPLICIT_LE, BIG_ENDIAN)
VERIFICATION = "1.2.840.10008.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
_UNIQUE_KEYS = {"PATIENT": ["PatientID"], "STUDY": ["StudyInstanceUID"],
                "SERIES": ["StudyInstanceUID", "SeriesInstanceUID"],
                "IMAGE": ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]}
MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1..255

# (data, target transfer syntax) -> transcoded data, or None when no codec can do it.
Transcoder = Callable[[bytes, str], bytes | None]


class PeerError(IsengardError):
    """The remote modality could not be reached or did not answer as expected."""

    def __init__(self, message: str, *, timeout: bool = False):
        super().__init__(message)
        self.timeout = timeout


def _ae(local_aet: str, timeout: int) -> AE:
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
    failures: list[str] | None = None


@dataclass(frozen=True)
class OutgoingInstance:
    """One file to send: bytes as stored, with its SOP class and transfer syntax."""

    public_id: str
    sop_class_uid: str
    transfer_syntax_uid: str
    read: Callable[[], bytes]


def store(modality: Modality, local_aet: str, timeout: int,
          instances: Sequence[OutgoingInstance], *, transcoder: Transcoder | None = None,
          progress: Callable[[int, int], None] | None = None,
          move_originator: tuple[str, int] | None = None) -> StoreReport:
    """Send instances on one association (several when more than 128 contexts).

    Each SOP class is proposed in the instance's own transfer syntax plus explicit and
    implicit little endian; when the peer accepts none of the stored ones, the file is
    converted (uncompressed syntaxes by pydicom, compressed ones through ``transcoder``).
    """
    report = StoreReport(failures=[])
    assert report.failures is not None  # noqa: S101 - for mypy
    for batch in _batches(instances):
        ae = _ae(local_aet, timeout)
        for context in storage_contexts((i.sop_class_uid, i.transfer_syntax_uid)
                                        for i in batch):
            ae.add_requested_context(*context)
        assoc = _associate(ae, modality)
        try:
            accepted: dict[str, set[str]] = {}
            for cx in assoc.accepted_contexts:
                accepted.setdefault(str(cx.abstract_syntax), set()).add(
                    str(cx.transfer_syntax[0]))
            for inst in batch:
                try:
                    error = _send_one(assoc, inst, accepted.get(inst.sop_class_uid, set()),
                                      transcoder, move_originator)
                except Exception as exc:  # this instance fails; the others are still sent
                    log.exception("cannot send instance %s", inst.public_id)
                    error = f"{type(exc).__name__}: {exc}"
                if error is None:
                    report.sent += 1
                else:
                    report.failed += 1
                    report.failures.append(f"{inst.public_id}: {error}")
                    log.warning("C-STORE of %s to %s failed: %s", inst.public_id,
                                modality.name, error)
                if progress is not None:
                    progress(report.sent + report.failed, len(instances))
                if not assoc.is_established:
                    raise PeerError(f"modality {modality.name!r} closed the association "
                                    f"after {report.sent} instance(s)")
        finally:
            if assoc.is_established:
                assoc.release()
    return report


def storage_contexts(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """Presentation contexts to propose for (SOP class, stored transfer syntax) pairs.

    One context per stored syntax, so that the peer can accept each on its own (an
    acceptor picks one syntax per context, PS3.8 9.3.3.2), plus one uncompressed
    context per SOP class to fall back on (with conversion)."""
    contexts: list[tuple[str, list[str]]] = []
    seen: set[tuple[str, str]] = set()
    classes: list[str] = []
    for sop_class, ts in pairs:
        if not sop_class:
            continue
        if sop_class not in classes:
            classes.append(sop_class)
        if ts and ts not in (EXPLICIT_LE, IMPLICIT_LE) and (sop_class, ts) not in seen:
            seen.add((sop_class, ts))
            contexts.append((sop_class, [ts]))
    contexts += [(sop_class, [EXPLICIT_LE, IMPLICIT_LE]) for sop_class in classes]
    return contexts[:MAX_CONTEXTS]


def _batches(instances: Sequence[OutgoingInstance]) -> Iterator[list[OutgoingInstance]]:
    batch: list[OutgoingInstance] = []
    classes: set[str] = set()
    for inst in instances:
        if inst.sop_class_uid not in classes and len(classes) >= MAX_CONTEXTS // 4:
            yield batch
            batch, classes = [], set()
        classes.add(inst.sop_class_uid)
        batch.append(inst)
    if batch:
        yield batch


def _send_one(assoc: Association, inst: OutgoingInstance, accepted: set[str],
              transcoder: Transcoder | None, move_originator: tuple[str, int] | None
              ) -> str | None:
    if not accepted:
        return f"the modality accepts no transfer syntax for SOP class {inst.sop_class_uid}"
    data = inst.read()
    ts = inst.transfer_syntax_uid
    if ts not in accepted:
        target = EXPLICIT_LE if EXPLICIT_LE in accepted else sorted(accepted)[0]
        if ts in UNCOMPRESSED and target in UNCOMPRESSED:
            data = _reencode(data, target)
        else:
            converted = transcoder(data, target) if transcoder is not None else None
            if converted is None:
                return (f"the modality does not accept {ts} and no codec plugin can "
                        f"convert it to {target} (install and enable the codecs plugin)")
            data = converted
    ds = pydicom.dcmread(io.BytesIO(data))
    kwargs: dict[str, Any] = {}
    if move_originator is not None:
        kwargs = {"originator_aet": move_originator[0], "originator_id": move_originator[1]}
    status = assoc.send_c_store(ds, **kwargs)
    if "Status" not in status:
        return "no answer (timeout or association aborted)"
    if status.Status not in (0x0000, 0xB000, 0xB006, 0xB007):
        return f"status 0x{status.Status:04X}"
    return None


def _reencode(data: bytes, target: str) -> bytes:
    """Convert between uncompressed transfer syntaxes (PS3.5 A.1-A.3)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    source_little = ds.original_encoding[1]
    target_little = target != BIG_ENDIAN
    if source_little != target_little and "PixelData" in ds:
        # OW pixel data is a stream of 16/32-bit words: swap their bytes (PS3.5 A.2).
        bits = int(ds.get("BitsAllocated", 8))
        if bits in (16, 32):
            words = array.array("H" if bits == 16 else "I", ds.PixelData)
            words.byteswap()
            ds.PixelData = words.tobytes()
    for element in ds.iterall():  # decode every element with its source encoding
        _ = element.value
    ds.file_meta.TransferSyntaxUID = UID(target)
    out = io.BytesIO()
    dcmwrite(out, ds, implicit_vr=target == IMPLICIT_LE, little_endian=target_little,
             force_encoding=True)
    return out.getvalue()


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
