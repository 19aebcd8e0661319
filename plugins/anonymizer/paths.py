"""DICOM tags and tag paths as ``/modify`` and ``/anonymize`` name them.

A tag is a keyword (``PatientName``) or hexadecimal: ``0010,0010``, ``00100010`` or
``(0010,0010)``. A path reaches into sequences: ``Sequence[index].…​.Tag``, e.g.
``ReferencedImageSequence[0].ReferencedSOPInstanceUID``, ``0008,1140[*].0008,1155``;
each index is a number from 0 or ``*`` (every item). The rules are Orthanc 1.10's,
checked against it:

- the path is split on every ``.``; spaces around a tag or an index are ignored, and an
  index may be written ``+1`` or ``01``;
- every part but the last needs an index; the last is a tag (so a path cannot end with an
  index: a whole item can be neither removed nor replaced);
- a path that reaches nothing in a file (index out of range, a tag that is not a sequence,
  an absent sequence) is ignored, not an error.

Syntax errors are Orthanc's "Parameter out of range" (3); unknown tags "Unknown DICOM
tag" (27), which Orthanc answers with HTTP 500 and Isengard with 400.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset

from isengard_sdk import HttpError

__all__ = ["OUT_OF_RANGE", "UNKNOWN_TAG", "Step", "TagPath", "parse_path", "parse_tag",
           "tag_name"]

OUT_OF_RANGE = (3, "Parameter out of range")
UNKNOWN_TAG = (27, "Unknown DICOM tag")

_HEX_TAG = re.compile(r"^(?:\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)"
                      r"|([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4}))$")
_INDEX = re.compile(r"^\+?[0-9]+$")

Step = tuple[int, int | None]  # (sequence tag, item index; None: every item)


def parse_tag(name: str) -> int:
    """A tag as Orthanc accepts it: a keyword, ``gggg,eeee``, ``ggggeeee``, ``(gggg,eeee)``."""
    match = _HEX_TAG.match(name.strip())
    if match:
        group, element = (match.group(1), match.group(2)) if match.group(1) \
            else (match.group(3), match.group(4))
        return int(group + element, 16)
    tag = tag_for_keyword(name.strip())
    if tag is None:
        raise HttpError(400, f"unknown DICOM tag {name!r}: use a DICOM keyword "
                             "(PatientName) or the hexadecimal form \"0010,0010\"",
                        orthanc=UNKNOWN_TAG)
    return int(tag)


def tag_name(tag: int) -> str:
    """The keyword of ``tag``, or ``gggg,eeee`` if it has none."""
    return keyword_for_tag(tag) or f"{tag >> 16:04x},{tag & 0xFFFF:04x}"


@dataclass(frozen=True)
class TagPath:
    """A tag inside sequence items: ``steps`` lead from the dataset to the items, ``tag``
    is the element in them. ``str()`` is a canonical form that :func:`parse_path` reads."""

    steps: tuple[Step, ...]
    tag: int

    def __str__(self) -> str:
        parts = [f"{tag:08X}[{'*' if index is None else index}]" for tag, index in self.steps]
        return ".".join([*parts, f"{self.tag:08X}"])

    def matches(self, steps: tuple[tuple[int, int], ...], tag: int) -> bool:
        """Whether this path names the element ``tag`` of the item reached by ``steps``
        (concrete indexes)."""
        return tag == self.tag and len(steps) == len(self.steps) and all(
            seq == want_seq and want_index in (None, index)
            for (seq, index), (want_seq, want_index) in zip(steps, self.steps, strict=True))

    def items(self, ds: Dataset) -> list[Dataset]:
        """The items of ``ds`` that ``steps`` reach (those that exist)."""
        current = [ds]
        for tag, index in self.steps:
            reached: list[Dataset] = []
            for item in current:
                if tag not in item or item[tag].VR != "SQ":
                    continue  # absent, or not a sequence: Orthanc ignores the path
                sequence = item[tag].value or []
                if index is None:
                    reached.extend(sequence)
                elif index < len(sequence):
                    reached.append(sequence[index])
            current = reached
        return current


def parse_path(name: str) -> TagPath:
    """A tag or a tag path; a bare tag gives a path without steps."""
    parts = name.split(".")
    last = parts[-1].strip()
    if not last:
        raise _bad_path(name, "it ends with \".\": name a tag after the last item index",
                        UNKNOWN_TAG)
    if last.endswith("]"):
        raise _bad_path(name, "it ends with an item index: name a tag inside the item "
                              "(Sequence[0].Tag); a whole item cannot be removed or "
                              "replaced, replace its sequence with a list of objects",
                        UNKNOWN_TAG)
    steps = tuple(_step(name, part) for part in parts[:-1])
    try:
        tag = parse_tag(last)
    except HttpError as exc:
        if not steps:
            raise
        raise _bad_path(name, f"unknown DICOM tag {last!r}", UNKNOWN_TAG) from exc
    return TagPath(steps, tag)


def _step(name: str, part: str) -> Step:
    """One ``Sequence[index]`` of a path."""
    if "[" not in part:
        raise _bad_path(name, f"{part.strip()!r} has no item index: write "
                              "Sequence[0].Tag, or Sequence[*].Tag for every item")
    left, right = (s.strip() for s in part.split("[", 1))
    if not left:
        raise _bad_path(name, f"[{right} names no sequence before its index")
    if not right.endswith("]"):
        raise _bad_path(name, f"the item index of {left!r} lacks its closing \"]\"")
    index = right[:-1].strip()
    try:
        tag = parse_tag(left)
    except HttpError as exc:
        raise _bad_path(name, f"unknown DICOM tag {left!r}", UNKNOWN_TAG) from exc
    if index == "*":
        return tag, None
    if _INDEX.match(index):
        return tag, int(index)
    if index.startswith("-") and _INDEX.match(index[1:]):
        raise _bad_path(name, f"negative item index {index}: items are numbered from 0")
    raise _bad_path(name, f"{index!r} is not an item index: use a number from 0, or *")


def _bad_path(name: str, why: str, orthanc: tuple[int, str] = OUT_OF_RANGE) -> HttpError:
    return HttpError(400, f"bad tag path {name.strip()!r}: {why}", orthanc=orthanc)
