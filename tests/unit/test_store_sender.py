"""What the sender puts on the wire for an instance: the stored data set bytes when the
peer accepted their transfer syntax, a conversion otherwise (no sockets here)."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.filereader import _read_file_meta_info, read_preamble

from isengard.store_sender import (
    EXPLICIT_LE,
    IMPLICIT_LE,
    OutgoingInstance,
    SubOperation,
    prepare_dataset,
    split_part10,
)
from tests.conftest import sample

MR = "1.2.840.10008.5.1.4.1.1.4"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
RLE = "1.2.840.10008.1.2.5"


def pydicom_offset(data: bytes) -> int:
    stream = io.BytesIO(data)
    read_preamble(stream, False)
    _read_file_meta_info(stream)
    return stream.tell()


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_bigendian.dcm",
                                  "MR_small_RLE.dcm", "rtplan.dcm", "JPEG2000.dcm"])
def test_split_part10_agrees_with_pydicom(name):
    data = sample(name)
    offset, meta = split_part10(data)
    assert offset == pydicom_offset(data)
    file_meta = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta
    assert meta[0x00020010] == file_meta.TransferSyntaxUID
    assert meta[0x00020003] == file_meta.MediaStorageSOPInstanceUID


def test_split_part10_of_a_bare_dataset():
    assert split_part10(b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100") == (0, {})


def outgoing(data: bytes, ts: str = "") -> OutgoingInstance:
    return OutgoingInstance("id", MR, ts, lambda: data)


def test_stored_bytes_go_out_as_they_are():
    data = sample("MR_small_bigendian.dcm")
    context, dataset, uid = prepare_dataset(outgoing(data), {BIG_ENDIAN: 3, EXPLICIT_LE: 5},
                                            None)
    assert context == 3 and bytes(dataset) == data[pydicom_offset(data):]
    assert dataset.obj is data  # a view, not a copy
    assert uid == pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID


def test_uncompressed_syntaxes_are_converted_by_the_kernel():
    data = sample("MR_small_bigendian.dcm")
    context, dataset, _ = prepare_dataset(outgoing(data), {IMPLICIT_LE: 7}, None)
    assert context == 7
    converted = pydicom.dcmread(io.BytesIO(bytes(dataset)), force=True)
    converted.file_meta = pydicom.dataset.FileMetaDataset()
    converted.file_meta.TransferSyntaxUID = IMPLICIT_LE
    original = pydicom.dcmread(io.BytesIO(data))
    assert converted.pixel_array.tolist() == original.pixel_array.tolist()


def test_compressed_syntaxes_need_the_transcoder():
    data = sample("MR_small_RLE.dcm")
    with pytest.raises(ValueError, match="no codec plugin"):
        prepare_dataset(outgoing(data), {EXPLICIT_LE: 1}, None)
    asked = []

    def transcoder(part10: bytes, target: str) -> bytes | None:
        asked.append(target)
        ds = pydicom.dcmread(io.BytesIO(part10))
        ds.decompress()
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()

    context, dataset, _ = prepare_dataset(outgoing(data), {EXPLICIT_LE: 1}, transcoder)
    assert context == 1 and asked == [EXPLICIT_LE] and len(dataset) > len(data)


def test_a_conversion_into_the_wrong_syntax_is_refused():
    data = sample("MR_small_RLE.dcm")
    with pytest.raises(ValueError, match=f"gave a file in {RLE}"):
        prepare_dataset(outgoing(data), {EXPLICIT_LE: 1}, lambda d, t: d)


def test_no_accepted_context():
    with pytest.raises(ValueError, match="accepts no transfer syntax"):
        prepare_dataset(outgoing(b"never read"), {}, None)


@pytest.mark.parametrize("status, category", [
    (0x0000, "Success"), (0xB000, "Warning"), (0xB007, "Warning"), (0xA700, "Failure"),
    (0xC000, "Failure"), (0x1234, "Failure"), (None, "Failure")])
def test_sub_operation_categories(status, category):
    assert SubOperation(outgoing(b""), "1.2", status).category == category
