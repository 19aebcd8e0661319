"""User metadata, attachments, create-dicom and /tools routes side by side with Orthanc
1.10 (labels do not exist in 1.10: tests/integration/test_labels.py covers them).

Both servers declare the same user metadata and content types, so this module runs its
own Orthanc (the session one has none) and its own Isengard."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from isengard_sdk.testing import RunningServer
from tests.conftest import sample

from .compare import Pair, assert_same
from .orthanc import OrthancProcess, orthanc_binary

pytestmark = pytest.mark.orthanc

USER_METADATA = {"Sample": 1024, "Other": 1025}
USER_CONTENT_TYPES = {"report": 1030}
CT = {
    "patients": "fa558bce-587a86d3-ad0da9b3-9d043d9d-4f5c5718",
    "studies": "8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d",
    "series": "93034833-163e42c3-bc9a428b-194620cf-2c5799e5",
    "instances": "f689ddd2-662f8fe1-8b18180d-ec2a2cee-937917af",
}
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


class _UserOrthanc(OrthancProcess):
    def config(self) -> dict[str, Any]:
        return {**super().config(), "UserMetadata": USER_METADATA,
                "UserContentType": USER_CONTENT_TYPES}


@pytest.fixture(scope="module")
def extras_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    binary = orthanc_binary()
    if binary is None:
        pytest.skip("Orthanc is not installed (apt-get install orthanc)")
    from isengard.config import settings_from_mapping
    from isengard.server import Server

    orthanc = _UserOrthanc(binary, tmp_path_factory.mktemp("orthanc-extras"))
    orthanc.start()
    tmp = tmp_path_factory.mktemp("isengard-extras")
    settings = settings_from_mapping({
        "data_dir": str(tmp), "http": {"host": "127.0.0.1", "port": 0},
        "dicom": {"host": "127.0.0.1", "port": 0}, "storage": {"sync": False},
        "user_metadata": USER_METADATA, "user_content_types": USER_CONTENT_TYPES,
    }, "compat test configuration")
    server = Server(settings, use_entry_points=True)
    server.start()
    ours = RunningServer(server, server.http_url, server.dicom_port, settings.dicom.aet, tmp)
    pair = Pair(ours, orthanc)
    pair.post("/instances", content=sample("CT_small.dcm"))
    yield pair
    ours.stop()
    orthanc.stop()


def _both(pair: Pair, method: str, path: str, content: bytes | str | None = None
          ) -> tuple[Any, Any]:
    ours = pair.isengard.client.request(method, path, content=content)
    theirs = pair.orthanc.client.request(method, path, content=content)
    return ours, theirs


def _same_status(pair: Pair, method: str, path: str, content: bytes | str | None = None
                 ) -> tuple[Any, Any]:
    ours, theirs = _both(pair, method, path, content)
    assert ours.status_code == theirs.status_code, (method, path, ours.text, theirs.text)
    return ours, theirs


def _last(pair: Pair) -> tuple[int, int]:
    return (pair.isengard.get("/changes?last").json()["Last"],
            pair.orthanc.get("/changes?last").json()["Last"])


def _changes_since(pair: Pair, last: tuple[int, int]) -> tuple[list[Any], list[Any]]:
    ours = pair.isengard.get(f"/changes?since={last[0]}").json()["Changes"]
    theirs = pair.orthanc.get(f"/changes?since={last[1]}").json()["Changes"]
    keep = ("ChangeType", "ID", "Path", "ResourceType")
    return ([{k: c[k] for k in keep} for c in ours], [{k: c[k] for k in keep} for c in theirs])


@pytest.mark.parametrize("level", list(CT))
def test_metadata_writes(extras_pair, level):
    pair, path = extras_pair, f"/{level}/{CT[level]}/metadata"
    last = _last(pair)
    for method, name, body in [("PUT", "Sample", "hello"), ("GET", "Sample", None),
                               ("GET", "1024", None), ("PUT", "1025", "by number"),
                               ("GET", "Other", None), ("PUT", "2000", "undeclared"),
                               ("GET", "2000", None), ("DELETE", "Sample", None),
                               ("GET", "Sample", None), ("DELETE", "Sample", None),
                               ("PUT", "Unknown", "x"), ("DELETE", "Unknown", None),
                               ("PUT", "Origin", "x"), ("DELETE", "RemoteAET", None),
                               ("PUT", "1023", "x"), ("PUT", "65536", "x")]:
        ours, theirs = _same_status(pair, method, f"{path}/{name}", body)
        if ours.status_code == 200:
            assert ours.text == theirs.text, (method, name)
        elif ours.status_code == 404 and theirs.content:  # Orthanc's body may be empty
            assert ours.json()["OrthancStatus"] == theirs.json()["OrthancStatus"], name
    ours, theirs = _changes_since(pair, last)
    assert_same(ours, theirs, f"changes after metadata writes on {level}")
    ours, theirs = pair.get_json(f"{path}?expand")
    assert {k: v for k, v in ours.items() if k in ("Other", "2000")} == \
        {k: v for k, v in theirs.items() if k in ("Other", "2000")}
    _both(pair, "DELETE", f"{path}/Other")
    _both(pair, "DELETE", f"{path}/2000")


@pytest.mark.parametrize("level", list(CT))
def test_attachments(extras_pair, level):
    pair, base = extras_pair, f"/{level}/{CT[level]}/attachments"
    last = _last(pair)
    pair.assert_same_json(base)
    ours, theirs = _same_status(pair, "PUT", f"{base}/report", b"hello report " * 50)
    assert ours.json() == theirs.json() == {}
    pair.assert_same_json(base)
    pair.assert_same_json(f"{base}?full")
    pair.assert_same_json(f"{base}/report")
    pair.assert_same_json(f"{base}/report/info", ignore={"Uuid"})
    for op in ("data", "size", "md5", "compressed-size", "compressed-md5", "is-compressed"):
        ours, theirs = _same_status(pair, "GET", f"{base}/report/{op}")
        assert ours.content == theirs.content, op
    for op in ("compress", "verify-md5", "uncompress", "compress"):
        ours, theirs = _same_status(pair, "POST", f"{base}/report/{op}")
        assert ours.json() == theirs.json() == {}
    ours, theirs = pair.get_json(f"{base}/report/info", ignore={"Uuid"})
    # Both deflate at zlib's level 6: same compressed bytes.
    assert_same(ours, theirs, f"{base}/report/info once compressed")
    for op in ("data", "compressed-data", "is-compressed", "compressed-size"):
        ours, theirs = _same_status(pair, "GET", f"{base}/report/{op}")
        assert ours.content == theirs.content, op
    for method, name in [("PUT", "unknown"), ("PUT", "dicom"), ("DELETE", "dicom"),
                         ("PUT", "1023"), ("GET", "unknown/data")]:
        _same_status(pair, method, f"{base}/{name}", b"x" if method == "PUT" else None)
    ours, theirs = _same_status(pair, "DELETE", f"{base}/report")
    ours, theirs = _same_status(pair, "GET", f"{base}/report/data")
    assert ours.json()["OrthancStatus"] == theirs.json()["OrthancStatus"] == 17
    _same_status(pair, "DELETE", f"{base}/report")
    ours, theirs = _changes_since(pair, last)
    assert_same(ours, theirs, f"changes after attachment writes on {level}")


def test_dicom_attachment(extras_pair):
    pair, base = extras_pair, f"/instances/{CT['instances']}/attachments/dicom"
    pair.assert_same_json(base)
    pair.assert_same_json(f"{base}/info", ignore={"Uuid"})
    for op in ("data", "size", "md5", "is-compressed"):
        ours, theirs = _same_status(pair, "GET", f"{base}/{op}")
        assert ours.content == theirs.content, op
        assert ours.headers["content-type"].split(";")[0] == \
            theirs.headers["content-type"].split(";")[0], op
    _same_status(pair, "GET", "/instances/nope/attachments")


def _png() -> str:
    out = io.BytesIO()
    Image.new("RGB", (5, 3), (10, 20, 30)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


# Values that differ between two servers creating "the same" instance: generated UIDs,
# the time of creation, and SOPClassUID (Isengard always sets one, see create_dicom.py).
_VOLATILE = re.compile(r"UID$|Date$|Time$")


def _created_tags(server: Any, answer: Any) -> dict[str, Any]:
    tags = server.get(f"/instances/{answer.json()['ID']}/simplified-tags").json()
    return {k: v for k, v in tags.items() if not _VOLATILE.search(k)}


@pytest.mark.parametrize("body", [
    {"Tags": {"PatientName": "Test^Png", "PatientID": "CREATE1"}, "Content": "png"},
    {"Tags": {"PatientName": "Test^Pdf", "PatientID": "CREATE2"},
     "Content": "data:application/pdf;base64," + base64.b64encode(PDF).decode()},
    {"Tags": {"PatientID": "CREATE3", "ReferencedStudySequence": [
        {"ReferencedSOPClassUID": "1.2", "ReferencedSOPInstanceUID": "1.2.3.4"}]}},
    {"Parent": CT["studies"], "Tags": {"SeriesDescription": "child"}},
    {"Parent": CT["series"], "Tags": {"ImageComments": "sibling"}},
    {"PatientName": "Legacy^V1", "PatientID": "CREATE4"},
], ids=["png", "pdf", "sequence", "study-parent", "series-parent", "first-format"])
def test_create_dicom(extras_pair, body):
    pair = extras_pair
    if body.get("Content") == "png":
        body = {**body, "Content": _png()}
    ours, theirs = _same_status(pair, "POST", "/tools/create-dicom", json.dumps(body))
    assert ours.status_code == 200, ours.text
    assert sorted(ours.json()) == sorted(theirs.json())
    assert ours.json()["Status"] == theirs.json()["Status"]
    if "Parent" in body:
        for key in ("ParentPatient", "ParentStudy"):
            assert ours.json()[key] == theirs.json()[key]
    else:
        assert ours.json()["ParentPatient"] == theirs.json()["ParentPatient"]
    assert_same(_created_tags(pair.isengard, ours), _created_tags(pair.orthanc, theirs),
                f"create-dicom {sorted(body)}")
    ours_pdf = pair.isengard.get(f"/instances/{ours.json()['ID']}/pdf")
    theirs_pdf = pair.orthanc.get(f"/instances/{theirs.json()['ID']}/pdf")
    assert ours_pdf.status_code == theirs_pdf.status_code
    if ours_pdf.status_code == 200:
        assert ours_pdf.content == theirs_pdf.content == PDF


@pytest.mark.parametrize("body", [
    "not json", [], {"Tags": {"Nope": "x"}}, {"Tags": {"PatientName": 5}},
    {"Tags": {}, "Content": "data:image/png;base64,!!!"}, {"Tags": {}, "Content": "hello"},
    {"Tags": {}, "Content": 3}, {"Tags": {}, "Content": "data:text/plain;base64,aGVsbG8="},
    {"Tags": {}, "Parent": "nope"}, {"Content": "hello"}, {"PatientName": 5},
    {"Tags": {"SOPInstanceUID": "1.2.3"}},
    {"Parent": CT["patients"], "Tags": {"PatientName": "Other"}},
])
def test_create_dicom_errors(extras_pair, body):
    content = body if isinstance(body, str) else json.dumps(body)
    ours, theirs = _same_status(extras_pair, "POST", "/tools/create-dicom", content)
    assert ours.json()["OrthancStatus"] == theirs.json()["OrthancStatus"]


def test_pdf_of_an_image_and_tools(extras_pair):
    pair = extras_pair
    _same_status(pair, "GET", f"/instances/{CT['instances']}/pdf")
    _same_status(pair, "GET", "/instances/nope/pdf")
    for path in ("/tools/now", "/tools/now-local", "/tools/dicom-conformance"):
        ours, theirs = _same_status(pair, "GET", path)
        assert ours.headers["content-type"].split(";")[0] == \
            theirs.headers["content-type"].split(";")[0] == "text/plain"
    ours, theirs = _both(pair, "GET", "/tools/now")
    assert re.fullmatch(r"\d{8}T\d{6}", ours.text) and re.fullmatch(r"\d{8}T\d{6}",
                                                                    theirs.text)
