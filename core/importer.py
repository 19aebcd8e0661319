"""``isengard import``: load folders, ZIP files and DICOM media into a server.

::

    isengard import PATH... [--url http://127.0.0.1:8042 | --data-dir DIR [--config YAML]]

Every PATH may be a DICOM file, a folder (walked recursively), a ZIP file (nested ZIPs
included) or a DICOMDIR. A folder holding a ``DICOMDIR`` — a CD or USB stick burnt by
another hospital — is read through it: the files it references are imported, in its
order, and the other files of that folder (the viewer shipped on the CD, autorun …) are
skipped and counted. Folders without a DICOMDIR are imported file by file.

Two destinations:

- ``--url`` (default ``http://127.0.0.1:8042``): a running server, through
  ``POST /instances`` — Isengard or Orthanc alike;
- ``--data-dir``: a data folder opened in-process, through the same ingest path as the
  server (filters, index, change log). The server must not be running on that folder.

A progress bar goes to stderr, the summary to stdout: imported, already stored, and
every rejected file with its reason. The exit status is 0 when nothing was rejected,
1 otherwise, 2 when the destination cannot be used.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .errors import IsengardError

__all__ = ["ImportReport", "ImportSource", "collect_sources", "run_import"]

DICOMDIR = "DICOMDIR"


@dataclass(frozen=True)
class ImportSource:
    """One candidate file: a name to report and a way to read it when its turn comes."""

    name: str
    read: Callable[[], bytes]


@dataclass
class ImportReport:
    """What happened to every file."""

    imported: list[str] = field(default_factory=list)
    already_stored: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    skipped: list[str] = field(default_factory=list)  # beside a DICOMDIR, not listed
    open_files: list[zipfile.ZipFile] = field(default_factory=list, repr=False)

    def close(self) -> None:
        """Close the ZIP files the sources read from."""
        for archive in self.open_files:
            archive.close()
        self.open_files.clear()

    @property
    def total(self) -> int:
        return len(self.imported) + len(self.already_stored) + len(self.rejected)


class DestinationError(Exception):
    """The destination cannot be used at all (server down, data folder unusable)."""


# -- collecting the files ----------------------------------------------------------------


def _file_source(path: Path) -> ImportSource:
    return ImportSource(str(path), path.read_bytes)


def _zip_sources(name: str, archive: zipfile.ZipFile) -> Iterator[ImportSource]:
    for info in archive.infolist():
        if info.is_dir():
            continue
        member = f"{name}:{info.filename}"
        if Path(info.filename).name.upper() == DICOMDIR:
            continue  # a media in a ZIP: its files are all in the ZIP anyway
        try:
            with archive.open(info) as handle:
                head = handle.read(4)
        except (RuntimeError, zipfile.BadZipFile, OSError):
            head = b""  # encrypted or damaged: reported when read
        if head.startswith(b"PK\x03\x04"):
            nested = zipfile.ZipFile(io.BytesIO(archive.read(info)))
            yield from _zip_sources(member, nested)
            continue
        yield ImportSource(member, functools.partial(archive.read, info))


def _resolve(root: Path, components: Sequence[str]) -> Path | None:
    """The file a DICOMDIR File ID names, matching case-insensitively as media burnt on
    one system and read on another often need (PS3.10 8.5: IDs are upper case)."""
    current = root
    for part in components:
        candidate = current / part
        if not candidate.exists():
            try:
                matches = [p for p in current.iterdir() if p.name.upper() == part.upper()]
            except OSError:
                return None
            if not matches:
                return None
            candidate = matches[0]
        current = candidate
    return current if current.is_file() else None


def _dicomdir_references(path: Path) -> list[tuple[str, Path | None]]:
    """(File ID as written, resolved path or None) for every record of a DICOMDIR."""
    import pydicom  # late: `isengard --help` stays fast

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    out: list[tuple[str, Path | None]] = []
    for record in ds.get("DirectoryRecordSequence", []):
        file_id = record.get("ReferencedFileID")
        if file_id is None:
            continue
        parts = [file_id] if isinstance(file_id, str) else list(file_id)
        parts = [p for p in (str(x).strip() for x in parts) if p]
        if parts:
            out.append(("/".join(parts), _resolve(path.parent, parts)))
    return out


def _folder_sources(folder: Path, report: ImportReport) -> Iterator[ImportSource]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    media_roots: list[Path] = []
    referenced: set[Path] = set()
    for dicomdir in (p for p in files if p.name.upper() == DICOMDIR):
        try:
            references = _dicomdir_references(dicomdir)
        except Exception as exc:  # unreadable DICOMDIR: fall back to the files themselves
            report.rejected.append((str(dicomdir), f"unreadable DICOMDIR ({exc}); the "
                                                   "files of its folder are imported one "
                                                   "by one"))
            continue
        media_roots.append(dicomdir.parent)
        for file_id, resolved in references:
            if resolved is None:
                report.rejected.append((f"{dicomdir.parent / file_id}",
                                        f"referenced by {dicomdir} but missing"))
            elif resolved not in referenced:
                referenced.add(resolved)
                yield _file_source(resolved)
    for path in files:
        if path in referenced or path.name.upper() == DICOMDIR:
            continue
        if any(root in path.parents for root in media_roots):
            report.skipped.append(str(path))
            continue
        yield from _path_sources(path, report)


def _path_sources(path: Path, report: ImportReport) -> Iterator[ImportSource]:
    """The candidate files of one path. ZIP files stay open until the report is closed."""
    if path.is_dir():
        yield from _folder_sources(path, report)
    elif path.name.upper() == DICOMDIR:
        yield from _folder_sources_of_dicomdir(path, report)
    elif zipfile.is_zipfile(path):
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            report.rejected.append((str(path), f"damaged ZIP file: {exc}"))
            return
        report.open_files.append(archive)
        yield from _zip_sources(str(path), archive)
    else:
        yield _file_source(path)


def _folder_sources_of_dicomdir(path: Path, report: ImportReport) -> Iterator[ImportSource]:
    try:
        references = _dicomdir_references(path)
    except Exception as exc:
        report.rejected.append((str(path), f"unreadable DICOMDIR: {exc}"))
        return
    for file_id, resolved in references:
        if resolved is None:
            report.rejected.append((f"{path.parent / file_id}",
                                    f"referenced by {path} but missing"))
        else:
            yield _file_source(resolved)


def collect_sources(paths: Sequence[str | Path], report: ImportReport) -> list[ImportSource]:
    """Every candidate file below ``paths``; problems found while listing (missing
    paths, damaged ZIPs, files a DICOMDIR lacks) go to ``report.rejected``."""
    sources: list[ImportSource] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            report.rejected.append((str(path), "no such file or folder"))
            continue
        sources.extend(_path_sources(path, report))
    return sources


# -- destinations -------------------------------------------------------------------------

# A destination stores one file: ("Success" | "AlreadyStored", None) or (None, reason).
Store = Callable[[bytes], tuple[str | None, str | None]]


def rest_destination(url: str, *, username: str | None = None, password: str | None = None,
                     timeout: float = 120) -> Store:
    """POST /instances to a running server (Isengard or Orthanc)."""
    endpoint = url.rstrip("/") + "/instances"
    headers = {"Content-Type": "application/dicom", "Accept": "application/json"}
    if username is not None:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    try:  # fail early, with one clear message, when nothing listens there
        with urllib.request.urlopen(url.rstrip("/") + "/system", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        pass  # it answers: authentication or routes are the server's business
    except (urllib.error.URLError, OSError) as exc:
        raise DestinationError(f"cannot reach the server at {url}: "
                               f"{getattr(exc, 'reason', exc)}; start it or fix --url") from exc

    def store(data: bytes) -> tuple[str | None, str | None]:
        request = urllib.request.Request(endpoint, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                body = json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return None, _http_reason(exc)
        except (urllib.error.URLError, OSError) as exc:
            raise DestinationError(f"the server at {url} stopped answering: "
                                   f"{getattr(exc, 'reason', exc)}") from exc
        status = body.get("Status") if isinstance(body, dict) else None
        if status in ("Success", "AlreadyStored"):
            return status, None
        return None, f"unexpected answer from the server: {body!r}"[:300]

    return store


def _http_reason(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        body = {}
    detail = body.get("Details") or body.get("Message") if isinstance(body, dict) else None
    return f"HTTP {exc.code}: {detail or exc.reason}"


class DataDirDestination:
    """A data folder opened in-process (the kernel, without network front-ends)."""

    def __init__(self, data_dir: str | None, config: str | None):
        from .config import load_config
        from .kernel import Kernel

        settings = load_config(config).with_overrides(data_dir=data_dir)
        self.kernel = Kernel(settings)
        self.kernel.open()

    def store(self, data: bytes) -> tuple[str | None, str | None]:
        from .errors import InstanceRejected, InvalidDicomError
        from .ingest import Origin

        try:
            outcome, _ = self.kernel.ingest_path.ingest(data, Origin(kind="Import"))
        except InvalidDicomError as exc:
            return None, f"not a DICOM file: {exc}"
        except InstanceRejected as exc:
            return None, f"rejected: {exc}"
        return outcome.status, None

    def close(self) -> None:
        self.kernel.close()


# -- running ------------------------------------------------------------------------------


class Progress:
    """A one-line text progress bar on a terminal (or a line per 10 % elsewhere)."""

    WIDTH = 30

    def __init__(self, total: int, out: TextIO):
        self.total = total
        self.out = out
        self.tty = out.isatty()
        self._last_tenth = -1

    def update(self, done: int, report: ImportReport) -> None:
        if not self.total:
            return
        tenth = done * 10 // self.total
        if not self.tty and tenth == self._last_tenth and done != self.total:
            return
        self._last_tenth = tenth
        filled = self.WIDTH * done // self.total
        bar = "#" * filled + "." * (self.WIDTH - filled)
        line = (f"[{bar}] {done}/{self.total}  imported {len(report.imported)}, "
                f"already stored {len(report.already_stored)}, "
                f"rejected {len(report.rejected)}")
        self.out.write(("\r" + line) if self.tty else line + "\n")
        if self.tty and done == self.total:
            self.out.write("\n")
        self.out.flush()


def import_sources(sources: Sequence[ImportSource], store: Store, report: ImportReport,
                   progress: Progress | None = None) -> None:
    for done, source in enumerate(sources, 1):
        try:
            data = source.read()
        except (OSError, zipfile.BadZipFile, RuntimeError) as exc:
            report.rejected.append((source.name, f"cannot be read: {exc}"))
        else:
            status, reason = store(data)
            if status == "Success":
                report.imported.append(source.name)
            elif status == "AlreadyStored":
                report.already_stored.append(source.name)
            else:
                report.rejected.append((source.name, reason or "rejected"))
        if progress is not None:
            progress.update(done, report)


def print_summary(report: ImportReport, out: TextIO) -> None:
    out.write(f"imported: {len(report.imported)}\n")
    out.write(f"already stored: {len(report.already_stored)}\n")
    if report.skipped:
        out.write(f"skipped (beside a DICOMDIR that does not list them): "
                  f"{len(report.skipped)}\n")
    out.write(f"rejected: {len(report.rejected)}\n")
    for name, reason in report.rejected:
        out.write(f"  {name}: {reason}\n")


def run_import(paths: Sequence[str], *, url: str | None = None, data_dir: str | None = None,
               config: str | None = None, username: str | None = None,
               password: str | None = None, stdout: TextIO | None = None,
               stderr: TextIO | None = None) -> int:
    """The ``isengard import`` command; returns the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    report = ImportReport()
    destination: DataDirDestination | None = None
    try:
        sources = collect_sources(paths, report)
        if data_dir is not None or (url is None and config is not None):
            # --config alone: the data folder that configuration names
            destination = DataDirDestination(data_dir, config)
            store: Store = destination.store
        else:
            store = rest_destination(url or "http://127.0.0.1:8042", username=username,
                                     password=password)
        import_sources(sources, store, report, Progress(len(sources), err))
    except DestinationError as exc:
        err.write(f"\nisengard import: {exc}\n")
        print_summary(report, out)
        return 2
    finally:
        report.close()
        if destination is not None:
            destination.close()
    print_summary(report, out)
    return 1 if report.rejected else 0


def _env_password() -> str | None:
    return os.environ.get("ISENGARD_PASSWORD")


def add_arguments(p: Any) -> None:
    """The ``import`` subcommand's arguments (an ``argparse`` parser)."""
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="DICOM files, folders (recursive), ZIP files or DICOMDIR media")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--url", help="a running server to POST /instances to "
                                     "(default http://127.0.0.1:8042)")
    where.add_argument("--data-dir", help="import into this data folder directly (the "
                                          "server must not be running on it)")
    p.add_argument("--config", "-c", help="with --data-dir: the server's YAML configuration "
                                          "(storage, plugins, filters)")
    p.add_argument("--username", help="HTTP user for --url (password from $ISENGARD_PASSWORD)")


def main(args: Any) -> int:
    """Run from parsed ``argparse`` arguments."""
    try:
        return run_import(args.paths, url=args.url, data_dir=args.data_dir,
                          config=args.config, username=args.username,
                          password=_env_password())
    except IsengardError as exc:  # configuration or start-up errors of --data-dir
        print(f"isengard import: {exc}", file=sys.stderr)
        return 2
