"""The stable contract between Isengard and its plugins.

Plugins import only this package: ``hookimpl`` to mark hook implementations, the value
types they receive, :class:`Context`, :func:`load_settings` for their own config, and
:class:`OrthancJSON` / :func:`query_flag` for routes that answer as Orthanc's REST API,
:func:`run_blocking` for their blocking work.
"""

from .context import AttachmentInfo, Context, IngestResult, JobHandle, KernelServices, ServerInfo
from .errors import HttpError
from .hookspecs import hookimpl
from .http import OrthancJSON, query_flag, run_blocking
from .settings import SettingsError, load_settings
from .types import (
    Change,
    ChangeType,
    IncomingInstance,
    ResourceLevel,
    StorageArea,
    StoredFileInfo,
    StoredInstance,
)

__version__ = "0.1.0"

__all__ = [
    "AttachmentInfo",
    "Change",
    "ChangeType",
    "Context",
    "IncomingInstance",
    "HttpError",
    "IngestResult",
    "JobHandle",
    "KernelServices",
    "OrthancJSON",
    "ResourceLevel",
    "ServerInfo",
    "SettingsError",
    "StorageArea",
    "StoredFileInfo",
    "StoredInstance",
    "hookimpl",
    "load_settings",
    "query_flag",
    "run_blocking",
]
