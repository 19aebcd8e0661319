"""Query constraints, as Orthanc's ``/tools/find`` and DICOM C-FIND understand them.

PS3.4 C.2.2.2 defines the matching kinds: universal (empty or ``*``), single value,
wildcard (``*`` and ``?``), range (``a-b``, ``-b``, ``a-`` on DA, DT and TM) and list of
values (``a\\b``). Matching of strings is case-insensitive unless asked otherwise
(Orthanc's ``CaseSensitivePN`` defaults to false and applies to every string).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from isengard_sdk.types import ResourceLevel

from .dicom_tags import MAIN_TAG_LEVEL, MAIN_TAGS
from .errors import BadRequest, UnknownDicomTag

if TYPE_CHECKING:
    from .index import ResourceRow, SQLiteIndex

__all__ = ["Constraint", "find_resources", "parse_constraint", "resolve_keyword"]

MatchKind = Literal["universal", "exact", "wildcard", "range", "list"]

_RANGE_VRS = frozenset({"DA", "DT", "TM"})
# PS3.4 C.2.2.2.4: the VRs on which "*" and "?" are wildcards. Orthanc's REST API
# refuses them on any other VR.
_WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
_HEX_TAG = re.compile(r"^\(?([0-9a-fA-F]{4})[,|]?([0-9a-fA-F]{4})\)?$")


def resolve_keyword(name: str) -> str:
    """``PatientName`` or ``0010,0010`` → the DICOM keyword.

    Raises :class:`UnknownDicomTag` (a :class:`BadRequest`)."""
    if tag_for_keyword(name) is not None:
        return name
    m = _HEX_TAG.match(name.strip())
    if m:
        keyword = keyword_for_tag(int(m.group(1) + m.group(2), 16))
        if keyword:
            return keyword
    raise UnknownDicomTag(
        f"unknown DICOM tag {name!r} in the query (use a keyword or 'gggg,eeee')")


@dataclass(frozen=True)
class Constraint:
    keyword: str
    kind: MatchKind
    values: tuple[str, ...]  # exact/wildcard: 1 value; range: (low, high) ("" = open); list
    case_sensitive: bool

    def matches(self, value: str | None) -> bool:
        """Evaluate against one attribute value (``None`` when the attribute is absent)."""
        if self.kind == "universal":
            return True
        if value is None:
            return False
        if self.kind == "range":
            # Plain string comparison, as Orthanc's index: an empty value is before any
            # date, so it matches "-b".
            low, high = self.values
            key = value.split("\\")[0]
            return (not low or key >= low) and (not high or key[: len(high)] <= high)
        candidates = self.values if self.kind == "list" else self.values[:1]
        subject = value if self.case_sensitive else value.upper()
        for pattern in candidates:
            pattern_cmp = pattern if self.case_sensitive else pattern.upper()
            if "*" in pattern or "?" in pattern:
                if _wildcard_regex(pattern_cmp).fullmatch(subject):
                    return True
            elif subject == pattern_cmp:
                return True
        return False


def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def parse_constraint(keyword: str, value: str, *, case_sensitive: bool,
                     rest_api: bool = False) -> Constraint:
    """Classify one ``keyword: value`` pair of a query.

    ``rest_api`` applies the rules of Orthanc's ``/tools/find`` rather than C-FIND's:
    ``*`` alone is a wildcard (the attribute must be present), not universal matching,
    and wildcards on a VR that does not allow them (PS3.4 C.2.2.2.4) are refused.
    """
    if not isinstance(value, str):
        raise BadRequest(f"the value of {keyword} in the query must be a string")
    value = value.strip()
    if value == "" or (value == "*" and not rest_api):
        return Constraint(keyword, "universal", (), case_sensitive)
    try:
        vr = str(dictionary_VR(keyword))
    except KeyError:
        vr = ""
    if (rest_api and vr not in _WILDCARD_VRS and ("*" in value or "?" in value)
            and "\\" not in value and not (vr in _RANGE_VRS and "-" in value)):
        tag = tag_for_keyword(keyword) or 0
        raise BadRequest(f"Wildcards are not allowed on tag {tag >> 16:04x},{tag & 0xFFFF:04x}"
                         f" ({keyword}, VR {vr or 'unknown'})")
    if vr in _RANGE_VRS and "-" in value and "\\" not in value:
        low, _, high = value.partition("-")
        return Constraint(keyword, "range", (low.strip(), high.strip()), case_sensitive)
    if "\\" in value:
        items = tuple(v for v in value.split("\\"))
        return Constraint(keyword, "list", items, case_sensitive)
    if "*" in value or "?" in value:
        return Constraint(keyword, "wildcard", (value,), case_sensitive)
    return Constraint(keyword, "exact", (value,), case_sensitive)


def glob_pattern(pattern: str) -> str:
    """A DICOM wildcard as an SQLite GLOB pattern (``[`` escaped)."""
    return pattern.replace("[", "[[]")


# -- execution against the index ---------------------------------------------------------


def find_resources(
    index: SQLiteIndex,
    level: ResourceLevel,
    query: Mapping[str, Any],
    *,
    case_sensitive: bool = False,
    since: int = 0,
    limit: int = 0,
    instance_value: Callable[[ResourceRow, str], str | None] | None = None,
    rest_api: bool = False,
    labels: Sequence[str] = (),
    labels_constraint: str = "All",
) -> list[ResourceRow]:
    """Resources at ``level`` matching ``query`` (keyword or ``gggg,eeee`` → value).

    Main tags are matched in SQL; other tags against the header of a representative
    instance kept in the index (``instance_value(instance_row, keyword)``).
    ``rest_api``: Orthanc's ``/tools/find`` rules (see :func:`parse_constraint`; a main
    tag of a level below ``level`` matches nothing). ``labels``: the resources must have
    ``All``, ``Any`` or ``None`` of them (``labels_constraint``, Orthanc 1.12).
    """
    if not isinstance(query, Mapping):
        raise BadRequest("'Query' must be a JSON object of tag: value")
    conditions = []
    if labels:
        from .index.extras import labels_sql

        if labels_constraint not in ("All", "Any", "None"):
            raise BadRequest(f"'LabelsConstraint' must be All, Any or None, "
                             f"got {labels_constraint!r}")
        conditions.append(labels_sql(labels, labels_constraint))  # type: ignore[arg-type]
    sql: list[tuple[ResourceLevel, Constraint]] = []
    extra: list[Constraint] = []
    for name, value in query.items():
        if name == "ModalitiesInStudy" and level == ResourceLevel.STUDY:
            c = parse_constraint("Modality", str(value), case_sensitive=case_sensitive)
            if c.kind == "range":
                c = Constraint("Modality", "exact", (str(value),), case_sensitive)
            sql.append((ResourceLevel.SERIES, c))
            continue
        keyword = resolve_keyword(name)
        c = parse_constraint(keyword, value, case_sensitive=case_sensitive,
                             rest_api=rest_api)
        if c.kind == "universal":
            continue
        if rest_api and keyword not in MAIN_TAGS[level] and \
                MAIN_TAG_LEVEL.get(keyword, level) > level:
            return []  # Orthanc 1.10 never matches a child level's main tag
        if keyword in MAIN_TAGS[level]:
            sql.append((level, c))
        elif keyword in MAIN_TAG_LEVEL and MAIN_TAG_LEVEL[keyword] < level:
            # Patient tags are matched against the copy each study keeps (as Orthanc's
            # NormalizeLookup does), not against the patient's own tags.
            sql.append((max(MAIN_TAG_LEVEL[keyword], ResourceLevel.STUDY), c))
        elif keyword in MAIN_TAG_LEVEL:
            sql.append((MAIN_TAG_LEVEL[keyword], c))  # any descendant matching
        else:
            extra.append(c)
    if not extra or instance_value is None:
        ids = index.find(level, sql, since=since, limit=limit, conditions=conditions)
        return index.rows(ids)
    matched: list[ResourceRow] = []
    skipped = 0
    for chunk_start in range(0, 1 << 62, 500):
        ids = index.find(level, sql, since=chunk_start, limit=500,
                         conditions=conditions)
        for row in index.rows(ids):
            instance = index.first_instance(row)
            if instance is None:
                continue
            if all(c.matches(instance_value(instance, c.keyword)) for c in extra):
                if skipped < since:
                    skipped += 1
                    continue
                matched.append(row)
                if limit and len(matched) >= limit:
                    return matched
        if len(ids) < 500:
            break
    return matched
