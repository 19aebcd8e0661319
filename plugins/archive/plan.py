"""What goes into an archive: the requested resources, expanded to their instances.

Mirrors Orthanc's ``ArchiveIndex``: every requested resource is placed under its
patient, study and series; a resource requested as a whole supersedes instances of it
requested one by one. Patients, studies and series come in the order of their
identifiers (Orthanc keeps them in a ``std::map``); the instances of a series in the
order they were stored (the index order), or in the order requested when chosen one by
one.

Everything here reads the index only (through ``context.services``): resolving the plan
is cheap and done before the first byte of the answer, so that an unknown identifier is
a clean 404 and not a truncated ZIP.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from isengard_sdk import HttpError, KernelServices, ResourceLevel

__all__ = ["ArchivePlan", "PlannedInstance", "PlanNode", "UnknownResourceError",
           "resolve_any", "resolve_plan"]

_PARENT_KEY = {ResourceLevel.STUDY: "ParentPatient", ResourceLevel.SERIES: "ParentStudy",
               ResourceLevel.INSTANCE: "ParentSeries"}
_CHILDREN_KEY = {ResourceLevel.PATIENT: "Studies", ResourceLevel.STUDY: "Series",
                 ResourceLevel.SERIES: "Instances"}


class UnknownResourceError(HttpError):
    def __init__(self, details: str):
        super().__init__(404, details)


@dataclass(frozen=True)
class PlannedInstance:
    id: str
    size: int


@dataclass
class PlanNode:
    """A patient, study or series of the archive."""

    level: ResourceLevel
    id: str
    main_tags: dict[str, str]
    whole: bool = False  # requested as a whole: expand to every child
    children: dict[str, PlanNode] = field(default_factory=dict)
    instances: list[str] = field(default_factory=list)  # series only, when not whole

    def sorted_children(self) -> list[PlanNode]:
        return [self.children[k] for k in sorted(self.children)]


@dataclass
class ArchivePlan:
    """The patients of the archive, each expanded down to instances."""

    patients: dict[str, PlanNode] = field(default_factory=dict)
    # instance ID → size of its file, filled once the tree is expanded
    sizes: dict[str, int] = field(default_factory=dict)

    def sorted_patients(self) -> list[PlanNode]:
        return [self.patients[k] for k in sorted(self.patients)]

    def all_series(self) -> Iterator[PlanNode]:
        """Every series, in archive order."""
        for patient in self.sorted_patients():
            for study in patient.sorted_children():
                yield from study.sorted_children()

    def instances_of(self, series: PlanNode) -> list[PlannedInstance]:
        return [PlannedInstance(i, self.sizes[i]) for i in series.instances]

    @property
    def total_size(self) -> int:
        return sum(self.sizes.values())

    @property
    def count(self) -> int:
        return len(self.sizes)


def resolve_any(services: KernelServices, resource_id: str
                ) -> tuple[ResourceLevel, dict[str, Any]]:
    """The level and JSON of an identifier of any level (Orthanc accepts them mixed)."""
    for level in ResourceLevel:
        found = services.get_resource(level, resource_id)
        if found is not None:
            return level, found
    raise UnknownResourceError(f"unknown resource {resource_id!r}: it is no patient, "
                               "study, series nor instance of this server")


def _chain(services: KernelServices, level: ResourceLevel, body: dict[str, Any]
           ) -> list[tuple[ResourceLevel, dict[str, Any]]]:
    """The resource and its ancestors, from the patient down."""
    chain = [(level, body)]
    while level > ResourceLevel.PATIENT:
        parent_id = body[_PARENT_KEY[level]]
        level = ResourceLevel(level - 1)
        parent = services.get_resource(level, parent_id)
        if parent is None:  # deleted meanwhile
            raise UnknownResourceError(f"unknown {level.title.lower()} {parent_id}")
        body = parent
        chain.append((level, body))
    return list(reversed(chain))


def resolve_plan(services: KernelServices,
                 requested: Iterable[tuple[ResourceLevel, dict[str, Any]]]) -> ArchivePlan:
    """Place every requested resource in the tree, then expand it to instances."""
    plan = ArchivePlan()
    for level, body in requested:
        nodes = plan.patients
        parent: PlanNode | None = None
        for lvl, item in _chain(services, level, body):
            if lvl == ResourceLevel.INSTANCE:
                assert parent is not None  # noqa: S101 - an instance always has a series
                if not parent.whole and item["ID"] not in parent.instances:
                    parent.instances.append(item["ID"])
                break
            node = nodes.get(item["ID"])
            if node is None:
                node = nodes[item["ID"]] = PlanNode(lvl, item["ID"],
                                                    dict(item.get("MainDicomTags", {})))
            if node.whole:
                break  # already taken as a whole
            if lvl == level:
                node.whole = True
                node.children.clear()
                node.instances.clear()
                break
            parent, nodes = node, node.children
    for patient in plan.patients.values():
        _expand(services, patient)
    for series in plan.all_series():
        for instance_id in series.instances:
            body = services.get_resource(ResourceLevel.INSTANCE, instance_id) or {}
            plan.sizes[instance_id] = int(body.get("FileSize", 0))
    return plan


def _expand(services: KernelServices, node: PlanNode) -> None:
    if node.whole:
        body = services.get_resource(node.level, node.id) or {}  # {}: deleted meanwhile
        children = list(body.get(_CHILDREN_KEY[node.level], []))
        if node.level == ResourceLevel.SERIES:
            node.instances = children
        else:
            child_level = ResourceLevel(node.level + 1)
            for child_id in children:
                child = services.get_resource(child_level, child_id)
                if child is not None:
                    node.children[child_id] = PlanNode(
                        child_level, child_id, dict(child.get("MainDicomTags", {})),
                        whole=True)
    for child in node.children.values():
        _expand(services, child)
