"""What a lossy compression changes besides the pixels.

- Lossy Image Compression becomes ``01`` and stays so (PS3.3 C.7.6.1.1.5); the ratio
  and the method of this compression are appended to those of earlier ones, the two
  lists kept in step (C.7.6.1.1.5.1, C.7.6.1.1.5.2).
- The image is a new one: a new SOP Instance UID, Image Type ``DERIVED``
  (C.7.6.1.1.2), Derivation Description and Derivation Code ``113040`` "Lossy
  Compression" (CID 7203), and a Source Image Sequence item pointing at the predecessor
  (purpose ``121320`` "Uncompressed predecessor", CID 7202) — as DCMTK, hence Orthanc,
  writes them.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

__all__ = ["mark_lossy"]

LOSSY_COMPRESSION = ("113040", "DCM", "Lossy Compression")
UNCOMPRESSED_PREDECESSOR = ("121320", "DCM", "Uncompressed predecessor")
_ST_MAX = 1024  # Derivation Description is ST (PS3.5 6.2)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _values(ds: Dataset, keyword: str) -> list[str]:
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [str(value)]
    return [str(v) for v in value]


def _append_item(ds: Dataset, keyword: str, item: Dataset) -> None:
    sequence = ds.get(keyword)
    if not isinstance(sequence, Sequence):
        sequence = Sequence()
    sequence.append(item)
    setattr(ds, keyword, sequence)


def mark_lossy(ds: Dataset, *, method: str, ratio: float, description: str) -> None:
    """Record in ``ds`` that its pixels were just compressed with ``method`` (a defined
    term of PS3.3 C.7.6.1.1.5.2) at ``ratio`` (uncompressed size / compressed size)."""
    was_lossy = ds.get("LossyImageCompression") == "01"
    ratios = _values(ds, "LossyImageCompressionRatio") if was_lossy else []
    methods = _values(ds, "LossyImageCompressionMethod") if was_lossy else []
    methods += [""] * (len(ratios) - len(methods))  # earlier methods left unrecorded
    ratios += [""] * (len(methods) - len(ratios))
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = [*ratios, f"{ratio:.4f}"[:16]]
    ds.LossyImageCompressionMethod = [*methods, method]

    image_type = _values(ds, "ImageType")
    if image_type:
        ds.ImageType = ["DERIVED", *image_type[1:]]
    text = f"Lossy compression with {description}, compression ratio {ratio:.4f}"
    previous = str(ds.get("DerivationDescription") or "")
    ds.DerivationDescription = (f"{text} [{previous}]" if previous else text)[:_ST_MAX]
    _append_item(ds, "DerivationCodeSequence", _code(*LOSSY_COMPRESSION))

    source = Dataset()
    source.ReferencedSOPClassUID = ds.SOPClassUID
    source.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    source.PurposeOfReferenceCodeSequence = Sequence([_code(*UNCOMPRESSED_PREDECESSOR)])
    _append_item(ds, "SourceImageSequence", source)

    new_uid = generate_uid()
    ds.SOPInstanceUID = new_uid
    ds.file_meta.MediaStorageSOPInstanceUID = new_uid
