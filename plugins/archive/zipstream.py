"""A ZIP file produced piece by piece, never whole in memory.

:func:`zip_stream` drives the standard library's ``zipfile`` over a write-only buffer
(``_Pipe``): ``zipfile`` sees an unseekable stream, so it writes each entry's sizes and
CRC in a data descriptor after the data (APPNOTE.TXT 4.3.9) and switches to ZIP64 on
its own for large entries, offsets past 4 GiB or more than 65535 entries. Every chunk
written is handed to the caller at once, so memory stays at about one chunk whatever
the archive's size.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["ZipEntry", "zip_stream"]

# Hand out what zipfile wrote once this much is pending (small entries are batched).
FLUSH_THRESHOLD = 1 << 20


@dataclass
class ZipEntry:
    """One file of the archive: its path, its size if known (0 when not) and its bytes."""

    name: str
    size: int
    chunks: Iterable[bytes]


class _Pipe:
    """A write-only file: what is written waits in a list until :meth:`drain`."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.pending = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self.pending += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        self.pending = 0
        return out


def zip_stream(entries: Iterable[ZipEntry], *, compress: bool = False,
               compresslevel: int = 6) -> Iterator[bytes]:
    """The bytes of a ZIP holding ``entries``, produced as the entries are read.

    ``entries`` is consumed lazily (it may compute the last entry from the others, as
    the DICOMDIR of a media). Stored entries by default; deflated with ``compress``.
    """
    pipe = _Pipe()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(pipe, "w", compression=method,  # type: ignore[arg-type, call-overload]
                         compresslevel=compresslevel if compress else None,
                         allowZip64=True) as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.name, date_time=time.localtime()[:6])
            info.compress_type = method
            info.file_size = entry.size  # lets zipfile choose ZIP64 up front
            info.external_attr = 0o644 << 16
            # An unknown size might exceed 4 GiB: reserve ZIP64 fields then.
            with archive.open(info, "w", force_zip64=entry.size <= 0) as dest:
                for chunk in entry.chunks:
                    dest.write(chunk)
                    if pipe.pending >= FLUSH_THRESHOLD:
                        yield pipe.drain()
            if pipe.pending >= FLUSH_THRESHOLD:
                yield pipe.drain()
    if pipe.pending:
        yield pipe.drain()
