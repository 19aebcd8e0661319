"""What the REST API writes beside the DICOM data: user metadata, attachments of any
level and labels — their SQL, kept out of :mod:`.sqlite` so that the core index stays
small. Every write is one short transaction of the index and logs the change Orthanc
logs (``UpdatedMetadata``, ``UpdatedAttachment``; labels log nothing, as in Orthanc 1.12).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from isengard_sdk.types import ChangeType, StoredFileInfo

from .records import AttachmentRow, ResourceRow, now_iso
from .sqlite import SQLiteIndex

__all__ = ["IndexExtras", "LabelsConstraint", "labels_sql"]

LabelsConstraint = Literal["All", "Any", "None"]


def labels_sql(labels: Sequence[str], constraint: LabelsConstraint) -> tuple[str, list[Any]]:
    """A condition on the resource ``r`` of a query: it has all, any or none of
    ``labels`` (``/tools/find``'s ``Labels`` and ``LabelsConstraint``)."""
    marks = ",".join("?" * len(labels))
    count = f"(SELECT COUNT(*) FROM labels l WHERE l.internal_id = r.internal_id " \
            f"AND l.label IN ({marks}))"
    if constraint == "All":
        return f"{count} = ?", [*labels, len(set(labels))]
    if constraint == "Any":
        return f"{count} > 0", list(labels)
    return f"{count} = 0", list(labels)


class IndexExtras:
    """Metadata writes, attachments and labels, in the database of ``index``."""

    def __init__(self, index: SQLiteIndex):
        self.index = index

    def _log(self, conn: Any, change: ChangeType, row: ResourceRow) -> None:
        conn.execute(
            "INSERT INTO changes(change_type, level, public_id, date) VALUES (?, ?, ?, ?)",
            (change.value, int(row.level), row.public_id, now_iso()))

    # -- metadata ----------------------------------------------------------------------

    def set_metadata(self, row: ResourceRow, name: str, value: str) -> None:
        """Create or replace one metadata; logs ``UpdatedMetadata``."""
        with self.index.transaction() as conn:
            conn.execute(
                "INSERT INTO metadata(internal_id, name, value) VALUES (?, ?, ?) "
                "ON CONFLICT(internal_id, name) DO UPDATE SET value = excluded.value",
                (row.internal_id, name, value))
            self._log(conn, ChangeType.UPDATED_METADATA, row)
        self.index.notify_changes()

    def delete_metadata(self, row: ResourceRow, name: str) -> bool:
        """Remove one metadata; ``False`` when the resource did not have it."""
        with self.index.transaction() as conn:
            deleted = conn.execute("DELETE FROM metadata WHERE internal_id = ? AND name = ?",
                                   (row.internal_id, name)).rowcount
            if deleted:
                self._log(conn, ChangeType.UPDATED_METADATA, row)
        if deleted:
            self.index.notify_changes()
        return bool(deleted)

    # -- attachments -------------------------------------------------------------------

    def attachments(self, internal_id: int) -> dict[int, AttachmentRow]:
        """Content type → attachment, for one resource."""
        rows = self.index.reader().execute(
            "SELECT file_type, uuid, compressed_size, uncompressed_size, compression, "
            "uncompressed_md5, compressed_md5 FROM attached_files WHERE internal_id = ? "
            "ORDER BY file_type", (internal_id,)).fetchall()
        return {r[0]: AttachmentRow(*r[1:]) for r in rows}

    def set_attachment(self, row: ResourceRow, file_type: int, info: StoredFileInfo
                       ) -> str | None:
        """Attach a stored file (replacing the previous one of this type); returns the
        uuid of the replaced file, to remove from storage. Logs ``UpdatedAttachment``."""
        with self.index.transaction() as conn:
            old = conn.execute(
                "SELECT uuid FROM attached_files WHERE internal_id = ? AND file_type = ?",
                (row.internal_id, file_type)).fetchone()
            if conn.execute("SELECT 1 FROM resources WHERE internal_id = ?",
                            (row.internal_id,)).fetchone() is None:
                return info.uuid  # deleted meanwhile: the new file is the orphan
            conn.execute(
                "INSERT OR REPLACE INTO attached_files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (row.internal_id, file_type, info.uuid, info.compressed_size,
                 info.uncompressed_size, info.compression, info.uncompressed_md5,
                 info.compressed_md5))
            self._log(conn, ChangeType.UPDATED_ATTACHMENT, row)
        self.index.notify_changes()
        return old[0] if old else None

    def delete_attachment(self, row: ResourceRow, file_type: int) -> str | None:
        """Detach a file; returns its uuid (to remove from storage), ``None`` if absent."""
        with self.index.transaction() as conn:
            old = conn.execute(
                "SELECT uuid FROM attached_files WHERE internal_id = ? AND file_type = ?",
                (row.internal_id, file_type)).fetchone()
            if old is None:
                return None
            conn.execute("DELETE FROM attached_files WHERE internal_id = ? AND file_type = ?",
                         (row.internal_id, file_type))
            self._log(conn, ChangeType.UPDATED_ATTACHMENT, row)
        self.index.notify_changes()
        return str(old[0])

    # -- labels ------------------------------------------------------------------------

    def add_label(self, row: ResourceRow, label: str) -> None:
        with self.index.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO labels(internal_id, label) VALUES (?, ?)",
                         (row.internal_id, label))

    def remove_label(self, row: ResourceRow, label: str) -> None:
        with self.index.transaction() as conn:
            conn.execute("DELETE FROM labels WHERE internal_id = ? AND label = ?",
                         (row.internal_id, label))

    def labels(self, internal_id: int) -> list[str]:
        return [r[0] for r in self.index.reader().execute(
            "SELECT label FROM labels WHERE internal_id = ? ORDER BY label", (internal_id,))]

    def labels_of(self, internal_ids: Sequence[int]) -> dict[int, list[str]]:
        """internal id → its labels (sorted), for the resources that have some."""
        out: dict[int, list[str]] = {}
        conn = self.index.reader()
        ids = list(internal_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for iid, label in conn.execute(
                    f"SELECT internal_id, label FROM labels WHERE internal_id IN ({marks}) "
                    "ORDER BY label", chunk):
                out.setdefault(iid, []).append(label)
        return out

    def all_labels(self) -> list[str]:
        """Every label in use, sorted (``GET /tools/labels``)."""
        return [r[0] for r in self.index.reader().execute(
            "SELECT DISTINCT label FROM labels ORDER BY label")]
