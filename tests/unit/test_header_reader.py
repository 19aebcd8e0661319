"""The fast header reader gives what pydicom's reader gives, or leaves the file to it."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from isengard.header_reader import read_header


def _part10_samples() -> list[Path]:
    """The PS3.10 files bundled with pydicom (its folder is read directly:
    ``get_testdata_files`` would try to download the rest, and CI has no network)."""
    folder = Path(pydicom.data.__file__).parent / "test_files"
    return sorted(path for path in folder.rglob("*")
                  if path.is_file() and path.read_bytes()[128:132] == b"DICM")


def _values(ds: Dataset) -> dict[int, object]:
    """Every element decoded (sequences item by item), as pydicom gives them."""
    out: dict[int, object] = {}
    for tag in ds._dict:
        element = ds[tag]
        value = element.value
        if element.VR == "SQ":
            value = [_values(item) for item in value]
        out[int(tag)] = (element.VR, value)
    return out


def _pydicom(data: bytes) -> tuple[Dataset, int]:
    stream = io.BytesIO(data)
    ds = pydicom.dcmread(stream, stop_before_pixels=True)
    return ds, stream.tell()


def _file(ds: Dataset, transfer_syntax: str) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize("path", _part10_samples(), ids=lambda p: p.name)
def test_same_elements_as_pydicom(path):
    data = path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reference, stop = _pydicom(data)
        except Exception:
            pytest.skip("pydicom itself cannot read it")
        fast = read_header(data)
        if fast is None:
            return  # left to pydicom: always allowed
        ds, pixel_at = fast
        assert _values(ds) == _values(reference)
        assert _values(ds.file_meta) == _values(reference.file_meta)
    assert (len(data) if pixel_at is None else pixel_at) == stop


def _with_sequences() -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPInstanceUID = "1.2.3.4"
    inner = Dataset()
    inner.CodeValue = "121"
    inner.CodeMeaning = "Müller"
    outer = Dataset()
    outer.ConceptNameCodeSequence = Sequence([inner])
    ds.ContentSequence = Sequence([outer, Dataset()])
    ds.PatientName = "Müller^Anna"
    ds.PixelData = b"\x00\x01" * 8
    ds.Rows, ds.Columns, ds.BitsAllocated = 4, 4, 16
    return ds


@pytest.mark.parametrize("transfer_syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("undefined_length", [True, False])
def test_sequences_of_any_length(transfer_syntax, undefined_length):
    ds = _with_sequences()
    ds.ContentSequence.is_undefined_length = undefined_length
    for item in ds.ContentSequence:
        item.is_undefined_length_sequence_item = undefined_length
    data = _file(ds, transfer_syntax)
    fast = read_header(data)
    assert fast is not None
    got, pixel_at = fast
    reference, stop = _pydicom(data)
    assert _values(got) == _values(reference)
    assert got.PatientName == "Müller^Anna"
    assert got.ContentSequence[0].ConceptNameCodeSequence[0].CodeMeaning == "Müller"
    assert pixel_at == stop < len(data)
    assert "PixelData" not in got


@pytest.mark.parametrize("transfer_syntax", [ExplicitVRBigEndian,
                                             DeflatedExplicitVRLittleEndian])
def test_other_encodings_are_left_to_pydicom(transfer_syntax):
    assert read_header(_file(_with_sequences(), transfer_syntax)) is None


def test_damaged_files_are_left_to_pydicom():
    data = _file(_with_sequences(), ExplicitVRLittleEndian)
    _, stop = _pydicom(data)
    header = data[:stop]
    assert read_header(header) is not None  # no pixel data: fine
    assert read_header(header[:-3]) is None  # the last element cut short
    assert read_header(header + b"\x28\x00") is None  # a few bytes more
    meta_end = 132 + 12 + int.from_bytes(data[140:144], "little")
    bad_vr = data[:meta_end + 4] + b"zz" + data[meta_end + 6:]
    assert read_header(bad_vr) is None
    assert read_header(data[:meta_end]) is None  # a file meta and nothing else
