"""Value types shared by the kernel and plugins.

Everything a hook receives is a frozen dataclass or an enum defined here, never a
pynetdicom event or a kernel object, so that plugins keep working when the kernel's
internals change.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "Change",
    "ChangeType",
    "IncomingInstance",
    "ResourceLevel",
    "StorageArea",
    "StoredFileInfo",
    "StoredInstance",
]


class ResourceLevel(enum.IntEnum):
    """The four levels of the DICOM model of the real world, as Orthanc names them."""

    PATIENT = 0
    STUDY = 1
    SERIES = 2
    INSTANCE = 3

    @property
    def title(self) -> str:
        """``Patient``, ``Study``, ``Series`` or ``Instance`` (the JSON ``Type`` value)."""
        return ("Patient", "Study", "Series", "Instance")[self.value]

    @property
    def plural(self) -> str:
        """The REST collection name: ``patients``, ``studies``, ``series``, ``instances``."""
        return ("patients", "studies", "series", "instances")[self.value]

    @classmethod
    def from_name(cls, name: str) -> ResourceLevel:
        """Parse a level as Orthanc accepts it (``Study``, ``study``, ``studies`` …).

        Raises ``ValueError`` naming the accepted spellings.
        """
        key = name.strip().lower()
        for level in cls:
            if key in (level.title.lower(), level.plural, level.name.lower()):
                return level
        if key == "image":  # DICOM's name for the instance level (PS3.4 C.6)
            return cls.INSTANCE
        raise ValueError(
            f"unknown resource level {name!r} (use Patient, Study, Series or Instance)")


class ChangeType(enum.Enum):
    """The change-log entry types, with Orthanc's names as values."""

    NEW_INSTANCE = "NewInstance"
    NEW_SERIES = "NewSeries"
    NEW_STUDY = "NewStudy"
    NEW_PATIENT = "NewPatient"
    STABLE_SERIES = "StableSeries"
    STABLE_STUDY = "StableStudy"
    STABLE_PATIENT = "StablePatient"
    DELETED = "Deleted"
    UPDATED_METADATA = "UpdatedMetadata"
    UPDATED_ATTACHMENT = "UpdatedAttachment"


@dataclass(frozen=True)
class IncomingInstance:
    """An instance that has been received and parsed but not stored yet.

    Given to ``filter_incoming_instance``. ``tags`` holds the main DICOM tags of all four
    levels (keyword → string value, as they appear in ``MainDicomTags``).
    """

    origin: str  # "DicomProtocol", "RestApi", "Plugins", "Import"
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    tags: Mapping[str, str]
    remote_aet: str = ""
    called_aet: str = ""
    remote_ip: str = ""
    size: int = 0


@dataclass(frozen=True)
class StoredInstance:
    """An instance that is durable in storage and committed to the index.

    Given to ``on_stored_instance``. Identifiers are Orthanc's SHA-1 identifiers.
    """

    id: str
    parent_series: str
    parent_study: str
    parent_patient: str
    origin: str
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    tags: Mapping[str, str]
    remote_aet: str = ""
    called_aet: str = ""
    remote_ip: str = ""
    size: int = 0


@dataclass(frozen=True)
class Change:
    """One entry of the change log (``GET /changes``)."""

    seq: int
    change_type: ChangeType
    level: ResourceLevel
    id: str
    date: str  # Orthanc's ISO-like "YYYYMMDDTHHMMSS"

    @property
    def path(self) -> str:
        return f"/{self.level.plural}/{self.id}"

    def to_json(self) -> dict[str, object]:
        return {
            "ChangeType": self.change_type.value,
            "Date": self.date,
            "ID": self.id,
            "Path": self.path,
            "ResourceType": self.level.title,
            "Seq": self.seq,
        }


@dataclass(frozen=True)
class StoredFileInfo:
    """What a storage area reports after writing one file."""

    uuid: str
    uncompressed_size: int
    compressed_size: int
    uncompressed_md5: str
    compressed_md5: str
    compression: int = 0  # 0 = none, 1 = zlib with Orthanc's 8-byte size prefix
    extra: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class StorageArea(Protocol):
    """Where files live. The default keeps them in a two-level folder tree; a plugin
    can supply another implementation through the ``storage_backend`` hook.

    Implementations must be thread-safe: they are called from several associations and
    HTTP worker threads at once. ``write`` must be atomic: after a crash the file is
    either complete or absent.
    """

    def write(self, data: bytes, *, compress: bool | None = None) -> StoredFileInfo:
        """Store ``data`` under a new UUID and return what was written."""
        ...

    def read(self, uuid: str, compression: int) -> bytes:
        """Return the original (uncompressed) bytes of the file ``uuid``.

        Raises ``FileNotFoundError`` when it is absent.
        """
        ...

    def remove(self, uuid: str) -> None:
        """Delete the file ``uuid``; absent files are ignored."""
        ...
