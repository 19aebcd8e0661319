"""Build a DICOM instance from JSON, as Orthanc's ``POST /tools/create-dicom``.

The body: ``Tags`` (keyword or ``gggg,eeee`` → string, or a list of objects for a
sequence), ``Content`` (a data URI: ``image/png`` and ``image/jpeg`` become uncompressed
pixel data — Orthanc 1.10 decodes JPEG too —, ``application/pdf`` an Encapsulated PDF),
``Parent`` (a patient, study or series whose modules are copied), ``Force`` (allow
setting the UIDs and overriding inherited values) and ``PrivateCreator``. Without
``Tags``, Orthanc's first format: the body is the tags and nothing else is filled in.

Differences with Orthanc 1.10, on purpose: ``SOPClassUID`` is always set (Secondary
Capture unless given; Orthanc leaves images and empty instances without one), and a
private tag gets its Private Creator element when ``PrivateCreator`` names it.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from isengard_sdk.errors import HttpError
from isengard_sdk.types import ResourceLevel

from .errors import BadRequest, InvalidDicomError
from .find import resolve_keyword
from .version import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

__all__ = ["build_instance", "extract_pdf", "parse_data_uri", "ENCAPSULATED_PDF"]

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
_PRIVATE_HEX = re.compile(r"^\(?([0-9a-fA-F]{4}),?([0-9a-fA-F]{4})\)?$")
# Tags only set with "Force": they identify the instance and its parents.
_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
_NUMERIC_VRS = {"US": int, "SS": int, "UL": int, "SL": int, "UV": int, "SV": int,
                "FL": float, "FD": float}

# The attributes copied from a parent (Orthanc's DicomTag::AddTagsForModule, PS3.3
# C.7.1.1 Patient, C.7.2.1 General Study, C.7.3.1 General Series modules).
MODULES: dict[ResourceLevel, tuple[int, ...]] = {
    ResourceLevel.PATIENT: (
        0x00100010, 0x00100020, 0x00100030, 0x00100040, 0x00081120, 0x00100032,
        0x00101000, 0x00101002, 0x00101001, 0x00102160, 0x00104000, 0x00102201,
        0x00102202, 0x00102292, 0x00102293, 0x00102294, 0x00102297, 0x00102298,
        0x00102299, 0x00120062, 0x00120063, 0x00120064, 0x00100021, 0x00100024),
    ResourceLevel.STUDY: (
        0x0020000D, 0x00080020, 0x00080030, 0x00080090, 0x00080096, 0x00200010,
        0x00080050, 0x00080051, 0x00081030, 0x00081048, 0x00081049, 0x00081060,
        0x00081062, 0x00321034, 0x00081032, 0x00401012),
    ResourceLevel.SERIES: (
        0x00080060, 0x0020000E, 0x00200011, 0x00200060, 0x00080021, 0x00080031,
        0x00081050, 0x00081052, 0x00181030, 0x0008103E, 0x0008103F, 0x00081070,
        0x00081072, 0x00081111, 0x00081250, 0x00180015, 0x00185100, 0x00280108,
        0x00280109, 0x00400275, 0x00102210, 0x00400253, 0x00400244, 0x00400245,
        0x00400254, 0x00400260, 0x00400280),
}


def _error(status: int, code: int, message: str, details: str) -> HttpError:
    return HttpError(status, details, orthanc=(code, message))


def parse_data_uri(content: Any) -> tuple[str, bytes]:
    """``data:<mime>;base64,<payload>`` → (mime type, bytes)."""
    if not isinstance(content, str):
        raise _error(400, 2023, "The payload of the DICOM instance must be specified "
                     "according to Data URI scheme",
                     "'Content' must be a data URI string: data:<mime>;base64,<payload>")
    m = re.match(r"^data:([^;,]*);base64,(.*)$", content, re.DOTALL)
    if m is None:
        raise InvalidDicomError("'Content' is not a base64 data URI "
                                "(data:image/png;base64,…)")
    try:
        payload = base64.b64decode(m.group(2), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidDicomError(f"the base64 payload of 'Content' is invalid: {exc}") from exc
    return m.group(1).strip().lower(), payload


def _tag_of(name: str) -> tuple[int, str]:
    """(tag, VR) of a keyword or ``gggg,eeee`` (private tags included)."""
    m = _PRIVATE_HEX.match(name.strip())
    if m:
        tag = int(m.group(1) + m.group(2), 16)
        if (tag >> 16) % 2 == 1:  # private group
            return tag, "LO" if 0x10 <= (tag & 0xFFFF) <= 0xFF else "UN"
    keyword = resolve_keyword(name)
    tag = tag_for_keyword(keyword) or 0
    return tag, str(dictionary_VR(tag))


def _element(tag: int, vr: str, value: Any, private_creator: str) -> DataElement:
    where = f"{tag >> 16:04x},{tag & 0xFFFF:04x}"
    if isinstance(value, list) and vr == "SQ":
        items = []
        for item in value:
            if not isinstance(item, Mapping):
                raise _error(400, 5, "Bad type for a parameter",
                             f"the items of sequence {where} must be JSON objects")
            items.append(_dataset(item, private_creator))
        return DataElement(tag, "SQ", Sequence(items))
    if not isinstance(value, str):
        raise _error(400, 5, "Bad type for a parameter", f"Bad Parameter type for tag {where}")
    if vr in ("OB", "OW", "UN", "OF", "OD", "OL"):
        payload = parse_data_uri(value)[1] if value.startswith("data:") else \
            value.encode("utf-8")
        if len(payload) % 2:
            payload += b"\0"
        return DataElement(tag, "UN" if vr == "UN" else vr, payload)
    if vr in _NUMERIC_VRS:
        try:
            numbers = [_NUMERIC_VRS[vr](v) for v in value.split("\\") if v.strip()]
        except ValueError as exc:
            raise BadRequest(f"tag {where} ({vr}) needs numbers, got {value!r}") from exc
        return DataElement(tag, vr, numbers[0] if len(numbers) == 1 else numbers)
    return DataElement(tag, vr, value)


def _dataset(tags: Mapping[str, Any], private_creator: str) -> Dataset:
    ds = Dataset()
    for name, value in tags.items():
        tag, vr = _tag_of(name)
        if tag >> 16 == 0x0002:
            continue  # file meta information: written by the server
        ds.add(_element(tag, vr, value, private_creator))
        group, element = tag >> 16, tag & 0xFFFF
        if group % 2 == 1 and element > 0xFF and private_creator:
            creator = Tag(group, element >> 8)
            if creator not in ds:  # PS3.5 7.8.1: the block needs its creator
                ds.add(DataElement(creator, "LO", private_creator))
    return ds


ImageDecoder = Callable[[bytes, str], "dict[str, Any] | None"]


def build_instance(body: Mapping[str, Any], parent: tuple[ResourceLevel, Dataset] | None,
                   decode_image: ImageDecoder | None = None) -> bytes:
    """A PS3.10 file built from a ``create-dicom`` body. ``parent``: the level of the
    ``Parent`` resource and the header of one of its instances. ``decode_image``: turns
    an embedded PNG/JPEG into image attributes (the ``decode_image`` hook)."""
    if "Tags" not in body:
        # Orthanc's first format: the body is the tags, nothing else is filled in.
        for name, value in body.items():
            if not isinstance(value, str):
                raise _error(400, 2019, "Only string values are supported when creating "
                             "DICOM instances", f"the value of {name!r} is not a string")
        return _finish(_dataset(body, ""), legacy=True)
    tags = body["Tags"]
    if not isinstance(tags, Mapping):
        raise BadRequest("'Tags' must be a JSON object of tag: value")
    force = bool(body.get("Force", False))
    creator = body.get("PrivateCreator", "")
    if not isinstance(creator, str):
        raise BadRequest("'PrivateCreator' must be a string")
    given = _dataset(tags, creator)
    ds = Dataset()
    if parent is not None:
        level, source = parent
        for module_level in (ResourceLevel.PATIENT, ResourceLevel.STUDY,
                             ResourceLevel.SERIES):
            if module_level > level:
                break
            for tag in MODULES[module_level]:
                # Orthanc copies the parent's values from its summary, without sequences.
                if tag in source and source[tag].VR != "SQ":
                    if tag in given and not force:
                        raise _error(400, 2020, "Trying to override a value inherited from "
                                     "a parent module", given[tag].keyword or str(Tag(tag)))
                    ds[tag] = source[tag]
    if not force:
        for keyword in _UIDS:
            if keyword in given and keyword not in ds:
                raise _error(400, 2020, "Trying to override a value inherited from a "
                             "parent module", keyword)
    for element in given:
        ds[element.tag] = element
    content = body.get("Content")
    if content is not None:
        mime, payload = parse_data_uri(content)
        if mime in ("image/png", "image/jpeg"):
            attributes = decode_image(payload, mime) if decode_image is not None else None
            if attributes is None:
                raise _error(415, 15, "Bad file format", f"no plugin can decode {mime} "
                             "(enable the rendering plugin: plugins: {rendering: true})")
            for keyword, value in attributes.items():
                if keyword not in ds:
                    setattr(ds, keyword, value)
            ds["PixelData"].VR = "OW"
        elif mime == "application/pdf":
            _embed_pdf(ds, payload)
        else:
            raise _error(500, 2, "Not implemented yet", "Unsupported MIME type for the "
                         f"content of a new DICOM file: {mime}")
    return _finish(ds)


def _embed_pdf(ds: Dataset, pdf: bytes) -> None:
    """PS3.3 A.45.1 Encapsulated PDF IOD, as Orthanc fills it."""
    if not pdf.startswith(b"%PDF"):
        raise InvalidDicomError("the 'Content' declared as application/pdf is not a PDF")
    ds.setdefault("SOPClassUID", ENCAPSULATED_PDF)
    ds.setdefault("Modality", "OT")
    ds.setdefault("ConversionType", "WSD")
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")


def _finish(ds: Dataset, *, legacy: bool = False) -> bytes:
    """Fill what every instance needs, then encode as Explicit VR Little Endian.
    ``legacy``: Orthanc's first format, which adds only the identifiers."""
    now = time.localtime()
    date, clock = time.strftime("%Y%m%d", now), time.strftime("%H%M%S.000000", now)
    if not legacy:
        ds.setdefault("SpecificCharacterSet", "ISO_IR 100")  # Orthanc's default, Latin-1
    ds.setdefault("SOPClassUID", SECONDARY_CAPTURE)
    if "PatientID" not in ds:
        ds.PatientID = str(uuid.uuid4())  # as Orthanc: a new patient of its own
    for keyword in _UIDS:
        if keyword not in ds or not str(ds[keyword].value or ""):
            setattr(ds, keyword, generate_uid())
    for prefix in () if legacy else ("InstanceCreation", "Study", "Series", "Acquisition",
                                     "Content"):
        ds.setdefault(prefix + "Date", date)
        ds.setdefault(prefix + "Time", clock)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True, implicit_vr=False, little_endian=True)
    return out.getvalue()


def extract_pdf(ds: Dataset) -> bytes | None:
    """The PDF of an Encapsulated PDF instance, without the pad byte (as Orthanc: a PDF
    ends with ``%%EOF`` and an optional end of line, anything else is padding)."""
    if str(ds.get("SOPClassUID", "")) != ENCAPSULATED_PDF or \
            str(ds.get("MIMETypeOfEncapsulatedDocument", "")).strip() != "application/pdf":
        return None
    pdf = ds.get("EncapsulatedDocument")
    if not pdf:
        return None
    data = bytes(pdf)
    if data and data[-1:] not in (b"\r", b"\n", b"F"):
        data = data[:-1]
    return data
