"""A synthetic instance with the sequences the tag-path tests reach into (shared with
``tests/compat/test_anonymize.py``).

Layout (``ReferencedImageSequence`` has two items, each with a nested sequence)::

    InstitutionName                          "Top hospital"
    ReferencedImageSequence[i]               i = 0, 1
        ReferencedSOPClassUID, ReferencedSOPInstanceUID "1.2.3.4.<i+1>"
        InstitutionName "Nested <i>"
        PurposeOfReferenceCodeSequence[0]
            CodeValue "C<i>", CodingSchemeDesignator, CodeMeaning,
            InstitutionName "Deep <i>", ReferencedSOPInstanceUID "1.2.3.5.<i>"
    ReferencedImageSequence[0] also: StudyDate, a private creator and element (0009,xx01)
    SourceImageSequence[0]                   references this very instance (its SOP,
                                             study, series UIDs and PatientID)
    ReferencedStudySequence[0]               removed by the anonymization profiles
"""

from __future__ import annotations

from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from isengard_sdk.testing import DicomFactory

__all__ = ["flat", "sequence_dataset"]


def sequence_dataset(factory: DicomFactory, **tags: Any) -> Dataset:
    """The dataset described in the module docstring (``tags`` set at the top level)."""
    tags.setdefault("PatientID", "SEQ-PATHS")
    tags.setdefault("InstitutionName", "Top hospital")
    ds = factory.dataset(**tags)
    items = []
    for i in range(2):
        code = Dataset()
        code.CodeValue = f"C{i}"
        code.CodingSchemeDesignator = "DCM"
        code.CodeMeaning = f"Meaning {i}"
        code.InstitutionName = f"Deep {i}"
        code.ReferencedSOPInstanceUID = f"1.2.3.5.{i}"
        item = Dataset()
        item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        item.ReferencedSOPInstanceUID = f"1.2.3.4.{i + 1}"
        item.InstitutionName = f"Nested {i}"
        item.PurposeOfReferenceCodeSequence = Sequence([code])
        items.append(item)
    items[0].StudyDate = "20200101"
    items[0].add_new(0x00090010, "LO", "CREATOR")
    items[0].add_new(0x00091001, "LO", "private nested")
    ds.ReferencedImageSequence = Sequence(items)
    source = Dataset()
    source.ReferencedSOPClassUID = ds.SOPClassUID
    source.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    source.StudyInstanceUID = ds.StudyInstanceUID
    source.SeriesInstanceUID = ds.SeriesInstanceUID
    source.PatientID = ds.PatientID
    ds.SourceImageSequence = Sequence([source])
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = "1.2.3.6"
    ds.ReferencedStudySequence = Sequence([study])
    return ds


def flat(ds: Dataset, prefix: str = "") -> dict[str, Any]:
    """Every element at any depth as ``"Keyword[i].Keyword" → value`` (sequences as
    ``"SQ<n items>"``), pixel data and group lengths (retired, PS3.5 7.2; Orthanc
    recomputes them, pydicom drops them) left out — what the path tests compare."""
    out: dict[str, Any] = {}
    for element in ds:
        if element.tag == 0x7FE00010 or element.tag.element == 0:
            continue
        key = prefix + (element.keyword or f"{element.tag:08X}")
        if element.VR == "SQ":
            out[key] = f"SQ{len(element.value)}"
            for i, item in enumerate(element.value):
                out.update(flat(item, f"{key}[{i}]."))
        else:
            value = element.value
            out[key] = list(value) if isinstance(value, pydicom.multival.MultiValue) \
                else value
    return out
