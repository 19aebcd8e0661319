"""``Replace`` values (JSON) as DICOM element values.

A value is a string (``\\`` separates multiple values; ``data:…;base64,…`` gives raw
bytes, RFC 2397) or, for a sequence, a list of objects mapping tags to values. Orthanc
1.10 checks them when it reads the request, against the dictionary's VR — also for a
path that will reach nothing — and answers "Bad type for a parameter" (5) for a value of
the wrong JSON type, "Bad file format" (15) for a string that does not fit the VR.
"""

from __future__ import annotations

import base64
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from isengard_sdk import HttpError

from .paths import parse_tag

__all__ = ["check_value", "element_value", "set_element"]

BAD_PARAMETER_TYPE = (5, "Bad type for a parameter")
BAD_FILE_FORMAT = (15, "Bad file format")
TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM",
            "UC", "UI", "UR", "UT"}
BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}


def default_vr(tag: int) -> str:
    """The VR a new element gets: the dictionary's (the first if several), ``UN`` for
    a private or unknown tag (Orthanc 1.10 answers UN too)."""
    if (tag >> 16) % 2:
        return "UN"
    try:
        return str(dictionary_VR(tag)).split(" or ")[0]
    except KeyError:
        return "UN"


def check_value(tag: int, value: Any, where: str) -> None:
    """Raise the error :func:`element_value` would raise for a new element ``tag``;
    ``where`` names the tag or path in the message."""
    if not isinstance(value, (str, list)):
        raise HttpError(400, f"Bad Parameter type for tag {where}: give a string (or a list "
                             "of objects for a sequence)", orthanc=BAD_PARAMETER_TYPE)
    element_value(tag, default_vr(tag), value, where)


def set_element(ds: Dataset, tag: int, value: Any, where: str) -> None:
    """Write ``value`` into ``ds`` (inserted if absent, keeping the VR of an element
    already there). The file meta group is left alone: it is rebuilt on writing."""
    if tag >> 16 == 0x0002:
        return
    vr = ds[tag].VR if tag in ds else default_vr(tag)
    ds[tag] = pydicom.DataElement(tag, vr, element_value(tag, vr, value, where))


def element_value(tag: int, vr: str, value: Any, where: str) -> Any:
    """A JSON replacement value as pydicom wants it for ``vr``."""
    if vr == "SQ":
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise HttpError(400, f"the replacement of the sequence {where} must be a list "
                                 "of objects", orthanc=BAD_FILE_FORMAT
                            if isinstance(value, str) else BAD_PARAMETER_TYPE)
        items = []
        for i, obj in enumerate(value):
            item = Dataset()
            for name, sub in obj.items():
                set_element(item, parse_tag(name), sub, f"{where}[{i}].{name}")
            items.append(item)
        return Sequence(items)
    if not isinstance(value, str):
        raise HttpError(400, f"the replacement of {where} must be a string",
                        orthanc=BAD_PARAMETER_TYPE)
    if value.startswith("data:") and ";base64," in value:  # RFC 2397, as Orthanc accepts
        raw = base64.b64decode(value.split(";base64,", 1)[1])
        return _even(raw) if vr in BINARY_VRS else raw.decode("latin-1")
    if vr in BINARY_VRS:
        return _even(value.encode("latin-1", errors="replace"))
    if vr in TEXT_VRS or value == "":
        return value if value else None
    try:
        parts = value.split("\\")
        if vr in ("FL", "FD"):
            numbers: list[Any] = [float(p) for p in parts]
        elif vr == "AT":
            numbers = [parse_tag(p) for p in parts]
        else:
            numbers = [int(p) for p in parts]
    except (ValueError, HttpError) as exc:
        raise HttpError(400, f"{value!r} is not a valid {vr} value for {where}",
                        orthanc=BAD_FILE_FORMAT) from exc
    return numbers[0] if len(numbers) == 1 else numbers


def _even(raw: bytes) -> bytes:
    """Bytes padded to an even length with a NULL (PS3.5 7.1.1), as Orthanc writes them:
    pydicom writes an odd length as it is, which is invalid."""
    return raw + b"\0" if len(raw) % 2 else raw
