"""The REST routes of user metadata, attachments and labels (see the package doc)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isengard_sdk import (
    AttachmentInfo,
    HttpError,
    KernelServices,
    OrthancJSON,
    ResourceLevel,
    query_flag,
)
from isengard_sdk.http import run_blocking

__all__ = ["OPERATIONS", "build_routes"]

# What GET /{level}/{id}/attachments/{name} lists, as Orthanc 1.10 (which lists "uuid"
# without serving it; so does Isengard).
OPERATIONS = ["compress", "compressed-data", "compressed-md5", "compressed-size", "data",
              "info", "is-compressed", "md5", "size", "uncompress", "verify-md5", "uuid"]
DICOM = 1  # Orthanc's content type of the instance's own file
_LEVELS = {level.plural: level for level in ResourceLevel}

Endpoint = Callable[[Request], Awaitable[Response]]


def _target(request: Request) -> tuple[ResourceLevel, str]:
    level = _LEVELS.get(request.path_params["level"])
    if level is None:
        raise HttpError(404, f"unknown URI {request.url.path}")
    return level, request.path_params["id"]


def _empty() -> Response:
    return Response(b"", media_type="text/plain")  # Orthanc: 200 with an empty text body


def _info_json(info: AttachmentInfo) -> dict[str, Any]:
    return {"CompressedMD5": info.compressed_md5, "CompressedSize": info.compressed_size,
            "ContentType": info.content_type, "UncompressedMD5": info.uncompressed_md5,
            "UncompressedSize": info.uncompressed_size, "Uuid": info.uuid}


def build_routes(services: KernelServices) -> list[Route]:
    """The routes, bound to the kernel's services."""

    # -- metadata --------------------------------------------------------------------

    async def put_metadata(request: Request) -> Response:
        level, rid = _target(request)
        try:
            value = (await request.body()).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HttpError(400, f"the value of a metadata must be UTF-8 text: {exc}") from exc
        await run_blocking(request, services.set_user_metadata, level, rid,
                           request.path_params["name"], value)
        return _empty()

    async def delete_metadata(request: Request) -> Response:
        level, rid = _target(request)
        await run_blocking(request, services.delete_user_metadata, level, rid,
                           request.path_params["name"])
        return _empty()

    # -- labels ----------------------------------------------------------------------

    async def list_labels(request: Request) -> Response:
        return OrthancJSON(await run_blocking(request, services.labels, *_target(request)))

    async def get_label(request: Request) -> Response:
        """200 (empty) when the resource has the label, 404 otherwise (Orthanc 1.12)."""
        level, rid = _target(request)
        label = request.path_params["label"]
        if label not in await run_blocking(request, services.labels, level, rid):
            raise HttpError(404, f"{level.title.lower()} {rid} has no label {label!r}")
        return _empty()

    async def put_label(request: Request) -> Response:
        level, rid = _target(request)
        await run_blocking(request, services.add_label, level, rid, request.path_params["label"])
        return _empty()

    async def delete_label(request: Request) -> Response:
        level, rid = _target(request)
        await run_blocking(request, services.remove_label, level, rid, request.path_params["label"])
        return _empty()

    async def all_labels(request: Request) -> Response:
        return OrthancJSON(await run_blocking(request, services.all_labels))

    # -- attachments -----------------------------------------------------------------

    async def list_attachments(request: Request) -> Response:
        found = await run_blocking(request, services.attachments, *_target(request))
        return OrthancJSON(found if query_flag(request, "full") else list(found))

    def info_route(answer: Callable[[AttachmentInfo], Any]) -> Endpoint:
        """A GET route answering from the index record of one attachment."""

        async def endpoint(request: Request) -> Response:
            level, rid = _target(request)
            info = await run_blocking(request, services.attachment_info, level, rid,
                                      request.path_params["name"])
            result = answer(info)
            if isinstance(result, (dict, list)):
                return OrthancJSON(result)
            return Response(str(result), media_type="text/plain")

        return endpoint

    async def get_data(request: Request) -> Response:
        level, rid = _target(request)
        name = request.path_params["name"]

        def work() -> tuple[AttachmentInfo, bytes]:
            return (services.attachment_info(level, rid, name),
                    services.read_attachment(level, rid, name))

        info, data = await run_blocking(request, work)
        if info.content_type == DICOM:
            return Response(data, media_type="application/dicom",
                            headers={"Content-Disposition": f'filename="{info.uuid}.dcm"'})
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'filename="{info.uuid}"'})

    async def get_compressed_data(request: Request) -> Response:
        data = await run_blocking(
            request, lambda: services.read_attachment(*_target(request),
                                                      request.path_params["name"],
                                                      as_stored=True))
        return Response(data, media_type="application/octet-stream")

    async def put_attachment(request: Request) -> Response:
        body = await request.body()
        level, rid = _target(request)
        await run_blocking(request, services.put_attachment, level, rid,
                           request.path_params["name"], body)
        return OrthancJSON({})

    async def delete_attachment(request: Request) -> Response:
        level, rid = _target(request)
        await run_blocking(request, services.delete_attachment, level, rid,
                           request.path_params["name"])
        return _empty()

    def operation(method: str) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            level, rid = _target(request)
            name = request.path_params["name"]
            if method == "verify-md5":
                await run_blocking(request, services.verify_attachment, level, rid, name)
            else:
                await run_blocking(request, services.set_attachment_compression, level, rid,
                                   name, method == "compress")
            return OrthancJSON({})

        return endpoint

    base = "/{level}/{id}/attachments"
    return [
        Route("/{level}/{id}/metadata/{name}", put_metadata, methods=["PUT"]),
        Route("/{level}/{id}/metadata/{name}", delete_metadata, methods=["DELETE"]),
        Route("/tools/labels", all_labels, methods=["GET"]),
        Route("/{level}/{id}/labels", list_labels, methods=["GET"]),
        Route("/{level}/{id}/labels/{label}", get_label, methods=["GET"]),
        Route("/{level}/{id}/labels/{label}", put_label, methods=["PUT"]),
        Route("/{level}/{id}/labels/{label}", delete_label, methods=["DELETE"]),
        Route(base, list_attachments, methods=["GET"]),
        Route(base + "/{name}", info_route(lambda i: OPERATIONS), methods=["GET"]),
        Route(base + "/{name}", put_attachment, methods=["PUT"]),
        Route(base + "/{name}", delete_attachment, methods=["DELETE"]),
        Route(base + "/{name}/data", get_data, methods=["GET"]),
        Route(base + "/{name}/compressed-data", get_compressed_data, methods=["GET"]),
        Route(base + "/{name}/info", info_route(_info_json), methods=["GET"]),
        Route(base + "/{name}/size", info_route(lambda i: i.uncompressed_size),
              methods=["GET"]),
        Route(base + "/{name}/compressed-size", info_route(lambda i: i.compressed_size),
              methods=["GET"]),
        Route(base + "/{name}/md5", info_route(lambda i: i.uncompressed_md5),
              methods=["GET"]),
        Route(base + "/{name}/compressed-md5", info_route(lambda i: i.compressed_md5),
              methods=["GET"]),
        Route(base + "/{name}/is-compressed", info_route(lambda i: int(i.compressed)),
              methods=["GET"]),
        *(Route(base + "/{name}/" + op, operation(op), methods=["POST"])
          for op in ("compress", "uncompress", "verify-md5")),
    ]
