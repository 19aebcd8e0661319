"""User metadata, attachments and labels of resources: Orthanc's rules for their names
and the operations on attachment files (storage area + ``attached_files``).

Names as Orthanc resolves them: a metadata or attachment is written by the name declared
in the configuration (``user_metadata`` / ``user_content_types``) or by a number from
1024 to 65535; system ones (``Origin``, ``dicom`` …, numbers below 1024) are read-only
(:class:`Forbidden`, HTTP 403) and unknown names are :class:`UnknownName` (HTTP 404,
Orthanc's error 7 "Accessing an inexistent item").
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from isengard_sdk.types import StorageArea

from .errors import BadRequest, IsengardError, UnknownResource
from .index import AttachmentRow, ResourceRow
from .index.extras import IndexExtras
from .storage import COMPRESSION_NONE, COMPRESSION_ZLIB

__all__ = ["Attachments", "CorruptedFile", "Forbidden", "UnknownName", "check_label",
           "SYSTEM_METADATA", "SYSTEM_CONTENT_TYPES"]

USER_FIRST, USER_LAST = 1024, 65535

# Orthanc's MetadataType enumeration (the numbers below 1024).
SYSTEM_METADATA = {
    "IndexInSeries": 1, "ReceptionDate": 2, "RemoteAET": 3, "ExpectedNumberOfInstances": 4,
    "ModifiedFrom": 5, "AnonymizedFrom": 6, "LastUpdate": 7, "Origin": 8,
    "TransferSyntax": 9, "SopClassUid": 10, "RemoteIP": 11, "CalledAET": 12,
    "HttpUsername": 13, "PixelDataOffset": 14,
}
# Orthanc's FileContentType enumeration.
SYSTEM_CONTENT_TYPES = {"dicom": 1, "dicom-as-json": 2, "dicom-until-pixel-data": 3}
DICOM = 1

# Orthanc 1.12's rule for labels (ServerToolbox::IsValidLabel).
_LABEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Forbidden(IsengardError):
    """A system metadata or attachment that the REST API may not write (HTTP 403)."""


class UnknownName(IsengardError):
    """A metadata or attachment name that is neither declared nor a user number."""


class CorruptedFile(IsengardError):
    """A stored file whose MD5 is not the one recorded when it was written."""


def check_label(label: str) -> str:
    """``label`` if valid, else :class:`BadRequest`."""
    if not _LABEL.match(label):
        raise BadRequest(f"invalid label {label!r}: use 1 to 64 characters among letters, "
                         "digits, '_' and '-'")
    return label


def _resolve(name: str, declared: Mapping[str, int], system: Mapping[str, int],
             what: str, config_key: str) -> tuple[str, int]:
    """(stored name, number) of a user name; raises Forbidden or UnknownName."""
    if name in system:
        raise Forbidden(f"the {what} {name!r} is written by the server; only user "
                        f"{what}s (declared under {config_key}:) can be changed")
    if name in declared:
        return name, declared[name]
    if name.isdigit():
        number = int(name)
        if not USER_FIRST <= number <= USER_LAST:
            raise Forbidden(f"{what} {number} is not a user {what} (1024 to 65535)")
        by_number = {v: k for k, v in declared.items()}
        return by_number.get(number, str(number)), number
    raise UnknownName(f"unknown {what} {name!r}: declare it under {config_key}: in the "
                      "configuration")


def user_metadata_name(name: str, declared: Mapping[str, int]) -> str:
    """The name under which a user metadata is stored (``1024`` → its declared name)."""
    return _resolve(name, declared, SYSTEM_METADATA, "metadata", "user_metadata")[0]


def read_metadata_name(name: str, declared: Mapping[str, int]) -> str:
    """The stored name of a metadata to read: user numbers become their declared name."""
    if name.isdigit():
        by_number = {v: k for k, v in declared.items()}
        return by_number.get(int(name), name)
    return name


@dataclass(frozen=True)
class ContentTypes:
    """Attachment names ↔ numbers (Orthanc's FileContentType plus ``UserContentType``)."""

    declared: Mapping[str, int]

    def number(self, name: str, *, writing: bool) -> int:
        if not writing:
            if name in SYSTEM_CONTENT_TYPES:
                return SYSTEM_CONTENT_TYPES[name]
            if name.isdigit() and not USER_FIRST <= int(name) <= USER_LAST:
                raise UnknownName(f"unknown attachment {name!r}")
        return _resolve(name, self.declared, SYSTEM_CONTENT_TYPES, "attachment",
                        "user_content_types")[1]

    def name(self, number: int) -> str:
        for name, value in {**SYSTEM_CONTENT_TYPES, **self.declared}.items():
            if value == number:
                return name
        return str(number)


class Attachments:
    """Files attached to resources: written through the storage area, recorded in the
    index, with Orthanc's compress / uncompress / verify-md5 operations."""

    def __init__(self, extras: IndexExtras, storage: StorageArea,
                 declared: Mapping[str, int]):
        self.extras = extras
        self.storage = storage
        self.types = ContentTypes(dict(declared))

    def list(self, row: ResourceRow) -> dict[str, int]:
        """name → content type of the attachments of a resource, sorted by name."""
        found = self.extras.attachments(row.internal_id)
        return dict(sorted((self.types.name(t), t) for t in found))

    def get(self, row: ResourceRow, name: str) -> tuple[int, AttachmentRow]:
        file_type = self.types.number(name, writing=False)
        att = self.extras.attachments(row.internal_id).get(file_type)
        if att is None:
            raise UnknownResource(f"{row.level.title.lower()} {row.public_id} has no "
                                  f"attachment {name!r}")
        return file_type, att

    def read(self, row: ResourceRow, name: str) -> tuple[int, AttachmentRow, bytes]:
        file_type, att = self.get(row, name)
        return file_type, att, self._read(att, row)

    def read_stored(self, row: ResourceRow, name: str) -> bytes:
        """The bytes as stored (compressed when the attachment is)."""
        _, att = self.get(row, name)
        if att.compression == COMPRESSION_NONE:
            return self._read(att, row)
        raw = getattr(self.storage, "read_raw", None)
        try:
            if raw is not None:
                return bytes(raw(att.uuid))
            # A storage area without raw access: rebuild Orthanc's "zlib with size".
            data = self.storage.read(att.uuid, att.compression)
        except FileNotFoundError as exc:
            raise UnknownResource(self._missing(row, att)) from exc
        return struct.pack("<Q", len(data)) + zlib.compress(data, 6)

    def put(self, row: ResourceRow, name: str, data: bytes) -> None:
        file_type = self.types.number(name, writing=True)
        self._attach(row, file_type, data, compress=None)

    def delete(self, row: ResourceRow, name: str) -> None:
        file_type = self.types.number(name, writing=True)
        uuid = self.extras.delete_attachment(row, file_type)
        if uuid is None:
            raise UnknownResource(f"{row.level.title.lower()} {row.public_id} has no "
                                  f"attachment {name!r}")
        self.storage.remove(uuid)

    def set_compression(self, row: ResourceRow, name: str, compressed: bool) -> None:
        """Rewrite an attachment compressed or not (the DICOM file too, as Orthanc)."""
        file_type, att, data = self.read(row, name)
        if (att.compression == COMPRESSION_ZLIB) == compressed:
            return
        self._attach(row, file_type, data, compress=compressed)

    def verify_md5(self, row: ResourceRow, name: str) -> None:
        """Raise :class:`CorruptedFile` unless the stored bytes have the recorded MD5."""
        _, att = self.get(row, name)
        stored = self.read_stored(row, name)
        md5 = hashlib.md5(stored, usedforsecurity=False).hexdigest()
        if md5 != att.compressed_md5:
            raise CorruptedFile(f"attachment {name!r} of {row.level.title.lower()} "
                                f"{row.public_id} is corrupted: its MD5 is {md5}, "
                                f"{att.compressed_md5} was recorded (file {att.uuid})")
        if att.compression != COMPRESSION_NONE:
            try:
                data = self._read(att, row)
            except zlib.error as exc:
                raise CorruptedFile(f"attachment {name!r} cannot be inflated: {exc}") \
                    from exc
            if hashlib.md5(data, usedforsecurity=False).hexdigest() != att.uncompressed_md5:
                raise CorruptedFile(f"attachment {name!r} of {row.public_id} is corrupted "
                                    "once uncompressed")

    def _attach(self, row: ResourceRow, file_type: int, data: bytes,
                compress: bool | None) -> None:
        info = self.storage.write(data, compress=compress)
        try:
            old = self.extras.set_attachment(row, file_type, info)
        except BaseException:
            self.storage.remove(info.uuid)
            raise
        if old is not None:
            self.storage.remove(old)

    def _read(self, att: AttachmentRow, row: ResourceRow) -> bytes:
        try:
            return self.storage.read(att.uuid, att.compression)
        except FileNotFoundError as exc:
            raise UnknownResource(self._missing(row, att)) from exc

    @staticmethod
    def _missing(row: ResourceRow, att: AttachmentRow) -> str:
        return (f"a file of {row.level.title.lower()} {row.public_id} is missing from "
                f"storage (uuid {att.uuid})")
