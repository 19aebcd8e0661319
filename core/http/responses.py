"""JSON answers and errors in Orthanc's format."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

from isengard_sdk.http import OrthancJSON, query_flag
from isengard_sdk.types import ResourceLevel

from ..errors import BadRequest, UnknownResource

if TYPE_CHECKING:
    from ..kernel import Kernel

__all__ = ["OrthancJSON", "error_response", "kernel_of", "level_of", "query_flag",
           "query_int"]


# Orthanc's error codes (OrthancFramework/Sources/Enumerations.h), with their messages.
ORTHANC_ERRORS = {
    400: (8, "Bad request"),
    403: (18, "Forbidden access"),  # "UnauthorizedAccess" family
    404: (17, "Unknown resource"),
    405: (-1, "Method not allowed"),
    415: (15, "Bad file format"),
    500: (-1, "Internal error"),
    501: (2, "Not implemented yet"),
    502: (9, "Error in the network protocol"),
    504: (9, "Timeout"),
}
HTTP_REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found",
                405: "Method Not Allowed", 415: "Unsupported Media Type",
                500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
                504: "Gateway Timeout"}


def error_response(request: Request, status: int, details: str, *,
                   orthanc: tuple[int, str] | None = None,
                   headers: dict[str, str] | None = None) -> OrthancJSON:
    code, message = orthanc or ORTHANC_ERRORS.get(status, (-1, "Internal error"))
    body = {
        "Details": details,
        "HttpError": HTTP_REASONS.get(status, "Error"),
        "HttpStatus": status,
        "Message": message,
        "Method": request.method,
        "OrthancError": message,
        "OrthancStatus": code,
        "Uri": request.url.path,
    }
    return OrthancJSON(body, status_code=status, headers=headers)


_LEVELS = {level.plural: level for level in ResourceLevel}


def level_of(request: Request) -> ResourceLevel:
    """The level named by the ``{level}`` path parameter (404 when it is not one)."""
    name = request.path_params.get("level", "")
    level = _LEVELS.get(name)
    if level is None:
        raise UnknownResource(f"unknown URI {request.url.path}")
    return level


def query_int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"argument {name!r} must be an integer, got {raw!r}") from exc
    if value < 0:
        raise BadRequest(f"argument {name!r} must be zero or positive, got {value}")
    return value


def kernel_of(request: Request) -> Kernel:
    """The kernel serving this request (set on the application by ``build_app``)."""
    kernel: Kernel = request.app.state.kernel
    return kernel
