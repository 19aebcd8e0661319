"""Sending resources to modalities and retrieving from them, as jobs.

``DicomModalityStore`` (POST /modalities/{id}/store) and ``DicomMoveScu``
(POST /modalities/{id}/move, /queries/{id}/retrieve) are the job types; the REST layer
runs them synchronously or asynchronously, like Orthanc.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

from isengard_sdk.types import ResourceLevel

from .errors import UnknownResource
from .jobs import ERROR_NETWORK, JobFailed, RunningJob
from .scu import OutgoingInstance, PeerError, Transcoder, move, store

if TYPE_CHECKING:
    from .index import ResourceRow
    from .kernel import Kernel

__all__ = ["outgoing_instances", "plugin_transcoder", "register_transfer_jobs",
           "resolve_instances"]

log = logging.getLogger("isengard.transfers")

STORE_JOB = "DicomModalityStore"
MOVE_JOB = "DicomMoveScu"


def resolve_instances(kernel: Kernel, resource_ids: list[str]) -> list[Any]:
    """Every instance below the given resources (any level), in order, no duplicates."""
    seen: set[int] = set()
    rows = []
    for public_id in resource_ids:
        row = kernel.index.lookup_any(public_id)
        if row is None:
            raise UnknownResource(f"unknown resource {public_id}")
        for inst in kernel.index.descendants(row, ResourceLevel.INSTANCE):
            if inst.internal_id not in seen:
                seen.add(inst.internal_id)
                rows.append(inst)
    return rows


def outgoing_instances(kernel: Kernel, rows: list[ResourceRow]) -> list[OutgoingInstance]:
    """The instances of ``rows`` as the sender wants them: UIDs and transfer syntax from
    the index (two queries for all), the file read through the kernel when sent."""
    ids = [r.internal_id for r in rows]
    classes = kernel.index.metadata_of(ids, "SopClassUid")
    syntaxes = kernel.index.metadata_of(ids, "TransferSyntax")
    return [OutgoingInstance(r.public_id, classes.get(r.internal_id, ""),
                             syntaxes.get(r.internal_id, ""),
                             functools.partial(kernel.read_file, r),
                             r.main_tags.get("SOPInstanceUID", "")) for r in rows]


def plugin_transcoder(kernel: Kernel) -> Transcoder:
    """The ``transcode`` hook as the sender calls it: the first codec plugin answering."""
    def transcode(data: bytes, target: str) -> bytes | None:
        answer = kernel.plugins.first("transcode", data=data, transfer_syntax_uid=target)
        return answer[1] if answer else None

    return transcode


def register_transfer_jobs(kernel: Kernel) -> None:
    transcoder = plugin_transcoder(kernel)

    def timeout_of(modality: Any, parameters: dict[str, Any]) -> int:
        requested = parameters.get("Timeout")
        if isinstance(requested, int) and requested > 0:
            return requested
        return modality.timeout or kernel.settings.dicom.timeout

    def store_job(job: RunningJob) -> dict[str, Any]:
        p = job.parameters
        modality = kernel.modalities.get(p["Modality"])
        rows = resolve_instances(kernel, p["Resources"])
        outgoing = outgoing_instances(kernel, rows)
        job.content.update({"Description": p.get("Description", "REST API"),
                            "FailedInstancesCount": 0, "InstancesCount": len(rows),
                            "LocalAet": p["LocalAet"], "ParentResources": p["Resources"],
                            "RemoteAet": modality.aet})
        originator = None
        if p.get("MoveOriginatorAet"):
            originator = (p["MoveOriginatorAet"], int(p.get("MoveOriginatorID", 0)))
        try:
            report = store(modality, p["LocalAet"], timeout_of(modality, p), outgoing,
                           transcoder=transcoder, progress=job.progress,
                           move_originator=originator)
        except PeerError as exc:
            raise JobFailed(str(exc), ERROR_NETWORK, job.content) from exc
        job.content["FailedInstancesCount"] = report.failed
        if report.failed and not p.get("Permissive", False):
            raise JobFailed(f"{report.failed} of {len(rows)} instance(s) could not be sent: "
                            + "; ".join((report.failures or [])[:5]), ERROR_NETWORK,
                            job.content)
        for public_id in p["Resources"]:
            row = kernel.index.lookup_any(public_id)
            if row is not None:
                kernel.index.log_export(row.level, public_id, p["Modality"])
        log.info("sent %d instance(s) to %s (%d failed)", report.sent, modality.name,
                 report.failed)
        return job.content

    def move_job(job: RunningJob) -> dict[str, Any]:
        p = job.parameters
        modality = kernel.modalities.get(p["Modality"])
        job.content.update({"Description": p.get("Description", "REST API"),
                            "LocalAet": p["LocalAet"], "Query": p["Resources"],
                            "RemoteAet": modality.aet, "TargetAet": p["TargetAet"]})
        try:
            totals = move(modality, p["LocalAet"], timeout_of(modality, p), p["Level"],
                          p["Resources"], p["TargetAet"])
        except PeerError as exc:
            raise JobFailed(str(exc), ERROR_NETWORK, job.content) from exc
        job.content.update({"CompletedCount": totals["completed"],
                            "FailedCount": totals["failed"],
                            "WarningCount": totals["warning"]})
        if totals["failed"]:
            raise JobFailed(f"{totals['failed']} C-STORE sub-operation(s) failed at "
                            f"{modality.name}", ERROR_NETWORK, job.content)
        return job.content

    kernel.jobs.register(STORE_JOB, store_job)
    kernel.jobs.register(MOVE_JOB, move_job)
