"""``/system``, ``/statistics``, ``/plugins``, ``/changes``, ``/exports``, ``/tools/now``."""

from __future__ import annotations

import time
from functools import partial

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isengard_sdk.http import run_blocking
from isengard_sdk.types import ChangeType

from ..errors import UnknownResource
from ..index.schema import SCHEMA_VERSION
from ..version import ORTHANC_API_VERSION, ORTHANC_COMPATIBLE_VERSION, __version__
from .responses import OrthancJSON, kernel_of, query_flag, query_int

MB = 1024 * 1024


async def get_system(request: Request) -> Response:
    k = kernel_of(request)
    s = k.settings
    return OrthancJSON({
        "ApiVersion": ORTHANC_API_VERSION,
        "CheckRevisions": False,
        "DatabaseBackendPlugin": None,
        "DatabaseVersion": SCHEMA_VERSION,
        "DicomAet": s.dicom.aet,
        "DicomPort": k.server_info.dicom_port,
        "HttpPort": request.url.port or s.http.port,
        "IsHttpServerSecure": True,
        "Name": s.name,
        "PluginsEnabled": True,
        "StorageAreaPlugin": k.storage_plugin,
        "StorageCompression": s.storage.compression,
        "OverwriteInstances": s.overwrite_instances,
        # The Orthanc release whose API we implement (clients gate features on it) …
        "Version": ORTHANC_COMPATIBLE_VERSION,
        # … and who we really are.
        "Implementation": "Isengard",
        "ImplementationVersion": __version__,
    })


async def get_statistics(request: Request) -> Response:
    st = await run_blocking(request, kernel_of(request).index.statistics)
    return OrthancJSON({
        "CountInstances": st["instances"],
        "CountPatients": st["patients"],
        "CountSeries": st["series"],
        "CountStudies": st["studies"],
        "TotalDiskSize": str(st["disk_size"]),
        "TotalDiskSizeMB": st["disk_size"] // MB,
        "TotalUncompressedSize": str(st["uncompressed_size"]),
        "TotalUncompressedSizeMB": st["uncompressed_size"] // MB,
    })


async def list_plugins(request: Request) -> Response:
    return OrthancJSON([p["ID"] for p in kernel_of(request).plugins.describe()])


async def get_plugin(request: Request) -> Response:
    name = request.path_params["name"]
    for p in kernel_of(request).plugins.describe():
        if p["ID"] == name:
            return OrthancJSON(p)
    raise UnknownResource(f"no plugin named {name!r} is loaded")


# Orthanc 1.10 signals deletions to plugins (on_change here) but does not log them.
_HIDDEN_CHANGES = (ChangeType.DELETED,)


async def get_changes(request: Request) -> Response:
    index = kernel_of(request).index
    if query_flag(request, "last"):
        last = await run_blocking(request, partial(index.last_change, exclude=_HIDDEN_CHANGES))
        changes, _, _ = await run_blocking(
            request, partial(index.changes, last - 1, 1, exclude=_HIDDEN_CHANGES))
        return OrthancJSON({"Changes": [c.to_json() for c in changes], "Done": True,
                            "Last": last})
    since = query_int(request, "since", 0)
    limit = min(query_int(request, "limit", 100), 4000)
    changes, last, done = await run_blocking(
        request, partial(index.changes, since, limit, exclude=_HIDDEN_CHANGES))
    return OrthancJSON({"Changes": [c.to_json() for c in changes], "Done": done,
                        "Last": last})


async def delete_changes(request: Request) -> Response:
    await run_blocking(request, kernel_of(request).index.clear_log, "changes")
    return OrthancJSON({})


async def get_exports(request: Request) -> Response:
    index = kernel_of(request).index
    since = query_int(request, "since", 0)
    limit = min(query_int(request, "limit", 100), 4000)
    exports, last, done = await run_blocking(request, index.exports, since, limit)
    return OrthancJSON({"Done": done, "Exports": exports, "Last": last})


async def delete_exports(request: Request) -> Response:
    await run_blocking(request, kernel_of(request).index.clear_log, "exports")
    return OrthancJSON({})


async def tools_now(request: Request) -> Response:
    return Response(time.strftime("%Y%m%dT%H%M%S", time.gmtime()), media_type="text/plain")


async def tools_now_local(request: Request) -> Response:
    return Response(time.strftime("%Y%m%dT%H%M%S", time.localtime()), media_type="text/plain")


routes = [
    Route("/system", get_system),
    Route("/statistics", get_statistics),
    Route("/plugins", list_plugins),
    Route("/plugins/{name}", get_plugin),
    Route("/changes", get_changes, methods=["GET"]),
    Route("/changes", delete_changes, methods=["DELETE"]),
    Route("/exports", get_exports, methods=["GET"]),
    Route("/exports", delete_exports, methods=["DELETE"]),
    Route("/tools/now", tools_now),
    Route("/tools/now-local", tools_now_local),
]
