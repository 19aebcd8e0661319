"""Apply a :class:`~.request.Modification` to one DICOM file.

The steps and their order are Orthanc 1.10's (``DicomModification::Apply``), checked by
experiment against it:

1. anonymization: identifiers the body replaces are registered in the UID map, so that
   references to them inside sequences follow;
2. private tags are removed (unless kept);
3. tags of the "clear" set present in the file are emptied;
4. tags of the "remove" set are removed;
5. replacements are written at the top level, inserted when absent;
6. Study/Series/SOP Instance UIDs at and below the modified level are mapped to new ones
   (unless replaced or kept);
7. anonymization: every UID of the profile's U set, and the identifiers nested in
   sequences, are mapped through the same map.

Steps 2-4 reach into sequences for an anonymization, and stay at the top level for a
modification — as Orthanc does.

New UIDs are derived from a per-request secret and the original value (``2.25.`` +
a UUID, PS3.5 B.2), so that every instance of a request maps the same original to the
same new UID — even when a job is resumed after a restart — and nothing else can.
"""

from __future__ import annotations

import base64
import hashlib
import io
import uuid
from collections.abc import Callable
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ImplicitVRLittleEndian

from isengard_sdk import HttpError, ResourceLevel

from .request import IDENTIFIERS, SOP_UID, Modification, parse_tag

__all__ = ["UidMapper", "modify_file", "new_patient_id", "new_uid"]

DATASET_TRAILING_PADDING = 0xFFFCFFFC
REFERENCED_SOP_INSTANCE_UID = 0x00081155
REFERENCED_FRAME_OF_REFERENCE_SEQUENCE = 0x30060010
RT_REFERENCED_STUDY_SEQUENCE = 0x30060012
_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM",
             "UC", "UI", "UR", "UT"}
_BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}


def new_uid() -> str:
    """A fresh UID under the UUID-derived root ``2.25`` (PS3.5 B.2)."""
    return f"2.25.{uuid.uuid4().int}"


def new_patient_id() -> str:
    """A fresh PatientID: a UUID, as Orthanc generates them."""
    return str(uuid.uuid4())


class UidMapper:
    """Original identifier → new identifier, per level, stable for one request."""

    def __init__(self, secret: str):
        self.secret = secret
        self.registered: dict[tuple[ResourceLevel, str], str] = {}

    def register(self, level: ResourceLevel, original: str, new: str) -> None:
        self.registered[(level, original)] = new

    def map(self, level: ResourceLevel, original: str) -> str:
        original = original.strip()
        known = self.registered.get((level, original))
        if known is not None:
            return known
        digest = hashlib.sha256(f"{self.secret}|{level.title}|{original}".encode()).digest()
        value = uuid.UUID(bytes=digest[:16], version=4)
        return str(value) if level == ResourceLevel.PATIENT else f"2.25.{value.int}"


def modify_file(data: bytes, mod: Modification, mapper: UidMapper) -> bytes:
    """The modified PS3.10 file (same transfer syntax)."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:  # pydicom raises many types on broken files
        raise HttpError(400, f"the stored file cannot be parsed: {exc}",
                        orthanc=(15, "Bad file format")) from exc
    apply(ds, mod, mapper)
    return _encode(ds)


def apply(ds: Dataset, mod: Modification, mapper: UidMapper) -> None:
    """Modify ``ds`` in place (steps 1-7 of the module docstring)."""
    if mod.anonymize and mod.remove_private_tags and DATASET_TRAILING_PADDING in ds:
        del ds[DATASET_TRAILING_PADDING]  # as Orthanc 1.10 (DCMTK) does in this case only
    if mod.anonymize:
        for tag, level in IDENTIFIERS.items():
            if tag in mod.replacements and tag in ds and isinstance(mod.replacements[tag], str):
                mapper.register(level, str(ds[tag].value or "").strip(),
                                mod.replacements[tag])
    recursive = mod.anonymize
    if mod.remove_private_tags:
        _walk(ds, recursive, lambda item: _remove_private(item, mod.kept))
    if mod.clearings:
        _walk(ds, recursive, lambda item: _clear(item, mod.clearings))
    if mod.removals:
        _walk(ds, recursive, lambda item: _remove(item, mod.removals))
    for tag, value in mod.replacements.items():
        if tag in ds or tag not in mod.only_if_present:
            _replace(ds, tag, value, mod.private_creator)
    for tag, level in IDENTIFIERS.items():
        if (level != ResourceLevel.PATIENT and mod.level <= level
                and tag not in mod.replacements and tag not in mod.kept):
            current = ds[tag].value if tag in ds else ""
            ds[tag] = pydicom.DataElement(tag, "UI", mapper.map(level, str(current or "")))
    if mod.anonymize:
        _map_references(ds, mod, mapper, ())


def _walk(ds: Dataset, recursive: bool, action: Callable[[Dataset], None]) -> None:
    action(ds)
    if not recursive:
        return
    for element in list(ds):
        if element.VR == "SQ" and element.value:
            for item in element.value:
                _walk(item, True, action)


def _remove_private(ds: Dataset, kept: set[int]) -> None:
    for tag in [e.tag for e in ds if e.tag.is_private and int(e.tag) not in kept]:
        del ds[tag]


def _clear(ds: Dataset, tags: set[int]) -> None:
    for element in ds:
        if int(element.tag) in tags:
            if element.VR == "SQ":
                element.value = Sequence()
            else:
                element.value = "" if element.VR in _TEXT_VRS else None


def _remove(ds: Dataset, tags: set[int]) -> None:
    for tag in [e.tag for e in ds if int(e.tag) in tags]:
        del ds[tag]


def _map_references(ds: Dataset, mod: Modification, mapper: UidMapper,
                    parents: tuple[int, ...]) -> None:
    """Step 7: UIDs of the profile anywhere, identifiers inside sequences."""
    for element in ds:
        tag = int(element.tag)
        if element.VR == "SQ":
            for item in element.value or ():
                _map_references(item, mod, mapper, (*parents, tag))
            continue
        if not element.value or (not parents and tag in IDENTIFIERS):
            continue  # the top-level identifiers were handled by steps 5-6
        level: ResourceLevel | None = IDENTIFIERS.get(tag)
        if level is None and tag in mod.uids and element.VR == "UI":
            level = ResourceLevel.INSTANCE
            if (tag == REFERENCED_SOP_INSTANCE_UID and parents[-2:] == (
                    REFERENCED_FRAME_OF_REFERENCE_SEQUENCE, RT_REFERENCED_STUDY_SEQUENCE)):
                level = ResourceLevel.STUDY  # RT structure sets reference a study here
        if level is None:
            continue
        if element.VM > 1:
            element.value = [mapper.map(level, str(v)) for v in element.value]
        else:
            element.value = mapper.map(level, str(element.value))


def _replace(ds: Dataset, tag: int, value: Any, private_creator: str) -> None:
    if tag >> 16 == 0x0002:
        return  # the file meta information is rebuilt on writing
    if tag in ds:
        vr = ds[tag].VR
    elif (tag >> 16) % 2:
        vr = "UN"  # an unknown private tag (Orthanc 1.10 answers UN too)
    else:
        vr = dictionary_VR(tag).split(" or ")[0]
    ds[tag] = pydicom.DataElement(tag, vr, _value(tag, vr, value))


def _value(tag: int, vr: str, value: Any) -> Any:
    """A JSON replacement value as pydicom wants it for ``vr``."""
    if vr == "SQ":
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise HttpError(400, f"the replacement of the sequence {tag:08X} must be a list "
                                 "of objects", orthanc=(5, "Bad type for a parameter"))
        items = []
        for obj in value:
            item = Dataset()
            for name, sub in obj.items():
                sub_tag = parse_tag(name)
                _replace(item, sub_tag, sub, "")
            items.append(item)
        return Sequence(items)
    if not isinstance(value, str):
        raise HttpError(400, f"the replacement of {tag:08X} must be a string",
                        orthanc=(5, "Bad type for a parameter"))
    if value.startswith("data:") and ";base64," in value:  # RFC 2397, as Orthanc accepts
        raw = base64.b64decode(value.split(";base64,", 1)[1])
        return raw if vr in _BINARY_VRS else raw.decode("latin-1")
    if vr in _BINARY_VRS:
        return value.encode("latin-1", errors="replace")
    if vr in _TEXT_VRS or value == "":
        return value if value else None
    try:
        parts = value.split("\\")
        if vr in ("FL", "FD"):
            numbers: list[Any] = [float(p) for p in parts]
        elif vr == "AT":
            numbers = [parse_tag(p) for p in parts]
        else:
            numbers = [int(p) for p in parts]
    except ValueError as exc:
        raise HttpError(400, f"{value!r} is not a valid {vr} value for {tag:08X}",
                        orthanc=(5, "Bad type for a parameter")) from exc
    return numbers[0] if len(numbers) == 1 else numbers


def _encode(ds: Dataset) -> bytes:
    meta = ds.file_meta if isinstance(getattr(ds, "file_meta", None), FileMetaDataset) \
        else FileMetaDataset()
    if "TransferSyntaxUID" not in meta:  # a bare dataset: keep the encoding it came in
        implicit, little = ds.original_encoding
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else (
            UID("1.2.840.10008.1.2.1") if little else UID("1.2.840.10008.1.2.2"))
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if SOP_UID in ds:
        meta.MediaStorageSOPInstanceUID = ds[SOP_UID].value
    ds.file_meta = meta
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
