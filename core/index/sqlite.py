"""The embedded index: SQLite in WAL mode.

One writer connection behind a lock (SQLite allows one writer at a time anyway) and one
reader connection per thread, so that queries never wait for an ingest to commit.
Every write is one short transaction.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from isengard_sdk.types import Change, ChangeType, ResourceLevel

from ..find import Constraint
from .query_sql import constraint_sql, relative_sql
from .records import (
    DICOM_ATTACHMENT,
    AttachmentRow,
    NewInstanceRecord,
    ResourceRow,
    StoreOutcome,
    now_iso,
)
from .schema import SCHEMA, SCHEMA_VERSION

__all__ = ["SPARE_READERS", "SQLiteIndex"]

SPARE_READERS = 4  # reader connections kept for new threads


_NEW_CHANGE = {
    ResourceLevel.PATIENT: ChangeType.NEW_PATIENT,
    ResourceLevel.STUDY: ChangeType.NEW_STUDY,
    ResourceLevel.SERIES: ChangeType.NEW_SERIES,
}


def _insert_rows(conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]],
                 tail: str = "") -> None:
    """``head VALUES (…), (…), … tail`` for every row at once: one statement, one step
    (``executemany`` steps, and releases the GIL, once per row)."""
    if not rows:
        return
    values = f"({', '.join('?' * len(rows[0]))})"
    conn.execute(f"{head} VALUES {', '.join([values] * len(rows))}{tail}",
                 [value for row in rows for value in row])


class _Lease:
    """A thread's reader connection; given back when the thread's locals go."""

    __slots__ = ("conn", "_give_back")

    def __init__(self, conn: sqlite3.Connection,
                 give_back: Callable[[sqlite3.Connection], None]):
        self.conn = conn
        self._give_back = give_back

    def __del__(self) -> None:
        self._give_back(self.conn)


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (sqlite3.Connection cannot)."""


class SQLiteIndex:
    """Thread-safe SQLite index of patients, studies, series and instances."""

    def __init__(self, path: Path, *, durable: bool = True, stable_age: float = 60.0,
                 shared: bool = False):
        self.path = Path(path)
        self.durable = durable
        self.stable_age = stable_age
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.RLock()
        # With other processes writing (dicom.storage_workers), their transactions and
        # ours take turns on a lock file: SQLite alone would make the loser of a race
        # sleep 1, 2, 5, 10 … ms in its busy handler; flock() wakes it at the release.
        self._process_lock = (os.open(f"{self.path}-lock", os.O_RDWR | os.O_CREAT, 0o644)
                              if shared else None)
        self._local = threading.local()
        # Every reader connection open, for close(). A thread's reader is handed back
        # when the thread ends (its thread-local lease goes): a few are kept for the
        # next threads, the others closed. Every association runs in new threads:
        # keeping all would grow by one connection (and its page cache, up to 4 MB)
        # per association, for ever.
        self._readers: weakref.WeakSet[sqlite3.Connection] = weakref.WeakSet()
        self._spares: list[sqlite3.Connection] = []
        # Reentrant: a lease given back by the collector may land in a thread holding it.
        self._readers_lock = threading.RLock()
        self._closed = False
        self._writer = self._connect()
        with self._between_processes(), self._writer:
            self._writer.executescript(SCHEMA)
            self._writer.execute(
                "INSERT OR IGNORE INTO global_properties(name, value) VALUES ('schema', ?)",
                (str(SCHEMA_VERSION),),
            )
        self._change_listeners: list[Callable[[], None]] = []

    # -- connections -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                               timeout=30.0, factory=_Connection)
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives a crash of the process; after a power loss the
        # last commits may roll back (the files themselves are flushed by the storage
        # area before any answer). FULL would add an fsync per instance; Orthanc does
        # not sync its index per instance either. `durable=False` (tests) skips the
        # checkpoint syncs too.
        conn.execute(f"PRAGMA synchronous={'NORMAL' if self.durable else 'OFF'}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA cache_size=-32000")
        return conn

    def _reader(self) -> sqlite3.Connection:
        lease: _Lease | None = getattr(self._local, "lease", None)
        if lease is None:
            if self._closed:
                raise RuntimeError("the index is closed")
            with self._readers_lock:
                conn = self._spares.pop() if self._spares else None
            if conn is None:
                conn = self._connect()
                conn.execute("PRAGMA query_only=ON")
                # One reader per worker thread (up to ~40 under HTTP load): a 32 MB
                # page cache each made 250 MB with the benchmark's query set; the OS
                # page cache serves the rest.
                conn.execute("PRAGMA cache_size=-4000")
                with self._readers_lock:
                    self._readers.add(conn)
            lease = self._local.lease = _Lease(conn, self._give_back)
        return lease.conn

    def _give_back(self, conn: sqlite3.Connection) -> None:
        """The reader of a thread that ended: kept for the next new thread (every DICOM
        association runs in new threads; opening a connection took ~0.5 ms of each),
        closed beyond ``SPARE_READERS``."""
        with self._readers_lock:
            if not self._closed and len(self._spares) < SPARE_READERS:
                self._spares.append(conn)
                return
            self._readers.discard(conn)
        conn.close()

    @contextmanager
    def _between_processes(self) -> Iterator[None]:
        if self._process_lock is None:
            yield
            return
        fcntl.flock(self._process_lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._process_lock, fcntl.LOCK_UN)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock, self._between_processes():
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def transaction(self) -> Any:
        """A write transaction (context manager yielding the connection), for the stores
        of this package that keep other tables in the same database (jobs, modalities)."""
        return self._transaction()

    def reader(self) -> sqlite3.Connection:
        """This thread's read-only connection."""
        return self._reader()

    def close(self) -> None:
        """Close every connection (readers of other threads included)."""
        with self._write_lock:
            self._closed = True
            with self._readers_lock:
                for conn in list(self._readers):
                    conn.close()
                self._readers.clear()
                self._spares.clear()
            try:
                with self._between_processes():
                    self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self._writer.close()
            if self._process_lock is not None:
                os.close(self._process_lock)
                self._process_lock = None

    def add_change_listener(self, listener: Callable[[], None]) -> None:
        """``listener`` is called after every commit that logged changes (here, or in
        another process that says so: :meth:`notify_changes`)."""
        self._change_listeners.append(listener)

    def notify_changes(self) -> None:
        for listener in self._change_listeners:
            listener()

    # -- writes ------------------------------------------------------------------------

    def store_instance(self, record: NewInstanceRecord, *, overwrite: bool) -> StoreOutcome:
        """Insert one instance (creating missing parents) in one transaction.

        Few statements, on purpose: the ``sqlite3`` module releases the GIL around every
        step of a statement, and with several associations storing at once each release
        hands the GIL to another thread, which the releasing one then waits to get back.
        The instance and its parents are looked up in one query, the parents' rows and
        deadlines are only written when they change (a burst within one second leaves
        them alone), and several rows go in one ``INSERT``.
        """
        now = now_iso()
        # A whole second, rounded up: the instances of a burst share their series' (and
        # study's, patient's) deadline, so its row and index entry are rewritten once a
        # second rather than for every instance (the monitor polls each second anyway).
        deadline = float(math.ceil(time.time() + self.stable_age))
        replaced: tuple[str, ...] = ()
        ids = record.ids
        with self._transaction() as conn:
            # public_id is unique across levels: one lookup for the instance and its
            # parents, with what decides whether their rows need writing.
            found = {public_id: (internal_id, last_update, is_stable, old_deadline)
                     for public_id, internal_id, last_update, is_stable, old_deadline
                     in conn.execute(self._LINEAGE_SQL, ids)}
            existing = found.get(ids[3])
            if existing is not None:
                if not overwrite:
                    return StoreOutcome("AlreadyStored", ids)
                replaced = tuple(uuid for (uuid,) in conn.execute(
                    "SELECT uuid FROM attached_files WHERE internal_id = ?", (existing[0],)))
                conn.execute("DELETE FROM resources WHERE internal_id = ?", (existing[0],))
            parent: int | None = None
            created: list[ResourceLevel] = []
            touched: list[int] = []
            unstable: list[tuple[int, int, str, float]] = []
            for level in (ResourceLevel.PATIENT, ResourceLevel.STUDY, ResourceLevel.SERIES):
                public_id = ids[level]
                row = found.get(public_id)
                if row is not None:
                    parent, last_update, is_stable, old_deadline = row
                    if last_update != now or is_stable:
                        touched.append(parent)
                    if old_deadline is not None and old_deadline >= deadline:
                        continue
                else:
                    # Orthanc copies the patient's main tags into each new study (they
                    # are the study's PatientMainDicomTags and what study-level and
                    # lower queries match patient tags against).
                    copied = (record.main_tags[ResourceLevel.PATIENT]
                              if level == ResourceLevel.STUDY else None)
                    parent = self._insert_resource(conn, level, public_id, parent,
                                                   record.main_tags[level], now, copied)
                    created.append(level)
                assert parent is not None  # noqa: S101 - found or inserted just above
                unstable.append((parent, int(level), public_id, deadline))
            if touched:
                conn.execute("UPDATE resources SET last_update = ?, is_stable = 0 WHERE "
                             f"internal_id IN ({', '.join('?' * len(touched))})",
                             (now, *touched))
            _insert_rows(conn, "INSERT INTO unstable_resources(internal_id, level, "
                         "public_id, deadline)", unstable,
                         " ON CONFLICT(internal_id) DO UPDATE SET deadline = "
                         "excluded.deadline WHERE unstable_resources.deadline < "
                         "excluded.deadline")
            if ResourceLevel.SERIES in created:
                _insert_rows(conn, "INSERT INTO metadata(internal_id, name, value)",
                             [(parent, k, v) for k, v in record.series_metadata.items()])
            instance_id = self._insert_resource(
                conn, ResourceLevel.INSTANCE, ids[3], parent,
                record.main_tags[ResourceLevel.INSTANCE], now)
            f = record.file
            conn.execute(
                "INSERT INTO attached_files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (instance_id, DICOM_ATTACHMENT, f.uuid, f.compressed_size,
                 f.uncompressed_size, f.compression, f.uncompressed_md5, f.compressed_md5),
            )
            _insert_rows(conn, "INSERT INTO metadata(internal_id, name, value)",
                         [(instance_id, k, v) for k, v in record.metadata.items()])
            if record.header is not None:
                conn.execute(
                    "INSERT INTO instance_headers VALUES (?, ?, ?)",
                    (instance_id, record.header, int(record.has_pixel_data)),
                )
            changes = [(ChangeType.NEW_INSTANCE.value, int(ResourceLevel.INSTANCE), ids[3],
                        now)]
            changes += [(_NEW_CHANGE[level].value, int(level), ids[level], now)
                        for level in reversed(created)]
            _insert_rows(conn, "INSERT INTO changes(change_type, level, public_id, date)",
                         changes)
        self.notify_changes()
        return StoreOutcome("Success", ids, replaced)

    _LINEAGE_SQL = (
        "SELECT r.public_id, r.internal_id, r.last_update, r.is_stable, u.deadline "
        "FROM resources AS r LEFT JOIN unstable_resources AS u "
        "ON u.internal_id = r.internal_id WHERE r.public_id IN (?, ?, ?, ?)")

    def _insert_resource(self, conn: sqlite3.Connection, level: ResourceLevel,
                         public_id: str, parent: int | None, tags: dict[str, str],
                         now: str, copied_tags: dict[str, str] | None = None) -> int:
        cur = conn.execute(
            "INSERT INTO resources(level, public_id, parent_id, main_tags, last_update) "
            "VALUES (?, ?, ?, ?, ?)",
            (int(level), public_id, parent, json.dumps(tags, ensure_ascii=False), now),
        )
        internal_id = cur.lastrowid
        assert internal_id is not None  # noqa: S101 - sqlite always sets it after INSERT
        _insert_rows(conn, "INSERT INTO dicom_identifiers(internal_id, tag, value, "
                     "value_norm)",
                     [(internal_id, k, v, v.upper())
                      for k, v in {**(copied_tags or {}), **tags}.items()])
        return internal_id

    def _log_change(self, conn: sqlite3.Connection, change: ChangeType,
                    level: ResourceLevel, public_id: str, date: str) -> None:
        conn.execute(
            "INSERT INTO changes(change_type, level, public_id, date) VALUES (?, ?, ?, ?)",
            (change.value, int(level), public_id, date),
        )

    def delete_resource(self, level: ResourceLevel, public_id: str
                        ) -> tuple[list[str], ResourceRow | None] | None:
        """Delete a resource, its descendants and the ancestors it leaves empty.

        Returns the uuids of the files to remove from storage and the nearest remaining
        ancestor, or ``None`` if the resource does not exist.
        """
        now = now_iso()
        with self._transaction() as conn:
            row = self._row(conn, level, public_id)
            if row is None:
                return None
            uuids = [r[0] for r in conn.execute(
                self._descendant_files_sql(level), (row.internal_id,))]
            conn.execute("DELETE FROM resources WHERE internal_id = ?", (row.internal_id,))
            self._log_change(conn, ChangeType.DELETED, level, public_id, now)
            parent_id = row.parent_id
            remaining: ResourceRow | None = None
            while parent_id is not None:
                parent = self._row_by_internal(conn, parent_id)
                if parent is None:
                    break
                has_child = conn.execute(
                    "SELECT 1 FROM resources WHERE parent_id = ? LIMIT 1", (parent_id,)
                ).fetchone()
                if has_child:
                    remaining = parent
                    break
                uuids += [r[0] for r in conn.execute(  # user attachments of the ancestor
                    "SELECT uuid FROM attached_files WHERE internal_id = ?", (parent_id,))]
                conn.execute("DELETE FROM resources WHERE internal_id = ?", (parent_id,))
                self._log_change(conn, ChangeType.DELETED, parent.level, parent.public_id, now)
                parent_id = parent.parent_id
        self.notify_changes()
        return uuids, remaining

    @staticmethod
    def _descendant_files_sql(level: ResourceLevel) -> str:
        """The files of a resource and of everything below it: the DICOM files of the
        instances and the user attachments of any level (one parameter: its id)."""
        return ("WITH RECURSIVE tree(id) AS (SELECT ? UNION ALL SELECT r.internal_id "
                "FROM resources r JOIN tree ON r.parent_id = tree.id) "
                "SELECT f.uuid FROM tree JOIN attached_files f ON f.internal_id = tree.id")

    def stabilize_due(self, now: float | None = None) -> list[tuple[ResourceLevel, str]]:
        """Mark stable the resources without new instance for ``stable_age`` seconds."""
        now = time.time() if now is None else now
        date = now_iso()
        with self._transaction() as conn:
            due = conn.execute(
                "SELECT internal_id, level, public_id FROM unstable_resources "
                "WHERE deadline <= ? ORDER BY level DESC, internal_id", (now,)
            ).fetchall()
            for internal_id, level, public_id in due:
                conn.execute("UPDATE resources SET is_stable = 1 WHERE internal_id = ?",
                             (internal_id,))
                conn.execute("DELETE FROM unstable_resources WHERE internal_id = ?",
                             (internal_id,))
                change = {0: ChangeType.STABLE_PATIENT, 1: ChangeType.STABLE_STUDY,
                          2: ChangeType.STABLE_SERIES}[level]
                self._log_change(conn, change, ResourceLevel(level), public_id, date)
        if due:
            self.notify_changes()
        return [(ResourceLevel(level), public_id) for _, level, public_id in due]

    def set_metadata(self, internal_id: int, name: str, value: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO metadata(internal_id, name, value) VALUES (?, ?, ?) "
                "ON CONFLICT(internal_id, name) DO UPDATE SET value = excluded.value",
                (internal_id, name, value),
            )

    def log_export(self, level: ResourceLevel, public_id: str, modality: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO exports(level, public_id, remote_modality, date) "
                "VALUES (?, ?, ?, ?)", (int(level), public_id, modality, now_iso()))

    def clear_log(self, table: str) -> None:
        """Empty the change log (``changes``) or the export log (``exports``)."""
        if table not in ("changes", "exports"):
            raise ValueError(table)
        with self._transaction() as conn:
            conn.execute(f"DELETE FROM {table}")

    def get_property(self, name: str) -> str | None:
        row = self._reader().execute(
            "SELECT value FROM global_properties WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_property(self, name: str, value: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO global_properties(name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, value))

    # -- reads -------------------------------------------------------------------------

    _ROW_SQL = ("SELECT internal_id, level, public_id, parent_id, main_tags, last_update, "
                "is_stable FROM resources")

    @staticmethod
    def _make_row(r: Sequence[Any]) -> ResourceRow:
        return ResourceRow(r[0], ResourceLevel(r[1]), r[2], r[3], json.loads(r[4]), r[5],
                           bool(r[6]))

    def _row(self, conn: sqlite3.Connection, level: ResourceLevel, public_id: str
             ) -> ResourceRow | None:
        r = conn.execute(self._ROW_SQL + " WHERE public_id = ? AND level = ?",
                         (public_id, int(level))).fetchone()
        return self._make_row(r) if r else None

    def _row_by_internal(self, conn: sqlite3.Connection, internal_id: int
                         ) -> ResourceRow | None:
        r = conn.execute(self._ROW_SQL + " WHERE internal_id = ?", (internal_id,)).fetchone()
        return self._make_row(r) if r else None

    def lookup(self, level: ResourceLevel, public_id: str) -> ResourceRow | None:
        return self._row(self._reader(), level, public_id)

    def lookup_any(self, public_id: str) -> ResourceRow | None:
        r = self._reader().execute(self._ROW_SQL + " WHERE public_id = ?",
                                   (public_id,)).fetchone()
        return self._make_row(r) if r else None

    def get_by_internal(self, internal_id: int) -> ResourceRow | None:
        return self._row_by_internal(self._reader(), internal_id)

    def exists(self, level: ResourceLevel, public_id: str) -> bool:
        return self._reader().execute(
            "SELECT 1 FROM resources WHERE public_id = ? AND level = ?",
            (public_id, int(level))).fetchone() is not None

    def list_ids(self, level: ResourceLevel, *, since: int = 0, limit: int = 0) -> list[str]:
        sql = "SELECT public_id FROM resources WHERE level = ? ORDER BY internal_id"
        params: list[Any] = [int(level)]
        if limit or since:
            sql += " LIMIT ? OFFSET ?"
            params += [limit if limit > 0 else -1, since]
        return [r[0] for r in self._reader().execute(sql, params)]

    def rows(self, internal_ids: Iterable[int]) -> list[ResourceRow]:
        ids = list(internal_ids)
        out: dict[int, ResourceRow] = {}
        conn = self._reader()
        for chunk in _chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            for r in conn.execute(self._ROW_SQL + f" WHERE internal_id IN ({marks})", chunk):
                out[r[0]] = self._make_row(r)
        return [out[i] for i in ids if i in out]

    def rows_by_public(self, level: ResourceLevel, public_ids: Sequence[str]
                       ) -> list[ResourceRow]:
        out: dict[str, ResourceRow] = {}
        conn = self._reader()
        for chunk in _chunks(list(public_ids), 500):
            marks = ",".join("?" * len(chunk))
            for r in conn.execute(
                    self._ROW_SQL + f" WHERE level = ? AND public_id IN ({marks})",
                    [int(level), *chunk]):
                out[r[2]] = self._make_row(r)
        return [out[p] for p in public_ids if p in out]

    def children_ids(self, internal_ids: Sequence[int]) -> dict[int, list[str]]:
        result: dict[int, list[str]] = {i: [] for i in internal_ids}
        conn = self._reader()
        for chunk in _chunks(list(internal_ids), 500):
            marks = ",".join("?" * len(chunk))
            for parent, public_id in conn.execute(
                    f"SELECT parent_id, public_id FROM resources WHERE parent_id IN ({marks}) "
                    "ORDER BY internal_id", chunk):
                result[parent].append(public_id)
        return result

    def descendants(self, row: ResourceRow, level: ResourceLevel) -> list[ResourceRow]:
        """All resources at ``level`` below (or equal to) ``row``."""
        if level == row.level:
            return [row]
        if level < row.level:
            ancestor = self.ancestor(row, level)
            return [ancestor] if ancestor else []
        joins = ""
        alias = "r0"
        for depth in range(int(row.level), int(level)):
            nxt = f"r{depth - int(row.level) + 1}"
            joins += f" JOIN resources {nxt} ON {nxt}.parent_id = {alias}.internal_id"
            alias = nxt
        sql = (f"SELECT {alias}.internal_id FROM resources r0{joins} "
               f"WHERE r0.internal_id = ? ORDER BY {alias}.internal_id")
        ids = [r[0] for r in self._reader().execute(sql, (row.internal_id,))]
        return self.rows(ids)

    def ancestor(self, row: ResourceRow, level: ResourceLevel) -> ResourceRow | None:
        current: ResourceRow | None = row
        while current is not None and current.level > level:
            if current.parent_id is None:
                return None
            current = self.get_by_internal(current.parent_id)
        return current

    def parents_public(self, internal_ids: Sequence[int]) -> dict[int, tuple[str, int]]:
        """internal id → (parent public id, parent internal id)."""
        out: dict[int, tuple[str, int]] = {}
        conn = self._reader()
        for chunk in _chunks(list(internal_ids), 500):
            marks = ",".join("?" * len(chunk))
            for child, public_id, pid in conn.execute(
                    "SELECT c.internal_id, p.public_id, p.internal_id FROM resources c "
                    f"JOIN resources p ON p.internal_id = c.parent_id "
                    f"WHERE c.internal_id IN ({marks})", chunk):
                out[child] = (public_id, pid)
        return out

    def attachment(self, internal_id: int, file_type: int = DICOM_ATTACHMENT
                   ) -> AttachmentRow | None:
        r = self._reader().execute(
            "SELECT uuid, compressed_size, uncompressed_size, compression, uncompressed_md5, "
            "compressed_md5 FROM attached_files WHERE internal_id = ? AND file_type = ?",
            (internal_id, file_type)).fetchone()
        return AttachmentRow(*r) if r else None

    def attachments_of(self, internal_ids: Sequence[int]) -> dict[int, AttachmentRow]:
        out: dict[int, AttachmentRow] = {}
        conn = self._reader()
        for chunk in _chunks(list(internal_ids), 500):
            marks = ",".join("?" * len(chunk))
            for r in conn.execute(
                    "SELECT internal_id, uuid, compressed_size, uncompressed_size, compression, "
                    "uncompressed_md5, compressed_md5 FROM attached_files "
                    f"WHERE file_type = 1 AND internal_id IN ({marks})", chunk):
                out[r[0]] = AttachmentRow(*r[1:])
        return out

    def metadata(self, internal_id: int) -> dict[str, str]:
        return dict(self._reader().execute(
            "SELECT name, value FROM metadata WHERE internal_id = ? ORDER BY rowid",
            (internal_id,)).fetchall())

    def metadata_of(self, internal_ids: Sequence[int], name: str) -> dict[int, str]:
        out: dict[int, str] = {}
        conn = self._reader()
        for chunk in _chunks(list(internal_ids), 500):
            marks = ",".join("?" * len(chunk))
            for iid, value in conn.execute(
                    f"SELECT internal_id, value FROM metadata WHERE name = ? "
                    f"AND internal_id IN ({marks})", [name, *chunk]):
                out[iid] = value
        return out

    def header(self, internal_id: int) -> tuple[bytes, bool] | None:
        r = self._reader().execute(
            "SELECT header, has_pixel_data FROM instance_headers WHERE internal_id = ?",
            (internal_id,)).fetchone()
        return (bytes(r[0]), bool(r[1])) if r else None

    def first_instance(self, row: ResourceRow) -> ResourceRow | None:
        """A representative instance of a resource (its first received)."""
        current = row
        conn = self._reader()
        while current.level < ResourceLevel.INSTANCE:
            r = conn.execute(self._ROW_SQL + " WHERE parent_id = ? ORDER BY internal_id "
                             "LIMIT 1", (current.internal_id,)).fetchone()
            if r is None:
                return None
            current = self._make_row(r)
        return current

    def count_children(self, internal_id: int) -> int:
        return int(self._reader().execute(
            "SELECT COUNT(*) FROM resources WHERE parent_id = ?", (internal_id,)).fetchone()[0])

    def statistics(self) -> dict[str, int]:
        conn = self._reader()
        counts = dict(conn.execute("SELECT level, COUNT(*) FROM resources GROUP BY level"))
        sizes = conn.execute(
            "SELECT COALESCE(SUM(compressed_size), 0), COALESCE(SUM(uncompressed_size), 0) "
            "FROM attached_files").fetchone()
        return {
            "patients": counts.get(0, 0), "studies": counts.get(1, 0),
            "series": counts.get(2, 0), "instances": counts.get(3, 0),
            "disk_size": sizes[0], "uncompressed_size": sizes[1],
        }

    def resource_statistics(self, row: ResourceRow) -> dict[str, Any]:
        """Descendant counts by level (``counts``) and the sizes of the files below."""
        conn = self._reader()
        counts: dict[int, int] = {}
        frontier = [row.internal_id]
        for level in range(int(row.level) + 1, 4):
            ids: list[int] = []
            for chunk in _chunks(frontier, 500):
                marks = ",".join("?" * len(chunk))
                ids += [r[0] for r in conn.execute(
                    f"SELECT internal_id FROM resources WHERE parent_id IN ({marks})", chunk)]
            counts[level] = len(ids)
            frontier = ids
        instances = frontier if row.level < ResourceLevel.INSTANCE else [row.internal_id]
        disk = uncompressed = dicom_disk = dicom_uncompressed = 0
        for chunk in _chunks(instances, 500):
            marks = ",".join("?" * len(chunk))
            for ftype, c, u in conn.execute(
                    "SELECT file_type, SUM(compressed_size), SUM(uncompressed_size) FROM "
                    f"attached_files WHERE internal_id IN ({marks}) GROUP BY file_type", chunk):
                disk += c
                uncompressed += u
                if ftype == DICOM_ATTACHMENT:
                    dicom_disk += c
                    dicom_uncompressed += u
        return {"counts": counts, "disk": disk, "uncompressed": uncompressed,
                "dicom_disk": dicom_disk, "dicom_uncompressed": dicom_uncompressed}

    def changes(self, since: int, limit: int, *, exclude: Iterable[ChangeType] = ()
                ) -> tuple[list[Change], int, bool]:
        """Changes after ``since`` (at most ``limit``), the last seq, and whether done.

        ``exclude``: change types left out (the REST API hides ``Deleted``, which Orthanc
        signals to plugins but does not log)."""
        conn = self._reader()
        skipped = [c.value for c in exclude]
        filter_sql = f" AND change_type NOT IN ({','.join('?' * len(skipped))})" \
            if skipped else ""
        rows = conn.execute(
            "SELECT seq, change_type, level, public_id, date FROM changes WHERE seq > ?"
            f"{filter_sql} ORDER BY seq LIMIT ?", (since, *skipped, limit + 1)).fetchall()
        done = len(rows) <= limit
        rows = rows[:limit]
        changes = [Change(r[0], ChangeType(r[1]), ResourceLevel(r[2]), r[3], r[4]) for r in rows]
        if changes:
            last = changes[-1].seq
        else:
            last = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0])
            last = max(last, since) if since <= last else last
        return changes, last, done

    def last_change(self, *, exclude: Iterable[ChangeType] = ()) -> int:
        skipped = [c.value for c in exclude]
        filter_sql = f" WHERE change_type NOT IN ({','.join('?' * len(skipped))})" \
            if skipped else ""
        return int(self._reader().execute(
            f"SELECT COALESCE(MAX(seq), 0) FROM changes{filter_sql}", skipped).fetchone()[0])

    def exports(self, since: int, limit: int) -> tuple[list[dict[str, Any]], int, bool]:
        conn = self._reader()
        rows = conn.execute(
            "SELECT seq, level, public_id, remote_modality, date FROM exports WHERE seq > ? "
            "ORDER BY seq LIMIT ?", (since, limit + 1)).fetchall()
        done = len(rows) <= limit
        rows = rows[:limit]
        out = [{"Date": r[4], "ID": r[2], "Path": f"/{ResourceLevel(r[1]).plural}/{r[2]}",
                "RemoteModality": r[3], "ResourceType": ResourceLevel(r[1]).title,
                "Seq": r[0]} for r in rows]
        last = rows[-1][0] if rows else int(conn.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM exports").fetchone()[0])
        return out, last, done

    def lookup_identifier(self, value: str) -> list[ResourceRow]:
        """Patients whose PatientID, studies whose StudyInstanceUID, series whose
        SeriesInstanceUID, instances whose SOPInstanceUID equals ``value``, ignoring case
        as Orthanc's normalized identifiers do (``/tools/lookup``; AccessionNumber is
        not looked up, as in Orthanc 1.10)."""
        ids = [r[0] for r in self._reader().execute(
            "SELECT DISTINCT d.internal_id, r.level FROM dicom_identifiers d JOIN resources r "
            "ON r.internal_id = d.internal_id WHERE d.value_norm = ? AND ("
            "(r.level = 0 AND d.tag = 'PatientID') OR "
            "(r.level = 1 AND d.tag = 'StudyInstanceUID') OR "
            "(r.level = 2 AND d.tag = 'SeriesInstanceUID') OR "
            "(r.level = 3 AND d.tag = 'SOPInstanceUID')) ORDER BY r.level, d.internal_id",
            (value.strip().upper(),))]
        return self.rows(ids)

    def copied_patient_tags(self, study_ids: Sequence[int], keywords: Iterable[str]
                            ) -> dict[int, dict[str, str]]:
        """study internal id → the patient main tags copied into it at its creation."""
        names = list(keywords)
        out: dict[int, dict[str, str]] = {}
        conn = self._reader()
        for chunk in _chunks(list(study_ids), 500):
            marks = ",".join("?" * len(chunk))
            tags = ",".join("?" * len(names))
            for iid, tag, value in conn.execute(
                    "SELECT internal_id, tag, value FROM dicom_identifiers WHERE "
                    f"internal_id IN ({marks}) AND tag IN ({tags})", [*chunk, *names]):
                out.setdefault(iid, {})[tag] = value
        return out

    def find(self, level: ResourceLevel, sql_constraints: Sequence[tuple[ResourceLevel,
             Constraint]], *, since: int = 0, limit: int = 0,
             conditions: Sequence[tuple[str, Sequence[Any]]] = ()) -> list[int]:
        """Internal ids at ``level`` whose main tags satisfy every constraint.

        Each constraint applies to the resource's ancestor (or descendants) at the given
        level. ``conditions``: more SQL conditions on the resource ``r``, with their
        parameters (labels). ``limit``/``since`` apply to the SQL result (callers with
        extra filtering do their own paging).
        """
        where = ["r.level = ?"]
        params: list[Any] = [int(level)]
        for condition, condition_params in conditions:
            where.append(condition)
            params += condition_params
        for tag_level, c in sql_constraints:
            if c.kind == "universal":
                continue
            cond, cparams = constraint_sql(c)
            if tag_level == level:
                # Driven by the (tag, value_norm) index: exact values, lists and
                # wildcards with a fixed prefix become index lookups, not a scan.
                where.append("r.internal_id IN (SELECT d.internal_id FROM dicom_identifiers "
                             f"d WHERE d.tag = ? AND {cond})")
            else:
                target = relative_sql(level, tag_level)
                where.append(
                    "EXISTS (SELECT 1 FROM dicom_identifiers d WHERE d.internal_id IN "
                    f"({target}) AND d.tag = ? AND {cond})")
            params += [c.keyword, *cparams]
        sql = f"SELECT r.internal_id FROM resources r WHERE {' AND '.join(where)} " \
              "ORDER BY r.internal_id"
        if limit or since:
            sql += " LIMIT ? OFFSET ?"
            params += [limit if limit > 0 else -1, since]
        return [r[0] for r in self._reader().execute(sql, params)]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
