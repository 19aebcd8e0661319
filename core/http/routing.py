"""Routes looked up by the shape of the request's path.

Starlette tries the routes one after the other, a regular expression each, and takes
the first that matches. With the plugins' routes first, Isengard has about a hundred:
resolving ``GET /studies/{id}`` took 92 µs. Grouping the routes whose first segment is
literal text (``/instances/...``) brought resolutions to 12-46 µs — still a sixth of a
``GET /system``'s CPU in a running server (py-spy), as the plugins' 22 routes starting
with a parameter (``/{level}/{id}/labels``) were tried on every request.

:class:`RouteTable` holds every route and, for a request, tries only those that can match
its path: the same number of segments (a ``{name:path}`` parameter can span several: such
a route is always tried) and, where the route's first or last segment is literal text,
the same first or last segment. They are tried in their original order, so the first
route that matches still wins, and so does the first that matches the path but not the
method (Starlette's 405). A route that is not a plain ``Route`` (a ``Mount``, a
websocket) is always tried. Resolutions take 4-6 µs (``/system``, ``/instances``,
``/tools/find``, ``/studies/{id}``, ``/instances/{id}/tags``, ``/instances/{id}/preview``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.convertors import FloatConvertor, IntegerConvertor, StringConvertor, UUIDConvertor
from starlette.routing import BaseRoute, Match, NoMatchFound, Route
from starlette.types import Receive, Scope, Send

__all__ = ["RouteTable"]

# A segment with a parameter, in a route; in a request, one no route has as literal text.
# (A route's literal empty segment, "/instances/", counts as one too: tried more often.)
_ANY = ""
# Starlette's convertors whose values never contain "/" (its "path" one does).
_ONE_SEGMENT = (StringConvertor, IntegerConvertor, FloatConvertor, UUIDConvertor)


class RouteTable(BaseRoute):
    """Routes tried only when the request's path has their shape, in their original
    order."""

    def __init__(self, routes: Sequence[BaseRoute]):
        self.routes = list(routes)
        self._always: list[tuple[int, BaseRoute]] = []
        shaped: dict[int, list[tuple[int, str, str, BaseRoute]]] = {}
        for order, route in enumerate(self.routes):
            shape = _shape(route)
            if shape is None:
                self._always.append((order, route))
            else:
                count, first, last = shape
                shaped.setdefault(count, []).append((order, first, last, route))
        # Segment count → its literal first and last segments, and the routes to try for
        # each (first, last) pair (_ANY: a segment no route has as literal text).
        self._by_shape: dict[int, tuple[set[str], set[str],
                                        dict[tuple[str, str], list[BaseRoute]]]] = {}
        for count, same in shaped.items():
            firsts = {first for _, first, _, _ in same} - {_ANY}
            lasts = {last for _, _, last, _ in same} - {_ANY}
            self._by_shape[count] = (firsts, lasts, {
                (f, la): self._in_order([(order, route) for order, first, last, route in same
                                         if first in (f, _ANY) and last in (la, _ANY)])
                for f in firsts | {_ANY} for la in lasts | {_ANY}})
        self._otherwise = self._in_order([])

    def _in_order(self, candidates: list[tuple[int, BaseRoute]]) -> list[BaseRoute]:
        return [route for _, route in sorted(candidates + self._always,
                                             key=lambda item: item[0])]

    def candidates(self, path: str) -> list[BaseRoute]:
        """The routes that may match ``path``, in the order they are tried."""
        shape = self._by_shape.get(path.count("/"))
        if shape is None:
            return self._otherwise
        firsts, lasts, table = shape
        segments = path.split("/")
        first, last = segments[1], segments[-1]
        return table[first if first in firsts else _ANY, last if last in lasts else _ANY]

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        partial: Scope | None = None
        for route in self.candidates(_route_path(scope)):
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


def _shape(route: BaseRoute) -> tuple[int, str, str] | None:
    """(segment count, first segment, last segment) of the paths ``route`` can match,
    _ANY for a segment with a parameter; None when not known (not a plain route, or a
    parameter that can span segments)."""
    if type(route) is not Route or not route.path.startswith("/"):
        return None
    if not all(type(convertor) in _ONE_SEGMENT for convertor in route.param_convertors.values()):
        return None
    segments = route.path.split("/")
    first, last = segments[1], segments[-1]
    return (len(segments) - 1, _ANY if "{" in first else first, _ANY if "{" in last else last)


def _route_path(scope: Scope) -> str:
    """The path the routes match: as Starlette's own (private) ``get_route_path``."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    return path[len(root_path):] if path[len(root_path)] == "/" else path
