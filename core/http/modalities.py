"""``/modalities`` and ``/queries``: Isengard as a DICOM client, over Orthanc's REST API."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from pydicom.dataset import Dataset
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isengard_sdk.http import run_blocking

from ..errors import BadRequest, UnknownResource
from ..find import resolve_keyword
from ..scu import echo, find
from ..tags_json import TagsFormat, dataset_to_json
from ..transfers import MOVE_JOB, STORE_JOB, resolve_instances
from .jobs import submit_or_run
from .responses import OrthancJSON, kernel_of, query_flag

_LEVELS = {"patient": "PATIENT", "study": "STUDY", "series": "SERIES", "instance": "IMAGE",
           "image": "IMAGE"}
_UNIQUE = {"PATIENT": ["PatientID"], "STUDY": ["StudyInstanceUID"],
           "SERIES": ["StudyInstanceUID", "SeriesInstanceUID"],
           "IMAGE": ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]}
_CHILD = {"query-studies": "STUDY", "query-series": "SERIES", "query-instances": "IMAGE"}


async def _body(request: Request, default: Any = None) -> Any:
    raw = await request.body()
    if not raw.strip():
        return default
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace").strip()  # a bare id or AE title


def _timeout(k: Any, modality: Any, body: Any) -> int:
    if isinstance(body, dict) and isinstance(body.get("Timeout"), int) and body["Timeout"] > 0:
        return int(body["Timeout"])
    return modality.timeout or k.settings.dicom.timeout


def _local_aet(k: Any, body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("LocalAet"), str) and body["LocalAet"]:
        return str(body["LocalAet"])
    return str(k.settings.dicom.aet)


# -- /modalities --------------------------------------------------------------------------


async def list_modalities(request: Request) -> Response:
    modalities = await run_blocking(request, kernel_of(request).modalities.all)
    if query_flag(request, "expand"):
        return OrthancJSON({name: m.to_json() for name, m in modalities.items()})
    return OrthancJSON(list(modalities))


async def get_modality(request: Request) -> Response:
    await run_blocking(request, kernel_of(request).modalities.get, request.path_params["id"])
    return OrthancJSON(["configuration", "echo", "move", "query", "store"])


async def get_configuration(request: Request) -> Response:
    modality = await run_blocking(request, kernel_of(request).modalities.get,
                                  request.path_params["id"])
    return OrthancJSON(modality.to_json())


async def put_modality(request: Request) -> Response:
    body = await _body(request)
    await run_blocking(request, kernel_of(request).modalities.put, request.path_params["id"], body)
    return OrthancJSON({})


async def delete_modality(request: Request) -> Response:
    await run_blocking(request, kernel_of(request).modalities.delete, request.path_params["id"])
    return OrthancJSON({})


async def echo_modality(request: Request) -> Response:
    k = kernel_of(request)
    body = await _body(request, {})
    modality = await run_blocking(request, k.modalities.get, request.path_params["id"])
    await run_blocking(request, echo, modality, _local_aet(k, body), _timeout(k, modality, body))
    return OrthancJSON({})


async def store_to_modality(request: Request) -> Response:
    k = kernel_of(request)
    body = await _body(request)
    name = request.path_params["id"]
    if isinstance(body, str):
        body = {"Resources": [body]}
    elif isinstance(body, list):
        body = {"Resources": body}
    if not isinstance(body, dict) or not isinstance(body.get("Resources"), list) or \
            not all(isinstance(r, str) for r in body["Resources"]):
        raise BadRequest("the body must be a resource id, a list of ids, or "
                         "{\"Resources\": [ids…]}")
    await run_blocking(request, k.modalities.get, name)
    await run_blocking(request, resolve_instances, k, body["Resources"])  # 404 before any job
    parameters = {"Modality": name, "Resources": body["Resources"],
                  "LocalAet": _local_aet(k, body),
                  "Permissive": bool(body.get("Permissive", False)),
                  "MoveOriginatorAet": body.get("MoveOriginatorAet", ""),
                  "MoveOriginatorID": body.get("MoveOriginatorID", 0),
                  "Timeout": body.get("Timeout", 0)}
    return OrthancJSON(await run_blocking(request, submit_or_run, request, STORE_JOB,
                                          parameters, body))


def _move_parameters(k: Any, name: str, level: str, resources: list[dict[str, str]],
                     body: dict[str, Any]) -> dict[str, Any]:
    target = body.get("TargetAet") or k.settings.dicom.aet
    if not isinstance(target, str):
        raise BadRequest("'TargetAet' must be an AE title")
    return {"Modality": name, "Level": level, "Resources": resources,
            "TargetAet": target, "LocalAet": _local_aet(k, body),
            "Timeout": body.get("Timeout", 0)}


async def move_from_modality(request: Request) -> Response:
    k = kernel_of(request)
    body = await _body(request)
    name = request.path_params["id"]
    if not isinstance(body, dict) or "Level" not in body or \
            not isinstance(body.get("Resources"), list):
        raise BadRequest("the body must be {\"Level\": …, \"Resources\": [{tag: value}…]}")
    level = _LEVELS.get(str(body["Level"]).lower())
    if level is None:
        raise BadRequest(f"unknown level {body['Level']!r}")
    await run_blocking(request, k.modalities.get, name)
    resources = [{resolve_keyword(t): str(v) for t, v in r.items()} for r in body["Resources"]]
    parameters = _move_parameters(k, name, level, resources, body)
    return OrthancJSON(await run_blocking(request, submit_or_run, request, MOVE_JOB, parameters,
                                          body))


# -- queries --------------------------------------------------------------------------------


def _run_query(k: Any, name: str, level: str, query: dict[str, str], body: Any) -> str:
    modality = k.modalities.get(name)
    answers = find(modality, _local_aet(k, body), _timeout(k, modality, body), level, query)
    query_id = str(uuid.uuid4())
    with k.index.transaction() as conn:
        conn.execute("INSERT INTO queries(id, modality, level, query, answers, created) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                     (query_id, name, level, json.dumps(query),
                      json.dumps([a.to_json_dict() for a in answers]), time.time()))
    return query_id


async def query_modality(request: Request) -> Response:
    k = kernel_of(request)
    body = await _body(request)
    if not isinstance(body, dict) or "Level" not in body:
        raise BadRequest("the body must be {\"Level\": …, \"Query\": {tag: value}}")
    level = _LEVELS.get(str(body["Level"]).lower())
    if level is None:
        raise BadRequest(f"unknown level {body['Level']!r} (Patient, Study, Series, Instance)")
    raw_query = body.get("Query", {})
    if not isinstance(raw_query, dict):
        raise BadRequest("'Query' must be an object of tag: value")
    query = {resolve_keyword(t): str(v) for t, v in raw_query.items()}
    query_id = await run_blocking(request, _run_query, k, request.path_params["id"], level,
                                  query, body)
    return OrthancJSON({"ID": query_id, "Path": f"/queries/{query_id}"})


def _query_row(k: Any, query_id: str) -> tuple[str, str, dict[str, str], list[Any]]:
    row = k.index.reader().execute(
        "SELECT modality, level, query, answers FROM queries WHERE id = ?",
        (query_id,)).fetchone()
    if row is None:
        raise UnknownResource(f"unknown query {query_id}")
    return row[0], row[1], json.loads(row[2]), json.loads(row[3])


async def list_queries(request: Request) -> Response:
    rows = await run_blocking(request, lambda: kernel_of(request).index.reader().execute(
        "SELECT id FROM queries ORDER BY created").fetchall())
    return OrthancJSON([r[0] for r in rows])


async def get_query(request: Request) -> Response:
    await run_blocking(request, _query_row, kernel_of(request), request.path_params["id"])
    return OrthancJSON(["answers", "level", "modality", "query", "retrieve"])


async def query_part(request: Request) -> Response:
    k = kernel_of(request)
    modality, level, query, answers = await run_blocking(
        request, _query_row, k, request.path_params["id"])
    part = request.path_params["part"]
    if part == "answers":
        if query_flag(request, "expand"):
            fmt: TagsFormat = "simplify" if query_flag(request, "simplify") else "full"
            return OrthancJSON([dataset_to_json(Dataset.from_json(a), fmt) for a in answers])
        return OrthancJSON([str(i) for i in range(len(answers))])
    if part == "level":
        return Response({"PATIENT": "Patient", "STUDY": "Study", "SERIES": "Series",
                         "IMAGE": "Instance"}[level], media_type="text/plain")
    if part == "modality":
        return Response(modality, media_type="text/plain")
    if part == "query":
        return OrthancJSON(query)
    raise UnknownResource(f"unknown URI {request.url.path}")


async def delete_query(request: Request) -> Response:
    k = kernel_of(request)
    await run_blocking(request, _query_row, k, request.path_params["id"])

    def work() -> None:
        with k.index.transaction() as conn:
            conn.execute("DELETE FROM queries WHERE id = ?", (request.path_params["id"],))

    await run_blocking(request, work)
    return OrthancJSON({})


def _answer(answers: list[Any], index: str) -> Dataset:
    if not index.isdigit() or int(index) >= len(answers):
        raise UnknownResource(f"no answer {index}")
    return Dataset.from_json(answers[int(index)])


async def answer_content(request: Request) -> Response:
    _, _, _, answers = await run_blocking(request, _query_row, kernel_of(request),
                                          request.path_params["id"])
    ds = _answer(answers, request.path_params["n"])
    fmt: TagsFormat = "simplify" if query_flag(request, "simplify") else (
        "short" if query_flag(request, "short") else "full")
    return OrthancJSON(dataset_to_json(ds, fmt))


def _identifiers(level: str, ds: Dataset) -> dict[str, str]:
    return {key: str(ds.get(key, "")) for key in _UNIQUE[level] if ds.get(key)}


async def retrieve(request: Request) -> Response:
    """``/queries/{id}/retrieve`` and ``/queries/{id}/answers/{n}/retrieve``: C-MOVE."""
    k = kernel_of(request)
    modality, level, _, answers = await run_blocking(request, _query_row, k,
                                                     request.path_params["id"])
    body = await _body(request, {})
    if isinstance(body, str):
        body = {"TargetAet": body}
    if not isinstance(body, dict):
        raise BadRequest("the body must be a target AE title or {\"TargetAet\": …}")
    selected = ([_answer(answers, request.path_params["n"])] if "n" in request.path_params
                else [Dataset.from_json(a) for a in answers])
    resources = [_identifiers(level, ds) for ds in selected]
    parameters = _move_parameters(k, modality, level, resources, body)
    return OrthancJSON(await run_blocking(request, submit_or_run, request, MOVE_JOB, parameters,
                                          body))


async def child_query(request: Request) -> Response:
    """``/queries/{id}/answers/{n}/query-studies|series|instances``: query one level down."""
    k = kernel_of(request)
    modality, level, _, answers = await run_blocking(request, _query_row, k,
                                                     request.path_params["id"])
    child = _CHILD.get(request.path_params["child"])
    if child is None:
        raise UnknownResource(f"unknown URI {request.url.path}")
    body = await _body(request, {})
    extra = body.get("Query", {}) if isinstance(body, dict) else {}
    query = {**_identifiers(level, _answer(answers, request.path_params["n"])),
             **{resolve_keyword(t): str(v) for t, v in extra.items()}}
    query_id = await run_blocking(request, _run_query, k, modality, child, query, body)
    return OrthancJSON({"ID": query_id, "Path": f"/queries/{query_id}"})


routes = [
    Route("/modalities", list_modalities, methods=["GET"]),
    Route("/modalities/{id}", get_modality, methods=["GET"]),
    Route("/modalities/{id}", put_modality, methods=["PUT"]),
    Route("/modalities/{id}", delete_modality, methods=["DELETE"]),
    Route("/modalities/{id}/configuration", get_configuration, methods=["GET"]),
    Route("/modalities/{id}/echo", echo_modality, methods=["POST"]),
    Route("/modalities/{id}/store", store_to_modality, methods=["POST"]),
    Route("/modalities/{id}/query", query_modality, methods=["POST"]),
    Route("/modalities/{id}/move", move_from_modality, methods=["POST"]),
    Route("/queries", list_queries, methods=["GET"]),
    Route("/queries/{id}", get_query, methods=["GET"]),
    Route("/queries/{id}", delete_query, methods=["DELETE"]),
    Route("/queries/{id}/retrieve", retrieve, methods=["POST"]),
    Route("/queries/{id}/answers/{n}/content", answer_content, methods=["GET"]),
    Route("/queries/{id}/answers/{n}/retrieve", retrieve, methods=["POST"]),
    Route("/queries/{id}/answers/{n}/{child}", child_query, methods=["POST"]),
    Route("/queries/{id}/{part}", query_part, methods=["GET"]),
]
