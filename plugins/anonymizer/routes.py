"""The REST routes, as Orthanc 1.10 serves them.

- ``POST /{patients|studies|series}/{id}/{modify|anonymize}`` — a ``ResourceModification``
  job: synchronous by default (the answer is the job's ``Content``: ``ID``, ``Path``,
  ``PatientID``, ``Type`` …), or ``{"ID", "Path"}`` of the job with
  ``"Asynchronous": true`` / ``"Synchronous": false``;
- ``POST /instances/{id}/{modify|anonymize}`` — the modified file itself
  (``application/dicom``), not stored; ``KeepSource`` and ``Asynchronous`` do not apply;
- ``GET /tools/generate-uid?level=patient|study|series|instance``.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from isengard_sdk import Context, HttpError, ResourceLevel
from isengard_sdk.http import run_blocking

from .apply import UidMapper, modify_file, new_patient_id, new_uid
from .jobs import JOB_TYPE, job_parameters, transcoded
from .request import (
    PATIENT_NAME,
    Modification,
    Options,
    needs_patient_name,
    parse_body,
    parse_request,
)

__all__ = ["build_routes"]

ANONYMIZATION_SEQUENCE = "AnonymizationSequence"


class ModificationRoutes:
    """The endpoints, bound to the plugin's context."""

    def __init__(self, context: Context):
        self.context = context

    def _prepare(self, raw: bytes, level: ResourceLevel, resource_id: str, anonymize: bool
                 ) -> tuple[Modification, Options]:
        """Parse and check the request (blocking: looks the resource up, may draw the
        next ``Anonymized<N>``)."""
        services = self.context.services
        body = parse_body(raw)
        if services.get_resource(level, resource_id) is None:
            raise HttpError(404, f"unknown {level.title.lower()} {resource_id}: check the "
                                 f"identifier (GET /{level.plural})",
                            orthanc=(17, "Unknown resource"))
        patient_uuid = new_patient_id()
        mod, options = parse_request(body, anonymize=anonymize, level=level,
                                     patient_uuid=patient_uuid)
        if needs_patient_name(mod, patient_uuid):
            number = services.increment_sequence(ANONYMIZATION_SEQUENCE)
            mod.replacements[PATIENT_NAME] = f"Anonymized{number}"
        return mod, options

    def _instance(self, raw: bytes, instance_id: str, anonymize: bool) -> bytes:
        services = self.context.services
        mod, options = self._prepare(raw, ResourceLevel.INSTANCE, instance_id, anonymize)
        try:
            data = services.read_instance_file(instance_id)
        except KeyError as exc:
            raise HttpError(404, f"unknown instance {instance_id}",
                            orthanc=(17, "Unknown resource")) from exc
        modified = modify_file(data, mod, UidMapper(secrets.token_hex(16)))
        try:
            return transcoded(services, modified, options.transcode)
        except ValueError as exc:
            raise HttpError(400, str(exc), orthanc=(8, "Bad request")) from exc

    def _resource(self, raw: bytes, level: ResourceLevel, resource_id: str,
                  anonymize: bool) -> dict[str, Any]:
        services = self.context.services
        mod, options = self._prepare(raw, level, resource_id, anonymize)
        parameters = job_parameters(level, resource_id, mod, secrets.token_hex(16),
                                    keep_source=options.keep_source,
                                    transcode=options.transcode)
        if options.asynchronous:
            job_id = services.submit_job(JOB_TYPE, parameters, priority=options.priority)
            return {"ID": job_id, "Path": f"/jobs/{job_id}"}
        job = services.run_job(JOB_TYPE, parameters, priority=options.priority)
        if job.get("State") != "Success":
            raise HttpError(500, f"the {'anonymization' if anonymize else 'modification'} "
                                 f"of {level.title.lower()} {resource_id} failed: "
                                 f"{job.get('ErrorDetails') or job.get('ErrorDescription')} "
                                 f"(job {job.get('ID')})")
        content: dict[str, Any] = job["Content"]
        return content

    async def modify(self, request: Request, level: ResourceLevel, anonymize: bool
                     ) -> Response:
        raw = await request.body()
        resource_id = request.path_params["id"]
        if level == ResourceLevel.INSTANCE:
            data = await run_blocking(request, self._instance, raw, resource_id, anonymize)
            return Response(data, media_type="application/dicom")
        answer = await run_blocking(request, self._resource, raw, level, resource_id, anonymize)
        return JSONResponse(answer)

    async def generate_uid(self, request: Request) -> Response:
        """``GET /tools/generate-uid?level=…``: a PatientID (UUID) or a UID."""
        level = request.query_params.get("level", "")
        if level.lower() == "patient":
            return PlainTextResponse(new_patient_id())
        if level.lower() in ("study", "series", "instance"):
            return PlainTextResponse(new_uid())
        # Orthanc answers 404 here (with an empty body); Isengard explains.
        raise HttpError(404, "give the level of the identifier to generate: "
                             "/tools/generate-uid?level=patient|study|series|instance",
                        orthanc=(3, "Parameter out of range"))


def build_routes(context: Context) -> list[Route]:
    endpoints = ModificationRoutes(context)

    def modify(level: ResourceLevel, anonymize: bool) -> Any:
        async def endpoint(request: Request) -> Response:
            return await endpoints.modify(request, level, anonymize)
        return endpoint

    routes = [Route(f"/{level.plural}/{{id}}/{action}", modify(level, action == "anonymize"),
                    methods=["POST"])
              for level in ResourceLevel for action in ("modify", "anonymize")]
    routes.append(Route("/tools/generate-uid", endpoints.generate_uid, methods=["GET"]))
    return routes
