"""The REST routes of the rendering plugin (Orthanc 1.10's decoded-image routes).

Every route exists for the first frame (``/instances/{id}/preview``) and for any frame
(``/instances/{id}/frames/{frame}/preview``). The endpoints parse their arguments on the
event loop, then read, decode and encode in a worker thread.
"""

from __future__ import annotations

import gzip
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isengard_sdk import HttpError, KernelServices, OrthancJSON, ResourceLevel
from isengard_sdk.http import run_blocking

from . import encoding, processing
from .decoding import InstancePixels

__all__ = ["build_routes"]

OUT_OF_RANGE = (3, "Parameter out of range")

# What GET /instances/{id}/frames/{frame} lists, as Orthanc.
FRAME_OPERATIONS = ["image-int16", "image-uint16", "image-uint8", "matlab", "numpy",
                    "preview", "raw", "raw.gz", "rendered"]

Endpoint = Callable[[Request], Awaitable[Response]]


def _bad_argument(name: str, expected: str, raw: str) -> HttpError:
    return HttpError(400, f"Expected {expected} for GET argument \"{name}\", found: {raw}",
                     orthanc=OUT_OF_RANGE)


def _frame(request: Request) -> int:
    raw = request.path_params.get("frame", "0")
    if not raw.isdigit():
        raise HttpError(404, f"frame {raw!r} does not exist: frames are numbered from 0")
    return int(raw)


def _bool_arg(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("", "true", "1"):  # "?compress" alone means true
        return True
    if value in ("false", "0"):
        return False
    raise _bad_argument(name, "a Boolean", raw)


def _float_arg(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        raise _bad_argument(name, "a number", raw) from None


def _int_arg(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad_argument(name, "an integer", raw) from None
    if not low <= value <= high:
        raise HttpError(400, f"GET argument \"{name}\" must be between {low} and {high}, "
                             f"found: {raw}", orthanc=OUT_OF_RANGE)
    return value


class RenderingRoutes:
    """The endpoints, bound to the kernel's services."""

    def __init__(self, services: KernelServices):
        self.services = services

    # -- shared steps (worker thread) --------------------------------------------------

    def _pixels(self, instance_id: str) -> InstancePixels:
        try:
            data = self.services.read_instance_file(instance_id)
        except KeyError:
            raise HttpError(404, f"unknown instance {instance_id}") from None
        return InstancePixels(instance_id, data)

    def _render(self, instance_id: str, frame: int, kind: str, media_type: str,
                quality: int, options: dict[str, Any]) -> bytes:
        decoded = self._pixels(instance_id).decode(frame)
        if kind == "preview":
            pixels = processing.preview(decoded)
        elif kind == "rendered":
            size = processing.target_size(decoded.info.columns, decoded.info.rows,
                                          options["width"], options["height"])
            pixels = processing.render(decoded, center=options["center"],
                                       width=options["window"], size=size,
                                       smooth=options["smooth"])
        else:
            pixels = processing.extract(decoded, kind)  # type: ignore[arg-type]
        return encoding.encode(pixels, media_type, quality=quality)

    # -- endpoints ---------------------------------------------------------------------

    def image(self, kind: str) -> Endpoint:
        """``preview``, ``rendered``, ``uint8``, ``uint16`` or ``int16``."""
        sixteen_bits = kind in ("uint16", "int16")

        async def endpoint(request: Request) -> Response:
            instance_id = request.path_params["id"]
            frame = _frame(request)
            quality = _int_arg(request, "quality", 90, 1, 100)
            options: dict[str, Any] = {}
            if kind == "rendered":
                options = {
                    "center": _float_arg(request, "window-center"),
                    "window": _float_arg(request, "window-width"),
                    "width": _int_arg(request, "width", 0, 0, 65535),
                    "height": _int_arg(request, "height", 0, 0, 65535),
                    "smooth": _bool_arg(request, "smooth", False),
                }
            media_type = encoding.choose_format(request.headers.get("accept"),
                                                sixteen_bits=sixteen_bits)
            body = await run_blocking(request, self._render, instance_id, frame, kind,
                                      media_type, quality, options)
            return Response(body, media_type=media_type)

        return endpoint

    async def frames(self, request: Request) -> Response:
        instance_id = request.path_params["id"]

        def count() -> int:
            if self.services.get_resource(ResourceLevel.INSTANCE, instance_id) is None:
                raise HttpError(404, f"unknown instance {instance_id}")
            raw = self.services.instance_tags(instance_id).get("NumberOfFrames")
            try:
                return max(int(str(raw).strip()), 1) if raw else 1
            except ValueError:
                return 1

        return OrthancJSON(list(range(await run_blocking(request, count))))

    async def frame_operations(self, request: Request) -> Response:
        _frame(request)
        return OrthancJSON(FRAME_OPERATIONS)

    async def raw(self, request: Request) -> Response:
        instance_id, frame = request.path_params["id"], _frame(request)
        compressed = request.url.path.endswith(".gz")

        def work() -> tuple[bytes, str]:
            data, mime = self._pixels(instance_id).raw_frame(frame)
            if compressed:
                return gzip.compress(data), "application/gzip"
            return data, mime

        body, media_type = await run_blocking(request, work)
        return Response(body, media_type=media_type)

    async def numpy(self, request: Request) -> Response:
        instance_id = request.path_params["id"]
        single = "frame" in request.path_params
        frame = _frame(request) if single else 0
        compress = _bool_arg(request, "compress", False)
        rescale = _bool_arg(request, "rescale", True)

        def work() -> bytes:
            pixels = self._pixels(instance_id)
            frames = [pixels.decode(frame)] if single else pixels.decode_all()
            return processing.to_numpy(frames, rescale=rescale, single_frame=single,
                                       compress=compress)

        body = await run_blocking(request, work)
        return Response(body, media_type="application/octet-stream")

    async def matlab(self, request: Request) -> Response:
        instance_id, frame = request.path_params["id"], _frame(request)

        def work() -> str:
            return processing.to_matlab(self._pixels(instance_id).decode(frame))

        # Set the header itself: Starlette would append "; charset=utf-8", Orthanc does not.
        return Response(await run_blocking(request, work), headers={"Content-Type": "text/plain"})


def build_routes(services: KernelServices) -> list[Route]:
    r = RenderingRoutes(services)
    routes = [
        Route("/instances/{id}/frames", r.frames, methods=["GET"]),
        Route("/instances/{id}/frames/{frame}", r.frame_operations, methods=["GET"]),
        Route("/instances/{id}/numpy", r.numpy, methods=["GET"]),
    ]
    per_frame: list[tuple[str, Endpoint]] = [
        ("preview", r.image("preview")),
        ("rendered", r.image("rendered")),
        ("image-uint8", r.image("uint8")),
        ("image-uint16", r.image("uint16")),
        ("image-int16", r.image("int16")),
        ("matlab", r.matlab),
    ]
    for name, endpoint in per_frame:
        routes.append(Route(f"/instances/{{id}}/{name}", endpoint, methods=["GET"]))
        routes.append(Route(f"/instances/{{id}}/frames/{{frame}}/{name}", endpoint,
                            methods=["GET"]))
    routes += [
        Route("/instances/{id}/frames/{frame}/numpy", r.numpy, methods=["GET"]),
        Route("/instances/{id}/frames/{frame}/raw", r.raw, methods=["GET"]),
        Route("/instances/{id}/frames/{frame}/raw.gz", r.raw, methods=["GET"]),
    ]
    return routes
