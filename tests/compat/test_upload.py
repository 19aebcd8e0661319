"""POST /instances: the answers (IDs, statuses, errors) of Isengard and Orthanc."""

from __future__ import annotations

import pytest

from tests.conftest import sample

from .compare import assert_same
from .samples import SAMPLE_FILES, synthetic_files

pytestmark = pytest.mark.orthanc

FILE_NAMES = [*SAMPLE_FILES, *(f.name for f in synthetic_files())]


@pytest.mark.parametrize("name", FILE_NAMES)
def test_upload_answer(loaded, name):
    ours, theirs = loaded.answers[name]
    assert ours.status_code == theirs.status_code, (name, ours.text, theirs.text)
    assert_same(ours.json(), theirs.json(), f"POST /instances {name}")


@pytest.mark.parametrize("name", ["CT_small.dcm", "rtstruct.dcm", "image_dfl.dcm",
                                  "MR_small_RLE.dcm", "syn-b-us"])
def test_resend_is_already_stored(loaded, name):
    data = next(f.data for f in loaded.files if f.name == name)
    ours, theirs = loaded.pair.post("/instances", content=data)
    assert (ours.status_code, theirs.status_code) == (200, 200)
    assert theirs.json()["Status"] == "AlreadyStored"
    assert_same(ours.json(), theirs.json(), f"POST /instances {name} again")


BAD_BODIES = {
    "empty": b"",
    "junk": b"hello, I am not DICOM",
    "junk-long": b"x" * 4096,
    "truncated-pixels": sample("CT_small.dcm")[:5000],
    "truncated-element": sample("rtplan_truncated.dcm"),
    "only-preamble": b"\0" * 128 + b"DICM",
    "preamble-and-meta-start": b"\0" * 128 + b"DICM" + b"\x02\x00",
}


@pytest.mark.parametrize("case", BAD_BODIES)
def test_bad_upload(loaded, case):
    ours, theirs = loaded.pair.post("/instances", content=BAD_BODIES[case])
    assert ours.status_code == theirs.status_code, (case, ours.text, theirs.text)
    # Orthanc sends its JSON errors without a Content-Type: compare the parsed bodies.
    assert sorted(ours.json()) == sorted(theirs.json()), (ours.text, theirs.text)
    for key in ("HttpStatus", "OrthancStatus", "OrthancError", "Method", "Uri"):
        assert ours.json()[key] == theirs.json()[key], (key, ours.text, theirs.text)


def test_statistics_after_upload(loaded):
    ours, theirs = loaded.pair.get_json("/statistics")
    assert_same(ours, theirs, "GET /statistics")
