"""The rows the index hands out (resources, attachments) and takes in (new instances)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from isengard_sdk.types import ResourceLevel, StoredFileInfo

__all__ = ["DICOM_ATTACHMENT", "AttachmentRow", "NewInstanceRecord", "ResourceRow",
           "StoreOutcome", "now_iso"]

DICOM_ATTACHMENT = 1


def now_iso() -> str:
    """Orthanc's timestamp format, in UTC: ``20261122T034302``."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime())


@dataclass(frozen=True)
class ResourceRow:
    internal_id: int
    level: ResourceLevel
    public_id: str
    parent_id: int | None
    main_tags: dict[str, str]
    last_update: str
    is_stable: bool


@dataclass(frozen=True)
class AttachmentRow:
    uuid: str
    compressed_size: int
    uncompressed_size: int
    compression: int
    uncompressed_md5: str
    compressed_md5: str


@dataclass(frozen=True)
class StoreOutcome:
    status: str  # "Success" or "AlreadyStored"
    ids: tuple[str, str, str, str]  # patient, study, series, instance
    # uuids of the files of an overwritten instance (its DICOM file and its user
    # attachments), to delete from storage once the new one is committed
    replaced_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewInstanceRecord:
    """What ingest hands to the index for one instance."""

    ids: tuple[str, str, str, str]
    main_tags: dict[ResourceLevel, dict[str, str]]
    file: StoredFileInfo
    metadata: dict[str, str]
    header: bytes | None
    has_pixel_data: bool
    # Metadata of the series, written only when this instance creates it (Orthanc's
    # RemoteAET and ExpectedNumberOfInstances of the series).
    series_metadata: dict[str, str] = field(default_factory=dict)
