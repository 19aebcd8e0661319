"""``POST /tools/create-dicom``, ``GET /instances/{id}/pdf`` and
``GET /tools/dicom-conformance``."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isengard_sdk.errors import HttpError
from isengard_sdk.http import run_blocking
from isengard_sdk.types import ResourceLevel

from ..conformance import conformance_statement
from ..create_dicom import build_instance, extract_pdf
from ..dicom_file import read_dataset
from ..errors import BadRequest, UnknownResource
from ..ingest import Origin
from ..kernel import Kernel
from .instances import _answer
from .responses import OrthancJSON, kernel_of


async def create_dicom(request: Request) -> Response:
    k = kernel_of(request)
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body of /tools/create-dicom is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("the body of /tools/create-dicom must be a JSON object")
    client = request.client
    origin = Origin(kind="RestApi", remote_ip=client.host if client else "",
                    http_username=request.headers.get("x-isengard-user", ""))

    def decode_image(data: bytes, media_type: str) -> dict[str, Any] | None:
        answer = k.plugins.first("decode_image", data=data, media_type=media_type)
        return answer[1] if answer else None

    def work() -> dict[str, Any]:
        parent = None
        if "Tags" in body and body.get("Parent") is not None:
            parent = _parent(k, body["Parent"])
        data = build_instance(body, parent, decode_image)
        outcome, _ = k.ingest_path.ingest(data, origin)
        return _answer(outcome)

    return OrthancJSON(await run_blocking(request, work))


def _parent(k: Kernel, public_id: Any) -> tuple[ResourceLevel, Any]:
    """The level of the parent and the header of one of its instances."""
    row = k.index.lookup_any(public_id) if isinstance(public_id, str) else None
    if row is None or row.level == ResourceLevel.INSTANCE:
        raise HttpError(400, f"no patient, study or series {public_id!r} to attach the new "
                        "instance to", orthanc=(2024, "Trying to attach a new DICOM "
                                                "instance to an inexistent resource"))
    instance = k.index.first_instance(row)
    if instance is None:
        raise UnknownResource(f"{row.level.title.lower()} {row.public_id} has no instance")
    return row.level, k.instance_dataset(instance)[0]


async def get_pdf(request: Request) -> Response:
    k = kernel_of(request)

    def work() -> bytes:
        row = k.row(ResourceLevel.INSTANCE, request.path_params["id"])
        pdf = extract_pdf(read_dataset(k.read_file(row)))
        if pdf is None:
            raise UnknownResource(f"instance {row.public_id} is not an Encapsulated PDF")
        return pdf

    return Response(await run_blocking(request, work), media_type="application/pdf")


async def dicom_conformance(request: Request) -> Response:
    return Response(conformance_statement(), media_type="text/plain")


routes = [
    Route("/tools/create-dicom", create_dicom, methods=["POST"]),
    Route("/instances/{id}/pdf", get_pdf, methods=["GET"]),
    Route("/tools/dicom-conformance", dicom_conformance, methods=["GET"]),
]
