"""The main DICOM tags Orthanc 1.10 keeps per level, and how values become strings.

Main tags are what the index stores and what ``MainDicomTags`` shows; the lists match
Orthanc's defaults (only tags present in the file are listed, as Orthanc does).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydicom import charset as dicom_charset
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

from isengard_sdk.types import ResourceLevel

__all__ = [
    "MAIN_TAGS",
    "MAIN_TAG_LEVEL",
    "element_string",
    "main_tags_of",
    "tag_key",
]

# keyword → (group, element); order is irrelevant (JSON output is sorted by key).
_PATIENT = {
    "PatientName": 0x00100010,
    "PatientID": 0x00100020,
    "PatientBirthDate": 0x00100030,
    "PatientSex": 0x00100040,
    "OtherPatientIDs": 0x00101000,
}
_STUDY = {
    "StudyDate": 0x00080020,
    "StudyTime": 0x00080030,
    "StudyID": 0x00200010,
    "StudyDescription": 0x00081030,
    "AccessionNumber": 0x00080050,
    "StudyInstanceUID": 0x0020000D,
    "RequestedProcedureDescription": 0x00321060,
    "InstitutionName": 0x00080080,
    "RequestingPhysician": 0x00321032,
    "ReferringPhysicianName": 0x00080090,
}
_SERIES = {
    "SeriesDate": 0x00080021,
    "SeriesTime": 0x00080031,
    "Modality": 0x00080060,
    "Manufacturer": 0x00080070,
    "StationName": 0x00081010,
    "SeriesDescription": 0x0008103E,
    "BodyPartExamined": 0x00180015,
    "SequenceName": 0x00180024,
    "ProtocolName": 0x00181030,
    "SeriesNumber": 0x00200011,
    "CardiacNumberOfImages": 0x00181090,
    "ImagesInAcquisition": 0x00201002,
    "NumberOfTemporalPositions": 0x00200105,
    "NumberOfSlices": 0x00540081,
    "NumberOfTimeSlices": 0x00540101,
    "SeriesInstanceUID": 0x0020000E,
    "ImageOrientationPatient": 0x00200037,
    "SeriesType": 0x00541000,
    "OperatorsName": 0x00081070,
    "PerformedProcedureStepDescription": 0x00400254,
    "AcquisitionDeviceProcessingDescription": 0x00181400,
    "ContrastBolusAgent": 0x00180010,
}
_INSTANCE = {
    "InstanceCreationDate": 0x00080012,
    "InstanceCreationTime": 0x00080013,
    "AcquisitionNumber": 0x00200012,
    "ImageIndex": 0x00541330,
    "InstanceNumber": 0x00200013,
    "NumberOfFrames": 0x00280008,
    "TemporalPositionIdentifier": 0x00200100,
    "SOPInstanceUID": 0x00080018,
    "ImagePositionPatient": 0x00200032,
    "ImageOrientationPatient": 0x00200037,
    "ImageComments": 0x00204000,
}

MAIN_TAGS: dict[ResourceLevel, dict[str, int]] = {
    ResourceLevel.PATIENT: _PATIENT,
    ResourceLevel.STUDY: _STUDY,
    ResourceLevel.SERIES: _SERIES,
    ResourceLevel.INSTANCE: _INSTANCE,
}

# keyword → the highest level whose main tags hold it (ImageOrientationPatient is kept at
# series and instance level; queries use the series copy, as Orthanc does).
MAIN_TAG_LEVEL: dict[str, ResourceLevel] = {}
for _level in (ResourceLevel.INSTANCE, ResourceLevel.SERIES, ResourceLevel.STUDY,
               ResourceLevel.PATIENT):
    for _keyword in MAIN_TAGS[_level]:
        MAIN_TAG_LEVEL[_keyword] = _level

MAX_MAIN_TAG_LENGTH = 256  # ORTHANC_MAXIMUM_TAG_LENGTH

# Value representations whose bytes are text in the dataset's character set (PS3.5 6.1.2.3).
_CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})
_STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"} | _CHARSET_VRS
)
_PN_DELIMITERS = {0x5C, 0x5E, 0x3D}  # "\\", "^", "="


def tag_key(tag: int | BaseTag) -> str:
    """Orthanc's tag notation: ``0010,0020`` (lowercase hex)."""
    t = int(tag)
    return f"{t >> 16:04x},{t & 0xFFFF:04x}"


def element_vr(ds: Dataset, tag: BaseTag, raw: RawDataElement | DataElement) -> str:
    vr = raw.VR
    if vr and vr != "UN":
        return str(vr)
    try:
        # Implicit VR, or a public attribute sent as UN by a non-conformant writer:
        # the dictionary knows better (PS3.5 6.2.2, as DCMTK reads it).
        return str(dictionary_VR(tag))
    except KeyError:
        if vr:
            return str(vr)
        return str(ds[tag].VR)  # private tags: pydicom resolves them with their creator


def encodings_of(ds: Dataset) -> list[str]:
    raw = ds.get_item(0x00080005)
    if raw is None:
        return dicom_charset.convert_encodings(None)
    value = raw.value
    if isinstance(value, bytes):
        names: Any = [v.strip() for v in value.decode("ascii", "replace").split("\\")]
    else:
        names = value
    if isinstance(names, str):
        names = [names]
    try:
        return dicom_charset.convert_encodings([n for n in names] or None)
    except Exception:  # unknown charset: fall back to the default repertoire
        return dicom_charset.convert_encodings(None)


def element_string(
    ds: Dataset, tag: BaseTag, encodings: list[str] | None = None
) -> str | None:
    """The value of a string element as text exactly as stored (multi-values joined with
    ``\\``), trailing padding removed. ``None`` when absent or not a string VR."""
    raw = ds.get_item(tag)
    if raw is None:
        return None
    return raw_element_string(ds, raw, element_vr(ds, tag, raw), encodings)


def raw_element_string(ds: Dataset, raw: RawDataElement | DataElement, vr: str,
                       encodings: list[str] | None = None) -> str | None:
    """:func:`element_string` of an element already looked up (``raw``, its ``vr`` as
    :func:`element_vr` gives it)."""
    value = raw.value
    if isinstance(raw, RawDataElement) or isinstance(value, bytes):
        if value is None:
            return ""
        if not isinstance(value, bytes):
            return _stringify(value)
        if vr in _CHARSET_VRS:
            if encodings is None:
                encodings = encodings_of(ds)
            delimiters = _PN_DELIMITERS if vr == "PN" else dicom_charset.TEXT_VR_DELIMS
            text = dicom_charset.decode_bytes(value, encodings, delimiters)
        elif vr in _STRING_VRS:
            text = value.decode("latin-1")
        else:
            return None
        return text.rstrip(" \x00")
    if vr not in _STRING_VRS:
        return None
    return _stringify(value).rstrip(" \x00")


def _stringify(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(_stringify(v) for v in value)
    original = getattr(value, "original_string", None)
    if isinstance(original, str):  # DSfloat / IS keep the text they were read from
        return original
    return str(value)


_MAIN_TAG_VR = {tag: str(dictionary_VR(tag)) for level_tags in MAIN_TAGS.values()
                for tag in level_tags.values()}


def main_tags_of(
    ds: Dataset, levels: Iterable[ResourceLevel] = tuple(ResourceLevel)
) -> dict[ResourceLevel, dict[str, str]]:
    """Extract the main tags of the given levels, stripped as Orthanc stores them.

    On the ingest hot path: raw values (the usual case, still undecoded bytes) are read
    straight from the dataset's elements with the dictionary VR; anything else goes
    through :func:`element_string`."""
    encodings: list[str] | None = None
    elements = ds._dict
    result: dict[ResourceLevel, dict[str, str]] = {}
    for level in levels:
        tags: dict[str, str] = {}
        for keyword, tag in MAIN_TAGS[level].items():
            raw = elements.get(tag)  # type: ignore[call-overload]
            if raw is None:
                continue
            value = raw.value
            vr = raw.VR
            if isinstance(value, bytes) and (not vr or vr in ("UN", _MAIN_TAG_VR[tag])):
                vr = _MAIN_TAG_VR[tag]
                if vr in _CHARSET_VRS and not value.isascii():
                    if encodings is None:
                        encodings = encodings_of(ds)
                    delimiters = _PN_DELIMITERS if vr == "PN" else dicom_charset.TEXT_VR_DELIMS
                    text: str | None = dicom_charset.decode_bytes(
                        value, encodings, delimiters).rstrip(" \x00")
                else:
                    text = value.decode("latin-1").rstrip(" \x00")
            else:
                if encodings is None:
                    encodings = encodings_of(ds)
                text = element_string(ds, Tag(tag), encodings)
            # Orthanc reads the summary with a 256-byte limit: longer values become
            # null and are not kept as main tags.
            if text is not None and len(text.encode("utf-8")) <= MAX_MAIN_TAG_LENGTH:
                tags[keyword] = text.strip()
        result[level] = tags
    return result
