"""The kernel's exception hierarchy.

::

    IsengardError
    ├── ConfigError            bad YAML: unknown key, wrong type, unknown plugin (names the path)
    ├── StartupError           a port in use, a data folder that cannot be written
    ├── InvalidDicomError      bytes that are not a (complete) DICOM file
    ├── InstanceRejected       a filter plugin vetoed an instance
    ├── UnknownResource        an identifier the index does not know
    └── BadRequest             a well-formed request with an unusable parameter
        └── UnknownDicomTag    a tag name or number that no dictionary knows

Every error carries a message meant for an administrator: what failed, on what, and
what to do next. The HTTP layer maps them to Orthanc's status codes and JSON body.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "ConfigError",
    "InstanceRejected",
    "InvalidDicomError",
    "IsengardError",
    "StartupError",
    "UnknownDicomTag",
    "UnknownResource",
]


class IsengardError(Exception):
    """Base class of every error the kernel raises on purpose."""


class ConfigError(IsengardError):
    """The configuration cannot be used. ``path`` is the YAML path of the culprit."""

    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class StartupError(IsengardError):
    """The server cannot start (port in use, data folder not writable …)."""


class InvalidDicomError(IsengardError):
    """The bytes received are not a complete DICOM file (PS3.10)."""


class InstanceRejected(IsengardError):
    """A ``filter_incoming_instance`` hook refused the instance."""


class UnknownResource(IsengardError):
    """No resource with this identifier at this level."""


class BadRequest(IsengardError):
    """A request parameter cannot be used (bad level, bad JSON body …)."""


class UnknownDicomTag(BadRequest):
    """A tag that is neither a known keyword nor ``gggg,eeee`` (Orthanc answers these
    with HTTP 500 and its error 27, "Unknown DICOM tag")."""
