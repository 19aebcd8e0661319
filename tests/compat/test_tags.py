"""/instances/{id}/tags in its forms, /simplified-tags, /header and /content."""

from __future__ import annotations

from typing import Any

import pytest

from .compare import assert_same
from .samples import SAMPLE_FILES, synthetic_files

pytestmark = pytest.mark.orthanc

FILE_NAMES = [n for n in [*SAMPLE_FILES, *(f.name for f in synthetic_files())]
              if n != "MR_small_RLE.dcm"]


def instance_id(loaded, name: str) -> str:
    return str(loaded.answers[name][1].json()["ID"])


def is_private(key: str) -> bool:
    return int(key.split(",")[0], 16) % 2 == 1


def without_private_names(tags: dict[str, Any]) -> dict[str, Any]:
    """The full form with the Name of private tags dropped, at any depth.

    Known, accepted difference: Orthanc names private tags from DCMTK's private
    dictionary, Isengard from pydicom's; the two dictionaries disagree on many names.
    """
    out: dict[str, Any] = {}
    for key, entry in tags.items():
        entry = dict(entry)
        if is_private(key):
            entry.pop("Name", None)
        if entry.get("Type") == "Sequence" and entry.get("Value") is not None:
            entry["Value"] = [without_private_names(item) for item in entry["Value"]]
        out[key] = entry
    return out


@pytest.mark.parametrize("name", FILE_NAMES)
def test_tags(loaded, name):
    path = f"/instances/{instance_id(loaded, name)}/tags"
    ours, theirs = loaded.pair.get_json(path)
    assert_same(without_private_names(ours), without_private_names(theirs), f"{path} ({name})")


@pytest.mark.parametrize("name", FILE_NAMES)
def test_tags_short(loaded, name):
    path = f"/instances/{instance_id(loaded, name)}/tags"
    ours, theirs = loaded.pair.get_json(path, params={"short": ""})
    assert_same(ours, theirs, f"{path}?short ({name})")


def private_names(full: dict[str, Any]) -> set[str]:
    names = set()
    for key, entry in full.items():
        if is_private(key):
            names.add(entry["Name"])
        if entry.get("Type") == "Sequence":
            for item in entry.get("Value") or []:
                names |= private_names(item)
    return names


def public_names(ours: dict[str, Any], theirs: dict[str, Any], our_full: dict[str, Any],
                 their_full: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The simplified forms without private tags, which are keyed by their dictionary
    name (see :func:`without_private_names`); their values are compared by the other
    forms. Top level only: names inside sequences are compared as a whole."""
    return ({k: v for k, v in ours.items() if k not in private_names(our_full)},
            {k: v for k, v in theirs.items() if k not in private_names(their_full)})


@pytest.mark.parametrize("route", ["tags?simplify", "simplified-tags"])
@pytest.mark.parametrize("name", FILE_NAMES)
def test_tags_simplified(loaded, name, route):
    iid = instance_id(loaded, name)
    path, _, flag = route.partition("?")
    ours, theirs = loaded.pair.get_json(f"/instances/{iid}/{path}",
                                        params={flag: ""} if flag else None)
    our_full, their_full = loaded.pair.get_json(f"/instances/{iid}/tags")
    ours, theirs = public_names(ours, theirs, our_full, their_full)
    assert_same(ours, theirs, f"/instances/{iid}/{route} ({name})")


@pytest.mark.parametrize("form", ["", "short", "simplify"])
@pytest.mark.parametrize("name", FILE_NAMES)
def test_header(loaded, name, form):
    path = f"/instances/{instance_id(loaded, name)}/header"
    ours, theirs = loaded.pair.get_json(path, params={form: ""} if form else None)
    # ImplementationClassUID/VersionName are written by whoever adds the meta: both
    # servers keep the file as received, so they match too.
    assert_same(ours, theirs, f"{path}?{form} ({name})")


CONTENT_PATHS = {
    "CT_small.dcm": ["", "0010-0010", "0008-0008", "0028-0030", "0028-0010", "0020-0032",
                     "0043-1028", "7fe0-0010"],
    "test-SR.dcm": ["", "0040-a730", "0040-a730/0", "0040-a730/0/0040-a043",
                    "0040-a730/0/0040-a043/0/0008-0104", "0040-a730/99", "0040-a730/x"],
    "rtplan.dcm": ["300a-00b0/0/300a-00b2", "300a-00b0/0/300a-0111/1/300a-011c",
                   "0010-0010/0", "9999-9999", "zzzz"],
    "syn-a-ct-1": ["0008-0008", "0020-000d", "7fe0-0010/0"],
    "rtstruct.dcm": ["", "0010-0010"],
}


@pytest.mark.parametrize("case", [f"{name}:{path}" for name, paths in
                                  CONTENT_PATHS.items() for path in paths])
def test_content(loaded, case):
    name, _, path = case.partition(":")
    url = f"/instances/{instance_id(loaded, name)}/content" + (f"/{path}" if path else "")
    ours, theirs = loaded.pair.get(url)
    assert ours.status_code == theirs.status_code, (case, ours.text[:300], theirs.text[:300])
    if theirs.status_code != 200:
        return
    if path == "" or theirs.content.startswith(b"["):
        assert ours.json() == theirs.json(), case
    else:
        assert ours.content == theirs.content, case


# Private blocks as gateways leave them: explicit VR with every private element, the
# creator included, as UN (and a block with proper VRs for contrast). Orthanc shows the
# creator as text but leaves the block's elements unnamed and without PrivateCreator.
UN_BLOCKS = {
    "unknown creator, UN": [(0x00190010, "UN", b"SET WINDOW"), (0x00191000, "UN", b"abcd")],
    "GE creator, UN": [(0x00090010, "UN", b"GEMS_IDEN_01"),
                       (0x00091001, "UN", b"FULL FIDELITY ")],
    "GE creator, UN number": [(0x00430010, "UN", b"GEMS_PARM_01"), (0x00431001, "UN", b"\x05\x00")],
    "GE creator, LO": [(0x00090010, "LO", "GEMS_IDEN_01"), (0x00091001, "LO", "FULL FIDELITY")],
}


@pytest.mark.parametrize("case", list(UN_BLOCKS))
def test_private_blocks_sent_as_un(pair, dicom_factory, case):
    from pydicom.dataelem import DataElement
    from pydicom.uid import generate_uid

    ds = dicom_factory.dataset()
    # The factory numbers its UIDs from the same start in every test: one instance each.
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(
        entropy_srcs=["private blocks sent as UN", case])
    for tag, vr, value in UN_BLOCKS[case]:
        ds.add(DataElement(tag, vr, value))
    ours, theirs = pair.post("/instances", content=dicom_factory.encode(ds))
    assert (ours.status_code, theirs.status_code) == (200, 200)
    assert ours.json()["Status"] == theirs.json()["Status"] == "Success"
    path = f"/instances/{theirs.json()['ID']}"
    for params in ({}, {"short": ""}, {"simplify": ""}):
        assert_same(*pair.get_json(f"{path}/tags", params=params), f"{path}/tags {params}")
