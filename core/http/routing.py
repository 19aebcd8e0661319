"""Routes looked up by the first segment of the path.

Starlette tries the routes one after the other, a regular expression each, and takes
the first that matches. With the plugins' routes first, Isengard has about a hundred:
resolving ``POST /instances`` took 38 µs, ``GET /studies/{id}`` 92 µs — a tenth of a
``/tools/find`` answer. :func:`by_first_segment` groups each run of consecutive routes
whose path starts with a literal segment (``/instances/...``, ``/tools/...``) into one
:class:`SegmentTable` that only tries the routes of the request's first segment. A route
starting with a parameter (``/{level}/{id}/...``) stays where it was, between the
tables, so the first matching route in the original order still wins, and so does the
first that matches the path but not the method (Starlette's 405).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match, Mount, NoMatchFound, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

__all__ = ["SegmentTable", "by_first_segment"]


def by_first_segment(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """``routes`` with each run of literal-first-segment routes made a table."""
    grouped: list[BaseRoute] = []
    run: list[BaseRoute] = []
    for route in routes:
        if _literal_segment(route) is None:
            if run:
                grouped.append(SegmentTable(run))
                run = []
            grouped.append(route)
        else:
            run.append(route)
    if run:
        grouped.append(SegmentTable(run))
    return grouped


class SegmentTable(BaseRoute):
    """Routes whose paths all start with a literal segment, in their original order."""

    def __init__(self, routes: Sequence[BaseRoute]):
        self.routes = list(routes)
        self.table: dict[str, list[BaseRoute]] = {}
        for route in self.routes:
            self.table.setdefault(_literal_segment(route) or "", []).append(route)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = _route_path(scope)
        candidates = self.table.get(path[1:].split("/", 1)[0])
        if not candidates:
            return Match.NONE, {}
        partial: Scope | None = None
        for route in candidates:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                # Starlette sets scope["route"] to this table, then applies child_scope:
                # the route that matched is the one handle() calls.
                return Match.FULL, {**child_scope, "route": route}
            if match is Match.PARTIAL and partial is None:
                partial = {**child_scope, "route": route}
        if partial is not None:
            return Match.PARTIAL, partial
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope["route"].handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        for route in self.routes:
            try:
                return route.url_path_for(name, **path_params)
            except NoMatchFound:
                pass
        raise NoMatchFound(name, path_params)


def _literal_segment(route: BaseRoute) -> str | None:
    """The first segment of the route's path if it is literal text, else None (a
    parameter, or a kind of route matched on something else than its path)."""
    if not isinstance(route, (Route, Mount, WebSocketRoute)):
        return None
    path = route.path
    if not path.startswith("/"):
        return None
    segment = path[1:].split("/", 1)[0]
    return None if "{" in segment else segment


def _route_path(scope: Scope) -> str:
    """The path the routes match: as Starlette's own (private) ``get_route_path``."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    return path[len(root_path):] if path[len(root_path)] == "/" else path
