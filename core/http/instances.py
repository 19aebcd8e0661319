"""``POST /instances`` (upload of DICOM files or ZIP archives) and the routes that read
one instance: ``/file``, ``/tags``, ``/simplified-tags``, ``/header`` (``/content`` is in
:mod:`.content`)."""

from __future__ import annotations

import io
import logging
import tempfile
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from isengard_sdk.http import run_blocking
from isengard_sdk.types import ResourceLevel

from ..errors import InstanceRejected, InvalidDicomError, UnknownResource
from ..ingest import Origin
from ..storage import COMPRESSION_NONE, FilesystemStorageArea
from ..tags_json import TagsFormat, dataset_to_json
from .responses import OrthancJSON, kernel_of, query_flag

log = logging.getLogger("isengard.http")

_SPOOL_LIMIT = 64 * 1024 * 1024  # bodies above this go to a temporary file
_ZIP_MAGIC = b"PK\x03\x04"
# GET /instances/{id}/file: a file up to this size is read whole with the instance's
# lookup; a larger one is streamed (Starlette's FileResponse: a trip to a thread per
# chunk, ~1 ms more per file).
_READ_WHOLE = 1 << 20


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
    k = kernel_of(request)
    client = request.client
    origin = Origin(kind="RestApi", remote_ip=client.host if client else "",
                    http_username=request.headers.get("x-isengard-user", ""))
    body = await _read_body(request)
    try:
        if body.read(4) == _ZIP_MAGIC:
            body.seek(0)
            results = await run_blocking(request, _ingest_zip, k, body, origin)
            return OrthancJSON(results)
        body.seek(0)
        data = body.read()  # a BytesIO read whole from 0 hands back its bytes, no copy
    finally:
        body.close()
    if not data:
        raise InvalidDicomError("received an empty DICOM file")
    outcome, parsed = await run_blocking(request, k.ingest_path.ingest, data, origin)
    log.debug("REST upload from %s: instance %s %s", origin.remote_ip, outcome.ids[3],
             outcome.status)
    return OrthancJSON(_answer(outcome))


async def _read_body(request: Request) -> BinaryIO:
    """The request body, positioned at 0: in memory (its chunks joined once; a body of
    one chunk is not copied), or in a temporary file once it passes :data:`_SPOOL_LIMIT`."""
    chunks: list[bytes] = []
    size = 0
    spool: BinaryIO | None = None
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if spool is not None:
                spool.write(chunk)
            elif size > _SPOOL_LIMIT:
                spool = tempfile.TemporaryFile()
                spool.writelines(chunks)
                spool.write(chunk)
                chunks.clear()
            elif chunk:
                chunks.append(chunk)
    except BaseException:
        if spool is not None:
            spool.close()
        raise
    if spool is not None:
        spool.seek(0)
        return spool
    return io.BytesIO(b"".join(chunks))  # joining a single bytes object returns it


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
    return kernel_of(request).row(ResourceLevel.INSTANCE, request.path_params["id"])


async def get_file(request: Request) -> Response:
    k = kernel_of(request)
    ranged = "range" in request.headers

    def lookup() -> tuple[Any, Path | None, bytes]:
        """The instance, and its file: a path to stream when it is large or asked by
        ranges, else its bytes, read in the same trip to the threads."""
        row = _instance(request)
        att = k.index.attachment(row.internal_id)
        if att is None:
            raise UnknownResource(f"instance {row.public_id} has no DICOM file")
        storage = k.storage
        if (isinstance(storage, FilesystemStorageArea) and att.compression == COMPRESSION_NONE
                and (ranged or att.uncompressed_size > _READ_WHOLE)):
            path = storage.path_of(att.uuid)
            if path.exists():
                return row, path, b""
        return row, None, k.read_file(row)

    row, path, data = await run_blocking(request, lookup)
    headers = {"Content-Disposition": f'filename="{row.public_id}.dcm"'}
    if path is not None:  # streamed in chunks, never held whole in memory
        return FileResponse(path, media_type="application/dicom", headers=headers)
    return Response(data, media_type="application/dicom", headers=headers)


def _format(request: Request, default: TagsFormat = "full") -> TagsFormat:
    if query_flag(request, "simplify"):
        return "simplify"
    if query_flag(request, "short"):
        return "short"
    return default


async def get_tags(request: Request) -> Response:
    k = kernel_of(request)
    fmt = _format(request)

    def work() -> dict[str, Any]:
        return k.instance_tags(_instance(request), fmt)

    return OrthancJSON(await run_blocking(request, work))


async def get_simplified_tags(request: Request) -> Response:
    k = kernel_of(request)

    def work() -> dict[str, Any]:
        return k.instance_tags(_instance(request), "simplify")

    return OrthancJSON(await run_blocking(request, work))


async def get_header(request: Request) -> Response:
    k = kernel_of(request)
    fmt = _format(request)

    def work() -> dict[str, Any]:
        ds, _ = k.instance_dataset(_instance(request))
        header = dataset_to_json(ds, fmt, include_meta=True)
        # Orthanc leaves the binary elements (FileMetaInformationVersion …) out of it.
        return {key: value for key, value in header.items()
                if value is not None and (not isinstance(value, dict) or
                                          value.get("Type") != "Null")}

    return OrthancJSON(await run_blocking(request, work))


routes = [
    Route("/instances", upload, methods=["POST"]),
    Route("/instances/{id}/file", get_file, methods=["GET"]),
    Route("/instances/{id}/tags", get_tags, methods=["GET"]),
    Route("/instances/{id}/simplified-tags", get_simplified_tags, methods=["GET"]),
    Route("/instances/{id}/header", get_header, methods=["GET"]),
]
