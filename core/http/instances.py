"""``POST /instances`` (upload of DICOM files or ZIP archives) and the routes that read
one instance: ``/file``, ``/tags``, ``/simplified-tags``, ``/header``, ``/content``."""

from __future__ import annotations

import io
import logging
import tempfile
import zipfile
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from isengard_sdk.types import ResourceLevel

from ..errors import BadRequest, InstanceRejected, InvalidDicomError, UnknownResource
from ..ingest import Origin
from ..storage import COMPRESSION_NONE, FilesystemStorageArea
from ..tags_json import TagsFormat, dataset_to_json
from .responses import OrthancJSON, query_flag

log = logging.getLogger("isengard.http")

_SPOOL_LIMIT = 64 * 1024 * 1024  # bodies above this go to a temporary file
_ZIP_MAGIC = b"PK\x03\x04"


def _kernel(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.kernel


def _answer(outcome: Any) -> dict[str, Any]:
    patient, study, series, instance = outcome.ids
    return {
        "ID": instance,
        "ParentPatient": patient,
        "ParentSeries": series,
        "ParentStudy": study,
        "Path": f"/instances/{instance}",
        "Status": outcome.status,
    }


async def upload(request: Request) -> Response:
    """Store a DICOM file, or every DICOM file of a ZIP archive."""
    k = _kernel(request)
    client = request.client
    origin = Origin(kind="RestApi", remote_ip=client.host if client else "",
                    http_username=request.headers.get("x-isengard-user", ""))
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_LIMIT)
    try:
        async for chunk in request.stream():
            spool.write(chunk)
        size = spool.tell()
        spool.seek(0)
        head = spool.read(4)
        spool.seek(0)
        if head == _ZIP_MAGIC:
            results = await run_in_threadpool(_ingest_zip, k, spool, origin)
            return OrthancJSON(results)
        data = spool.read()
    finally:
        spool.close()
    if size == 0:
        raise InvalidDicomError("received an empty DICOM file")
    outcome, parsed = await run_in_threadpool(k.ingest_path.ingest, data, origin)
    log.info("REST upload from %s: instance %s %s", origin.remote_ip, outcome.ids[3],
             outcome.status)
    return OrthancJSON(_answer(outcome))


def _ingest_zip(k: Any, spool: Any, origin: Origin) -> list[dict[str, Any]]:
    try:
        archive = zipfile.ZipFile(spool)
    except zipfile.BadZipFile as exc:
        raise InvalidDicomError(f"the uploaded ZIP archive is corrupted: {exc}") from exc
    results: list[dict[str, Any]] = []
    stored = rejected = 0
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            try:
                data = archive.read(info)
                outcome, _ = k.ingest_path.ingest(data, origin)
            except (InvalidDicomError, InstanceRejected, zipfile.BadZipFile, OSError) as exc:
                rejected += 1
                results.append({"Filename": info.filename, "Status": "Failure",
                                "Details": str(exc)})
                continue
            stored += 1
            results.append({**_answer(outcome), "Filename": info.filename})
    log.info("REST upload of a ZIP from %s: %d instance(s) stored, %d entries rejected",
             origin.remote_ip, stored, rejected)
    return results


def _instance(request: Request) -> Any:
    return _kernel(request).row(ResourceLevel.INSTANCE, request.path_params["id"])


async def get_file(request: Request) -> Response:
    k = _kernel(request)
    row = await run_in_threadpool(_instance, request)
    att = await run_in_threadpool(k.index.attachment, row.internal_id)
    if att is None:
        raise UnknownResource(f"instance {row.public_id} has no DICOM file")
    headers = {"Content-Disposition": f'filename="{row.public_id}.dcm"'}
    storage = k.storage
    if isinstance(storage, FilesystemStorageArea) and att.compression == COMPRESSION_NONE:
        path = storage.path_of(att.uuid)
        if path.exists():  # sendfile, never loaded in memory
            return FileResponse(path, media_type="application/dicom", headers=headers)
    data = await run_in_threadpool(k.read_file, row)
    return Response(data, media_type="application/dicom", headers=headers)


def _format(request: Request, default: TagsFormat = "full") -> TagsFormat:
    if query_flag(request, "simplify"):
        return "simplify"
    if query_flag(request, "short"):
        return "short"
    return default


async def get_tags(request: Request) -> Response:
    k = _kernel(request)
    fmt = _format(request)

    def work() -> dict[str, Any]:
        return k.instance_tags(_instance(request), fmt)

    return OrthancJSON(await run_in_threadpool(work))


async def get_simplified_tags(request: Request) -> Response:
    k = _kernel(request)

    def work() -> dict[str, Any]:
        return k.instance_tags(_instance(request), "simplify")

    return OrthancJSON(await run_in_threadpool(work))


async def get_header(request: Request) -> Response:
    k = _kernel(request)
    fmt = _format(request)

    def work() -> dict[str, Any]:
        ds, _ = k.instance_dataset(_instance(request))
        return dataset_to_json(ds, fmt, include_meta=True)

    return OrthancJSON(await run_in_threadpool(work))


async def get_content(request: Request) -> Response:
    """Navigate the dataset: ``/content``, ``/content/0008-1140/0/0008-1150`` …"""
    k = _kernel(request)
    parts = [p for p in request.path_params.get("path", "").split("/") if p]

    def work() -> Response:
        row = _instance(request)
        ds: Any
        if parts and _parse_tag(parts[0]) == 0x7FE00010:  # pixel data: the file is needed
            ds = pydicom.dcmread(io.BytesIO(k.read_file(row)))
        else:
            ds, _ = k.instance_dataset(row)
        node: Any = ds
        parent: Dataset = ds
        for part in parts:
            if isinstance(node, Dataset):
                tag = _parse_tag(part)
                if tag not in node:
                    raise UnknownResource(f"no tag {part} in {request.url.path}")
                parent = node
                element = node[tag]
                node = element.value if element.VR == "SQ" else element
            elif isinstance(node, (DicomSequence, list)):
                if not part.isdigit() or int(part) >= len(node):
                    raise UnknownResource(f"no item {part} in {request.url.path}")
                node = node[int(part)]
            else:
                raise UnknownResource(f"cannot go below a value in {request.url.path}")
        if isinstance(node, Dataset):
            return OrthancJSON([f"{int(t) >> 16:04x}-{int(t) & 0xFFFF:04x}" for t in node.keys()])
        if isinstance(node, (DicomSequence, list)):
            return OrthancJSON([str(i) for i in range(len(node))])
        # the value as stored (raw bytes), not pydicom's interpretation of it
        raw = parent.get_item(node.tag)
        value = raw.value if raw is not None and isinstance(raw.value, bytes) else None
        if value is None:
            value = _text(node).encode()
        return Response(value, media_type="application/octet-stream")

    return await run_in_threadpool(work)


def _text(element: Any) -> str:
    value = element.value
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def _parse_tag(part: str) -> int:
    cleaned = part.replace("-", "").replace(",", "")
    if len(cleaned) != 8:
        raise BadRequest(f"{part!r} is not a tag (expected gggg-eeee)")
    try:
        return int(cleaned, 16)
    except ValueError as exc:
        raise BadRequest(f"{part!r} is not a tag (expected gggg-eeee)") from exc


routes = [
    Route("/instances", upload, methods=["POST"]),
    Route("/instances/{id}/file", get_file, methods=["GET"]),
    Route("/instances/{id}/tags", get_tags, methods=["GET"]),
    Route("/instances/{id}/simplified-tags", get_simplified_tags, methods=["GET"]),
    Route("/instances/{id}/header", get_header, methods=["GET"]),
    Route("/instances/{id}/content", get_content, methods=["GET"]),
    Route("/instances/{id}/content/{path:path}", get_content, methods=["GET"]),
]
