"""ZIP archives and DICOMDIR media of patients, studies and series, as Orthanc makes them.

Routes: ``/{patients|studies|series}/{id}/archive`` and ``…/media`` (GET, or POST with
options), ``/tools/create-archive``, ``/tools/create-media`` and
``/tools/create-media-extended`` for several resources at once. The ZIP is streamed as
it is produced: a study of many gigabytes never sits in memory.

Configuration (``plugins: archive:``)::

    archive:
      compress: false   # deflate the files (Orthanc does); stored is faster and most
                        # pixel data is already compressed
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import isengard_sdk
from isengard_sdk import Context

from .routes import ARCHIVE_JOB, ArchiveRoutes, build_routes

__version__ = isengard_sdk.__version__
ENABLED_BY_DEFAULT = True


@dataclass(frozen=True)
class Settings:
    """The ``plugins.archive`` section."""

    # Deflate the files in the ZIP (as Orthanc 1.10 does, level 6). Off by default:
    # storing is several times faster and DICOM pixel data rarely compresses much.
    compress: bool = False


@isengard_sdk.hookimpl
def register_routes(context: Context) -> list[Any]:
    return build_routes(context)


@isengard_sdk.hookimpl
def register_job_types(context: Context) -> list[tuple[str, Any]]:
    """Asynchronous archives and media (``"Asynchronous": true``)."""
    return [(ARCHIVE_JOB, ArchiveRoutes(context).run_job)]
