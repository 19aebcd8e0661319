"""What a plugin can reach: its settings, a logger and the kernel's services."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .types import ResourceLevel

__all__ = ["AttachmentInfo", "Context", "IngestResult", "JobHandle", "KernelServices",
           "ServerInfo"]


@dataclass
class ServerInfo:
    """The running server. Read-only for plugins (ports are filled in once bound)."""

    name: str
    version: str
    aet: str
    dicom_port: int
    http_url: str


@dataclass(frozen=True)
class IngestResult:
    status: str  # "Success" or "AlreadyStored"
    id: str
    parent_series: str
    parent_study: str
    parent_patient: str


@dataclass(frozen=True)
class AttachmentInfo:
    """One file attached to a resource (``GET /{level}/{id}/attachments/{name}/info``).

    ``content_type`` is Orthanc's number (1 ``dicom``, 1024–65535 user types); sizes in
    bytes and MD5s (hexadecimal) of the data as given and as stored (``compressed``:
    stored with zlib)."""

    content_type: int
    uuid: str
    uncompressed_size: int
    uncompressed_md5: str
    compressed_size: int
    compressed_md5: str
    compressed: bool


class KernelServices(Protocol):
    """Services the kernel offers to plugins. Thread-safe; blocking (call them from a
    thread, not from the event loop)."""

    def get_resource(self, level: ResourceLevel, resource_id: str) -> dict[str, Any] | None:
        """The JSON of ``GET /{level}/{id}``, or ``None`` if unknown."""
        ...

    def list_instances(self, level: ResourceLevel, resource_id: str) -> list[str]:
        """The identifiers of the instances below a resource (itself for an instance)."""
        ...

    def read_instance_file(self, instance_id: str) -> bytes:
        """The DICOM file of an instance, as received. Raises ``KeyError`` if unknown."""
        ...

    def iter_instance_file(self, instance_id: str, chunk_size: int = 1 << 20
                           ) -> Iterator[bytes]:
        """The DICOM file of an instance, as received, in chunks of at most ``chunk_size``
        bytes read as they are consumed — for large files (archives, downloads) that must
        not sit whole in memory. Raises ``KeyError`` at the call if the instance or its
        file is unknown. Since 0.1.
        """
        ...

    def instance_tags(self, instance_id: str) -> dict[str, Any]:
        """The ``/instances/{id}/simplified-tags`` JSON, served from the index."""
        ...

    def instance_metadata(self, instance_id: str) -> dict[str, str]:
        """The ``/instances/{id}/metadata?expand`` JSON (``TransferSyntax``,
        ``SopClassUid``, ``RemoteAET``, ``Origin`` …). Raises ``KeyError`` if unknown.
        Since 0.1."""
        ...

    def find(self, level: ResourceLevel, query: Mapping[str, str]) -> list[str]:
        """Identifiers at ``level`` matching an Orthanc-style query (``/tools/find``)."""
        ...

    def ingest(self, data: bytes, origin: str = "Plugins") -> IngestResult:
        """Store a DICOM file through the regular ingest path (filters, index, hooks)."""
        ...

    def delete(self, level: ResourceLevel, resource_id: str) -> bool:
        """Delete a resource; ``False`` if it did not exist."""
        ...

    def set_metadata(self, level: ResourceLevel, resource_id: str, name: str,
                     value: str) -> None:
        """Set a metadata of a resource (``AnonymizedFrom``, ``ModifiedFrom``, a user
        metadata …). Raises ``KeyError`` if the resource is unknown. Since 0.1."""
        ...

    # User data of resources: user metadata, attachments, labels. These are the index's
    # own mechanisms (``/tools/find`` filters on labels, deleting a resource deletes its
    # attachments); the ``userdata`` plugin exposes them over REST. Names follow
    # Orthanc's rules: user metadata and attachments are written by the name declared in
    # the configuration (``user_metadata`` / ``user_content_types``) or by a number from
    # 1024 to 65535. Errors are ``HttpError`` with the status Orthanc answers: 404 for an
    # unknown resource or name, 403 for a system metadata or attachment, 400 for a bad
    # label or a failed MD5 check. Since 0.1.

    def set_user_metadata(self, level: ResourceLevel, resource_id: str, name: str,
                          value: str) -> None:
        """Write a user metadata, checking ``name`` as the REST API does. Since 0.1."""
        ...

    def delete_user_metadata(self, level: ResourceLevel, resource_id: str,
                             name: str) -> None:
        """Remove a user metadata (``HttpError`` 404 if the resource has none of that
        name). Since 0.1."""
        ...

    def labels(self, level: ResourceLevel, resource_id: str) -> list[str]:
        """The labels of a resource, sorted. Since 0.1."""
        ...

    def all_labels(self) -> list[str]:
        """Every label in use, sorted (``GET /tools/labels``). Since 0.1."""
        ...

    def add_label(self, level: ResourceLevel, resource_id: str, label: str) -> None:
        """Add a label (1–64 of ``A-Z a-z 0-9 _ -``); adding it twice is no error.
        Since 0.1."""
        ...

    def remove_label(self, level: ResourceLevel, resource_id: str, label: str) -> None:
        """Remove a label; removing one the resource lacks is no error. Since 0.1."""
        ...

    def attachments(self, level: ResourceLevel, resource_id: str) -> dict[str, int]:
        """The attachments of a resource: name → content type number (instances have
        ``dicom``). Since 0.1."""
        ...

    def attachment_info(self, level: ResourceLevel, resource_id: str,
                        name: str) -> AttachmentInfo:
        """What the index records about one attachment. Since 0.1."""
        ...

    def read_attachment(self, level: ResourceLevel, resource_id: str, name: str, *,
                        as_stored: bool = False) -> bytes:
        """The bytes of an attachment as given (``as_stored``: as kept in storage,
        zlib-compressed if it is). Since 0.1."""
        ...

    def put_attachment(self, level: ResourceLevel, resource_id: str, name: str,
                       data: bytes) -> None:
        """Attach (or replace) a user attachment. Since 0.1."""
        ...

    def delete_attachment(self, level: ResourceLevel, resource_id: str,
                          name: str) -> None:
        """Delete a user attachment and its file. Since 0.1."""
        ...

    def set_attachment_compression(self, level: ResourceLevel, resource_id: str,
                                   name: str, compressed: bool) -> None:
        """Store an attachment zlib-compressed or plain (no-op if it already is).
        Since 0.1."""
        ...

    def verify_attachment(self, level: ResourceLevel, resource_id: str, name: str) -> None:
        """Check the stored bytes against the recorded MD5 (``HttpError`` 400 if they
        differ). Since 0.1."""
        ...

    def submit_job(self, job_type: str, parameters: Mapping[str, Any], *,
                   priority: int = 0) -> str:
        """Queue a job of a type contributed by ``register_job_types``; returns its id
        (``GET /jobs/{id}``). ``parameters`` must be JSON: they are kept in the index so
        the job survives a restart. Since 0.1."""
        ...

    def run_job(self, job_type: str, parameters: Mapping[str, Any], *,
                priority: int = 0) -> dict[str, Any]:
        """Queue a job and wait for its end; returns the ``GET /jobs/{id}`` JSON
        (``State`` is ``Success`` or ``Failure``). Since 0.1."""
        ...

    def increment_sequence(self, name: str) -> int:
        """Add one to the counter ``name`` kept in the index (shared by every process
        using it, kept across restarts) and return the new value, 1 the first time —
        e.g. Orthanc's ``Anonymized<N>`` patient names. Since 0.1."""
        ...

    def transcode(self, data: bytes, transfer_syntax_uid: str) -> bytes | None:
        """Convert a DICOM file to ``transfer_syntax_uid``: between uncompressed syntaxes
        by the kernel, otherwise through the ``transcode`` hook (codec plugins). Returns
        ``data`` unchanged if it already has that syntax, ``None`` if nothing can convert
        it. Since 0.1."""
        ...


class JobHandle(Protocol):
    """What a job function (see ``register_job_types``) receives."""

    id: str
    parameters: dict[str, Any]
    content: dict[str, Any]  # shown as "Content" by GET /jobs/{id}; update it freely

    def progress(self, done: int, total: int) -> None:
        """Report progress; raises (and so stops the job) when it was cancelled or
        paused — let the exception through."""
        ...


@dataclass(frozen=True)
class Context:
    """Handed to every hook of one plugin.

    - ``name``: the plugin's name as in the YAML ``plugins:`` section;
    - ``settings``: the validated settings (the plugin's ``Settings`` dataclass instance,
      or a plain mapping if it declares none);
    - ``log``: a logger named ``isengard.plugins.<name>``;
    - ``data_dir``: a folder of its own under the server's data folder (created lazily);
    - ``server``: name, version, AE title, ports;
    - ``services``: index, storage and ingest services (:class:`KernelServices`).
    """

    name: str
    settings: Any
    log: logging.Logger
    data_dir: Path
    server: ServerInfo
    services: KernelServices
