"""Remote DICOM modalities: declared in the YAML (``modalities:``) or over REST
(``PUT /modalities/{id}``, kept in the index so every process sharing it agrees).

A modality is both a destination (C-ECHO, C-STORE, C-FIND, C-MOVE from us) and a known
caller whose rights (AllowEcho, AllowFind, AllowMove, AllowGet, AllowStore) the DICOM
server checks, as in Orthanc.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import BadRequest, ConfigError, UnknownResource
from .index import SQLiteIndex

__all__ = ["Modality", "ModalityRegistry", "modalities_from_config", "parse_modality"]


@dataclass(frozen=True)
class Modality:
    name: str
    aet: str
    host: str
    port: int
    manufacturer: str = "Generic"
    allow_echo: bool = True
    allow_find: bool = True
    allow_move: bool = True
    allow_get: bool = True
    allow_store: bool = True
    allow_transcoding: bool = True
    timeout: int = 0  # seconds; 0 = the server's dicom.timeout

    def to_json(self) -> dict[str, Any]:
        """Orthanc's description (``GET /modalities?expand``)."""
        return {
            "AET": self.aet,
            "AllowEcho": self.allow_echo,
            "AllowEventReport": True,
            "AllowFind": self.allow_find,
            "AllowFindWorklist": self.allow_find,
            "AllowGet": self.allow_get,
            "AllowMove": self.allow_move,
            "AllowNAction": True,
            "AllowStore": self.allow_store,
            "AllowTranscoding": self.allow_transcoding,
            "Host": self.host,
            "LocalAet": "",
            "Manufacturer": self.manufacturer,
            "Port": self.port,
            "Timeout": self.timeout,
            "UseDicomTls": False,
        }


_JSON_KEYS = {"AET": "aet", "Host": "host", "Port": "port", "Manufacturer": "manufacturer",
              "AllowEcho": "allow_echo", "AllowFind": "allow_find", "AllowMove": "allow_move",
              "AllowGet": "allow_get", "AllowStore": "allow_store",
              "AllowTranscoding": "allow_transcoding", "Timeout": "timeout"}
_IGNORED_JSON = {"AllowEventReport", "AllowFindWorklist", "AllowNAction", "LocalAet",
                 "UseDicomTls"}
_TYPES = {f.name: f.type for f in fields(Modality)}


def parse_modality(name: str, value: Any, path: str) -> Modality:
    """A modality from Orthanc's forms — ``[AET, host, port(, manufacturer)]`` or an
    object with ``AET``/``Host``/``Port``… — or the YAML form (``aet``, ``host``,
    ``port``, ``allow_find`` …). Raises :class:`BadRequest` naming ``path``."""
    if isinstance(value, (list, tuple)):
        if len(value) not in (3, 4):
            raise BadRequest(f"{path}: expected [AET, host, port] or [AET, host, port, "
                             "manufacturer]")
        value = dict(zip(("aet", "host", "port", "manufacturer"), value, strict=False))
    if not isinstance(value, Mapping):
        raise BadRequest(f"{path}: expected a mapping or [AET, host, port]")
    kwargs: dict[str, Any] = {}
    for key, raw in value.items():
        if key in _IGNORED_JSON:
            continue
        field_name = _JSON_KEYS.get(key, key)
        if field_name not in _TYPES or field_name == "name":
            known = ", ".join(sorted(set(_JSON_KEYS) | set(_JSON_KEYS.values())))
            raise BadRequest(f"{path}.{key}: unknown key (known: {known})")
        expected = _TYPES[field_name]
        if expected in ("int", int):
            if isinstance(raw, str) and raw.isdigit():
                raw = int(raw)
            if not isinstance(raw, int) or isinstance(raw, bool):
                raise BadRequest(f"{path}.{key}: expected an integer, got {raw!r}")
        elif expected in ("bool", bool):
            if not isinstance(raw, bool):
                raise BadRequest(f"{path}.{key}: expected true or false, got {raw!r}")
        elif not isinstance(raw, str):
            raise BadRequest(f"{path}.{key}: expected a string, got {raw!r}")
        kwargs[field_name] = raw
    missing = [k for k in ("aet", "host", "port") if k not in kwargs]
    if missing:
        raise BadRequest(f"{path}: missing {', '.join(missing)}")
    if not 0 < kwargs["port"] < 65536:
        raise BadRequest(f"{path}.port: {kwargs['port']} is not a TCP port")
    if not 0 < len(kwargs["aet"]) <= 16:
        raise BadRequest(f"{path}.aet: {kwargs['aet']!r} is not a valid AE title")
    return Modality(name=name, **kwargs)


def modalities_from_config(section: Mapping[str, Any]) -> dict[str, Modality]:
    out = {}
    for name, value in (section or {}).items():
        try:
            out[str(name)] = parse_modality(str(name), value, f"modalities.{name}")
        except BadRequest as exc:
            path, _, message = str(exc).partition(": ")
            raise ConfigError(path, message) from exc
    return out


class ModalityRegistry:
    """YAML modalities plus REST-declared ones (persisted in the index)."""

    def __init__(self, configured: Mapping[str, Modality], index: SQLiteIndex):
        self._configured = dict(configured)
        self._index = index
        self._lock = threading.Lock()

    def all(self) -> dict[str, Modality]:
        result = dict(self._configured)
        for name, definition in self._index.reader().execute(
                "SELECT name, definition FROM modalities ORDER BY name"):
            result[name] = Modality(**json.loads(definition))
        return dict(sorted(result.items()))

    def get(self, name: str) -> Modality:
        modality = self.all().get(name)
        if modality is None:
            raise UnknownResource(f"unknown modality {name!r} (GET /modalities lists them)")
        return modality

    def by_aet(self, aet: str, host: str | None = None) -> Modality | None:
        """The modality a caller is, by AE title (and host when ``host`` is given)."""
        for modality in self.all().values():
            if modality.aet == aet and (host is None or modality.host == host):
                return modality
        return None

    def calling(self, aet: str, address: str, *, check_host: bool) -> Modality | None:
        """The declared modality an association comes from: by its calling AE title,
        and by its address too when ``check_host`` (dicom.check_modality_host)."""
        return self.by_aet(aet, address if check_host else None)

    def put(self, name: str, body: Any) -> Modality:
        modality = parse_modality(name, body, "body")
        with self._index.transaction() as conn:
            conn.execute("INSERT INTO modalities(name, definition) VALUES (?, ?) ON CONFLICT"
                         "(name) DO UPDATE SET definition = excluded.definition",
                         (name, json.dumps(asdict(modality))))
        return modality

    def delete(self, name: str) -> None:
        with self._index.transaction() as conn:
            deleted = conn.execute("DELETE FROM modalities WHERE name = ?", (name,)).rowcount
        if not deleted:
            if name in self._configured:
                raise BadRequest(f"modality {name!r} is declared in the configuration file; "
                                 "remove it there")
            raise UnknownResource(f"unknown modality {name!r}")
