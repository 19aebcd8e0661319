"""Routes looked up by the shape of the path resolve every request as the flat list did."""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import BaseRoute, Match

from isengard.http.app import all_routes
from isengard.http.routing import RouteTable

_PARAM = re.compile(r"\{[^}]+\}")
METHODS = ("GET", "POST", "PUT", "DELETE")


def _resolve(routes: list[BaseRoute], method: str, path: str) -> tuple[Match, Any]:
    """Starlette's rule: the first full match, else the first partial one."""
    scope = {"type": "http", "method": method, "path": path, "root_path": "",
             "headers": [], "query_string": b""}
    partial = None
    for route in routes:
        match, child_scope = route.matches(scope)
        chosen = child_scope.get("route", route)
        if match is Match.FULL:
            return match, chosen
        if match is Match.PARTIAL and partial is None:
            partial = chosen
    return (Match.PARTIAL, partial) if partial is not None else (Match.NONE, None)


def _request_paths(routes: list[BaseRoute]) -> set[str]:
    paths = {"/", "/nowhere", "/instances/", "/tools", "/studies/x/y/z/w/v"}
    for route in routes:
        template = getattr(route, "path", "")
        for value in ("studies", "instances", "0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d",
                      "1", "a/b"):
            path = _PARAM.sub(value, template)
            paths |= {path, path.rstrip("/") + "/", path + "/extra"}
    return paths


def test_every_request_resolves_to_the_same_route(isengard_server):
    kernel = isengard_server.server.kernel
    plugin_routes = [route for _, route in kernel.plugins.collect("register_routes")]
    flat = all_routes(plugin_routes)
    table = RouteTable(flat)
    grouped: list[BaseRoute] = [table]
    assert len(table.candidates("/instances")) < 5 < len(flat)
    checked = 0
    for path in sorted(_request_paths(flat)):
        for method in METHODS:
            assert _resolve(grouped, method, path) == _resolve(flat, method, path), \
                (method, path)
            checked += 1
    assert checked > 1000


def test_tables_answer_404_405_and_parameters_over_http(isengard_server, dicom_factory):
    s = isengard_server
    assert s.get("/system").status_code == 200
    assert s.get("/nowhere").status_code == 404
    assert s.delete("/system").status_code == 405  # the path matches, not the method
    answer = s.upload(dicom_factory.instance())
    assert s.get(f"/instances/{answer['ID']}").json()["ID"] == answer["ID"]
    assert s.get(f"/studies/{answer['ParentStudy']}").status_code == 200
