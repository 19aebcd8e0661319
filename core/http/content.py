"""``/instances/{id}/content/...``: walk the dataset of an instance as Orthanc does.

- a dataset (the root or a sequence item) lists its tags as ``gggg-eeee``;
- a sequence lists its item indexes; pixel data lists its fragments (native pixel data
  is one fragment, encapsulated pixel data one per item, basic offset table included);
- a leaf answers the bytes of its value as stored: text with its padding, binary numbers
  in little endian (DCMTK holds them in the host byte order).
"""

from __future__ import annotations

import struct
from typing import Any

from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isengard_sdk.http import run_blocking
from isengard_sdk.types import ResourceLevel

from ..dicom_file import read_dataset
from ..errors import UnknownDicomTag, UnknownResource
from .responses import OrthancJSON

__all__ = ["routes"]

PIXEL_DATA = 0x7FE00010
# VR → struct code of its binary numbers (PS3.5 6.2)
_NUMBERS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "UV": "Q",
            "SV": "q", "AT": "HH"}


def _tag_name(tag: int) -> str:
    return f"{tag >> 16:04x}-{tag & 0xFFFF:04x}"


def _parse_tag(part: str) -> int:
    cleaned = part.replace("-", "").replace(",", "")
    if len(cleaned) != 8:
        raise UnknownDicomTag(f"{part!r} is not a tag (expected gggg-eeee)")
    try:
        return int(cleaned, 16)
    except ValueError as exc:
        raise UnknownDicomTag(f"{part!r} is not a tag (expected gggg-eeee)") from exc


def _leaf_bytes(parent: Dataset, tag: int, raw: Any, little_endian: bool) -> bytes:
    vr = str(parent[tag].VR)
    value = raw.value
    if isinstance(value, bytes) and (little_endian or vr not in _NUMBERS):
        return value
    if vr in _NUMBERS:
        numbers = parent[tag].value
        if numbers is None or numbers == b"":
            return b""
        items = list(numbers) if isinstance(numbers, (list, tuple)) or type(
            numbers).__name__ == "MultiValue" else [numbers]
        if vr == "AT":
            return b"".join(struct.pack("<HH", int(t) >> 16, int(t) & 0xFFFF) for t in items)
        return struct.pack("<" + _NUMBERS[vr] * len(items), *items)
    element = parent[tag]
    if isinstance(element.value, bytes):
        return element.value
    if element.value is None:
        return b""
    if isinstance(element.value, (list, tuple)) or type(element.value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in element.value).encode()
    return str(element.value).encode()


def _fragments(ds: Dataset) -> list[bytes]:
    element = ds[PIXEL_DATA]
    if element.is_undefined_length:
        return list(generate_fragments(element.value))
    return [element.value]


def _walk(ds: Dataset, parts: list[str], path: str) -> Response:
    little_endian = ds.original_encoding[1] is not False
    node: Any = ds
    parent: Dataset = ds
    tag = 0
    raw: Any = None
    for i, part in enumerate(parts):
        if isinstance(node, Dataset):
            tag = _parse_tag(part)
            if tag not in node:
                raise UnknownResource(f"no tag {part} in {path}")
            parent = node
            if tag == PIXEL_DATA and node is ds:
                fragments = _fragments(ds)
                rest = parts[i + 1:]
                if not rest:
                    return OrthancJSON([str(n) for n in range(len(fragments))])
                if len(rest) > 1 or not rest[0].isdigit() or int(rest[0]) >= len(fragments):
                    raise UnknownResource(f"no fragment {'/'.join(rest)} in {path}")
                return Response(fragments[int(rest[0])], media_type="application/octet-stream")
            raw = node.get_item(tag)  # before node[tag] converts it: its bytes as stored
            element = node[tag]
            node = element.value if element.VR == "SQ" else element
        elif isinstance(node, list) or type(node).__name__ == "Sequence":
            if not part.isdigit() or int(part) >= len(node):
                raise UnknownResource(f"no item {part} in {path}")
            node = node[int(part)]
        else:
            raise UnknownResource(f"cannot go below a value in {path}")
    if isinstance(node, Dataset):
        return OrthancJSON([_tag_name(int(t)) for t in node.keys()])
    if isinstance(node, list) or type(node).__name__ == "Sequence":
        return OrthancJSON([str(i) for i in range(len(node))])
    return Response(_leaf_bytes(parent, tag, raw, little_endian),
                    media_type="application/octet-stream")


async def get_content(request: Request) -> Response:
    """Navigate the dataset: ``/content``, ``/content/0008-1140/0/0008-1150`` …"""
    k = request.app.state.kernel
    parts = [p for p in request.path_params.get("path", "").split("/") if p]

    def work() -> Response:
        row = k.row(ResourceLevel.INSTANCE, request.path_params["id"])
        ds, has_pixels = k.instance_dataset(row)
        # The header kept in the index stops before the pixel data: the root listing
        # and the pixel data itself need the file.
        if has_pixels and (not parts or _parse_tag(parts[0]) == PIXEL_DATA):
            ds = read_dataset(k.read_file(row))
        return _walk(ds, parts, request.url.path)

    # A component that is not a tag raises UnknownDicomTag: a 500, as Orthanc 1.10.
    return await run_blocking(request, work)


routes = [
    Route("/instances/{id}/content", get_content, methods=["GET"]),
    Route("/instances/{id}/content/{path:path}", get_content, methods=["GET"]),
]
