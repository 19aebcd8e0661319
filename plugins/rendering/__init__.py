"""Decoded images of instances: previews, windowed renderings, raw frames, numpy and
MATLAB exports — Orthanc 1.10's ``/instances/{id}/…`` image routes.

Routes (each also as ``/instances/{id}/frames/{frame}/…`` for any frame):
``preview`` and ``rendered`` (PNG, or JPEG with ``Accept: image/jpeg``),
``image-uint8`` / ``image-uint16`` / ``image-int16``, ``matlab``, ``numpy``; per frame
only: ``raw`` and ``raw.gz``; and ``/instances/{id}/frames`` (the frame indices).

Pixels are decoded with pydicom's pixel handlers; compressed transfer syntaxes need
pylibjpeg and its plugins (``pip install 'isengard[codecs]'``). Enabled by default;
disable with ``plugins: {rendering: false}``.
"""

from __future__ import annotations

from typing import Any

import isengard_sdk

from . import image_import
from .routes import build_routes

__version__ = "0.1.0"

ENABLED_BY_DEFAULT = True


@isengard_sdk.hookimpl
def register_routes(context: isengard_sdk.Context) -> list[Any]:
    return list(build_routes(context.services))


@isengard_sdk.hookimpl
def decode_image(data: bytes, media_type: str) -> dict[str, Any] | None:
    """Images embedded in POST /tools/create-dicom."""
    if media_type not in ("image/png", "image/jpeg"):
        return None
    return image_import.decode_image(data)
