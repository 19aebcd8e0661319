"""The entries of an archive (Orthanc's folder tree) or of a media (DICOMDIR).

Both are generators consumed by :func:`~.zipstream.zip_stream` while the answer is
sent: a file is opened only when its turn comes, and only the DICOMDIR records (a few
hundred bytes per instance) are kept until the end.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from isengard_sdk import KernelServices, ResourceLevel

from .dicomdir import DicomDirBuilder
from .naming import UniqueNames, folder_name, instance_file_name, media_file_id
from .plan import ArchivePlan
from .zipstream import ZipEntry

__all__ = ["archive_entries", "media_entries"]

CHUNK_SIZE = 1 << 20


def _file(services: KernelServices, instance_id: str, log: logging.Logger) -> Iterator[bytes]:
    try:
        return services.iter_instance_file(instance_id, CHUNK_SIZE)
    except KeyError:
        # Deleted after the answer started: the ZIP cannot be completed, and a truncated
        # download is the honest outcome (Orthanc does the same).
        log.error("instance %s was deleted while its archive was being sent; the archive "
                  "is interrupted", instance_id)
        raise


def archive_entries(services: KernelServices, plan: ArchivePlan,
                    log: logging.Logger) -> Iterator[ZipEntry]:
    """``Patient/Study/Series/XY000000.dcm`` entries, named as Orthanc names them."""
    patients = UniqueNames()
    for patient in plan.sorted_patients():
        patient_dir = patients.claim(folder_name(ResourceLevel.PATIENT, patient.main_tags))
        studies = UniqueNames()
        for study in patient.sorted_children():
            study_dir = studies.claim(folder_name(ResourceLevel.STUDY, study.main_tags))
            series_names = UniqueNames()
            for series in study.sorted_children():
                series_dir = series_names.claim(folder_name(ResourceLevel.SERIES,
                                                            series.main_tags))
                path = f"{patient_dir}/{study_dir}/{series_dir}"
                files = UniqueNames()
                modality = series.main_tags.get("Modality", "")
                for index, instance in enumerate(plan.instances_of(series)):
                    name = files.claim(instance_file_name(modality, index))
                    yield ZipEntry(f"{path}/{name}", instance.size,
                                   _file(services, instance.id, log))


def _strings(tags: Mapping[str, Any]) -> dict[str, str]:
    """The textual values of simplified tags (sequences and binary values left out)."""
    return {k: ("" if v is None else v) for k, v in tags.items()
            if v is None or isinstance(v, str)}


def media_entries(services: KernelServices, plan: ArchivePlan, log: logging.Logger, *,
                  extended: bool = False) -> Iterator[ZipEntry]:
    """``IMAGES/IM0`` … then the ``DICOMDIR`` describing them."""
    builder = DicomDirBuilder(extended=extended)
    try:
        index = 0
        for series in plan.all_series():
            for instance in plan.instances_of(series):
                file_id = media_file_id(index)
                tags = _strings(services.instance_tags(instance.id))
                metadata = services.instance_metadata(instance.id)
                builder.add(tags,
                            sop_class_uid=metadata.get("SopClassUid")
                            or tags.get("SOPClassUID", ""),
                            sop_instance_uid=tags.get("SOPInstanceUID", ""),
                            transfer_syntax_uid=metadata.get("TransferSyntax", ""),
                            file_id=file_id)
                yield ZipEntry("/".join(file_id), instance.size,
                               _file(services, instance.id, log))
                index += 1
        dicomdir = builder.encode()
        yield ZipEntry("DICOMDIR", len(dicomdir), [dicomdir])
    finally:
        builder.close()
