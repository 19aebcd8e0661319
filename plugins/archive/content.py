"""The entries of an archive (Orthanc's folder tree) or of a media (DICOMDIR).

Both are generators consumed by :func:`~.zipstream.zip_stream` while the answer is
sent: a file is opened only when its turn comes, and only the DICOMDIR records (a few
hundred bytes per instance) are kept until the end.

With a transfer syntax to transcode to, each file is read whole, converted through the
kernel and the codec plugins, and written converted; a file that cannot be converted
is written as stored and the reason logged, as Orthanc 1.10 does. The DICOMDIR then
describes the files as written (a lossy conversion gives a new SOP Instance UID).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pydicom

from isengard_sdk import KernelServices, ResourceLevel

from .dicomdir import DicomDirBuilder
from .naming import UniqueNames, folder_name, instance_file_name, media_file_id
from .plan import ArchivePlan, PlannedInstance
from .zipstream import ZipEntry

__all__ = ["archive_entries", "media_entries"]

CHUNK_SIZE = 1 << 20


def _deleted(instance_id: str, log: logging.Logger) -> None:
    # Deleted after the answer started: the ZIP cannot be completed, and a truncated
    # download is the honest outcome (Orthanc does the same).
    log.error("instance %s was deleted while its archive was being sent; the archive "
              "is interrupted", instance_id)


def _file(services: KernelServices, instance_id: str, log: logging.Logger) -> Iterator[bytes]:
    try:
        return services.iter_instance_file(instance_id, CHUNK_SIZE)
    except KeyError:
        _deleted(instance_id, log)
        raise


def _transcoded(services: KernelServices, instance_id: str, target: str,
                log: logging.Logger) -> bytes:
    """The file of the instance in ``target``, or as stored when it cannot be."""
    try:
        data = services.read_instance_file(instance_id)
    except KeyError:
        _deleted(instance_id, log)
        raise
    try:
        converted = services.transcode(data, target)
    except Exception as exc:  # a failing codec plugin: the file goes as stored
        log.warning("instance %s is archived as stored: transcoding it to %s failed: %s",
                    instance_id, target, exc)
        return data
    if converted is None:
        log.warning("instance %s is archived as stored: no codec can transcode it to %s "
                    "(the codecs plugin logs why)", instance_id, target)
        return data
    return converted


def _entry(services: KernelServices, name: str, instance: PlannedInstance,
           transcode: str | None, log: logging.Logger) -> ZipEntry:
    if transcode is None:
        return ZipEntry(name, instance.size, _file(services, instance.id, log))
    data = _transcoded(services, instance.id, transcode, log)
    return ZipEntry(name, len(data), [data])


def archive_entries(services: KernelServices, plan: ArchivePlan, log: logging.Logger, *,
                    transcode: str | None = None) -> Iterator[ZipEntry]:
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
                    yield _entry(services, f"{path}/{name}", instance, transcode, log)


def _strings(tags: Mapping[str, Any]) -> dict[str, str]:
    """The textual values of simplified tags (sequences and binary values left out)."""
    return {k: ("" if v is None else v) for k, v in tags.items()
            if v is None or isinstance(v, str)}


def _identity(data: bytes) -> tuple[str, str]:
    """SOP Instance UID and transfer syntax of a transcoded file, read from its header."""
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    return str(ds.get("SOPInstanceUID", "")), str(ds.file_meta.get("TransferSyntaxUID", ""))


def media_entries(services: KernelServices, plan: ArchivePlan, log: logging.Logger, *,
                  extended: bool = False, transcode: str | None = None
                  ) -> Iterator[ZipEntry]:
    """``IMAGES/IM0`` … then the ``DICOMDIR`` describing them."""
    builder = DicomDirBuilder(extended=extended)
    try:
        index = 0
        for series in plan.all_series():
            for instance in plan.instances_of(series):
                file_id = media_file_id(index)
                tags = _strings(services.instance_tags(instance.id))
                metadata = services.instance_metadata(instance.id)
                name = "/".join(file_id)
                if transcode is None:
                    entry = ZipEntry(name, instance.size, _file(services, instance.id, log))
                    sop_instance_uid = tags.get("SOPInstanceUID", "")
                    syntax = metadata.get("TransferSyntax", "")
                else:
                    data = _transcoded(services, instance.id, transcode, log)
                    entry = ZipEntry(name, len(data), [data])
                    sop_instance_uid, syntax = _identity(data)
                builder.add(tags,
                            sop_class_uid=metadata.get("SopClassUid")
                            or tags.get("SOPClassUID", ""),
                            sop_instance_uid=sop_instance_uid,
                            transfer_syntax_uid=syntax, file_id=file_id)
                yield entry
                index += 1
        dicomdir = builder.encode()
        yield ZipEntry("DICOMDIR", len(dicomdir), [dicomdir])
    finally:
        builder.close()
