"""``POST /tools/find`` and ``POST /tools/lookup``."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isengard_sdk.http import run_blocking
from isengard_sdk.types import ResourceLevel

from ..errors import BadRequest
from ..resources import resources_json
from ..user_data import check_label
from .responses import OrthancJSON, kernel_of


async def _json_body(request: Request) -> Any:
    body = await request.body()
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc


def _int_field(body: dict[str, Any], name: str) -> int:
    value = body.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"'{name}' must be a positive integer, got {value!r}")
    return value


async def find(request: Request) -> Response:
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise BadRequest("the body of /tools/find must be a JSON object")
    if "Level" not in body or "Query" not in body:
        raise BadRequest("/tools/find needs 'Level' and 'Query' in its body")
    if not isinstance(body["Level"], str):
        raise BadRequest("'Level' must be Patient, Study, Series or Instance")
    try:
        level = ResourceLevel.from_name(body["Level"])
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    query = body["Query"]
    if not isinstance(query, dict):
        raise BadRequest("'Query' must be a JSON object of tag: value")
    for key, value in query.items():
        if not isinstance(value, str):
            raise BadRequest(f"the value of {key!r} in 'Query' must be a string")
    limit = _int_field(body, "Limit")
    since = _int_field(body, "Since")
    case_sensitive = body.get("CaseSensitive")
    if case_sensitive is not None and not isinstance(case_sensitive, bool):
        raise BadRequest("'CaseSensitive' must be true or false")
    expand = bool(body.get("Expand", False))
    labels = body.get("Labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise BadRequest("'Labels' must be a list of strings")
    for label in labels:
        check_label(label)
    constraint = body.get("LabelsConstraint", "All")
    if constraint not in ("All", "Any", "None"):
        raise BadRequest(f"'LabelsConstraint' must be All, Any or None, got {constraint!r}")
    k = kernel_of(request)

    def work() -> list[Any]:
        rows = k.find(level, query, case_sensitive=case_sensitive, since=since, limit=limit,
                      rest_api=True, labels=labels, labels_constraint=constraint)
        if expand:
            return resources_json(k.index, rows)
        return [r.public_id for r in rows]

    return OrthancJSON(await run_blocking(request, work))


async def lookup(request: Request) -> Response:
    value = (await request.body()).decode("utf-8", "replace").strip()
    k = kernel_of(request)
    rows = await run_blocking(request, k.index.lookup_identifier, value)
    return OrthancJSON([{"ID": r.public_id, "Path": f"/{r.level.plural}/{r.public_id}",
                         "Type": r.level.title} for r in rows])


routes = [
    Route("/tools/find", find, methods=["POST"]),
    Route("/tools/lookup", lookup, methods=["POST"]),
]
