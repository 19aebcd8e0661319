"""Names of the folders and files inside an archive, exactly as Orthanc 1.10 writes them.

Orthanc (``ArchiveJob.cpp`` and ``HierarchicalZipWriter.cpp``) names:

- a patient folder ``"<PatientID> <PatientName>"``, a study folder
  ``"<AccessionNumber> <StudyDescription>"``, a series folder
  ``"<Modality> <SeriesDescription>"`` — ``"Unknown Patient"`` (…) when empty;
- the instances of a series ``XY000000.dcm``, ``XY000001.dcm`` … where ``XY`` are the
  first two letters of the modality, upper-cased (``CT``, ``RT`` for RTDOSE, ``M0000000``
  for a one-letter modality, ``00000000.dcm`` without modality);
- then every component keeps only ASCII letters, digits, ``.``, ``_`` and single spaces
  (``^`` becomes a space), and a name already used in the same folder gets ``-2``,
  ``-3`` … appended.

In a DICOMDIR media the files are ``IMAGES/IM0``, ``IMAGES/IM1`` …: DICOM restricts the
components of a File ID to 8 characters among ``A-Z 0-9 _`` (PS3.10 8.2, PS3.11 D.3.2).
"""

from __future__ import annotations

from collections.abc import Mapping

from isengard_sdk import ResourceLevel

__all__ = ["UniqueNames", "folder_name", "instance_file_name", "keep_alphanumeric",
           "media_file_id"]

MEDIA_FOLDER = "IMAGES"


def _to_ascii(text: str) -> str:
    """Orthanc's ``Toolbox::ConvertToAscii``: drop non-ASCII and control characters."""
    return "".join(c for c in text if ord(c) < 128 and c.isprintable())


def keep_alphanumeric(text: str) -> str:
    """Orthanc's ``HierarchicalZipWriter::Index::KeepAlphanumeric``."""
    out: list[str] = []
    last_space = False
    for c in text:
        if c == "^":
            c = " "
        if ord(c) >= 128:
            continue
        if c.isspace():
            if not last_space:
                last_space = True
                out.append(" ")
        elif (c.isascii() and c.isalnum()) or c in "._":
            out.append(c)
            last_space = False
    return "".join(out).strip()


_FOLDER_TAGS = {
    ResourceLevel.PATIENT: ("PatientID", "PatientName"),
    ResourceLevel.STUDY: ("AccessionNumber", "StudyDescription"),
    ResourceLevel.SERIES: ("Modality", "SeriesDescription"),
}


def folder_name(level: ResourceLevel, main_tags: Mapping[str, str]) -> str:
    """The folder of a patient, study or series, before :class:`UniqueNames`."""
    first, second = _FOLDER_TAGS[level]
    name = _to_ascii(f"{main_tags.get(first, '')} {main_tags.get(second, '')}").strip()
    return name or f"Unknown {level.title}"


def instance_file_name(modality: str, index: int) -> str:
    """The ``index``-th file (from 0) of a series of this modality."""
    prefix = modality[:2].upper()
    return f"{prefix}{index:0{8 - len(prefix)}d}.dcm"


def media_file_id(index: int) -> list[str]:
    """The DICOMDIR File ID components of the ``index``-th file (from 0) of a media."""
    return [MEDIA_FOLDER, f"IM{index}"]


class UniqueNames:
    """The names used in one folder: a repeated name gets ``-2``, ``-3`` … as Orthanc's
    ``EnsureUniqueFilename``."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def claim(self, name: str) -> str:
        standard = keep_alphanumeric(name)
        count = self._seen.get(standard, 0) + 1
        self._seen[standard] = count
        return standard if count == 1 else f"{standard}-{count}"
