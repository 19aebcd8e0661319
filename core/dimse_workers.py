"""Storage associations carried on by worker processes while several run at once.

One Python process runs one thread at a time (the GIL): with four modalities sending at
once, the server's threads queue for it and the same work costs twice the CPU
(docs/performance.md). With ``dicom.storage_workers`` N (0, none, by default), the server
starts up to N worker processes when two or more storage associations run at once, and
moves associations to them until each process serves about as many as the others.

An association moves between two messages, after its last answer and before its next
PDU is read: the server sends the worker the connection's file descriptor (SCM_RIGHTS
over a Unix socket) with what the association negotiated, and the worker reads the next
PDU from the same socket. Nothing the peer sees changes. A worker stores through its own
connection to the same index (writers of both processes take turns on a lock file) into
the same storage folder, and answers and logs as the server would; the server counts its
associations against ``dicom.maximum_associations``, tells it to stop when it has been
idle for a while or when the server stops, and starts another one on demand if it dies.

Workers run no plugin. When an enabled plugin takes part in storing an instance (it
filters incoming instances or provides the storage area), every association stays in
the server's process.

Messages are JSON, one per datagram. Server → worker: ``{"association": snapshot,
"stats": …}`` with the connection's descriptor, ``{"stop": grace}``. Worker → server:
``{"ready": pid}``, ``{"closed": 1}`` when one of its associations ended, ``{"changed": 1}``
after an instance was stored when the server dispatches changes to plugins.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .config import Settings

__all__ = ["WorkerPool", "worker_main"]

log = logging.getLogger("isengard.dicom")

IDLE_EXIT = 60.0  # seconds a worker may serve nothing before it is stopped
RETRY_AFTER = 60.0  # seconds before starting again a worker that could not start
_MESSAGE_SIZE = 1 << 16


@dataclass(eq=False)
class Worker:
    """One worker process, as the server sees it (fields guarded by the pool's lock)."""

    number: int
    process: subprocess.Popen[bytes] | None = None
    control: socket.socket | None = None
    ready: bool = False
    active: int = 0  # associations it serves
    pending: int = 0  # associations told to move there, not moved yet
    idle_since: float = 0.0
    # After a failed start, not before this time (monotonic): a worker that cannot
    # start must not be restarted at every association.
    retry_after: float = 0.0

    @property
    def load(self) -> int:
        return self.active + self.pending


class WorkerPool:
    """The server's side: starts workers, sends them associations, stops them."""

    def __init__(self, settings: Settings, count: int, *, on_change: Callable[[], None],
                 notify_changes: bool, on_event: Callable[[], None]):
        self.settings = settings
        self.workers = [Worker(number) for number in range(1, count + 1)]
        self.idle_exit = IDLE_EXIT
        self.command = [sys.executable, "-m", "isengard.dimse_workers"]
        self._on_change = on_change  # an instance was stored by a worker
        self._notify_changes = notify_changes
        self._on_event = on_event  # a worker became ready or an association ended there
        self._lock = threading.Lock()
        self._readers: list[threading.Thread] = []
        self._stopping = False

    @property
    def active(self) -> int:
        """Associations served by workers."""
        with self._lock:
            return sum(w.active for w in self.workers)

    def start_on_demand(self) -> None:
        """Start the workers not running (each in a thread of its own: a worker takes
        about half a second to import its modules and say it is ready)."""
        with self._lock:
            if self._stopping:
                return
            now = time.monotonic()
            idle = [w for w in self.workers if w.process is None and now >= w.retry_after]
            readers = [threading.Thread(target=self._run, args=(worker,), daemon=True,
                                        name=f"isengard-storage-worker-{worker.number}")
                       for worker in idle]
            for worker in idle:
                worker.process = _STARTING
            self._readers = [t for t in self._readers if t.is_alive()] + readers
        for reader in readers:
            reader.start()

    def assign(self, associations: Sequence[Any]) -> None:
        """Tell associations of the server's process to move (their ``move_to``) until
        it serves at most one more than the least loaded worker."""
        with self._lock:
            ready = [w for w in self.workers if w.ready]
            if not ready:
                return
            here = len(associations)
            for association in associations:
                worker = min(ready, key=lambda w: w.load)
                if here - worker.load < 2:
                    break
                worker.pending += 1
                association.move_to = worker
                here -= 1

    def cancel(self, worker: Worker) -> None:
        """An association told to move ended before it could."""
        with self._lock:
            worker.pending -= 1

    def send(self, worker: Worker, sock: socket.socket, message: dict[str, Any]) -> bool:
        """Move a connection to ``worker``; False if it cannot take it any more."""
        with self._lock:
            worker.pending -= 1
            if not worker.ready or worker.control is None:
                return False
            try:
                socket.send_fds(worker.control, [json.dumps(message).encode()],
                                [sock.fileno()])
            except OSError as exc:
                log.warning("cannot move an association to storage worker %d: %s",
                            worker.number, exc.strerror or exc)
                return False
            worker.active += 1
        return True

    def stop(self, grace: float) -> None:
        """Stop every worker: each lets its C-STOREs finish (up to ``grace`` seconds),
        aborts its associations and exits."""
        with self._lock:
            self._stopping = True
            running = [w for w in self.workers if w.control is not None]
            for worker in running:
                worker.ready = False
                self._tell(worker, {"stop": grace})
            readers = list(self._readers)
        deadline = time.monotonic() + grace + 5
        for reader in readers:
            reader.join(max(0.0, deadline - time.monotonic()))
        for worker in self.workers:
            process = worker.process
            if isinstance(process, subprocess.Popen) and process.poll() is None:
                log.warning("storage worker %d did not stop: killed", worker.number)
                process.kill()
                process.wait()

    # -- one worker's life (in its reader thread) ---------------------------------------

    def _run(self, worker: Worker) -> None:
        try:
            process, control = self._launch(worker)
        except Exception as exc:
            log.error("storage worker %d failed to start (%s): every association stays "
                      "in this process for %.0f s", worker.number, exc, RETRY_AFTER)
            with self._lock:
                worker.process, worker.retry_after = None, time.monotonic() + RETRY_AFTER
            return
        with self._lock:
            worker.process, worker.control = process, control
            stopping = self._stopping
        if stopping:
            self._tell(worker, {"stop": 0})
        control.settimeout(1.0)
        try:
            self._read(worker, control)
        finally:
            code = process.wait()
            with self._lock:
                lost, expected = worker.active, self._stopping or not worker.ready
                if not worker.idle_since:  # it never said it was ready
                    worker.retry_after = time.monotonic() + RETRY_AFTER
                worker.process, worker.control, worker.ready = None, None, False
                worker.active, worker.idle_since = 0, 0.0
            control.close()
            if not lost and code and worker.retry_after > time.monotonic():
                log.error("storage worker %d failed to start (exit status %s): every "
                          "association stays in this process for %.0f s",
                          worker.number, code, RETRY_AFTER)
            elif lost or not expected or code:
                log.error("storage worker %d (pid %d) ended (exit status %s) with %d "
                          "association(s) running: their peers see the connection close",
                          worker.number, process.pid, code, lost)
            else:
                log.info("storage worker %d (pid %d) stopped", worker.number, process.pid)
            self._on_event()

    def _launch(self, worker: Worker) -> tuple[subprocess.Popen[bytes], socket.socket]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = subprocess.Popen(
                [*self.command, str(theirs.fileno())],
                stdin=subprocess.PIPE, pass_fds=(theirs.fileno(),))
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        assert process.stdin is not None
        try:
            with process.stdin:
                process.stdin.write(pickle.dumps({
                    "settings": self.settings, "number": worker.number,
                    "log_level": log.getEffectiveLevel(),
                    "notify_changes": self._notify_changes}))
        except OSError as exc:  # it exited already
            ours.close()
            process.kill()
            raise RuntimeError(f"exit status {process.wait()}") from exc
        return process, ours

    def _read(self, worker: Worker, control: socket.socket) -> None:
        while True:
            try:
                data = control.recv(_MESSAGE_SIZE)
            except TimeoutError:
                self._stop_if_idle(worker)
                continue
            except OSError:
                return
            if not data:
                return
            message = json.loads(data)
            if "changed" in message:
                self._on_change()
            elif "closed" in message:
                with self._lock:
                    worker.active -= 1
                    if worker.active == 0:
                        worker.idle_since = time.monotonic()
                self._on_event()
            elif "ready" in message:
                with self._lock:
                    worker.ready = not self._stopping
                    worker.idle_since = time.monotonic()
                log.info("storage worker %d (pid %d) ready", worker.number,
                         message["ready"])
                self._on_event()

    def _stop_if_idle(self, worker: Worker) -> None:
        with self._lock:
            if (not worker.ready or worker.load
                    or time.monotonic() - worker.idle_since < self.idle_exit):
                return
            worker.ready = False  # nothing is sent to it from here on
            self._tell(worker, {"stop": 0})

    @staticmethod
    def _tell(worker: Worker, message: dict[str, Any]) -> None:
        if worker.control is None:
            return
        try:
            worker.control.send(json.dumps(message).encode())
        except OSError:
            pass  # gone: its reader sees the end


_STARTING: Any = object()  # Worker.process while its reader thread starts it


# -- the worker process --------------------------------------------------------------


def worker_main(control_fd: int) -> int:
    """``python -m isengard.dimse_workers FD``: serve the associations the server sends
    over the Unix socket FD; the server's settings come pickled on stdin."""
    # The server stops its workers (after their C-STOREs) and they stop when it is gone:
    # Ctrl-C in a terminal or systemd's SIGTERM, sent to every process of the group,
    # must not kill one in the middle of an instance.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    config = pickle.load(sys.stdin.buffer)
    settings: Settings = config["settings"]
    logging.basicConfig(
        level=config["log_level"],
        format=f"%(asctime)s %(levelname)-7s %(name)s [storage worker {config['number']}]: "
               "%(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    control = socket.socket(fileno=control_fd)
    # Imported here: the server's process does not need them for this module.
    from .dimse import DicomServer
    from .index import SQLiteIndex
    from .ingest import Ingest
    from .modalities import ModalityRegistry, modalities_from_config
    from .plugins import PluginHost
    from .storage import FilesystemStorageArea

    index = SQLiteIndex(settings.index_path, durable=settings.storage.sync,
                        stable_age=float(settings.stable_age), shared=True)
    send_lock = threading.Lock()

    def tell(message: dict[str, Any]) -> None:
        with send_lock:
            try:
                control.send(json.dumps(message).encode())
            except OSError:
                pass  # the server is gone: the loop below sees it

    if config["notify_changes"]:
        index.add_change_listener(lambda: tell({"changed": 1}))
    storage = FilesystemStorageArea(settings.storage_path,
                                    compression=settings.storage.compression,
                                    sync=settings.storage.sync)
    # No plugin: the server moves nothing here when one takes part in the ingest.
    ingest = Ingest(index, storage, PluginHost({}, use_entry_points=False),
                    overwrite=settings.overwrite_instances)
    modalities = ModalityRegistry(modalities_from_config(settings.modalities), index)
    dicom = DicomServer(settings.dicom, lambda: ingest,
                        caller_rights=lambda aet, address: modalities.calling(
                            aet, address, check_host=settings.dicom.check_modality_host))
    tell({"ready": os.getpid()})
    grace = 10.0
    try:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(control, _MESSAGE_SIZE, 1)
            except OSError:
                break
            if not data:
                break  # the server is gone
            message = json.loads(data)
            if "stop" in message:
                grace = float(message["stop"])
                break
            if fds:
                dicom.resume(socket.socket(fileno=fds[0]), message,
                             lambda: tell({"closed": 1}))
    finally:
        dicom.stop(grace)
        index.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(worker_main(int(sys.argv[1])))
