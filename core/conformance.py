"""Isengard's DICOM conformance statement (``GET /tools/dicom-conformance``), in the
layout of Orthanc's, generated from the lists the DICOM services actually use — the
presentation contexts of :mod:`.dimse` and :mod:`.dimse_qr`, the SCU classes of
:mod:`.scu` — so that it cannot drift from the code."""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.uid import UID
from pynetdicom import sop_class
from pynetdicom.presentation import AllStoragePresentationContexts

from . import scu
from .dimse import TRANSFER_SYNTAXES
from .dimse_qr import QR_SOP_CLASSES

__all__ = ["conformance_statement"]

_PREFIX = {"1": "FIND", "2": "MOVE", "3": "GET"}  # last digit of a Q/R model UID
# pynetdicom's names of the storage classes it knows (newer than pydicom's dictionary).
_STORAGE_NAMES = {uid: name for name, uid in
                  getattr(sop_class, "_STORAGE_CLASSES", {}).items()}


def _name(uid: str) -> str:
    """The UID's keyword (``CTImageStorage``), C-FIND/MOVE/GET models prefixed."""
    u = UID(uid)
    keyword = u.keyword or _STORAGE_NAMES.get(uid) or uid
    if uid in QR_SOP_CLASSES:
        prefix = _PREFIX[uid.rsplit(".", 1)[1]]
        keyword = prefix + keyword.replace("Find", "").replace("Move", "").replace("Get", "")
    return keyword


def _table(uids: Iterable[str]) -> list[str]:
    rows = [(_name(uid), uid) for uid in uids]
    width = max((len(name) for name, _ in rows), default=0)
    return [f"  {name.ljust(width)} | {uid}" for name, uid in rows]


def _section(title: str, lines: list[str]) -> list[str]:
    bar = "-" * len(title)
    return [bar, title, bar, "", *lines, "", ""]


def _classes(role: str, service: str, uids: Iterable[str]) -> list[str]:
    return _section(f"{service} {role} Conformance", [
        f"Isengard supports the following SOP Classes as an {role} for {service}:", "",
        *_table(uids)])


def conformance_statement() -> str:
    """The statement as plain text."""
    storage = sorted((str(cx.abstract_syntax) for cx in AllStoragePresentationContexts
                      if cx.abstract_syntax is not None), key=_name)
    find = [u for u in QR_SOP_CLASSES if u.endswith(".1")]
    move = [u for u in QR_SOP_CLASSES if u.endswith(".2")]
    get = [u for u in QR_SOP_CLASSES if u.endswith(".3")]
    title = "DICOM Conformance Statement of Isengard"
    lines = ["=" * len(title), title, "=" * len(title), "", ""]
    lines += _classes("SCP", "C-Echo", [scu.VERIFICATION])
    lines += _classes("SCP", "C-Store", storage)
    lines += _classes("SCP", "C-Find", find)
    lines += _classes("SCP", "C-Move", move)
    lines += _classes("SCP", "C-Get", get)
    lines += _classes("SCU", "C-Echo", [scu.VERIFICATION])
    lines += _section("C-Store SCU Conformance", [
        'All the SOP Classes that are listed in the "C-Store SCP Conformance"',
        "(see above) section are available as an SCU for C-Store."])
    lines += _classes("SCU", "C-Find", [scu.PATIENT_ROOT_FIND, scu.STUDY_ROOT_FIND])
    lines += _classes("SCU", "C-Move", [scu.PATIENT_ROOT_MOVE, scu.STUDY_ROOT_MOVE])
    lines += _section("Transfer Syntaxes", [
        "Isengard accepts and negotiates presentation contexts for all of the",
        "abovementioned SOP Classes of C-Store using any of the following transfer",
        "syntaxes (C-Echo and the query/retrieve models: the first three):", "",
        *_table(TRANSFER_SYNTAXES), "",
        "When possible, Isengard prefers the first of this list",
        f"({TRANSFER_SYNTAXES[0]}).", "",
        "Isengard does not support extended negotiation."])
    return "\n".join(lines).rstrip("\n") + "\n"
