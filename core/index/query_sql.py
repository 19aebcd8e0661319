"""The SQL that queries are made of: a constraint on a main tag, and the resources at
another level related to the resource being matched (``r``)."""

from __future__ import annotations

import re
from typing import Any

from isengard_sdk.types import ResourceLevel

from ..find import Constraint, glob_pattern

__all__ = ["constraint_sql", "relative_sql"]

_RANGE_BOUND = re.compile(r"[0-9.:+\- ]*")  # what a date, time or date-time bound holds


def relative_sql(level: ResourceLevel, tag_level: ResourceLevel) -> str:
    """SQL selecting the internal ids, at ``tag_level``, related to ``r``."""
    if tag_level == level:
        return "r.internal_id"
    if tag_level < level:
        expr = "r.parent_id"
        for _ in range(int(level) - int(tag_level) - 1):
            expr = f"(SELECT parent_id FROM resources WHERE internal_id = {expr})"
        return expr
    # a descendant level: any child matches
    sql = "SELECT internal_id FROM resources WHERE parent_id = r.internal_id"
    for _ in range(int(tag_level) - int(level) - 1):
        sql = f"SELECT internal_id FROM resources WHERE parent_id IN ({sql})"
    return sql


def constraint_sql(c: Constraint) -> tuple[str, list[Any]]:
    """The condition (on ``d``, a ``dicom_identifiers`` row) and its parameters."""
    column = "d.value" if c.case_sensitive else "d.value_norm"

    def norm(v: str) -> str:
        return v if c.case_sensitive else v.upper()

    if c.kind == "exact":
        return f"{column} = ?", [norm(c.values[0])]
    if c.kind == "wildcard":
        return f"{column} GLOB ?", [glob_pattern(norm(c.values[0]))]
    parts: list[str]
    params: list[Any]
    if c.kind == "list":
        parts, params = [], []
        for v in c.values:
            if "*" in v or "?" in v:
                parts.append(f"{column} GLOB ?")
                params.append(glob_pattern(norm(v)))
            else:
                parts.append(f"{column} = ?")
                params.append(norm(v))
        return "(" + " OR ".join(parts) + ")", params
    low, high = c.values
    parts = ["1"]  # plain string comparison, as Orthanc: "" matches "-b"
    params = []
    # Date and time bounds (digits and punctuation) also bound value_norm, the indexed
    # column: then SQLite reads the range from the index instead of every value of the
    # tag. A value matching the comparison on d.value always lies within those bounds
    # (upper-casing moves no character across a digit).
    sargable = all(_RANGE_BOUND.fullmatch(bound) for bound in (low, high))
    if low:
        if sargable:
            parts.append("d.value_norm >= ?")
            params.append(low)
        parts.append("d.value >= ?")
        params.append(low)
    if high:
        if sargable:
            parts.append("d.value_norm <= ?")
            params.append(high + "\U0010ffff")
        parts.append("substr(d.value, 1, ?) <= ?")
        params += [len(high), high]
    return "(" + " AND ".join(parts) + ")", params

