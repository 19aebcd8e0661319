"""The ingest path: the one function every incoming instance goes through.

DIMSE C-STORE, REST upload, ZIP, import and plugins all call :meth:`Ingest.ingest`:

    parse header → filters → (already stored?) → storage (atomic, durable) → index commit

The change log written by the index commit drives ``on_stored_instance`` / ``on_change``
asynchronously. Nothing is acknowledged before the file is durable and indexed; nothing
is left behind when a step fails.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from isengard_sdk.types import IncomingInstance, ResourceLevel, StorageArea

from .dicom_file import ParsedInstance, parse_dicom_bytes
from .errors import InstanceRejected
from .index import NewInstanceRecord, SQLiteIndex, StoreOutcome
from .index.records import now_iso
from .plugins import PluginHost
from .resources import expected_instances

__all__ = ["Ingest", "Origin"]

log = logging.getLogger("isengard.ingest")


@dataclass(frozen=True)
class Origin:
    """Where an instance comes from (becomes the instance's metadata)."""

    kind: str  # Orthanc's names: "DicomProtocol", "RestApi", "Plugins", "Import"
    remote_aet: str = ""
    called_aet: str = ""
    remote_ip: str = ""
    http_username: str = ""


class Ingest:
    def __init__(self, index: SQLiteIndex, storage: StorageArea, plugins: PluginHost,
                 *, overwrite: bool = False):
        self.index = index
        self.storage = storage
        self.plugins = plugins
        self.overwrite = overwrite
        self._has_filters = plugins.has_impl("filter_incoming_instance")

    def ingest(self, data: bytes, origin: Origin) -> tuple[StoreOutcome, ParsedInstance]:
        """Store one DICOM file. Raises ``InvalidDicomError`` or ``InstanceRejected``."""
        parsed = parse_dicom_bytes(data)
        if self._has_filters:
            incoming = IncomingInstance(
                origin=origin.kind, sop_class_uid=parsed.sop_class_uid,
                sop_instance_uid=parsed.sop_instance_uid,
                transfer_syntax_uid=parsed.transfer_syntax_uid,
                tags=parsed.all_main_tags(), remote_aet=origin.remote_aet,
                called_aet=origin.called_aet, remote_ip=origin.remote_ip, size=len(data))
            reason = self.plugins.veto("filter_incoming_instance", instance=incoming)
            if reason is not None:
                raise InstanceRejected(reason)
        ids = parsed.ids.by_level()
        if not self.overwrite and self.index.exists(ResourceLevel.INSTANCE, ids[3]):
            return StoreOutcome("AlreadyStored", ids), parsed
        info = self.storage.write(parsed.data)
        record = NewInstanceRecord(
            ids=ids, main_tags=parsed.main_tags, file=info,
            metadata=self._metadata(parsed, origin), header=parsed.header,
            has_pixel_data=parsed.has_pixel_data,
            series_metadata=self._series_metadata(parsed, origin))
        try:
            outcome = self.index.store_instance(record, overwrite=self.overwrite)
        except BaseException:
            self.storage.remove(info.uuid)  # no file without its index row
            raise
        if outcome.status != "Success":  # lost a race with another association
            self.storage.remove(info.uuid)
        for replaced in outcome.replaced_files:
            self.storage.remove(replaced)
        return outcome, parsed

    @staticmethod
    def _series_metadata(parsed: ParsedInstance, origin: Origin) -> dict[str, str]:
        md = {"RemoteAET": origin.remote_aet}
        expected = expected_instances(parsed.main_tags[ResourceLevel.SERIES])
        if expected is not None:
            md["ExpectedNumberOfInstances"] = str(expected)
        return md

    @staticmethod
    def _metadata(parsed: ParsedInstance, origin: Origin) -> dict[str, str]:
        md: dict[str, str] = {}
        tags = parsed.main_tags[ResourceLevel.INSTANCE]
        # As Orthanc: InstanceNumber if present (even empty), else ImageIndex, stripped.
        index_in_series = tags.get("InstanceNumber", tags.get("ImageIndex"))
        if index_in_series is not None:
            md["IndexInSeries"] = index_in_series.strip()
        md["ReceptionDate"] = now_iso()
        md["RemoteAET"] = origin.remote_aet
        if origin.kind == "DicomProtocol":
            md["CalledAET"] = origin.called_aet
        md["Origin"] = origin.kind
        md["TransferSyntax"] = parsed.transfer_syntax_uid
        md["SopClassUid"] = parsed.sop_class_uid
        md["RemoteIP"] = origin.remote_ip
        if origin.kind == "RestApi":
            md["HttpUsername"] = origin.http_username
        if parsed.pixel_data_offset is not None:
            md["PixelDataOffset"] = str(parsed.pixel_data_offset)
        return md
