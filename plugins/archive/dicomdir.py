"""The DICOMDIR of a media (PS3.10 8, PS3.3 F), built with pydicom's ``FileSet``.

Records are those Orthanc 1.10 (DCMTK's ``DicomDirWriter``) writes: PATIENT, STUDY,
SERIES and one IMAGE record per instance, whatever its SOP class, holding:

- PATIENT: ``PatientID``, ``PatientName``;
- STUDY: ``StudyDate``, ``StudyTime``, ``AccessionNumber``, ``StudyDescription``,
  ``StudyInstanceUID``, ``StudyID`` (when the instance has it);
- SERIES: ``Modality``, ``SeriesInstanceUID``, ``SeriesNumber`` (when present), plus
  ``SeriesDescription`` in the *extended* flavour;
- IMAGE: ``InstanceNumber`` and the referenced file, SOP class, instance and syntax;
- ``SpecificCharacterSet`` on each record when the instance declares one.

Values come from the instance's header as kept by the index (no file is re-read). Only
the small records are kept in memory, never the files themselves.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from pydicom import config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomFileLike
from pydicom.fileset import FileSet, RecordNode

__all__ = ["DicomDirBuilder", "FILE_SET_ID"]

FILE_SET_ID = "ISENGARD_MEDIA"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"

# (keyword, always present): "always" elements are written empty when the instance
# lacks them (Type 2), the others only when it has them (as DCMTK).
_PATIENT = (("PatientID", True), ("PatientName", True))
_STUDY = (("StudyDate", True), ("StudyTime", True), ("AccessionNumber", True),
          ("StudyDescription", True), ("StudyInstanceUID", True), ("StudyID", False))
_SERIES = (("Modality", True), ("SeriesInstanceUID", True), ("SeriesNumber", False))
_SERIES_EXTENDED = (("SeriesDescription", False),)
_IMAGE = (("InstanceNumber", True),)


def _record(record_type: str, tags: Mapping[str, str],
            fields: Sequence[tuple[str, bool]]) -> Dataset:
    ds = Dataset()
    ds.DirectoryRecordType = record_type
    charset = tags.get("SpecificCharacterSet")
    if charset:
        _set(ds, "SpecificCharacterSet", charset)
    for keyword, always in fields:
        value = tags.get(keyword)
        if value is None and not always:
            continue
        _set(ds, keyword, "" if value is None else value)
    return ds


def _set(ds: Dataset, keyword: str, value: str) -> None:
    tag = tag_for_keyword(keyword)
    if tag is None:  # pragma: no cover - keywords above are from the dictionary
        raise KeyError(keyword)
    # Values are copied as the modality wrote them: do not let pydicom judge them.
    ds[tag] = DataElement(tag, dictionary_VR(tag), value, validation_mode=config.IGNORE)


class DicomDirBuilder:
    """Collect one record chain per instance, then :meth:`encode` the DICOMDIR.

    The record tree is assembled here (records shared by key, in O(1)) rather than with
    ``FileSet.add_custom()``, which scans every instance already added and stages a copy
    of each file: quadratic, and too slow past a few hundred instances. pydicom's
    ``FileSet`` then encodes the DICOMDIR and computes the records' offsets.
    """

    def __init__(self, *, extended: bool = False):
        self.extended = extended
        self._fs = FileSet()
        self._fs.ID = FILE_SET_ID
        self._nodes: dict[tuple[str, ...], RecordNode] = {}
        self._closed = False

    def _node(self, key: tuple[str, ...], parent: RecordNode, record_type: str,
              tags: Mapping[str, str], fields: Sequence[tuple[str, bool]]) -> RecordNode:
        node = self._nodes.get(key)
        if node is None:  # the first instance met gives the record its values
            node = self._nodes[key] = RecordNode(_record(record_type, tags, fields))
            node.parent = parent
        return node

    def add(self, tags: Mapping[str, str], *, sop_class_uid: str, sop_instance_uid: str,
            transfer_syntax_uid: str, file_id: Sequence[str]) -> None:
        """Add the instance whose simplified tags are ``tags``, stored as ``file_id``
        (e.g. ``["IMAGES", "IM0"]``)."""
        if self._closed:
            raise RuntimeError("this DICOMDIR was already encoded")
        patient_key = (tags.get("PatientID", ""),)
        study_key = (*patient_key, tags.get("StudyInstanceUID", ""))
        series_key = (*study_key, tags.get("SeriesInstanceUID", ""))
        series_fields = _SERIES + (_SERIES_EXTENDED if self.extended else ())
        patient = self._node(patient_key, self._fs._tree, "PATIENT", tags, _PATIENT)
        study = self._node(study_key, patient, "STUDY", tags, _STUDY)
        series = self._node(series_key, study, "SERIES", tags, series_fields)
        record = _record("IMAGE", tags, _IMAGE)
        record.ReferencedFileID = list(file_id)
        record.ReferencedSOPClassUIDInFile = sop_class_uid
        record.ReferencedSOPInstanceUIDInFile = sop_instance_uid
        record.ReferencedTransferSyntaxUIDInFile = (transfer_syntax_uid
                                                    or IMPLICIT_VR_LITTLE_ENDIAN)
        RecordNode(record).parent = series

    def encode(self) -> bytes:
        """The DICOMDIR file. The builder cannot be used afterwards."""
        try:
            buffer = io.BytesIO()
            # FileSet.write() would copy the files under pydicom's own names
            # (PT000000/ST000000/…) into a folder; a media keeps Orthanc's names and its
            # files go to the ZIP directly, so only the DICOMDIR is written here.
            self._fs._write_dicomdir(DicomFileLike(buffer))
            return buffer.getvalue()
        finally:
            self.close()

    def close(self) -> None:
        """Remove the (unused) staging folder of the file-set; idempotent."""
        if not self._closed:
            self._closed = True
            self._fs._stage["t"].cleanup()
