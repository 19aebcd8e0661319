"""Query/retrieve as a server: C-FIND, C-MOVE and C-GET SCP (PS3.4 Annex C).

Answers come from the index (main tags, computed attributes) and from the instance
headers kept in the index for other attributes — never from re-reading files. Access
follows Orthanc: a known caller (a declared modality) has its Allow* rights; unknown
callers may query or retrieve only if ``dicom.always_allow_find/move/get`` say so.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pydicom
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import evt

from isengard_sdk.types import ResourceLevel

from .dicom_tags import MAIN_TAGS, element_string, encodings_of
from .dimse_find import Element, encode_identifier, send_find_answers
from .dimse_move import MoveService
from .errors import BadRequest
from .find import parse_constraint

if TYPE_CHECKING:
    from .config import DicomSettings
    from .index import ResourceRow
    from .kernel import Kernel
    from .modalities import ModalityRegistry

__all__ = ["QR_SOP_CLASSES", "QueryRetrieveHandlers"]

log = logging.getLogger("isengard.dicom")

PATIENT_ROOT = ("1.2.840.10008.5.1.4.1.2.1.1", "1.2.840.10008.5.1.4.1.2.1.2",
                "1.2.840.10008.5.1.4.1.2.1.3")
STUDY_ROOT = ("1.2.840.10008.5.1.4.1.2.2.1", "1.2.840.10008.5.1.4.1.2.2.2",
              "1.2.840.10008.5.1.4.1.2.2.3")
QR_SOP_CLASSES = PATIENT_ROOT + STUDY_ROOT

LEVELS = {"PATIENT": ResourceLevel.PATIENT, "STUDY": ResourceLevel.STUDY,
          "SERIES": ResourceLevel.SERIES, "IMAGE": ResourceLevel.INSTANCE}
UNIQUE_KEYS = {ResourceLevel.PATIENT: "PatientID", ResourceLevel.STUDY: "StudyInstanceUID",
               ResourceLevel.SERIES: "SeriesInstanceUID",
               ResourceLevel.INSTANCE: "SOPInstanceUID"}
# Attributes computed from the index (PS3.4 C.3.4), by the level they apply to.
COMPUTED = {
    "NumberOfPatientRelatedStudies": ResourceLevel.PATIENT,
    "NumberOfPatientRelatedSeries": ResourceLevel.PATIENT,
    "NumberOfPatientRelatedInstances": ResourceLevel.PATIENT,
    "NumberOfStudyRelatedSeries": ResourceLevel.STUDY,
    "NumberOfStudyRelatedInstances": ResourceLevel.STUDY,
    "NumberOfSeriesRelatedInstances": ResourceLevel.SERIES,
    "ModalitiesInStudy": ResourceLevel.STUDY,
    "SOPClassesInStudy": ResourceLevel.STUDY,
}
_SKIPPED = {0x00080052, 0x00080005}  # QueryRetrieveLevel, SpecificCharacterSet

STATUS_PENDING = 0xFF00
STATUS_CANCEL = 0xFE00
STATUS_NOT_AUTHORIZED = 0x0124  # PS3.7 C.4: "Not authorized" (refused for this caller)
STATUS_IDENTIFIER_MISMATCH = 0xA900  # PS3.4 C.4.1.1.4: identifier does not match SOP class
STATUS_UNABLE_TO_PROCESS = 0xC000
STATUS_UNKNOWN_DESTINATION = 0xA801


class QueryRetrieveHandlers:
    """The pynetdicom handlers for C-FIND, C-MOVE and C-GET of one server."""

    def __init__(self, kernel: Kernel, modalities: ModalityRegistry,
                 settings: DicomSettings, limits: tuple[int, int]):
        self.kernel = kernel
        self.modalities = modalities
        self.settings = settings
        self.limit_results, self.limit_instances = limits
        self.move = MoveService(self)

    def handlers(self) -> list[tuple[Any, Callable[..., Any]]]:
        """C-FIND and C-GET through pynetdicom's events; C-MOVE by :mod:`.dimse_move`,
        installed on each association as it opens."""
        return [(evt.EVT_C_FIND, self.on_find), (evt.EVT_C_GET, self.on_get),
                (evt.EVT_CONN_OPEN, self.move.install)]

    # -- access control ----------------------------------------------------------------

    def allowed(self, assoc: Any, right: str) -> bool:
        """Whether the peer of ``assoc`` may use ``right`` (find, move, get)."""
        requestor = assoc.requestor
        host = requestor.address if self.settings.check_modality_host else None
        modality = self.modalities.by_aet(requestor.ae_title, host)
        if modality is not None:
            return bool(getattr(modality, f"allow_{right}"))
        allowed = bool(getattr(self.settings, f"always_allow_{right}"))
        if not allowed:
            log.warning("C-%s from unknown AE title %s (%s) refused: declare it under "
                        "`modalities:` or set dicom.always_allow_%s", right.upper(),
                        requestor.ae_title, requestor.address, right)
        return allowed

    # -- C-FIND --------------------------------------------------------------------------

    def on_find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        if not self.allowed(event.assoc, "find"):
            yield STATUS_NOT_AUTHORIZED, None
            return
        try:
            identifier = event.identifier
            level, query, requested = parse_identifier(identifier)
        except BadRequest as exc:
            log.warning("C-FIND from %s refused: %s", event.assoc.requestor.ae_title, exc)
            yield STATUS_IDENTIFIER_MISMATCH, None
            return
        limit = self.limit_instances if level == ResourceLevel.INSTANCE else self.limit_results
        sequences = sequence_keys(identifier)
        try:
            rows = self.kernel.find(level, query, limit=0 if sequences else limit)
            if sequences:  # matched against the headers kept in the index
                case_sensitive = self.kernel.settings.case_sensitive_pn
                rows = [r for r in rows
                        if sequence_matches(self._header(r), sequences, case_sensitive)]
                rows = rows[:limit] if limit else rows
        except BadRequest as exc:
            log.warning("C-FIND from %s refused: %s", event.assoc.requestor.ae_title, exc)
            yield STATUS_UNABLE_TO_PROCESS, None
            return
        log.info("C-FIND from %s at %s level: %d match(es)", event.assoc.requestor.ae_title,
                 level.title, len(rows))
        syntax = str(event.context.transfer_syntax)
        if syntax in (ImplicitVRLittleEndian, ExplicitVRLittleEndian):
            # The answers straight onto the socket (pynetdicom then sends the final
            # Success when this generator ends): ~1 ms less per answer.
            implicit = syntax == ImplicitVRLittleEndian
            answers = (encode_identifier(self.answer_elements(row, level, requested),
                                         implicit=implicit) for row in rows)
            try:
                send_find_answers(event.assoc, event.context.context_id,
                                  event.request.MessageID,
                                  str(event.request.AffectedSOPClassUID), answers)
            except OSError as exc:
                log.warning("C-FIND from %s: the answers could not be sent: %s",
                            event.assoc.requestor.ae_title, exc)
                event.assoc.abort()
            return
        for row in rows:  # a big endian or deflated context: through pynetdicom
            if event.is_cancelled:
                yield STATUS_CANCEL, None
                return
            yield STATUS_PENDING, self.answer(row, level, requested)

    def answer_elements(self, row: ResourceRow, level: ResourceLevel,
                        requested: list[DataElement]) -> list[Element]:
        """One C-FIND answer: the requested keys (and only those) plus the unique keys,
        as (tag, VR, value) — strings from the index, elements of a stored header."""
        chain = self._chain(row)
        main: dict[str, str] = {}
        for ancestor in chain.values():
            main.update(ancestor.main_tags)
        elements: dict[int, Element] = {
            0x00080005: (0x00080005, "CS", "ISO_IR 192"),  # SpecificCharacterSet
            0x00080052: (0x00080052, "CS",  # QueryRetrieveLevel
                         "IMAGE" if level == ResourceLevel.INSTANCE else level.name),
        }
        header: Dataset | None = None
        for element in requested:
            tag = int(element.tag)
            keyword = keyword_for_tag(tag)
            if keyword in COMPUTED:
                elements[tag] = (tag, element.VR, self._computed(keyword, chain) or "")
            elif keyword and _main_level(keyword) is not None and keyword in main:
                elements[tag] = (tag, element.VR, main[keyword])
            else:
                if header is None:
                    header = self._header(row)
                if header is not None and tag in header:
                    elements[tag] = (tag, element.VR, header[tag])
                else:
                    elements[tag] = (tag, element.VR, "")
        for lvl in ResourceLevel:
            if lvl <= level:
                key = UNIQUE_KEYS[lvl]
                tag = int(tag_for_keyword(key) or 0)
                if tag not in elements:
                    elements[tag] = (tag, dictionary_VR(tag), main.get(key, ""))
        return list(elements.values())

    def answer(self, row: ResourceRow, level: ResourceLevel,
               requested: list[DataElement]) -> Dataset:
        """:meth:`answer_elements` as a pydicom ``Dataset``."""
        ds = Dataset()
        for tag, vr, value in sorted(self.answer_elements(row, level, requested)):
            if isinstance(value, DataElement):
                ds[tag] = value
            else:
                ds.add_new(tag, vr, value or None)
        return ds

    def _chain(self, row: ResourceRow) -> dict[ResourceLevel, ResourceRow]:
        chain = {row.level: row}
        current = row
        while current.parent_id is not None:
            parent = self.kernel.index.get_by_internal(current.parent_id)
            if parent is None:
                break
            chain[parent.level] = parent
            current = parent
        return chain

    def _header(self, row: ResourceRow) -> Dataset | None:
        instance = self.kernel.index.first_instance(row)
        if instance is None:
            return None
        ds, _ = self.kernel.instance_dataset(instance)
        return ds

    def _computed(self, keyword: str, chain: dict[ResourceLevel, ResourceRow]) -> Any:
        level = COMPUTED[keyword]
        row = chain.get(level)
        if row is None:
            return None
        index = self.kernel.index
        if keyword.startswith("NumberOf"):
            target = {"Studies": ResourceLevel.STUDY, "Series": ResourceLevel.SERIES,
                      "Instances": ResourceLevel.INSTANCE}[keyword.rsplit("Related", 1)[1]]
            return str(len(index.descendants(row, target)))
        if keyword == "ModalitiesInStudy":
            modalities = {s.main_tags.get("Modality", "")
                          for s in index.descendants(row, ResourceLevel.SERIES)}
            return "\\".join(sorted(m for m in modalities if m))
        instances = index.descendants(row, ResourceLevel.INSTANCE)
        classes = index.metadata_of([i.internal_id for i in instances], "SopClassUid")
        return "\\".join(sorted(set(classes.values())))

    # -- C-MOVE / C-GET ------------------------------------------------------------------

    def instances_of(self, identifier: Dataset) -> list[ResourceRow]:
        """The instances a C-MOVE/C-GET identifier designates; BadRequest if none can."""
        level, query, _ = parse_identifier(identifier)
        keys = {k: v for k, v in query.items()
                if k in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID",
                         "SOPInstanceUID", "AccessionNumber")}
        if not keys:
            raise BadRequest("the C-MOVE/C-GET identifier has no unique key")
        rows = self.kernel.find(level, keys)
        out: list[ResourceRow] = []
        for row in rows:
            out += self.kernel.index.descendants(row, ResourceLevel.INSTANCE)
        return out

    def _dataset(self, row: ResourceRow) -> Dataset:
        return pydicom.dcmread(io.BytesIO(self.kernel.read_file(row)))

    def on_get(self, event: Any) -> Iterator[Any]:
        if not self.allowed(event.assoc, "get"):
            yield 0
            return
        try:
            rows = self.instances_of(event.identifier)
        except BadRequest as exc:
            log.warning("C-GET from %s refused: %s", event.assoc.requestor.ae_title, exc)
            yield 0
            return
        yield len(rows)
        log.info("C-GET from %s: %d instance(s)", event.assoc.requestor.ae_title, len(rows))
        yield from self._sub_operations(event, rows)

    def _sub_operations(self, event: Any, rows: list[ResourceRow]) -> Iterator[Any]:
        for row in rows:
            if event.is_cancelled:
                yield STATUS_CANCEL, None
                return
            try:
                ds = self._dataset(row)
            except Exception as exc:  # a missing file fails this sub-operation only
                log.error("cannot read instance %s for retrieval: %s", row.public_id, exc)
                failed = Dataset()
                failed.FailedSOPInstanceUIDList = [row.main_tags.get("SOPInstanceUID", "")]
                yield 0xA702, failed  # PS3.4 C.4.2.1.5: unable to perform sub-operations
                return
            yield STATUS_PENDING, ds


def _main_level(keyword: str) -> ResourceLevel | None:
    for level in ResourceLevel:
        if keyword in MAIN_TAGS[level]:
            return level
    return None


def parse_identifier(identifier: Dataset) -> tuple[ResourceLevel, dict[str, str],
                                                    list[DataElement]]:
    """(level, matching keys with values, requested return keys) of a C-FIND identifier.

    Sequences are return keys here; their matching keys come from
    :func:`sequence_keys`."""
    if identifier is None or "QueryRetrieveLevel" not in identifier:
        raise BadRequest("the identifier has no QueryRetrieveLevel (0008,0052)")
    raw_level = str(identifier.QueryRetrieveLevel).strip().upper()
    if raw_level not in LEVELS:
        raise BadRequest(f"unknown QueryRetrieveLevel {raw_level!r}")
    level = LEVELS[raw_level]
    encodings = encodings_of(identifier)
    query: dict[str, str] = {}
    requested: list[DataElement] = []
    for tag in sorted(identifier.keys()):
        if int(tag) in _SKIPPED or int(tag) & 0xFFFF == 0:
            continue
        element = identifier[tag]
        requested.append(element)
        keyword = keyword_for_tag(tag)
        if not keyword or element.VR == "SQ":
            continue  # private tags and sequences are return keys only
        value = element_string(identifier, Tag(tag), encodings)
        if value:
            query[keyword] = value
    return level, query, requested


def sequence_keys(identifier: Dataset) -> list[tuple[int, Dataset]]:
    """Sequence matching (PS3.4 C.2.2.2.6): the top-level sequences whose (first) item
    holds at least one non-empty key, with that item."""
    keys = []
    for element in identifier:
        if element.VR != "SQ" or not element.value:
            continue
        item = element.value[0]
        if any(e.VR != "SQ" and e.value not in (None, "", b"") for e in item):
            keys.append((int(element.tag), item))
    return keys


def sequence_matches(stored: Dataset | None, keys: list[tuple[int, Dataset]],
                     case_sensitive: bool) -> bool:
    """Whether a dataset (an instance header) matches every sequence key: one of its
    items must match all the non-empty keys of the query item."""
    for tag, query_item in keys:
        if stored is None or tag not in stored or not stored[tag].value:
            return False
        constraints = []
        encodings = encodings_of(query_item)
        for element in query_item:
            keyword = keyword_for_tag(element.tag)
            value = element_string(query_item, Tag(element.tag), encodings)
            if keyword and value:
                constraints.append((Tag(element.tag),
                                    parse_constraint(keyword, value,
                                                     case_sensitive=case_sensitive)))
        if not any(all(c.matches(element_string(item, tag_, encodings_of(item)))
                       for tag_, c in constraints)
                   for item in stored[tag].value):
            return False
    return True
