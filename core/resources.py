"""The JSON of resources, as Orthanc answers ``GET /{level}/{id}`` — built in batches
from the index, never from files."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from isengard_sdk.types import ResourceLevel

from .dicom_tags import MAIN_TAGS
from .index import ResourceRow, SQLiteIndex
from .index.extras import IndexExtras

__all__ = ["expected_instances", "resources_json", "series_status"]

_CHILD_KEY = {
    ResourceLevel.PATIENT: "Studies",
    ResourceLevel.STUDY: "Series",
    ResourceLevel.SERIES: "Instances",
}
_PARENT_KEY = {
    ResourceLevel.STUDY: "ParentPatient",
    ResourceLevel.SERIES: "ParentStudy",
    ResourceLevel.INSTANCE: "ParentSeries",
}


def resources_json(index: SQLiteIndex, rows: Sequence[ResourceRow]) -> list[dict[str, Any]]:
    """Orthanc's JSON for several resources of the same level, in order."""
    if not rows:
        return []
    level = rows[0].level
    ids = [r.internal_id for r in rows]
    children = index.children_ids(ids) if level < ResourceLevel.INSTANCE else {}
    parents = index.parents_public(ids) if level > ResourceLevel.PATIENT else {}
    patient_tags: dict[int, dict[str, str]] = {}
    if level == ResourceLevel.STUDY:
        # The copy made when the study was created (as Orthanc), not the patient's tags.
        patient_tags = index.copied_patient_tags(ids, MAIN_TAGS[ResourceLevel.PATIENT])
    attachments = index.attachments_of(ids) if level == ResourceLevel.INSTANCE else {}
    index_in_series = (index.metadata_of(ids, "IndexInSeries")
                       if level == ResourceLevel.INSTANCE else {})
    # Orthanc shows where a modified/anonymized resource comes from in its JSON.
    origins = {name: index.metadata_of(ids, name) for name in ("AnonymizedFrom",
                                                                "ModifiedFrom")}
    # Orthanc 1.12 lists labels in every resource; Isengard answers as 1.10 and adds the
    # key only to resources that have labels, so that 1.10 clients see no change.
    labels = IndexExtras(index).labels_of(ids)
    out = []
    for row in rows:
        body: dict[str, Any] = {"ID": row.public_id}
        if row.internal_id in labels:
            body["Labels"] = labels[row.internal_id]
        if level != ResourceLevel.INSTANCE:
            body["IsStable"] = row.is_stable
            body["LastUpdate"] = row.last_update
        body["MainDicomTags"] = dict(sorted(row.main_tags.items()))
        if level in _PARENT_KEY:
            body[_PARENT_KEY[level]] = parents.get(row.internal_id, ("",))[0]
        if level in _CHILD_KEY:
            body[_CHILD_KEY[level]] = children.get(row.internal_id, [])
        if level == ResourceLevel.STUDY:
            body["PatientMainDicomTags"] = dict(sorted(patient_tags.get(row.internal_id,
                                                                        {}).items()))
        if level == ResourceLevel.SERIES:
            expected = expected_instances(row.main_tags)
            body["ExpectedNumberOfInstances"] = expected
            body["Status"] = series_status(index, row, expected)
        if level == ResourceLevel.INSTANCE:
            att = attachments.get(row.internal_id)
            body["FileSize"] = att.uncompressed_size if att else 0
            body["FileUuid"] = att.uuid if att else ""
            value = index_in_series.get(row.internal_id)
            body["IndexInSeries"] = _integer(value)
        for name, values in origins.items():
            if row.internal_id in values:
                body[name] = values[row.internal_id]
        body["Type"] = level.title
        out.append(dict(sorted(body.items())))
    return out


def _integer(value: str | None) -> int | None:
    """Orthanc's ``LookupIntegerMetadata``: an integer, or null when it is not one."""
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def expected_instances(series_tags: dict[str, str]) -> int | None:
    """The number of instances a series announces, as Orthanc 1.10 computes it
    (``ComputeExpectedNumberOfInstances``): ImagesInAcquisition × NumberOfTemporalPositions
    when both are present, else NumberOfSlices, else CardiacNumberOfImages."""
    def number(key: str) -> int | None:
        value = series_tags.get(key)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            return None

    if "ImagesInAcquisition" in series_tags and "NumberOfTemporalPositions" in series_tags:
        images, temporal = number("ImagesInAcquisition"), number("NumberOfTemporalPositions")
        count = images * temporal if images is not None and temporal is not None else None
    elif "NumberOfSlices" in series_tags:
        count = number("NumberOfSlices")
    elif "CardiacNumberOfImages" in series_tags:
        count = number("CardiacNumberOfImages")
    else:
        return None
    return count if count is not None and count > 0 else None


def series_status(index: SQLiteIndex, row: ResourceRow, expected: int | None) -> str:
    """``Unknown``, ``Complete``, ``Missing`` or ``Inconsistent`` (Orthanc's rules)."""
    if expected is None:
        return "Unknown"
    instances = index.descendants(row, ResourceLevel.INSTANCE)
    positions = index.metadata_of([r.internal_id for r in instances], "IndexInSeries")
    seen: set[int] = set()
    for instance in instances:
        value = positions.get(instance.internal_id)
        if value is None:  # Orthanc only looks at the children that have the metadata
            continue
        try:
            position = int(value)
        except ValueError:
            return "Unknown"
        if position < 1 or position > expected or position in seen:
            return "Inconsistent"
        seen.add(position)
    return "Complete" if len(seen) == expected else "Missing"
