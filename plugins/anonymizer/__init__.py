"""Modification and anonymization of patients, studies, series and instances, as Orthanc
1.10 does them.

Routes: ``POST /{patients|studies|series|instances}/{id}/modify`` and ``…/anonymize``
(body: ``Replace``, ``Remove``, ``Keep``, ``KeepPrivateTags``/``RemovePrivateTags``,
``DicomVersion``, ``Force``, ``KeepSource``, ``Synchronous``/``Asynchronous``,
``Priority``, ``Transcode``, ``PrivateCreator``) and ``GET /tools/generate-uid``.
``Replace``, ``Remove`` and ``Keep`` name tags or paths into sequences
(``ReferencedImageSequence[0].ReferencedSOPInstanceUID``, ``[*]`` for every item; see
:mod:`.paths`).
Anonymization follows the PS3.15 Basic Application Level Confidentiality Profile
(Table E.1-1, 2021b edition by default; see :mod:`.profiles`). Patients, studies and
series are modified by a ``ResourceModification`` job (``GET /jobs``); the results are
new resources carrying ``ModifiedFrom`` / ``AnonymizedFrom`` metadata. An instance is
answered as the modified file, without storing it.

No configuration.
"""

from __future__ import annotations

from typing import Any

import isengard_sdk
from isengard_sdk import Context
from isengard_sdk.context import JobHandle

from .jobs import JOB_TYPE, run_modification
from .routes import build_routes

__version__ = isengard_sdk.__version__
ENABLED_BY_DEFAULT = True


@isengard_sdk.hookimpl
def register_routes(context: Context) -> list[Any]:
    return build_routes(context)


@isengard_sdk.hookimpl
def register_job_types(context: Context) -> list[tuple[str, Any]]:
    def run(job: JobHandle) -> dict[str, Any]:
        return run_modification(context, job)

    return [(JOB_TYPE, run)]
