"""User metadata, attachments and labels of resources over REST, as Orthanc serves them.

Routes, on every level (``patients``, ``studies``, ``series``, ``instances``):

- ``PUT|DELETE /{level}/{id}/metadata/{name}`` — user metadata (reading every metadata,
  system ones included, is the kernel's ``GET /{level}/{id}/metadata[/{name}]``);
- ``/{level}/{id}/attachments[/{name}[/data|/size|/md5|/info|/compressed-data|…]]``,
  ``PUT``/``DELETE`` of user attachments, ``POST …/compress|uncompress|verify-md5``;
- ``GET|PUT|DELETE /{level}/{id}/labels[/{label}]`` and ``GET /tools/labels``
  (``/tools/find`` filters on labels in the kernel).

The data live in the index (the kernel's user-data services of ``isengard_sdk``): this
plugin is their REST face, and other plugins use the same services — an AI plugin can
label a study or attach its report. Names are declared in the server's configuration
(``user_metadata``, ``user_content_types``), as Orthanc's ``UserMetadata`` and
``UserContentType``. No settings of its own.
"""

from __future__ import annotations

from typing import Any

import isengard_sdk
from isengard_sdk import Context

from .routes import build_routes

__version__ = isengard_sdk.__version__
ENABLED_BY_DEFAULT = True


@isengard_sdk.hookimpl
def register_routes(context: Context) -> list[Any]:
    return build_routes(context.services)
