"""Helpers for plugin routes that answer as Orthanc's REST API does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ._json import dumps_indented

__all__ = ["OrthancJSON", "query_flag", "run_blocking"]

T = TypeVar("T")


class OrthancJSON(Response):
    """JSON as Orthanc sends it: pretty-printed with 3 spaces, UTF-8, and
    ``Content-Type: application/json; charset=utf-8``."""

    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return dumps_indented(content).encode("utf-8")


def query_flag(request: Request, name: str) -> bool:
    """Orthanc's boolean query arguments: present (``?expand``) or ``=true``/``=1``."""
    if name not in request.query_params:
        return False
    value = request.query_params[name].strip().lower()
    return value in ("", "true", "1", "yes")


async def run_blocking(request: Request, fn: Callable[..., T], /, *args: Any,
                       **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in one of the server's threads for blocking work (index,
    files, network), awaited from a route's endpoint on the event loop.

    As ``starlette.concurrency.run_in_threadpool``, at about half its cost per call,
    except that a cancelled caller stops waiting (``fn`` still runs to its end). On an
    application without Isengard's threads (a plugin's own tests), it is Starlette's.
    Since 0.1."""
    calls = getattr(request.app.state, "blocking_calls", None)
    if calls is None:
        return await run_in_threadpool(fn, *args, **kwargs)
    result: T = await calls.run(fn, *args, **kwargs)
    return result
