"""pynetdicom's UID checks, remembered for the UIDs that passed them.

Every UID of an association (application context, abstract and transfer syntaxes,
implementation class) goes through ``pynetdicom.utils.set_uid`` each time an object
holding it is built: a ``pydicom.uid.UID`` (a regular expression), pynetdicom's validator
(another) and ``UID.is_valid`` (a third), several times per UID as the A-ASSOCIATE-RQ is
decoded, negotiated and answered. py-spy put a fifth of the server's CPU per association
there (docs/performance.md). The same few dozen UIDs come back on every association, so a
UID that passed every check is remembered and handed out again; anything else (an
invalid or non-conformant UID, ``None``, a wrong type) goes through pynetdicom's function
each time, with its errors and warnings.
"""

from __future__ import annotations

import sys
from typing import Any

import pynetdicom.utils
from pydicom.uid import UID

__all__ = ["install"]

# Modules that imported ``set_uid`` by name (``from pynetdicom.utils import set_uid``).
_USERS = ("pynetdicom.utils", "pynetdicom.ae", "pynetdicom.dimse_primitives",
          "pynetdicom.pdu_items", "pynetdicom.pdu_primitives", "pynetdicom.presentation")
_MAX_REMEMBERED = 4096  # UIDs seen on associations: a few hundred SOP classes and syntaxes

_original = pynetdicom.utils.set_uid
_checked: dict[str | bytes, UID] = {}


def set_uid(value: None | str | bytes | UID, name: str, allow_empty: bool = True,
            allow_none: bool = True, validate: bool = True) -> UID | None:
    """``pynetdicom.utils.set_uid``, answering from memory for a valid UID seen before."""
    if type(value) in (str, bytes, UID):
        known = _checked.get(value)  # type: ignore[arg-type]
        if known is not None:
            return known
    uid = _original(value, name, allow_empty, allow_none, validate)
    # Only what every check accepts whatever the arguments: non-empty, valid, conformant.
    if (uid and validate and type(value) in (str, bytes, UID) and uid.is_valid
            and len(_checked) < _MAX_REMEMBERED):
        _checked[value] = uid  # type: ignore[index]
    return uid


def install() -> None:
    """Put :func:`set_uid` in place of pynetdicom's, everywhere it was imported."""
    for module_name in _USERS:
        module: Any = sys.modules.get(module_name) or __import__(module_name, fromlist=["_"])
        if getattr(module, "set_uid", None) is _original:
            module.set_uid = set_uid
