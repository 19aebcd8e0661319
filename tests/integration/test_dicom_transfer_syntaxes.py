"""DCMTK ``storescu`` sends pydicom's sample files, each in its own transfer syntax; the
server must keep the data set exactly as received.

What "as received" means is measured, not assumed: storescu re-encodes files (it drops
group lengths, re-deflates …), so the same file is also sent to DCMTK's ``storescp
--bit-preserving``, which writes what came off the wire, and the two are compared.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from isengard.version import IMPLEMENTATION_CLASS_UID
from isengard_sdk.testing import dcmtk_tool
from tests.conftest import sample
from tests.integration.dicom_helpers import (
    DCMTK_ENV,
    free_port,
    instance_id_of,
    run_dcmtk,
    split_part10,
    wait_for,
)

pytestmark = pytest.mark.dcmtk

# (sample file, its transfer syntax, the storescu option proposing that syntax)
SAMPLES = [
    ("CT_small.dcm", "1.2.840.10008.1.2.1", "-xe"),  # Explicit VR Little Endian
    ("examples_palette.dcm", "1.2.840.10008.1.2.1", "-xe"),
    ("MR_small_implicit.dcm", "1.2.840.10008.1.2", "-xi"),  # Implicit VR Little Endian
    ("rtplan.dcm", "1.2.840.10008.1.2", "-xi"),  # no pixel data
    ("MR_small_bigendian.dcm", "1.2.840.10008.1.2.2", "-xb"),  # Explicit VR Big Endian
    ("image_dfl.dcm", "1.2.840.10008.1.2.1.99", "-xd"),  # Deflated Explicit VR LE
    ("SC_rgb_jpeg_dcmtk.dcm", "1.2.840.10008.1.2.4.50", "-xy"),  # JPEG Baseline
    ("JPGExtended.dcm", "1.2.840.10008.1.2.4.51", "-xx"),  # JPEG Extended
    ("SC_rgb_jpeg_gdcm.dcm", "1.2.840.10008.1.2.4.70", "-xs"),  # JPEG Lossless SV1
    ("MR_small_jpeg_ls_lossless.dcm", "1.2.840.10008.1.2.4.80", "-xt"),  # JPEG-LS Lossless
    ("MR_small_jp2klossless.dcm", "1.2.840.10008.1.2.4.90", "-xv"),  # JPEG 2000 Lossless
    ("JPEG2000.dcm", "1.2.840.10008.1.2.4.91", "-xw"),  # JPEG 2000
    ("MR_small_RLE.dcm", "1.2.840.10008.1.2.5", "-xr"),  # RLE Lossless
    ("SC_rgb_rle.dcm", "1.2.840.10008.1.2.5", "-xr"),
]

SENDER = "STORESCU_TEST"


@pytest.fixture
def reference_scp(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """DCMTK's storescp writing received data sets bit for bit: (port, output folder)."""
    storescp = dcmtk_tool("storescp")
    echoscu = dcmtk_tool("echoscu")
    out = tmp_path / "reference"
    out.mkdir()
    port = free_port()
    process = subprocess.Popen(
        [storescp, "--accept-all", "--bit-preserving", "-od", str(out), "-aet", "REFERENCE",
         str(port)], env=DCMTK_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"storescp exited: {process.stderr.read()!r}")
            probe = run_dcmtk(echoscu, "-aec", "REFERENCE", "127.0.0.1", str(port))
            return probe.returncode == 0

        wait_for(ready, "the reference storescp to answer C-ECHO")
        yield port, out
    finally:
        process.terminate()
        process.wait(30)
        process.stderr.close()


@pytest.mark.parametrize(("name", "transfer_syntax", "propose"), SAMPLES,
                         ids=[s[0] for s in SAMPLES])
def test_storescu_file_is_kept_as_received(isengard_server, reference_scp, tmp_path,
                                           name, transfer_syntax, propose):
    storescu = dcmtk_tool("storescu")
    s = isengard_server
    path = tmp_path / name
    path.write_bytes(sample(name))
    original = pydicom.dcmread(path, stop_before_pixels=True)
    assert original.file_meta.TransferSyntaxUID == transfer_syntax  # the sample itself

    port, out = reference_scp
    sent = run_dcmtk(storescu, propose, "-aet", SENDER, "-aec", "REFERENCE", "127.0.0.1",
                     str(port), str(path))
    assert sent.returncode == 0, sent.stderr
    [reference_file] = list(out.iterdir())
    reference_meta, reference_dataset = split_part10(reference_file.read_bytes())
    assert reference_meta.TransferSyntaxUID == transfer_syntax  # sent in its own syntax

    sent = run_dcmtk(storescu, propose, "-aet", SENDER, "-aec", s.aet, "127.0.0.1",
                     str(s.dicom_port), str(path))
    assert sent.returncode == 0, sent.stderr
    instance = instance_id_of(s, original.SOPInstanceUID)
    assert instance is not None

    meta, dataset = split_part10(s.get(f"/instances/{instance}/file").content)
    assert dataset == reference_dataset
    assert meta.TransferSyntaxUID == transfer_syntax
    assert meta.MediaStorageSOPClassUID == original.SOPClassUID
    assert meta.MediaStorageSOPInstanceUID == original.SOPInstanceUID
    assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert meta.SourceApplicationEntityTitle == SENDER

    metadata = s.get(f"/instances/{instance}/metadata?expand").json()
    assert metadata["RemoteAET"] == SENDER
    assert metadata["CalledAET"] == s.aet
    assert metadata["RemoteIP"] == "127.0.0.1"
    assert metadata["Origin"] == "DicomProtocol"
    assert metadata["TransferSyntax"] == transfer_syntax
    assert metadata["SopClassUid"] == original.SOPClassUID
