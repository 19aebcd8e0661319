"""Turn a dataset into Orthanc's JSON forms of ``/tags``.

- ``full`` (default): ``{"0010,0010": {"Name": "PatientName", "Type": "String", "Value": …}}``
- ``short`` (``?short``): ``{"0010,0010": "Doe^John"}``
- ``simplify`` (``/simplified-tags``, ``?simplify``): ``{"PatientName": "Doe^John"}``

Types are ``String``, ``Sequence``, ``Null`` (binary values) and ``TooLong`` (strings
longer than 256 bytes), as in Orthanc 1.10.
"""

from __future__ import annotations

import functools
import struct
from typing import Any, Literal

from pydicom.datadict import (
    DicomDictionary,
    dictionary_is_retired,
    keyword_for_tag,
    private_dictionary_description,
)
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from .dicom_tags import element_string, element_vr, encodings_of, raw_element_string, tag_key

__all__ = ["TagsFormat", "dataset_to_json", "element_text"]

TagsFormat = Literal["full", "short", "simplify"]

MAX_STRING_LENGTH = 256  # Orthanc's limit for /tags before it answers "TooLong"

_INT_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV"})
_FLOAT_VRS = frozenset({"FL", "FD"})
_SKIPPED = frozenset({0xFFFCFFFC})  # DataSetTrailingPadding, dropped by Orthanc
# struct codes of the binary number VRs (little endian)
_NUMBER_CODES = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "UV": "Q", "SV": "q",
                 "FL": "f", "FD": "d"}
_AT = struct.Struct("<HH")

# Attributes retired by recent editions of PS3.6 (pydicom's dictionary) that Orthanc 1.10
# still names without the RETIRED_ prefix: current in DCMTK 3.6.7's dictionary, or
# (OtherPatientIDs) one of Orthanc's main tags. Clients key /simplified-tags by these.
_NAMED_AS_CURRENT = frozenset({
    0x00101000,  # OtherPatientIDs
    0x00380004,  # ReferencedPatientAliasSequence
    0x00701807,  # WeightingLookupTableDescriptor
    0x00701808,  # WeightingLookupTableData
    0x30040010,  # RTDoseROISequence
    0x30040012,  # DoseValue
    0x30060085,  # ROIObservationLabel
    0x30060088,  # ROIObservationDescription
    0x3008002B,  # TreatmentTerminationCode
    0x30100090,  # RoboticBaseLocationIndicator
})


def dataset_to_json(
    ds: Dataset,
    fmt: TagsFormat = "full",
    *,
    include_meta: bool = False,
    has_pixel_data: bool = False,
) -> dict[str, Any]:
    """Convert ``ds`` (top level) to one of Orthanc's JSON forms.

    ``has_pixel_data`` adds the ``PixelData`` entry (always ``Null``) for datasets parsed
    without their pixel data, as Orthanc lists it.
    """
    source = ds.file_meta if include_meta else ds
    result = _convert(source, fmt, encodings_of(ds))
    if has_pixel_data and not include_meta:
        _add(result, fmt, 0x7FE00010, "PixelData", None, "Null", None)
    return result


def _convert(ds: Dataset, fmt: TagsFormat, encodings: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    creators: dict[tuple[int, int], str] = {}
    for tag in sorted(ds._dict.keys()):
        tag_int = int(tag)
        if tag_int in _SKIPPED:
            continue
        group, elem = tag_int >> 16, tag_int & 0xFFFF
        raw = ds.get_item(tag)
        if raw is None:
            continue
        vr = element_vr(ds, tag, raw)
        creator = None
        if group % 2 == 1:
            if 0x0010 <= elem <= 0x00FF:
                creator_text = element_string(ds, tag, encodings) or ""
                creators[(group, elem)] = creator_text.strip()
                if vr == "UN":
                    # A private creator is an LO (PS3.5 7.8.1): Orthanc (DCMTK) shows it
                    # as text even when sent as UN, but does not take it as its block's
                    # creator (the block's elements stay unnamed, without PrivateCreator).
                    vr = "LO"
            elif elem >= 0x1000:
                creator = creators.get((group, elem >> 8))
        name = _name(tag, creator)
        if vr == "SQ":
            items = ds[tag].value or []
            value: Any = [_convert(item, fmt, encodings_of(item) if
                                   "SpecificCharacterSet" in item else encodings)
                          for item in items]
            _add(result, fmt, tag_int, name, creator, "Sequence", value)
            continue
        text = _leaf_string(ds, tag, raw, vr, encodings)
        if text is None:
            _add(result, fmt, tag_int, name, creator, "Null", None)
        elif len(text.encode("utf-8")) > MAX_STRING_LENGTH:
            _add(result, fmt, tag_int, name, creator, "TooLong", None)
        else:
            _add(result, fmt, tag_int, name, creator, "String", text)
    return result


def element_text(ds: Dataset, tag: BaseTag) -> str | None:
    """The value of a leaf element as ``/tags`` shows it (numbers as text too);
    ``None`` when absent, binary or a sequence."""
    raw = ds.get_item(tag)
    if raw is None:
        return None
    vr = element_vr(ds, tag, raw)
    if vr == "SQ":
        return None
    return _leaf_string(ds, tag, raw, vr, encodings_of(ds))


def _leaf_string(
    ds: Dataset, tag: BaseTag, raw: RawDataElement | DataElement, vr: str, encodings: list[str]
) -> str | None:
    if vr in _INT_VRS or vr in _FLOAT_VRS or vr == "AT":
        text = _raw_numbers(ds, raw, vr)
        if text is not None:
            return text
        value = ds[tag].value
        if value is None or value == b"" or value == "":
            return ""
        values = list(value) if isinstance(value, (list, tuple)) or type(
            value).__name__ == "MultiValue" else [value]
        if vr in _FLOAT_VRS:
            return "\\".join(format(float(v), ".17g") for v in values)
        if vr == "AT":
            # Orthanc (DCMTK's getString) shows only the first attribute tag.
            first = int(values[0])
            return f"{first >> 16:04x},{first & 0xFFFF:04x}"
        return "\\".join(str(int(v)) for v in values)
    return raw_element_string(ds, raw, vr, encodings)


def _raw_numbers(ds: Dataset, raw: RawDataElement | DataElement, vr: str) -> str | None:
    """The text of a binary number element read straight from its little-endian bytes,
    as :func:`_leaf_string` words pydicom's values (pydicom decoding each element and
    storing it back costs ~12 µs: 1.5 of the 3.3 ms of ``CT_small.dcm``'s ``/tags``). None
    when pydicom has to decode it: already decoded, big endian, a length that is not a
    whole number of values."""
    value = raw.value
    if not isinstance(raw, RawDataElement) or not isinstance(value, bytes):
        return None
    if ds.original_encoding[1] is not True:
        return None
    if not value:
        return ""
    if vr == "AT":
        if len(value) % 4:
            return None
        group, element = _AT.unpack_from(value)
        return f"{group:04x},{element:04x}"  # the first tag only, as for decoded values
    code = _NUMBER_CODES[vr]
    count, rest = divmod(len(value), struct.calcsize(code))
    if rest:
        return None
    numbers = struct.unpack(f"<{count}{code}", value)
    if vr in _FLOAT_VRS:
        return "\\".join(format(v, ".17g") for v in numbers)
    return "\\".join(map(str, numbers))


def _name(tag: BaseTag, creator: str | None) -> str:
    tag_int = int(tag)
    # A public attribute, the usual case: one lookup by int (pydicom's keyword_for_tag
    # and dictionary_is_retired make a BaseTag and look it up twice, ~4 µs a tag).
    entry = DicomDictionary.get(tag_int)
    if entry is not None and entry[4]:
        retired = "retired" in entry[3].lower() and tag_int not in _NAMED_AS_CURRENT
        return f"RETIRED_{entry[4]}" if retired else entry[4]
    group, elem = tag_int >> 16, tag_int & 0xFFFF
    if group % 2 == 1:
        if elem == 0:
            return "GenericGroupLength"
        if 0x0010 <= elem <= 0x00FF:
            return "PrivateCreator"
        if creator:
            return _private_name(tag_int, creator)
        return "Unknown Tag & Data"
    keyword = keyword_for_tag(tag)
    if keyword:
        retired = dictionary_is_retired(tag) and tag_int not in _NAMED_AS_CURRENT
        return f"RETIRED_{keyword}" if retired else keyword
    if elem == 0:
        return "GenericGroupLength"
    return "Unknown Tag & Data"


@functools.lru_cache(maxsize=4096)
def _private_name(tag: int, creator: str) -> str:
    """The name of a private element from pydicom's private dictionary. Remembered: the
    lookup and the camel-casing cost ~3.5 µs, and a CT's header has a hundred or more
    private elements (``CT_small.dcm``: 170, 0.6 ms of its ``/tags``). pydicom's
    dictionary does not change once loaded (an entry a plugin would add at run time
    shows after a restart)."""
    try:
        description = private_dictionary_description(tag, creator)
    except KeyError:
        return "Unknown Tag & Data"
    return _camel(description)


def _camel(description: str) -> str:
    words = description.strip("[]").replace("-", " ").replace("/", " ").split()
    return "".join(w[:1].upper() + w[1:] for w in words if w.isascii()) or "Unknown"


def _add(
    result: dict[str, Any],
    fmt: TagsFormat,
    tag: int,
    name: str,
    creator: str | None,
    kind: str,
    value: Any,
) -> None:
    if fmt == "simplify":
        result[name] = value
    elif fmt == "short":
        result[tag_key(tag)] = value
    else:
        entry: dict[str, Any] = {"Name": name}
        if creator:
            entry["PrivateCreator"] = creator
        entry["Type"] = kind
        entry["Value"] = value
        result[tag_key(tag)] = entry
