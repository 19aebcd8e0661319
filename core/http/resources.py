"""``/{patients|studies|series|instances}`` and everything below a resource that is not
specific to instances: details, relations, statistics, metadata, deletion."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isengard_sdk.http import run_blocking
from isengard_sdk.types import ResourceLevel

from ..errors import UnknownResource
from ..resources import resources_json
from ..user_data import read_metadata_name
from .responses import OrthancJSON, kernel_of, level_of, query_flag, query_int

MB = 1024 * 1024


async def list_resources(request: Request) -> Response:
    k = kernel_of(request)
    level = level_of(request)
    since = query_int(request, "since", 0)
    limit = query_int(request, "limit", 0)
    expand = query_flag(request, "expand")

    def work() -> list[Any]:
        ids = k.index.list_ids(level, since=since, limit=limit)
        if not expand:
            return ids
        return resources_json(k.index, k.index.rows_by_public(level, ids))

    return OrthancJSON(await run_blocking(request, work))


async def get_resource(request: Request) -> Response:
    k = kernel_of(request)
    level = level_of(request)

    def work() -> dict[str, Any]:
        return k.resource_json(k.row(level, request.path_params["id"]))

    return OrthancJSON(await run_blocking(request, work))


async def delete_resource(request: Request) -> Response:
    k = kernel_of(request)
    level = level_of(request)
    remaining = await run_blocking(request, k.delete, level, request.path_params["id"])
    body: dict[str, Any] = {"RemainingAncestor": None}
    if remaining is not None:
        body["RemainingAncestor"] = {
            "ID": remaining.public_id,
            "Path": f"/{remaining.level.plural}/{remaining.public_id}",
            "Type": remaining.level.title,
        }
    return OrthancJSON(body)


_RELATIVES = {"patient": ResourceLevel.PATIENT, "study": ResourceLevel.STUDY,
              "series": ResourceLevel.SERIES, "studies": ResourceLevel.STUDY,
              "instances": ResourceLevel.INSTANCE}


async def get_relative(request: Request) -> Response:
    """``/studies/{id}/patient`` (one ancestor) or ``/patients/{id}/instances`` (a list)."""
    k = kernel_of(request)
    level = level_of(request)
    name = request.path_params["relative"]
    target = _RELATIVES.get(name)
    # "series" is both an ancestor (of an instance) and a descendant list (of a study).
    single = name in ("patient", "study") or (name == "series" and
                                               level == ResourceLevel.INSTANCE)
    if target is None or (single and target >= level) or (not single and target <= level):
        raise UnknownResource(f"unknown URI {request.url.path}")

    def work() -> Any:
        row = k.row(level, request.path_params["id"])
        if single:
            ancestor = k.index.ancestor(row, target)
            if ancestor is None:
                raise UnknownResource(f"no {target.title.lower()} above {row.public_id}")
            return k.resource_json(ancestor)
        rows = k.index.descendants(row, target)
        if query_flag(request, "expand") or "expand" not in request.query_params:
            return resources_json(k.index, rows)
        return [r.public_id for r in rows]

    return OrthancJSON(await run_blocking(request, work))


async def get_statistics(request: Request) -> Response:
    k = kernel_of(request)
    level = level_of(request)

    def work() -> dict[str, Any]:
        row = k.row(level, request.path_params["id"])
        st = k.index.resource_statistics(row)
        body: dict[str, Any] = {}
        counts = st["counts"]
        if level <= ResourceLevel.SERIES:
            body["CountInstances"] = counts.get(3, 0)
        if level <= ResourceLevel.STUDY:
            body["CountSeries"] = counts.get(2, 0)
        if level == ResourceLevel.PATIENT:
            body["CountStudies"] = counts.get(1, 0)
        for key, value in (("DicomDiskSize", st["dicom_disk"]),
                           ("DicomUncompressedSize", st["dicom_uncompressed"]),
                           ("DiskSize", st["disk"]), ("UncompressedSize", st["uncompressed"])):
            body[key] = str(value)
            body[key + "MB"] = value // MB
        return dict(sorted(body.items()))

    return OrthancJSON(await run_blocking(request, work))


def _metadata(k: Any, row: Any) -> dict[str, str]:
    """Stored metadata, plus ``LastUpdate`` that Orthanc keeps as a metadata of patients,
    studies and series."""
    md: dict[str, str] = k.index.metadata(row.internal_id)
    if row.level != ResourceLevel.INSTANCE:
        md["LastUpdate"] = row.last_update
    known = len(_METADATA_ORDER)
    return dict(sorted(md.items(), key=lambda kv: (_METADATA_ORDER.get(kv[0], known), kv[0])))


# Orthanc lists metadata in the order of its MetadataType enumeration (then user ones).
_METADATA_ORDER = {name: i for i, name in enumerate((
    "IndexInSeries", "ReceptionDate", "RemoteAET", "ExpectedNumberOfInstances",
    "ModifiedFrom", "AnonymizedFrom", "LastUpdate", "Origin", "TransferSyntax",
    "SopClassUid", "RemoteIP", "CalledAET", "HttpUsername", "PixelDataOffset"))}


async def list_metadata(request: Request) -> Response:
    k = kernel_of(request)
    level = level_of(request)

    def work() -> Any:
        md = _metadata(k, k.row(level, request.path_params["id"]))
        return md if query_flag(request, "expand") else list(md)

    return OrthancJSON(await run_blocking(request, work))


async def get_metadata(request: Request) -> Response:
    k = kernel_of(request)
    level = level_of(request)
    # A user metadata may be read by its number too (/metadata/1024), as in Orthanc.
    name = read_metadata_name(request.path_params["name"], k.settings.user_metadata)

    def work() -> str:
        row = k.row(level, request.path_params["id"])
        md = _metadata(k, row)
        if name not in md:
            raise UnknownResource(f"{level.title.lower()} {row.public_id} has no metadata "
                                  f"{name!r}")
        return str(md[name])

    return Response(await run_blocking(request, work), media_type="text/plain")


routes = [
    Route("/{level}", list_resources, methods=["GET"]),
    Route("/{level}/{id}", get_resource, methods=["GET"]),
    Route("/{level}/{id}", delete_resource, methods=["DELETE"]),
    Route("/{level}/{id}/statistics", get_statistics, methods=["GET"]),
    Route("/{level}/{id}/metadata", list_metadata, methods=["GET"]),
    Route("/{level}/{id}/metadata/{name}", get_metadata, methods=["GET"]),
    Route("/{level}/{id}/{relative}", get_relative, methods=["GET"]),
]
