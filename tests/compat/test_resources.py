"""Resource lists, resource JSON, relations, statistics and metadata, side by side."""

from __future__ import annotations

import pytest

from .compare import assert_same
from .samples import SAMPLE_FILES, synthetic_files

pytestmark = pytest.mark.orthanc

FILE_NAMES = [n for n in [*SAMPLE_FILES, *(f.name for f in synthetic_files())]
              if n != "MR_small_RLE.dcm"]  # AlreadyStored: the same IDs as MR_small.dcm
LEVELS = ["patients", "studies", "series", "instances"]
PARENT_KEY = {"patients": "ParentPatient", "studies": "ParentStudy",
              "series": "ParentSeries", "instances": "ID"}
# Which relative routes exist below each level (Orthanc 1.10's REST API).
RELATIVES = {
    "patients": ["studies", "series", "instances"],
    "studies": ["patient", "series", "instances"],
    "series": ["patient", "study", "instances"],
    "instances": ["patient", "study", "series"],
}
# Orthanc's instance metadata whose values are dates of reception.
DATE_METADATA = {"ReceptionDate", "LastUpdate"}


def by_id(resource: dict) -> str:
    return str(resource["ID"])


def resource_id(loaded, name: str, level: str) -> str:
    ours, theirs = loaded.answers[name]
    return str(theirs.json()[PARENT_KEY[level]])


@pytest.mark.parametrize("level", LEVELS)
def test_list_ids(loaded, level):
    ours, theirs = loaded.pair.get_json(f"/{level}")
    assert sorted(ours) == sorted(theirs)


@pytest.mark.parametrize("level", LEVELS)
def test_list_expand(loaded, level):
    ours, theirs = loaded.pair.get_json(f"/{level}", params={"expand": ""})
    assert_same(sorted(ours, key=by_id), sorted(theirs, key=by_id), f"GET /{level}?expand")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", FILE_NAMES)
def test_resource(loaded, name, level):
    loaded.pair.assert_same_json(f"/{level}/{resource_id(loaded, name, level)}")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", FILE_NAMES)
def test_relatives(loaded, name, level):
    rid = resource_id(loaded, name, level)
    for relative in RELATIVES[level]:
        ours, theirs = loaded.pair.get_json(f"/{level}/{rid}/{relative}")
        if isinstance(theirs, list):  # children in no guaranteed order
            ours, theirs = sorted(ours, key=by_id), sorted(theirs, key=by_id)
        assert_same(ours, theirs, f"GET /{level}/{rid}/{relative} ({name})")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", FILE_NAMES)
def test_statistics(loaded, name, level):
    loaded.pair.assert_same_json(f"/{level}/{resource_id(loaded, name, level)}/statistics")


@pytest.mark.parametrize("name", FILE_NAMES)
def test_instance_metadata(loaded, name):
    rid = resource_id(loaded, name, "instances")
    ours, theirs = loaded.pair.get_json(f"/instances/{rid}/metadata", params={"expand": ""})
    assert sorted(ours) == sorted(theirs), f"metadata names of {name}"
    for key in set(theirs) - DATE_METADATA:
        assert ours[key] == theirs[key], f"metadata {key} of {name}"
    ours, theirs = loaded.pair.get_json(f"/instances/{rid}/metadata")
    assert ours == theirs  # in the order of Orthanc's MetadataType enumeration
    for key in sorted(set(theirs) - DATE_METADATA):
        a, b = loaded.pair.get(f"/instances/{rid}/metadata/{key}")
        assert (a.status_code, a.text) == (b.status_code, b.text), key


@pytest.mark.parametrize("level", LEVELS[:3])
@pytest.mark.parametrize("name", ["CT_small.dcm", "syn-a-ct-1", "rtdose.dcm"])
def test_resource_metadata(loaded, name, level):
    rid = resource_id(loaded, name, level)
    ours, theirs = loaded.pair.get_json(f"/{level}/{rid}/metadata", params={"expand": ""},
                                        ignore=())
    assert sorted(ours) == sorted(theirs)
    for key in set(theirs) - DATE_METADATA:
        assert ours[key] == theirs[key], f"metadata {key} of {level} of {name}"
    ours, theirs = loaded.pair.get_json(f"/{level}/{rid}/metadata")
    assert ours == theirs


def test_global_statistics(loaded):
    loaded.pair.assert_same_json("/statistics")
