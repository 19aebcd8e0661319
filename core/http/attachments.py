"""``/{level}/{id}/attachments``: the files attached to a resource, as Orthanc serves
them — ``dicom`` (the instance's file) and the user content types of the configuration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..index import AttachmentRow, ResourceRow
from ..storage import COMPRESSION_NONE
from ..user_data import DICOM
from .responses import OrthancJSON, kernel_of, level_of, query_flag

# What GET /{level}/{id}/attachments/{name} lists, as Orthanc 1.10 (which lists "uuid"
# without serving it; so does Isengard).
OPERATIONS = ["compress", "compressed-data", "compressed-md5", "compressed-size", "data",
              "info", "is-compressed", "md5", "size", "uncompress", "verify-md5", "uuid"]


def _row(request: Request) -> ResourceRow:
    return kernel_of(request).row(level_of(request), request.path_params["id"])


async def list_attachments(request: Request) -> Response:
    k = kernel_of(request)

    def work() -> Any:
        found = k.attachments.list(_row(request))
        return found if query_flag(request, "full") else list(found)

    return OrthancJSON(await run_in_threadpool(work))


def _attachment_route(answer: Callable[[int, AttachmentRow], Any]) -> Callable[..., Any]:
    """A GET route answering from the index record of one attachment."""

    async def endpoint(request: Request) -> Response:
        k = kernel_of(request)

        def work() -> Any:
            return answer(*k.attachments.get(_row(request), request.path_params["name"]))

        result = await run_in_threadpool(work)
        if isinstance(result, Response):
            return result
        if isinstance(result, (dict, list)):
            return OrthancJSON(result)
        return Response(str(result), media_type="text/plain")

    return endpoint


def _info(file_type: int, att: AttachmentRow) -> dict[str, Any]:
    return {"CompressedMD5": att.compressed_md5, "CompressedSize": att.compressed_size,
            "ContentType": file_type, "UncompressedMD5": att.uncompressed_md5,
            "UncompressedSize": att.uncompressed_size, "Uuid": att.uuid}


get_operations = _attachment_route(lambda t, a: OPERATIONS)
get_info = _attachment_route(_info)
get_size = _attachment_route(lambda t, a: a.uncompressed_size)
get_compressed_size = _attachment_route(lambda t, a: a.compressed_size)
get_md5 = _attachment_route(lambda t, a: a.uncompressed_md5)
get_compressed_md5 = _attachment_route(lambda t, a: a.compressed_md5)
get_is_compressed = _attachment_route(lambda t, a: int(a.compression != COMPRESSION_NONE))


async def get_data(request: Request) -> Response:
    k = kernel_of(request)

    def work() -> tuple[int, AttachmentRow, bytes]:
        return k.attachments.read(_row(request), request.path_params["name"])

    file_type, att, data = await run_in_threadpool(work)
    if file_type == DICOM:
        return Response(data, media_type="application/dicom",
                        headers={"Content-Disposition": f'filename="{att.uuid}.dcm"'})
    return Response(data, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'filename="{att.uuid}"'})


async def get_compressed_data(request: Request) -> Response:
    k = kernel_of(request)
    data = await run_in_threadpool(k.attachments.read_stored, _row(request),
                                   request.path_params["name"])
    return Response(data, media_type="application/octet-stream")


async def put_attachment(request: Request) -> Response:
    k = kernel_of(request)
    body = await request.body()
    await run_in_threadpool(k.attachments.put, _row(request), request.path_params["name"],
                            body)
    return OrthancJSON({})


async def delete_attachment(request: Request) -> Response:
    k = kernel_of(request)
    await run_in_threadpool(k.attachments.delete, _row(request), request.path_params["name"])
    return Response(b"", media_type="text/plain")


def _operation(method: str) -> Callable[..., Any]:
    async def endpoint(request: Request) -> Response:
        k = kernel_of(request)

        def work() -> None:
            row = _row(request)
            name = request.path_params["name"]
            if method == "verify-md5":
                k.attachments.verify_md5(row, name)
            else:
                k.attachments.set_compression(row, name, method == "compress")

        await run_in_threadpool(work)
        return OrthancJSON({})

    return endpoint


_BASE = "/{level}/{id}/attachments"
routes = [
    Route(_BASE, list_attachments, methods=["GET"]),
    Route(_BASE + "/{name}", get_operations, methods=["GET"]),
    Route(_BASE + "/{name}", put_attachment, methods=["PUT"]),
    Route(_BASE + "/{name}", delete_attachment, methods=["DELETE"]),
    Route(_BASE + "/{name}/data", get_data, methods=["GET"]),
    Route(_BASE + "/{name}/compressed-data", get_compressed_data, methods=["GET"]),
    Route(_BASE + "/{name}/info", get_info, methods=["GET"]),
    Route(_BASE + "/{name}/size", get_size, methods=["GET"]),
    Route(_BASE + "/{name}/compressed-size", get_compressed_size, methods=["GET"]),
    Route(_BASE + "/{name}/md5", get_md5, methods=["GET"]),
    Route(_BASE + "/{name}/compressed-md5", get_compressed_md5, methods=["GET"]),
    Route(_BASE + "/{name}/is-compressed", get_is_compressed, methods=["GET"]),
    *(Route(_BASE + "/{name}/" + op, _operation(op), methods=["POST"])
      for op in ("compress", "uncompress", "verify-md5")),
]
