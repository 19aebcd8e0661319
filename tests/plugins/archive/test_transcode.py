"""``"Transcode"`` in archive and media requests (``?transcode=`` on a GET), synchronous
and asynchronous, as Orthanc 1.10 accepts it."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from tests.conftest import sample
from tests.plugins.test_hooks import wait_for

from .conftest import open_zip

JLS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def _read(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data))


@pytest.fixture
def loaded(isengard_server):
    """A 16-bit CT, an 8-bit RGB image and an RLE MR (same SOP instance as MR_small)."""
    names = ("CT_small.dcm", "examples_rgb_color.dcm", "MR_small_RLE.dcm")
    return isengard_server, {n: isengard_server.upload(sample(n)) for n in names}


def _files(archive) -> dict[str, pydicom.Dataset]:
    """SOPInstanceUID → dataset of every DICOM file of the ZIP (DICOMDIR left out)."""
    return {str(ds.SOPInstanceUID): ds for ds in
            (_read(archive.read(n)) for n in archive.namelist() if n != "DICOMDIR")}


def _same_pixels(ds: pydicom.Dataset, name: str) -> None:
    np.testing.assert_array_equal(ds.pixel_array, _read(sample(name)).pixel_array)


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("kind", ["archive", "media"])
def test_resource_archives_transcode(loaded, method, kind):
    server, answers = loaded
    ct = answers["CT_small.dcm"]
    url = f"/patients/{ct['ParentPatient']}/{kind}"
    r = (server.get(url, params={"transcode": JLS_LOSSLESS}) if method == "GET"
         else server.post(url, json={"Transcode": JLS_LOSSLESS}))
    (ds,) = _files(open_zip(r)).values()
    assert ds.file_meta.TransferSyntaxUID == JLS_LOSSLESS
    assert ds.SOPInstanceUID == _read(sample("CT_small.dcm")).SOPInstanceUID  # lossless
    _same_pixels(ds, "CT_small.dcm")


def test_files_that_cannot_be_transcoded_are_archived_as_stored(loaded, caplog):
    # Orthanc 1.10 does the same: the 16-bit CT cannot be JPEG baseline.
    server, answers = loaded
    ids = [answers["CT_small.dcm"]["ID"], answers["examples_rgb_color.dcm"]["ID"]]
    r = server.post("/tools/create-archive", json={"Resources": ids,
                                                   "Transcode": JPEG_BASELINE})
    syntaxes = sorted(str(ds.file_meta.TransferSyntaxUID)
                      for ds in _files(open_zip(r)).values())
    assert syntaxes == [EXPLICIT_LE, JPEG_BASELINE]
    assert any(answers["CT_small.dcm"]["ID"] in rec.getMessage()
               and "archived as stored" in rec.getMessage() for rec in caplog.records)


@pytest.mark.parametrize("kind", ["create-media", "create-media-extended"])
def test_dicomdir_describes_the_files_as_written(loaded, kind):
    # A lossy conversion makes a new image (new SOPInstanceUID): the DICOMDIR follows.
    server, answers = loaded
    ids = [answers["CT_small.dcm"]["ID"], answers["examples_rgb_color.dcm"]["ID"]]
    archive = open_zip(server.post(f"/tools/{kind}", json={"Resources": ids,
                                                            "Transcode": JPEG_BASELINE}))
    records = {r.ReferencedSOPInstanceUIDInFile: r for r in
               _read(archive.read("DICOMDIR")).DirectoryRecordSequence
               if r.DirectoryRecordType == "IMAGE"}
    for name in archive.namelist():
        if name == "DICOMDIR":
            continue
        ds = _read(archive.read(name))
        record = records[ds.SOPInstanceUID]
        assert record.ReferencedFileID == name.split("/")
        assert record.ReferencedTransferSyntaxUIDInFile == ds.file_meta.TransferSyntaxUID
    rgb_uid = _read(sample("examples_rgb_color.dcm")).SOPInstanceUID
    assert rgb_uid not in records and len(records) == 2


def test_compressed_files_are_decompressed_with_their_uid(loaded):
    server, answers = loaded
    mr = answers["MR_small_RLE.dcm"]
    archive = open_zip(server.get(f"/series/{mr['ParentSeries']}/archive",
                                  params={"transcode": EXPLICIT_LE}))
    (ds,) = _files(archive).values()
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert ds.SOPInstanceUID == _read(sample("MR_small_RLE.dcm")).SOPInstanceUID
    _same_pixels(ds, "MR_small_RLE.dcm")


@pytest.mark.parametrize("kind", ["create-archive", "create-media"])
def test_asynchronous_archives_transcode(loaded, kind):
    server, answers = loaded
    ids = [a["ID"] for a in answers.values()]
    job = server.post(f"/tools/{kind}", json={"Resources": ids, "Transcode": JLS_LOSSLESS,
                                              "Asynchronous": True}).json()
    wait_for(lambda: server.get(job["Path"]).json()["State"] == "Success", timeout=60)
    assert server.get(job["Path"]).json()["Content"]["Transcode"] == JLS_LOSSLESS
    files = _files(open_zip(server.get(f"{job['Path']}/archive")))
    assert len(files) == 3
    assert {str(ds.file_meta.TransferSyntaxUID) for ds in files.values()} == {JLS_LOSSLESS}


def test_asynchronous_archive_without_transcode_says_nothing_of_it(loaded):
    server, answers = loaded
    job = server.post("/tools/create-archive", json={
        "Resources": [answers["CT_small.dcm"]["ID"]], "Asynchronous": True}).json()
    wait_for(lambda: server.get(job["Path"]).json()["State"] == "Success", timeout=60)
    assert "Transcode" not in server.get(job["Path"]).json()["Content"]


@pytest.mark.parametrize("value", ["1.2.3.4", "nonsense", "", "1.2.840.10008.5.1.4.1.1.2"])
def test_unknown_transfer_syntaxes_are_400(loaded, value):
    server, answers = loaded
    ct = answers["CT_small.dcm"]
    for r in (server.post("/tools/create-archive",
                          json={"Resources": [ct["ID"]], "Transcode": value}),
              server.post(f"/studies/{ct['ParentStudy']}/media", json={"Transcode": value}),
              server.get(f"/studies/{ct['ParentStudy']}/archive",
                         params={"transcode": value})):
        assert r.status_code == 400
        assert r.json()["OrthancStatus"] == 3  # Orthanc's "Parameter out of range"
        assert "transfer syntax" in r.json()["Details"]


@pytest.mark.parametrize("value", [3, None, ["1.2.840.10008.1.2.1"]])
def test_transcode_must_be_a_string(loaded, value):
    server, answers = loaded
    r = server.post("/tools/create-archive",
                    json={"Resources": [answers["CT_small.dcm"]["ID"]], "Transcode": value})
    assert r.status_code == 400
    assert r.json()["OrthancStatus"] == 15
