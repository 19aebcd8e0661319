"""The ``ResourceModification`` job: modify or anonymize every instance of a patient,
study or series and store the results as new resources (Orthanc's job of that name).

Its parameters are JSON (they are kept in the index): the resource, the modification,
the UID secret and the options. Its ``Content`` is Orthanc's: ``Description``,
``FailedInstancesCount``, ``ID``, ``InstancesCount``, ``IsAnonymization``, ``Path``,
``PatientID``, ``Type`` — also the answer of a synchronous request.
"""

from __future__ import annotations

from typing import Any

from isengard_sdk import Context, ResourceLevel
from isengard_sdk.context import JobHandle, KernelServices

from .apply import UidMapper, modify_file
from .request import Modification

__all__ = ["JOB_TYPE", "job_parameters", "run_modification"]

JOB_TYPE = "ResourceModification"


def job_parameters(level: ResourceLevel, resource_id: str, mod: Modification, secret: str,
                   *, keep_source: bool, transcode: str | None) -> dict[str, Any]:
    return {"Level": level.title, "Resource": resource_id, "Modification": mod.to_json(),
            "Secret": secret, "KeepSource": keep_source, "Transcode": transcode}


def transcoded(services: KernelServices, data: bytes, syntax: str | None) -> bytes:
    """``data`` in the transfer syntax ``syntax`` (if given), or a clear error."""
    if not syntax:
        return data
    try:
        converted = services.transcode(data, syntax)
    except Exception as exc:
        raise ValueError(f"cannot transcode to {syntax}: {exc}") from exc
    if converted is None:
        raise ValueError(f"no codec could transcode this instance to {syntax}: the "
                         "server's log says why (e.g. JPEG baseline takes 8-bit images "
                         "only; a missing encoder names the package to install)")
    return converted


class _Originals:
    """The identifiers of the parents of original instances, looked up once each."""

    def __init__(self, services: KernelServices):
        self.services = services
        self.parent: dict[str, str] = {}

    def _parent(self, level: ResourceLevel, resource_id: str) -> str:
        key = f"{level.title}/{resource_id}"
        if key not in self.parent:
            body = self.services.get_resource(level, resource_id) or {}
            field = "Parent" + ResourceLevel(level - 1).title
            self.parent[key] = str(body.get(field, ""))
        return self.parent[key]

    def of(self, instance_id: str) -> dict[ResourceLevel, str]:
        series = self._parent(ResourceLevel.INSTANCE, instance_id)
        study = self._parent(ResourceLevel.SERIES, series)
        patient = self._parent(ResourceLevel.STUDY, study)
        return {ResourceLevel.INSTANCE: instance_id, ResourceLevel.SERIES: series,
                ResourceLevel.STUDY: study, ResourceLevel.PATIENT: patient}


def run_modification(context: Context, job: JobHandle) -> dict[str, Any]:
    services = context.services
    p = job.parameters
    level = ResourceLevel.from_name(p["Level"])
    mod = Modification.from_json(p["Modification"])
    mapper = UidMapper(p["Secret"])
    metadata = "AnonymizedFrom" if mod.anonymize else "ModifiedFrom"
    instances = services.list_instances(level, p["Resource"])
    content: dict[str, Any] = {"Description": "REST API", "FailedInstancesCount": 0,
                               "InstancesCount": len(instances),
                               "IsAnonymization": mod.anonymize}
    job.content.update(content)
    originals = _Originals(services)
    tagged: set[str] = set()
    new: dict[ResourceLevel, str] = {}
    for done, instance_id in enumerate(instances, 1):
        source = originals.of(instance_id)
        data = modify_file(services.read_instance_file(instance_id), mod, mapper)
        result = services.ingest(transcoded(services, data, p.get("Transcode")), "RestApi")
        new = {ResourceLevel.INSTANCE: result.id, ResourceLevel.SERIES: result.parent_series,
               ResourceLevel.STUDY: result.parent_study,
               ResourceLevel.PATIENT: result.parent_patient}
        # Only resources this request created carry the metadata (as Orthanc: a series
        # modified inside its study leaves the study untouched).
        for lvl, new_id in new.items():
            if new_id != source[lvl] and f"{lvl.title}/{new_id}" not in tagged:
                services.set_metadata(lvl, new_id, metadata, source[lvl])
                tagged.add(f"{lvl.title}/{new_id}")
        if not p.get("KeepSource", True) and result.id != instance_id:
            services.delete(ResourceLevel.INSTANCE, instance_id)
        job.progress(done, len(instances))
    content.update({"ID": new[level], "Path": f"/{level.plural}/{new[level]}",
                    "PatientID": new[ResourceLevel.PATIENT], "Type": level.title})
    return dict(sorted(content.items()))
