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
7. anonymization: steps 2-4 inside sequences — after step 5, so the content of a
   replaced sequence goes through the profile too;
8. anonymization: every UID of the profile's U set, and the identifiers nested in
   sequences, are mapped through the same map;
9. paths into sequences: removals, then replacements (inserted in the items reached).

Steps 2-4 stay at the top level for a modification. An anonymization spares what
``Keep`` names: a top-level tag at any depth (the identifiers excepted), a top-level
sequence with everything in it, and a path — an element, or a sequence with everything
in it.

New UIDs are derived from a per-request secret and the original value (``2.25.`` +
a UUID, PS3.5 B.2), so that every instance of a request maps the same original to the
same new UID — even when a job is resumed after a restart — and nothing else can.
"""

from __future__ import annotations

import hashlib
import io
import uuid

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ImplicitVRLittleEndian

from isengard_sdk import HttpError, ResourceLevel

from .request import IDENTIFIERS, SOP_UID, Modification
from .values import TEXT_VRS, set_element

__all__ = ["UidMapper", "modify_file", "new_patient_id", "new_uid"]

DATASET_TRAILING_PADDING = 0xFFFCFFFC
REFERENCED_SOP_INSTANCE_UID = 0x00081155
REFERENCED_FRAME_OF_REFERENCE_SEQUENCE = 0x30060010
RT_REFERENCED_STUDY_SEQUENCE = 0x30060012
# Where an element is: the (sequence tag, item index) pairs leading to its item.
Location = tuple[tuple[int, int], ...]


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
    """Modify ``ds`` in place (steps 1-9 of the module docstring)."""
    if mod.anonymize and mod.remove_private_tags and DATASET_TRAILING_PADDING in ds:
        del ds[DATASET_TRAILING_PADDING]  # as Orthanc 1.10 (DCMTK) does in this case only
    if mod.anonymize:
        for tag, level in IDENTIFIERS.items():
            if tag in mod.replacements and tag in ds and isinstance(mod.replacements[tag], str):
                mapper.register(level, str(ds[tag].value or "").strip(),
                                mod.replacements[tag])
    _clean(ds, mod, ())
    for tag, value in mod.replacements.items():
        if tag in ds or tag not in mod.only_if_present:
            set_element(ds, tag, value, f"{tag:08X}")
    for tag, level in IDENTIFIERS.items():
        if (level != ResourceLevel.PATIENT and mod.level <= level
                and tag not in mod.replacements and tag not in mod.kept):
            current = ds[tag].value if tag in ds else ""
            ds[tag] = pydicom.DataElement(tag, "UI", mapper.map(level, str(current or "")))
    if mod.anonymize:
        _clean_items(ds, mod, ())
        _map_references(ds, mod, mapper, ())
    for path in mod.path_removals:
        for item in path.items(ds):
            if path.tag in item:
                del item[path.tag]
    for path, value in mod.path_replacements.items():
        for item in path.items(ds):
            set_element(item, path.tag, value, str(path))


def _kept(mod: Modification, where: Location, tag: int) -> bool:
    """Whether a ``Keep`` path names this nested element (anonymization only)."""
    return bool(where) and any(path.matches(where, tag) for path in mod.path_kept)


def _kept_sequence(mod: Modification, where: Location, tag: int) -> bool:
    """Whether an anonymization leaves this sequence and all it holds alone."""
    return (not where and tag in mod.kept) or _kept(mod, where, tag)


def _clean(ds: Dataset, mod: Modification, where: Location) -> None:
    """Steps 2-4 on the elements of one dataset (the top level or one item)."""
    for element in list(ds):
        tag = int(element.tag)
        if _kept(mod, where, tag):
            continue
        if mod.remove_private_tags and element.tag.is_private and tag not in mod.kept:
            del ds[tag]
        elif tag in mod.clearings:
            if element.VR == "SQ":
                element.value = Sequence()
            else:
                element.value = "" if element.VR in TEXT_VRS else None
        elif tag in mod.removals:
            del ds[tag]


def _clean_items(ds: Dataset, mod: Modification, where: Location) -> None:
    """Step 7: :func:`_clean` on every item of every sequence below ``ds``."""
    for element in list(ds):
        tag = int(element.tag)
        if element.VR != "SQ" or not element.value or _kept_sequence(mod, where, tag):
            continue
        for index, item in enumerate(element.value):
            inside = (*where, (tag, index))
            _clean(item, mod, inside)
            _clean_items(item, mod, inside)


def _map_references(ds: Dataset, mod: Modification, mapper: UidMapper,
                    where: Location) -> None:
    """Step 8: UIDs of the profile anywhere, identifiers inside sequences."""
    for element in ds:
        tag = int(element.tag)
        if element.VR == "SQ":
            if not _kept_sequence(mod, where, tag):
                for index, item in enumerate(element.value or ()):
                    _map_references(item, mod, mapper, (*where, (tag, index)))
            continue
        if not element.value or (not where and tag in IDENTIFIERS) or _kept(mod, where, tag):
            continue  # the top-level identifiers were handled by step 6
        level: ResourceLevel | None = IDENTIFIERS.get(tag)
        if level is None and tag in mod.uids and element.VR == "UI":
            level = ResourceLevel.INSTANCE
            if (tag == REFERENCED_SOP_INSTANCE_UID and tuple(t for t, _ in where[-2:]) == (
                    REFERENCED_FRAME_OF_REFERENCE_SEQUENCE, RT_REFERENCED_STUDY_SEQUENCE)):
                level = ResourceLevel.STUDY  # RT structure sets reference a study here
        if level is None:
            continue
        if element.VM > 1:
            element.value = [mapper.map(level, str(v)) for v in element.value]
        else:
            element.value = mapper.map(level, str(element.value))


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
