"""The server's configuration: YAML → typed, validated settings.

Every key is documented, with its default, in ``config.example.yaml``; a test keeps the
two in step. Orthanc's option names map to snake_case keys (``OverwriteInstances`` →
``overwrite_instances``, ``DicomAet`` → ``dicom.aet`` …).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from isengard_sdk.settings import SettingsError, load_settings

from .errors import ConfigError

__all__ = [
    "DicomSettings",
    "HttpSettings",
    "IndexSettings",
    "JobsSettings",
    "Settings",
    "StorageSettings",
    "load_config",
    "settings_from_mapping",
]


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8042


@dataclass(frozen=True)
class DicomSettings:
    aet: str = "ISENGARD"
    host: str = "0.0.0.0"
    port: int = 4242
    # The largest PDU we accept (PS3.8 D.3.3.1). Larger PDUs mean fewer Python-level
    # reads per instance; senders split to this size.
    maximum_pdu_length: int = 262144
    check_called_aet: bool = False
    always_allow_echo: bool = True
    always_allow_store: bool = True
    # Callers that are not declared under `modalities:` may query/retrieve only if these
    # say so (Orthanc "DicomAlwaysAllowFind" / "…Move" / "…Get", false by default).
    always_allow_find: bool = False
    always_allow_move: bool = False
    always_allow_get: bool = False
    # Recognise a declared modality by its host too, not only its AE title.
    check_modality_host: bool = False
    # Seconds without activity before an association is aborted (Orthanc DicomScpTimeout).
    timeout: int = 30
    maximum_associations: int = 32
    # Processes beside the server's own that take over storage associations while
    # several run at once (started on demand, stopped when idle): Python threads of
    # one process take turns (the GIL). Off by default: on a 2-core machine shared with
    # the senders they bought 8-19 % (docs/performance.md, eighth and ninth rounds) for
    # ~60 MB per running worker.
    storage_workers: int = 0


@dataclass(frozen=True)
class StorageSettings:
    compression: bool = False
    # Flush every file to disk before acknowledging it (Orthanc SyncStorageArea).
    sync: bool = True


@dataclass(frozen=True)
class IndexSettings:
    # SQLite file; empty means "<data_dir>/index.sqlite".
    path: str = ""


@dataclass(frozen=True)
class JobsSettings:
    # Jobs running at once (Orthanc "ConcurrentJobs").
    workers: int = 2
    # Finished jobs kept for GET /jobs (Orthanc "JobsHistorySize").
    history_size: int = 10


@dataclass(frozen=True)
class Settings:
    name: str = "Isengard"
    data_dir: str = "isengard-data"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    http: HttpSettings = field(default_factory=HttpSettings)
    dicom: DicomSettings = field(default_factory=DicomSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    overwrite_instances: bool = False
    stable_age: int = 60
    case_sensitive_pn: bool = False
    limit_find_results: int = 0
    limit_find_instances: int = 0
    jobs: JobsSettings = field(default_factory=JobsSettings)
    modalities: dict[str, Any] = field(default_factory=dict)
    # Names of user-defined metadata (Orthanc "UserMetadata"): name -> number in 1024-65535.
    user_metadata: dict[str, int] = field(default_factory=dict)
    # Names of user-defined attachments (Orthanc "UserContentType"): name -> 1024-65535.
    user_content_types: dict[str, int] = field(default_factory=dict)
    plugins: dict[str, Any] = field(default_factory=dict)
    scripts: list[str] = field(default_factory=list)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def index_path(self) -> Path:
        return Path(self.index.path) if self.index.path else self.data_path / "index.sqlite"

    @property
    def storage_path(self) -> Path:
        return self.data_path / "storage"

    def with_overrides(
        self,
        *,
        http_port: int | None = None,
        dicom_port: int | None = None,
        aet: str | None = None,
        data_dir: str | None = None,
        log_level: str | None = None,
    ) -> Settings:
        """Apply command-line overrides (they win over the file)."""
        s = self
        if http_port is not None:
            s = replace(s, http=replace(s.http, port=http_port))
        if dicom_port is not None:
            s = replace(s, dicom=replace(s.dicom, port=dicom_port))
        if aet is not None:
            s = replace(s, dicom=replace(s.dicom, aet=aet))
        if data_dir is not None:
            s = replace(s, data_dir=data_dir)
        if log_level is not None:
            s = replace(s, log_level=log_level)  # type: ignore[arg-type]
        return s


def settings_from_mapping(data: Any, source: str = "configuration") -> Settings:
    """Validate a mapping (parsed YAML) into :class:`Settings`."""
    if data is None:
        data = {}
    try:
        settings = load_settings(Settings, data)
    except SettingsError as exc:
        raise ConfigError(exc.path, f"{exc.message} (in {source})") from exc
    _check(settings, source)
    return settings


def _check(s: Settings, source: str) -> None:
    for path, port in (("http.port", s.http.port), ("dicom.port", s.dicom.port)):
        if not 0 <= port <= 65535:
            raise ConfigError(path, f"port {port} is out of range 0-65535 (in {source})")
    aet = s.dicom.aet
    if not aet or len(aet) > 16 or "\\" in aet or not aet.isascii():
        raise ConfigError("dicom.aet", f"{aet!r} is not a valid AE title: 1 to 16 ASCII "
                                       f"characters, no backslash (in {source})")
    if s.dicom.maximum_pdu_length != 0 and s.dicom.maximum_pdu_length < 4096:
        raise ConfigError("dicom.maximum_pdu_length",
                          f"must be 0 (unlimited) or at least 4096 (in {source})")
    if not 0 <= s.dicom.storage_workers <= 64:
        raise ConfigError("dicom.storage_workers",
                          f"must be 0 (none: every association in the server's process) to "
                          f"64 (in {source})")
    if s.stable_age < 0:
        raise ConfigError("stable_age", f"must be zero or positive (in {source})")
    if s.jobs.workers < 1:
        raise ConfigError("jobs.workers", f"must be at least 1 (in {source})")
    for key, names in (("user_metadata", s.user_metadata),
                       ("user_content_types", s.user_content_types)):
        numbers: dict[int, str] = {}
        for name, number in names.items():
            if not 1024 <= number <= 65535:
                raise ConfigError(f"{key}.{name}", f"{number} is not a user number: use "
                                                   f"1024 to 65535 (in {source})")
            if name.isdigit():
                raise ConfigError(f"{key}.{name}", f"a name cannot be a number (in {source})")
            if number in numbers:
                raise ConfigError(f"{key}.{name}", f"{number} is already the number of "
                                                   f"{numbers[number]!r} (in {source})")
            numbers[number] = name
    from .modalities import modalities_from_config

    modalities_from_config(s.modalities)  # raises ConfigError naming the YAML path


def load_config(path: Path | str | None) -> Settings:
    """Read and validate a YAML file; ``None`` gives the embedded defaults."""
    if path is None:
        return Settings()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read the configuration file {path}: "
                              f"{exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("", f"{path} is not valid YAML: {exc}") from exc
    if data is not None and not isinstance(data, dict):
        raise ConfigError("", f"{path} must hold a mapping of settings at the top level")
    return settings_from_mapping(data, str(path))
