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
