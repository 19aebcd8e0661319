"""Sending stored instances to a storage SCP: the C-STORE sub-operations of a C-MOVE and
the ``/modalities/{id}/store`` jobs.

Each instance goes out as it is stored — the data set bytes that follow its file meta —
when the peer accepted its transfer syntax. Otherwise it is converted: between
uncompressed syntaxes by the kernel (pydicom), to or from compressed ones through the
``transcode`` hook (codec plugins). Results come one per instance, so that callers report
failures per instance and keep their counts.
"""

from __future__ import annotations

import array
import io
import logging
import struct
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass

import pydicom
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID
from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS

from .dicom_file import add_file_meta, has_file_meta
from .errors import IsengardError
from .modalities import Modality
from .store_association import PeerError, StoreAssociation

__all__ = ["EXPLICIT_LE", "IMPLICIT_LE", "UNCOMPRESSED", "OutgoingInstance", "SubOperation",
           "Transcoder", "prepare_dataset", "reencode", "send_instances", "split_part10",
           "storage_contexts"]

log = logging.getLogger("isengard.scu")

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
UNCOMPRESSED = (EXPLICIT_LE, IMPLICIT_LE, BIG_ENDIAN)
MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1..255

# (PS3.10 file, target transfer syntax) -> converted PS3.10 file, or None when no codec can.
Transcoder = Callable[[bytes, str], bytes | None]


@dataclass(frozen=True)
class OutgoingInstance:
    """One instance to send: its stored bytes (read lazily), SOP class and instance UIDs
    and stored transfer syntax as the index knows them (the file meta fills gaps)."""

    public_id: str
    sop_class_uid: str
    transfer_syntax_uid: str
    read: Callable[[], bytes]
    sop_instance_uid: str = ""


@dataclass(frozen=True)
class SubOperation:
    """The outcome of one C-STORE: the peer's status, or ``None`` if it was not sent;
    ``error`` says why it failed (empty on success)."""

    instance: OutgoingInstance
    sop_instance_uid: str
    status: int | None
    error: str = ""

    @property
    def category(self) -> str:
        """``"Success"``, ``"Warning"`` or ``"Failure"`` (PS3.4 B.2.3; unknown codes fail)."""
        if self.status is None:
            return "Failure"
        category = STORAGE_SERVICE_CLASS_STATUS.get(self.status, ("Failure", ""))[0]
        return category if category in ("Success", "Warning") else "Failure"


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
    """Instances grouped so that each group's contexts fit in one association."""
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


def split_part10(data: bytes) -> tuple[int, dict[int, str]]:
    """(offset of the data set, the UIDs of the file meta by tag) of stored bytes: a
    PS3.10 file, or a bare data set stored as received (offset 0, no meta).

    The file meta is explicit VR little endian (PS3.10 7.1); its elements are walked
    rather than trusting the group length."""
    if not has_file_meta(data):
        return 0, {}
    position = 132
    meta: dict[int, str] = {}
    while position + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, position)
        if group != 0x0002:
            break
        vr = data[position + 4:position + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            (length,) = struct.unpack_from("<I", data, position + 8)
            start = position + 12
        else:
            (length,) = struct.unpack_from("<H", data, position + 6)
            start = position + 8
        if vr == b"UI":
            meta[0x00020000 | element] = data[start:start + length].rstrip(
                b"\x00 ").decode("ascii", "replace")
        position = start + length
    return min(position, len(data)), meta


def reencode(data: bytes, target: str) -> bytes:
    """Convert a PS3.10 file between uncompressed transfer syntaxes (PS3.5 A.1-A.3)."""
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


def prepare_dataset(inst: OutgoingInstance, accepted: dict[str, int],
                    transcoder: Transcoder | None) -> tuple[int, memoryview, str]:
    """(context ID, data set bytes, SOP instance UID) to send ``inst`` with, given the
    {transfer syntax: context ID} the peer accepted for its SOP class: the stored bytes
    after the file meta when the stored syntax is accepted, else converted. Raises
    ValueError saying why it cannot be sent."""
    if not accepted:
        raise ValueError("the modality accepts no transfer syntax for SOP class "
                         f"{inst.sop_class_uid}")
    data = inst.read()
    offset, meta = split_part10(data)
    ts = meta.get(0x00020010) or inst.transfer_syntax_uid or IMPLICIT_LE
    sop_instance = inst.sop_instance_uid or meta.get(0x00020003, "")
    if ts in accepted:
        return accepted[ts], memoryview(data)[offset:], sop_instance
    target = EXPLICIT_LE if EXPLICIT_LE in accepted else sorted(accepted)[0]
    part10 = data if offset else add_file_meta(data)
    if ts in UNCOMPRESSED and target in UNCOMPRESSED:
        converted = reencode(part10, target)
    else:
        answer = transcoder(part10, target) if transcoder is not None else None
        if answer is None:
            raise ValueError(f"the modality does not accept {ts} and no codec plugin can "
                             f"convert it to {target} (install and enable the codecs "
                             "plugin)")
        converted = answer
    offset, meta = split_part10(converted)
    got = meta.get(0x00020010, "")
    if got not in accepted:
        raise ValueError(f"the conversion from {ts} to {target} gave a file in "
                         f"{got or 'no transfer syntax'}, which the modality does not accept")
    return accepted[got], memoryview(converted)[offset:], sop_instance


def send_instances(modality: Modality, instances: Sequence[OutgoingInstance], *,
                   calling_aet: str, timeout: float, transcoder: Transcoder | None = None,
                   move_originator: tuple[str, int] | None = None
                   ) -> Generator[SubOperation, None, None]:
    """Send ``instances`` to ``modality`` (several associations when their SOP classes
    need more than 128 contexts), yielding one :class:`SubOperation` per instance.

    An instance that cannot be read or converted, or that the peer refuses, fails alone.
    Raises :class:`PeerError` when an association cannot be opened or breaks (after the
    sub-operation it broke on); the instances not yet yielded were not sent. Closing the
    generator early (a cancelled C-MOVE) releases the association."""
    where = f"modality {modality.name!r} ({modality.aet} at {modality.host}:{modality.port})"
    for batch in _batches(instances):
        contexts = storage_contexts((i.sop_class_uid, i.transfer_syntax_uid) for i in batch)
        assoc = StoreAssociation.request(
            modality.host, modality.port, calling_aet=calling_aet, called_aet=modality.aet,
            contexts=contexts, timeout=timeout, label=where)
        try:
            yield from _send_batch(assoc, batch, transcoder, move_originator)
        except GeneratorExit:
            assoc.release()
            raise
        except BaseException:
            assoc.abort()
            raise
        assoc.release()


def _send_batch(assoc: StoreAssociation, batch: list[OutgoingInstance],
                transcoder: Transcoder | None, move_originator: tuple[str, int] | None
                ) -> Iterator[SubOperation]:
    """The sub-operations of one association, in order. Each instance is read and
    prepared while the peer still handles the previous one; it is sent once that one's
    response has been yielded (so that a consumer that stops there sends no more)."""
    in_flight: tuple[OutgoingInstance, str, int] | None = None
    for number, inst in enumerate(batch):
        prepared = _prepare_or_fail(inst, assoc.accepted.get(inst.sop_class_uid, {}),
                                    transcoder)
        if in_flight is not None:
            yield from _response(assoc, *in_flight)
            in_flight = None
        if isinstance(prepared, SubOperation):
            yield prepared
            continue
        context_id, dataset, sop_instance = prepared
        message_id = number % 0xFFFF + 1
        try:
            assoc.send_request(context_id, inst.sop_class_uid, sop_instance, dataset,
                               message_id=message_id, move_originator=move_originator)
        except PeerError as exc:
            yield SubOperation(inst, sop_instance, None, str(exc))
            raise
        in_flight = (inst, sop_instance, message_id)
    if in_flight is not None:
        yield from _response(assoc, *in_flight)


def _prepare_or_fail(inst: OutgoingInstance, accepted: dict[str, int],
                     transcoder: Transcoder | None
                     ) -> tuple[int, memoryview, str] | SubOperation:
    """:func:`prepare_dataset`, or the failed sub-operation saying why not."""
    try:
        return prepare_dataset(inst, accepted, transcoder)
    except (ValueError, IsengardError) as exc:  # unreadable, unconvertible
        return SubOperation(inst, inst.sop_instance_uid, None, str(exc))
    except Exception as exc:  # a codec's bug: this instance fails alone
        log.exception("cannot prepare instance %s for sending", inst.public_id)
        return SubOperation(inst, inst.sop_instance_uid, None, f"{type(exc).__name__}: {exc}")


def _response(assoc: StoreAssociation, inst: OutgoingInstance, sop_instance: str,
              message_id: int) -> Iterator[SubOperation]:
    """The sub-operation whose request is in flight; when the association breaks, its
    failure, then the PeerError."""
    try:
        response = assoc.read_response(sop_instance, message_id=message_id)
    except PeerError as exc:
        yield SubOperation(inst, sop_instance, None, str(exc))
        raise
    if SubOperation(inst, sop_instance, response.status).category != "Failure":
        yield SubOperation(inst, sop_instance, response.status)
        return
    comment = f" ({response.error_comment})" if response.error_comment else ""
    yield SubOperation(inst, sop_instance, response.status,
                       f"status 0x{response.status:04X}{comment}")
