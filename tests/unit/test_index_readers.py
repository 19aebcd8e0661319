"""Each thread reads the index on its own connection; the connection of a thread that
ended goes to the next new thread, or is closed beyond a few spares (every DICOM
association runs in new threads)."""

from __future__ import annotations

import gc
import sqlite3
import threading

import pytest

from isengard.index import SQLiteIndex
from isengard.index.sqlite import SPARE_READERS


def test_readers_of_ended_threads_are_reused_or_closed(tmp_path):
    index = SQLiteIndex(tmp_path / "index.sqlite", durable=False)
    try:
        index.reader().execute("SELECT 1").fetchall()
        seen = []
        together = threading.Barrier(10)

        def read() -> None:
            conn = index.reader()
            assert conn.execute("SELECT count(*) FROM resources").fetchone() == (0,)
            seen.append(conn)
            assert conn is index.reader()  # one per thread
            together.wait()  # all ten hold theirs at once

        for _ in range(3):
            threads = [threading.Thread(target=read) for _ in range(10)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert len({id(conn) for conn in seen}) >= 10  # ten at a time: ten readers
        seen.clear()
        gc.collect()
        # this thread's, and the spares kept for the next threads
        assert len(index._readers) == 1 + SPARE_READERS
    finally:
        index.close()


def test_a_new_thread_reuses_the_reader_of_an_ended_one(tmp_path):
    index = SQLiteIndex(tmp_path / "index.sqlite", durable=False)
    try:
        seen: list[int] = []

        def read() -> None:
            conn = index.reader()
            conn.execute("SELECT count(*) FROM resources").fetchall()
            seen.append(id(conn))

        for _ in range(5):
            thread = threading.Thread(target=read)
            thread.start()
            thread.join()
        assert len(set(seen)) == 1
    finally:
        index.close()


def test_close_closes_the_spare_readers(tmp_path):
    index = SQLiteIndex(tmp_path / "index.sqlite", durable=False)
    connections = []

    def read() -> None:
        connections.append(index.reader())

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    index.close()
    with pytest.raises(sqlite3.ProgrammingError):
        connections[0].execute("SELECT 1")
