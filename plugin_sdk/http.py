"""Helpers for plugin routes that answer as Orthanc's REST API does."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["OrthancJSON", "query_flag"]


class OrthancJSON(Response):
    """JSON as Orthanc sends it: pretty-printed with 3 spaces, UTF-8, and
    ``Content-Type: application/json; charset=utf-8``."""

    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, indent=3, ensure_ascii=False).encode("utf-8")


def query_flag(request: Request, name: str) -> bool:
    """Orthanc's boolean query arguments: present (``?expand``) or ``=true``/``=1``."""
    if name not in request.query_params:
        return False
    value = request.query_params[name].strip().lower()
    return value in ("", "true", "1", "yes")
