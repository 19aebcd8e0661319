"""Each thread reads the index on its own connection; the connection of a thread that
ended is closed (every DICOM association runs in new threads)."""

from __future__ import annotations

import gc
import threading

from isengard.index import SQLiteIndex


def test_readers_of_ended_threads_are_closed(tmp_path):
    index = SQLiteIndex(tmp_path / "index.sqlite", durable=False)
    try:
        index.reader().execute("SELECT 1").fetchall()
        seen = []

        def read() -> None:
            conn = index.reader()
            assert conn.execute("SELECT count(*) FROM resources").fetchone() == (0,)
            seen.append(conn)
            assert conn is index.reader()  # one per thread

        for _ in range(3):
            threads = [threading.Thread(target=read) for _ in range(10)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert len({id(conn) for conn in seen}) >= 10
        seen.clear()
        gc.collect()
        assert len(index._readers) == 1  # this thread's only
    finally:
        index.close()
