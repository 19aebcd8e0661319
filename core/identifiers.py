"""Orthanc's resource identifiers.

An identifier is the SHA-1 of the DICOM identifiers of the resource and its ancestors
joined with ``|``, written as 40 lowercase hex digits in five dash-separated groups of 8.
Clients store these, so they must match Orthanc's exactly.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["InstanceIdentifiers", "format_sha1", "is_valid_id"]

_ID_RE = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$")


def format_sha1(text: str) -> str:
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()
    return "-".join(digest[i : i + 8] for i in range(0, 40, 8))


def is_valid_id(value: str) -> bool:
    return bool(_ID_RE.match(value))


class InstanceIdentifiers:
    """The four public identifiers of one instance, computed once."""

    __slots__ = ("patient", "study", "series", "instance")

    def __init__(self, patient_id: str, study_uid: str, series_uid: str, sop_uid: str):
        self.patient = format_sha1(patient_id)
        self.study = format_sha1(f"{patient_id}|{study_uid}")
        self.series = format_sha1(f"{patient_id}|{study_uid}|{series_uid}")
        self.instance = format_sha1(f"{patient_id}|{study_uid}|{series_uid}|{sop_uid}")

    def by_level(self) -> tuple[str, str, str, str]:
        return (self.patient, self.study, self.series, self.instance)
