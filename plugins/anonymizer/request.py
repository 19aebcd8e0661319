"""Read an Orthanc ``/modify`` or ``/anonymize`` body into a :class:`Modification`.

The rules are Orthanc 1.10's (``DicomModification::ParseModifyRequest`` and
``ParseAnonymizationRequest``), checked against it:

- the sections are applied in the order ``Remove``, ``Replace``, ``Keep``: a tag named in
  several ends up in the last one;
- naming an identifier (PatientID, StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID)
  in any section needs ``"Force": true``, and identifiers can never be removed;
- an anonymization starts from a PS3.15 profile, replaces PatientID by a new UUID and
  PatientName by ``Anonymized<N>`` (unless the body names PatientName), and always works
  at the patient level (every UID of the hierarchy is regenerated);
- modifying a patient requires replacing its PatientID;
- a section may name a path into sequences (:mod:`.paths`). Such paths need no
  ``Force`` (even to an identifier, which they may also remove), do not change the level
  of the modification, and are applied after everything else: removals, then
  replacements. ``Keep`` of a path only matters to an anonymization, sparing that
  element (a whole sequence, for a sequence) from the profile; it cancels neither a
  ``Remove`` nor a ``Replace`` of the same path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

from pydicom.uid import UID

from isengard_sdk import HttpError, ResourceLevel

from .paths import OUT_OF_RANGE, TagPath, parse_path, parse_tag, tag_name
from .profiles import DEFAULT_VERSION, PROFILES
from .values import check_value

__all__ = ["IDENTIFIERS", "Modification", "parse_request", "parse_tag", "tag_name"]

BAD_REQUEST = (8, "Bad request")
BAD_FILE_FORMAT = (15, "Bad file format")

PATIENT_ID, PATIENT_NAME = 0x00100020, 0x00100010
STUDY_UID, SERIES_UID, SOP_UID = 0x0020000D, 0x0020000E, 0x00080018
DEIDENTIFICATION_METHOD, PATIENT_IDENTITY_REMOVED = 0x00120063, 0x00120062
# The tags Orthanc's identifiers are computed from, with the level each identifies.
IDENTIFIERS = {PATIENT_ID: ResourceLevel.PATIENT, STUDY_UID: ResourceLevel.STUDY,
               SERIES_UID: ResourceLevel.SERIES, SOP_UID: ResourceLevel.INSTANCE}
_BOOLEANS = ("Force", "KeepPrivateTags", "RemovePrivateTags", "KeepSource", "Synchronous",
             "Asynchronous")
_SETS = ("removals", "clearings", "uids", "kept", "only_if_present")
_PATH_LISTS = ("path_removals", "path_kept")


@dataclass
class Modification:
    """What to do to every instance of one request; JSON-serialisable (``to_json``) so
    that it travels in the parameters of a job."""

    anonymize: bool
    level: ResourceLevel
    removals: set[int] = field(default_factory=set)
    clearings: set[int] = field(default_factory=set)
    uids: set[int] = field(default_factory=set)  # anonymization: UIDs mapped everywhere
    replacements: dict[int, Any] = field(default_factory=dict)  # str or list (sequence)
    kept: set[int] = field(default_factory=set)
    # replacements written only if the tag is in the file (Orthanc's anonymization does
    # not insert a PatientID, nor the 2008 profile a DeidentificationMethod)
    only_if_present: set[int] = field(default_factory=set)
    remove_private_tags: bool = False
    private_creator: str = ""
    # paths into sequences (see the module docstring), applied in this order
    path_removals: list[TagPath] = field(default_factory=list)
    path_replacements: dict[TagPath, Any] = field(default_factory=dict)
    path_kept: list[TagPath] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        body = {f.name: getattr(self, f.name) for f in fields(self)}
        body["level"] = self.level.title
        for key in _SETS:
            body[key] = [f"{t:08X}" for t in sorted(getattr(self, key))]
        body["replacements"] = {f"{t:08X}": v for t, v in self.replacements.items()}
        for key in _PATH_LISTS:
            body[key] = [str(p) for p in getattr(self, key)]
        body["path_replacements"] = {str(p): v for p, v in self.path_replacements.items()}
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Modification:
        mod = cls(anonymize=bool(body["anonymize"]),
                  level=ResourceLevel.from_name(body["level"]),
                  replacements={int(t, 16): v for t, v in body["replacements"].items()},
                  remove_private_tags=bool(body["remove_private_tags"]),
                  private_creator=str(body["private_creator"]))
        for key in _SETS:
            setattr(mod, key, {int(t, 16) for t in body[key]})
        # Absent from the parameters of jobs created before paths were supported.
        mod.path_removals = [parse_path(p) for p in body.get("path_removals", [])]
        mod.path_replacements = {parse_path(p): v
                                 for p, v in body.get("path_replacements", {}).items()}
        mod.path_kept = [parse_path(p) for p in body.get("path_kept", [])]
        return mod

    # -- the three operations, each undoing the others for its tag (as Orthanc) --------

    def remove(self, tag: int) -> None:
        self.clearings.discard(tag)
        self.uids.discard(tag)
        self.replacements.pop(tag, None)
        self.kept.discard(tag)
        self.removals.add(tag)

    def replace(self, tag: int, value: Any) -> None:
        self.removals.discard(tag)
        self.clearings.discard(tag)
        self.uids.discard(tag)
        self.kept.discard(tag)
        self.only_if_present.discard(tag)
        self.replacements[tag] = value

    def keep(self, tag: int) -> None:
        self.removals.discard(tag)
        self.clearings.discard(tag)
        self.uids.discard(tag)
        self.replacements.pop(tag, None)
        self.kept.add(tag)


@dataclass(frozen=True)
class Options:
    """The request options that are not about tags."""

    keep_source: bool = True
    asynchronous: bool = False
    priority: int = 0
    transcode: str | None = None


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body (Orthanc: 400 "Bad file format" otherwise)."""
    try:
        body = json.loads(raw) if raw.strip() else None
    except ValueError as exc:
        raise HttpError(400, f"the body is not valid JSON: {exc}",
                        orthanc=BAD_FILE_FORMAT) from exc
    if not isinstance(body, dict):
        raise HttpError(400, "expected a JSON object as the body, e.g. "
                             "{\"Replace\": {\"PatientName\": \"Doe^John\"}}",
                        orthanc=BAD_FILE_FORMAT)
    for key in _BOOLEANS:
        if key in body and not isinstance(body[key], bool):
            raise HttpError(400, f"Member \"{key}\" should be a Boolean value",
                            orthanc=BAD_FILE_FORMAT)
    return body


def parse_request(body: dict[str, Any], *, anonymize: bool, level: ResourceLevel,
                  patient_uuid: str) -> tuple[Modification, Options]:
    """Validate a body; ``patient_uuid`` is the new PatientID of an anonymization.

    The ``Anonymized<N>`` name is left to the caller: it consumes a counter, so it is
    only drawn once the request is known to be valid (see :func:`needs_patient_name`).
    """
    force = bool(body.get("Force", False))
    if anonymize:
        version = body.get("DicomVersion", DEFAULT_VERSION)
        profile = PROFILES.get(version) if isinstance(version, str) else None
        if profile is None:
            raise HttpError(400, f"Unknown specific version of the DICOM standard: {version}"
                                 f" (use one of {', '.join(sorted(PROFILES))})",
                            orthanc=OUT_OF_RANGE)
        from . import __version__

        mod = Modification(True, ResourceLevel.PATIENT, set(profile.removals),
                           set(profile.clearings), set(profile.uids),
                           remove_private_tags=True)
        mod.replacements = {
            PATIENT_ID: patient_uuid, PATIENT_NAME: patient_uuid,
            DEIDENTIFICATION_METHOD: f"Isengard {__version__} - {profile.method}",
            PATIENT_IDENTITY_REMOVED: "YES"}
        mod.only_if_present = {PATIENT_ID}
        if profile.version == "2008":
            mod.only_if_present.add(DEIDENTIFICATION_METHOD)
    else:
        mod = Modification(False, level)

    for path in _path_list(body, "Remove"):
        if path.steps:
            _append_new(mod.path_removals, path)
        else:
            _check_force(path.tag, "removed", force)
            mod.remove(path.tag)
    replace = body.get("Replace", {})
    if not isinstance(replace, dict):
        raise HttpError(400, "\"Replace\" must be a JSON object mapping tags to values",
                        orthanc=BAD_REQUEST)
    for name, value in replace.items():
        path = parse_path(name)
        check_value(path.tag, value, name.strip() if path.steps else
                    f"{path.tag >> 16:04x},{path.tag & 0xFFFF:04x}")
        if path.steps:
            mod.path_replacements[path] = value
        else:
            _check_force(path.tag, "replaced", force)
            mod.replace(path.tag, value)
    for path in _path_list(body, "Keep"):
        if path.steps:
            _append_new(mod.path_kept, path)
        else:
            _check_force(path.tag, "kept", force)
            mod.keep(path.tag)

    if anonymize and (body.get("Remove") or body.get("Replace") or body.get("Keep")):
        # A customised anonymization is not the profile any more: Orthanc then drops its
        # DeidentificationMethod (unless the body sets one).
        method = mod.replacements.get(DEIDENTIFICATION_METHOD)
        if isinstance(method, str) and method.startswith("Isengard "):
            del mod.replacements[DEIDENTIFICATION_METHOD]
    if not anonymize and mod.level == ResourceLevel.INSTANCE:
        # Orthanc 1.10 modifies an instance at the level of the highest identifier the
        # body replaces: a new StudyInstanceUID gives a new series too.
        for tag, level in IDENTIFIERS.items():
            if tag in mod.replacements:
                mod.level = level
                break
    removed_ids = [tag_name(t) for t in IDENTIFIERS if t in mod.removals]
    if removed_ids:
        raise HttpError(400, f"{', '.join(removed_ids)} cannot be removed: the DICOM "
                             "identifiers can be replaced or kept, not removed",
                        orthanc=BAD_REQUEST)
    if mod.level == ResourceLevel.PATIENT and PATIENT_ID not in mod.replacements:
        raise HttpError(400, "When modifying a patient, her PatientID is required to be "
                             "modified", orthanc=BAD_REQUEST)
    if anonymize:
        mod.remove_private_tags = not body.get("KeepPrivateTags", False)
    else:
        mod.remove_private_tags = bool(body.get("RemovePrivateTags", False))
    creator = body.get("PrivateCreator", "")
    if not isinstance(creator, str):
        raise HttpError(400, "\"PrivateCreator\" must be a string", orthanc=BAD_REQUEST)
    mod.private_creator = creator
    return mod, _options(body)


def needs_patient_name(mod: Modification, patient_uuid: str) -> bool:
    """True if an anonymization left PatientName alone: it becomes ``Anonymized<N>``."""
    return mod.anonymize and mod.replacements.get(PATIENT_NAME) == patient_uuid


def _options(body: dict[str, Any]) -> Options:
    transcode = body.get("Transcode")
    if transcode is not None and (not isinstance(transcode, str) or not transcode):
        raise HttpError(400, "\"Transcode\" must be a transfer syntax UID",
                        orthanc=BAD_REQUEST)
    if transcode is not None and not UID(transcode).is_transfer_syntax:
        raise HttpError(400, f"unknown transfer syntax {transcode!r} in \"Transcode\"",
                        orthanc=(3, "Parameter out of range"))
    priority = body.get("Priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise HttpError(400, "\"Priority\" must be an integer", orthanc=BAD_REQUEST)
    asynchronous = body.get("Asynchronous", False) or body.get("Synchronous", True) is False
    return Options(keep_source=body.get("KeepSource", True), asynchronous=asynchronous,
                   priority=priority, transcode=transcode)


def _path_list(body: dict[str, Any], key: str) -> list[TagPath]:
    names = body.get(key, [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise HttpError(400, f"\"{key}\" must be a list of tags (keywords or \"gggg,eeee\") "
                             "or of paths into sequences (\"Sequence[0].Tag\")",
                        orthanc=BAD_REQUEST)
    return [parse_path(n) for n in names]


def _append_new(paths: list[TagPath], path: TagPath) -> None:
    if path not in paths:
        paths.append(path)


def _check_force(tag: int, action: str, force: bool) -> None:
    if tag in IDENTIFIERS and not force:
        raise HttpError(400, f"Marking tag \"{tag_name(tag)}\" as to be {action} requires "
                             "the \"Force\" option to be set to true", orthanc=BAD_REQUEST)
