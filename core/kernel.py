"""The kernel: the services of one server, assembled from the configuration.

``Kernel`` owns the plugin host, the storage area, the index, the ingest path and the
background workers. The DICOM and HTTP front-ends are built on top of it by
:mod:`isengard.server`; plugins see it through :class:`KernelServices`.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from isengard_sdk.context import AttachmentInfo, IngestResult, ServerInfo
from isengard_sdk.errors import HttpError
from isengard_sdk.types import ResourceLevel, StorageArea, StoredInstance

from .background import ChangeDispatcher, StabilityMonitor
from .config import Settings
from .dicom_file import parse_dicom_bytes, parse_header
from .errors import BadRequest, StartupError, UnknownResource
from .find import find_resources
from .index import ResourceRow, SQLiteIndex
from .index.extras import IndexExtras
from .ingest import Ingest, Origin
from .jobs import JobsEngine
from .modalities import ModalityRegistry, modalities_from_config
from .plugins import PluginHost
from .resources import resources_json
from .storage import COMPRESSION_NONE, COMPRESSION_ZLIB, FilesystemStorageArea
from .tags_json import TagsFormat, dataset_to_json, element_text
from .transfers import register_transfer_jobs
from .user_data import (
    Attachments,
    CorruptedFile,
    Forbidden,
    UnknownName,
    check_label,
    user_metadata_name,
)
from .version import __version__

__all__ = ["Kernel"]

log = logging.getLogger("isengard")


class Kernel:
    """Services of one server. Create, :meth:`open`, use, :meth:`close`."""

    def __init__(self, settings: Settings, *, extra_plugins: Iterable[tuple[str, Any]] = (),
                 use_entry_points: bool = True):
        self.settings = settings
        self.plugins = PluginHost(settings.plugins, settings.scripts, extra=extra_plugins,
                                  use_entry_points=use_entry_points)
        self.server_info = ServerInfo(name=settings.name, version=__version__,
                                      aet=settings.dicom.aet, dicom_port=settings.dicom.port,
                                      http_url="")
        self.storage: StorageArea
        self.index: SQLiteIndex
        self.extras: IndexExtras  # user metadata, attachments, labels
        self.attachments: Attachments
        self.ingest_path: Ingest
        self.modalities: ModalityRegistry
        self.jobs: JobsEngine
        self.storage_plugin: str | None = None
        self._workers: list[ChangeDispatcher | StabilityMonitor] = []
        self._opened = False

    def open(self) -> None:
        """Open storage and index, start background workers."""
        data = self.settings.data_path
        try:
            data.mkdir(parents=True, exist_ok=True)
            probe = data / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StartupError(f"the data folder {data} cannot be written: "
                               f"{exc.strerror or exc}; choose another with --data-dir "
                               "or fix its permissions") from exc
        self.plugins.bind(KernelServices(self), self.server_info, data)
        provided = self.plugins.first("storage_backend")
        if provided is not None:
            self.storage_plugin, storage = provided
            if not isinstance(storage, StorageArea):
                raise StartupError(f"plugin {self.storage_plugin!r} returned a storage "
                                   "backend without write/read/remove methods")
            self.storage = storage
        else:
            fs = FilesystemStorageArea(self.settings.storage_path,
                                       compression=self.settings.storage.compression,
                                       sync=self.settings.storage.sync)
            leftovers = fs.cleanup_temporary_files()
            if leftovers:
                log.warning("removed %d temporary file(s) left by an interrupted write",
                            leftovers)
            self.storage = fs
        self.index = SQLiteIndex(self.settings.index_path, durable=self.settings.storage.sync,
                                 stable_age=float(self.settings.stable_age),
                                 shared=self.settings.dicom.storage_workers > 0)
        self.extras = IndexExtras(self.index)
        self.attachments = Attachments(self.extras, self.storage,
                                       self.settings.user_content_types)
        self.ingest_path = Ingest(self.index, self.storage, self.plugins,
                                  overwrite=self.settings.overwrite_instances)
        self.modalities = ModalityRegistry(modalities_from_config(self.settings.modalities),
                                           self.index)
        self.jobs = JobsEngine(self.index, workers=self.settings.jobs.workers,
                               history=self.settings.jobs.history_size)
        register_transfer_jobs(self)
        for plugin, (job_type, function) in self.plugins.collect("register_job_types"):
            log.debug("plugin %r provides the job type %s", plugin, job_type)
            self.jobs.register(job_type, function)
        self.jobs.start()
        self._workers = [
            ChangeDispatcher(self.index, self.plugins, self.stored_instance),
            StabilityMonitor(self.index),
        ]
        for worker in self._workers:
            worker.start()
        self._opened = True

    def close(self) -> None:
        if not self._opened:
            return
        self._opened = False
        self.jobs.stop()
        for worker in self._workers:
            worker.stop()
        self.index.close()

    # -- reads shared by REST, DIMSE and plugins ---------------------------------------

    def row(self, level: ResourceLevel, public_id: str) -> ResourceRow:
        row = self.index.lookup(level, public_id)
        if row is None:
            raise UnknownResource(f"unknown {level.title.lower()} {public_id}")
        return row

    def resource_json(self, row: ResourceRow) -> dict[str, Any]:
        return resources_json(self.index, [row])[0]

    def read_file(self, row: ResourceRow) -> bytes:
        att = self.index.attachment(row.internal_id)
        if att is None:
            raise UnknownResource(f"instance {row.public_id} has no DICOM file")
        try:
            return self.storage.read(att.uuid, att.compression)
        except FileNotFoundError as exc:
            raise UnknownResource(
                f"the file of instance {row.public_id} is missing from storage "
                f"(uuid {att.uuid})") from exc

    def iter_file(self, row: ResourceRow, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The file of an instance in chunks read lazily, for answers too large to hold in
        memory (archives). The default storage streams from disk; another storage area
        is read whole, then cut. Raises UnknownResource when the file is missing."""
        att = self.index.attachment(row.internal_id)
        if att is None:
            raise UnknownResource(f"instance {row.public_id} has no DICOM file")
        if not isinstance(self.storage, FilesystemStorageArea):
            data = self.read_file(row)
            return (data[i:i + chunk_size] for i in range(0, len(data), chunk_size))
        try:
            handle = self.storage.path_of(att.uuid).open("rb")
        except FileNotFoundError as exc:
            raise UnknownResource(
                f"the file of instance {row.public_id} is missing from storage "
                f"(uuid {att.uuid})") from exc
        return _file_chunks(handle, att.compression, chunk_size)

    def instance_dataset(self, row: ResourceRow) -> tuple[Dataset, bool]:
        """The header of an instance (no pixel data), from the index when kept there."""
        kept = self.index.header(row.internal_id)
        if kept is not None:
            header, has_pixels = kept
            return parse_header(header), has_pixels
        parsed = parse_dicom_bytes(self.read_file(row))
        return parsed.dataset, parsed.has_pixel_data

    def instance_tags(self, row: ResourceRow, fmt: TagsFormat = "full") -> dict[str, Any]:
        ds, has_pixels = self.instance_dataset(row)
        return dataset_to_json(ds, fmt, has_pixel_data=has_pixels)

    def instance_value(self, row: ResourceRow, keyword: str) -> str | None:
        """The value of a tag of an instance as text (numbers too, as in ``/tags``)."""
        ds, _ = self.instance_dataset(row)
        tag = tag_for_keyword(keyword)
        return element_text(ds, Tag(tag)) if tag is not None else None

    def find(self, level: ResourceLevel, query: Mapping[str, Any], *,
             case_sensitive: bool | None = None, since: int = 0, limit: int = 0,
             rest_api: bool = False, labels: Sequence[str] = (),
             labels_constraint: str = "All") -> list[ResourceRow]:
        """Resources matching ``query``; ``rest_api``: the rules of ``/tools/find``;
        ``labels``: they must have all, any or none of them (``labels_constraint``)."""
        if case_sensitive is None:
            case_sensitive = self.settings.case_sensitive_pn
        return find_resources(self.index, level, query, case_sensitive=case_sensitive,
                              since=since, limit=limit, instance_value=self.instance_value,
                              rest_api=rest_api, labels=labels,
                              labels_constraint=labels_constraint)

    def delete(self, level: ResourceLevel, public_id: str) -> ResourceRow | None:
        """Delete a resource; returns the remaining ancestor. Raises UnknownResource."""
        result = self.index.delete_resource(level, public_id)
        if result is None:
            raise UnknownResource(f"unknown {level.title.lower()} {public_id}")
        uuids, remaining = result
        for uuid in uuids:
            try:
                self.storage.remove(uuid)
            except OSError:
                log.exception("could not remove file %s of deleted %s %s", uuid,
                              level.title.lower(), public_id)
        return remaining

    def stored_instance(self, public_id: str) -> StoredInstance | None:
        row = self.index.lookup(ResourceLevel.INSTANCE, public_id)
        if row is None:
            return None  # deleted since
        series = self.index.ancestor(row, ResourceLevel.SERIES)
        study = self.index.ancestor(series, ResourceLevel.STUDY) if series else None
        patient = self.index.ancestor(study, ResourceLevel.PATIENT) if study else None
        if not (series and study and patient):
            return None
        md = self.index.metadata(row.internal_id)
        att = self.index.attachment(row.internal_id)
        tags = {**patient.main_tags, **study.main_tags, **series.main_tags, **row.main_tags}
        return StoredInstance(
            id=row.public_id, parent_series=series.public_id, parent_study=study.public_id,
            parent_patient=patient.public_id, origin=md.get("Origin", ""),
            sop_class_uid=md.get("SopClassUid", ""),
            sop_instance_uid=row.main_tags.get("SOPInstanceUID", ""),
            transfer_syntax_uid=md.get("TransferSyntax", ""), tags=tags,
            remote_aet=md.get("RemoteAET", ""), called_aet=md.get("CalledAET", ""),
            remote_ip=md.get("RemoteIP", ""), size=att.uncompressed_size if att else 0)

    @property
    def data_path(self) -> Path:
        return self.settings.data_path


class KernelServices:
    """The :class:`isengard_sdk.context.KernelServices` implementation."""

    def __init__(self, kernel: Kernel):
        self._k = kernel

    def get_resource(self, level: ResourceLevel, resource_id: str) -> dict[str, Any] | None:
        row = self._k.index.lookup(level, resource_id)
        return self._k.resource_json(row) if row else None

    def list_instances(self, level: ResourceLevel, resource_id: str) -> list[str]:
        row = self._k.row(level, resource_id)
        return [r.public_id for r in self._k.index.descendants(row, ResourceLevel.INSTANCE)]

    def read_instance_file(self, instance_id: str) -> bytes:
        row = self._k.index.lookup(ResourceLevel.INSTANCE, instance_id)
        if row is None:
            raise KeyError(instance_id)
        return self._k.read_file(row)

    def iter_instance_file(self, instance_id: str, chunk_size: int = 1 << 20
                           ) -> Iterator[bytes]:
        row = self._k.index.lookup(ResourceLevel.INSTANCE, instance_id)
        if row is None:
            raise KeyError(instance_id)
        try:
            return self._k.iter_file(row, chunk_size)
        except UnknownResource as exc:
            raise KeyError(str(exc)) from exc

    def instance_metadata(self, instance_id: str) -> dict[str, str]:
        row = self._k.index.lookup(ResourceLevel.INSTANCE, instance_id)
        if row is None:
            raise KeyError(instance_id)
        return self._k.index.metadata(row.internal_id)

    def instance_tags(self, instance_id: str) -> dict[str, Any]:
        return self._k.instance_tags(self._k.row(ResourceLevel.INSTANCE, instance_id),
                                     "simplify")

    def find(self, level: ResourceLevel, query: Mapping[str, str]) -> list[str]:
        return [r.public_id for r in self._k.find(level, query)]

    def ingest(self, data: bytes, origin: str = "Plugins") -> IngestResult:
        outcome, _ = self._k.ingest_path.ingest(data, Origin(kind=origin))
        p, st, se, i = outcome.ids
        return IngestResult(outcome.status, i, se, st, p)

    def delete(self, level: ResourceLevel, resource_id: str) -> bool:
        try:
            self._k.delete(level, resource_id)
        except UnknownResource:
            return False
        return True

    def set_metadata(self, level: ResourceLevel, resource_id: str, name: str,
                     value: str) -> None:
        row = self._k.index.lookup(level, resource_id)
        if row is None:
            raise KeyError(resource_id)
        self._k.index.set_metadata(row.internal_id, name, value)

    # -- user data (the ``userdata`` plugin's REST routes use these) --------------------

    def _row(self, level: ResourceLevel, resource_id: str) -> ResourceRow:
        row = self._k.index.lookup(level, resource_id)
        if row is None:
            raise HttpError(404, f"unknown {level.title.lower()} {resource_id}")
        return row

    def set_user_metadata(self, level: ResourceLevel, resource_id: str, name: str,
                          value: str) -> None:
        with _http_errors():
            row = self._row(level, resource_id)
            self._k.extras.set_metadata(
                row, user_metadata_name(name, self._k.settings.user_metadata), value)

    def delete_user_metadata(self, level: ResourceLevel, resource_id: str,
                             name: str) -> None:
        with _http_errors():
            row = self._row(level, resource_id)
            stored = user_metadata_name(name, self._k.settings.user_metadata)
            if not self._k.extras.delete_metadata(row, stored):
                raise UnknownResource(f"{level.title.lower()} {resource_id} has no "
                                      f"metadata {stored!r}")

    def labels(self, level: ResourceLevel, resource_id: str) -> list[str]:
        return self._k.extras.labels(self._row(level, resource_id).internal_id)

    def all_labels(self) -> list[str]:
        return self._k.extras.all_labels()

    def add_label(self, level: ResourceLevel, resource_id: str, label: str) -> None:
        with _http_errors():
            self._k.extras.add_label(self._row(level, resource_id), check_label(label))

    def remove_label(self, level: ResourceLevel, resource_id: str, label: str) -> None:
        with _http_errors():
            self._k.extras.remove_label(self._row(level, resource_id), check_label(label))

    def attachments(self, level: ResourceLevel, resource_id: str) -> dict[str, int]:
        return self._k.attachments.list(self._row(level, resource_id))

    def attachment_info(self, level: ResourceLevel, resource_id: str,
                        name: str) -> AttachmentInfo:
        with _http_errors():
            file_type, att = self._k.attachments.get(self._row(level, resource_id), name)
        return AttachmentInfo(
            content_type=file_type, uuid=att.uuid, uncompressed_size=att.uncompressed_size,
            uncompressed_md5=att.uncompressed_md5, compressed_size=att.compressed_size,
            compressed_md5=att.compressed_md5, compressed=att.compression != COMPRESSION_NONE)

    def read_attachment(self, level: ResourceLevel, resource_id: str, name: str, *,
                        as_stored: bool = False) -> bytes:
        with _http_errors():
            row = self._row(level, resource_id)
            if as_stored:
                return self._k.attachments.read_stored(row, name)
            return self._k.attachments.read(row, name)[2]

    def put_attachment(self, level: ResourceLevel, resource_id: str, name: str,
                       data: bytes) -> None:
        with _http_errors():
            self._k.attachments.put(self._row(level, resource_id), name, data)

    def delete_attachment(self, level: ResourceLevel, resource_id: str,
                          name: str) -> None:
        with _http_errors():
            self._k.attachments.delete(self._row(level, resource_id), name)

    def set_attachment_compression(self, level: ResourceLevel, resource_id: str,
                                   name: str, compressed: bool) -> None:
        with _http_errors():
            self._k.attachments.set_compression(self._row(level, resource_id), name,
                                                compressed)

    def verify_attachment(self, level: ResourceLevel, resource_id: str, name: str) -> None:
        with _http_errors():
            self._k.attachments.verify_md5(self._row(level, resource_id), name)

    def submit_job(self, job_type: str, parameters: Mapping[str, Any], *,
                   priority: int = 0) -> str:
        return self._k.jobs.submit(job_type, dict(parameters), priority=priority)

    def run_job(self, job_type: str, parameters: Mapping[str, Any], *,
                priority: int = 0) -> dict[str, Any]:
        return self._k.jobs.run_sync(job_type, dict(parameters), priority=priority)

    def increment_sequence(self, name: str) -> int:
        key = f"Sequence:{name}"
        with self._k.index.transaction() as conn:  # BEGIN IMMEDIATE: one writer at a time
            row = conn.execute("SELECT value FROM global_properties WHERE name = ?",
                               (key,)).fetchone()
            value = int(row[0]) + 1 if row else 1
            conn.execute("INSERT INTO global_properties(name, value) VALUES (?, ?) "
                         "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                         (key, str(value)))
        return value

    def transcode(self, data: bytes, transfer_syntax_uid: str) -> bytes | None:
        from .dicom_file import read_dataset
        from .scu import UNCOMPRESSED, _reencode

        meta = read_dataset(data, stop_before_pixels=True).file_meta
        source = str(meta.get("TransferSyntaxUID", "1.2.840.10008.1.2"))
        if source == transfer_syntax_uid:
            return data
        if source in UNCOMPRESSED and transfer_syntax_uid in UNCOMPRESSED:
            return _reencode(data, transfer_syntax_uid)
        answer = self._k.plugins.first("transcode", data=data,
                                       transfer_syntax_uid=transfer_syntax_uid)
        return answer[1] if answer else None


@contextmanager
def _http_errors() -> Iterator[None]:
    """Turn the kernel's errors into the ``HttpError`` the SDK documents for plugins."""
    try:
        yield
    except UnknownName as exc:
        raise HttpError(404, str(exc), orthanc=(7, "Accessing an inexistent item")) from exc
    except UnknownResource as exc:
        raise HttpError(404, str(exc)) from exc
    except Forbidden as exc:
        raise HttpError(403, str(exc)) from exc
    except (BadRequest, CorruptedFile) as exc:
        raise HttpError(400, str(exc)) from exc


def _file_chunks(handle: BinaryIO, compression: int, chunk_size: int) -> Iterator[bytes]:
    """Read a stored file in chunks, inflating Orthanc's "zlib with size" format."""
    with handle:
        if compression != COMPRESSION_ZLIB:
            while chunk := handle.read(chunk_size):
                yield chunk
            return
        handle.read(8)  # the uncompressed size, little-endian uint64
        inflater = zlib.decompressobj()
        while True:
            raw = inflater.unconsumed_tail or handle.read(chunk_size)
            if not raw:
                break
            if out := inflater.decompress(raw, chunk_size):
                yield out
        if tail := inflater.flush():
            yield tail
