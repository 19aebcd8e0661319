"""A running server: the kernel plus its DICOM and HTTP listeners.

``Server(settings).start()`` binds both ports (port 0 picks a free one), opens the
index and storage, and returns once both listeners accept connections. ``stop()`` closes
the listeners first (no new work), lets in-flight work finish, then closes the index.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterable
from typing import Any

import uvicorn

from .config import Settings
from .dimse import DicomServer
from .dimse_qr import QueryRetrieveHandlers
from .dimse_workers import WorkerPool
from .errors import StartupError
from .http import build_app
from .http.blocking import BlockingCalls
from .kernel import Kernel

__all__ = ["Server"]

log = logging.getLogger("isengard")


class Server:
    def __init__(self, settings: Settings, *, extra_plugins: Iterable[tuple[str, Any]] = (),
                 use_entry_points: bool = True):
        self.settings = settings
        self.kernel = Kernel(settings, extra_plugins=extra_plugins,
                             use_entry_points=use_entry_points)
        self.dicom = DicomServer(settings.dicom, lambda: self.kernel.ingest_path,
                                 self._query_retrieve_handlers, self._caller,
                                 self._storage_workers())
        self._http_socket: socket.socket | None = None
        self._uvicorn: uvicorn.Server | None = None
        self._blocking_calls: BlockingCalls | None = None
        self._http_thread: threading.Thread | None = None
        self._started = False

    def _caller(self, aet: str, address: str) -> Any:
        return self.kernel.modalities.calling(
            aet, address, check_host=self.settings.dicom.check_modality_host)

    def _storage_workers(self) -> WorkerPool | None:
        count = self.settings.dicom.storage_workers
        if not count:
            return None
        plugins = self.kernel.plugins
        # Workers run no plugin: one that filters or stores instances keeps every
        # association here.
        involved = sorted({name for hook in ("filter_incoming_instance", "storage_backend")
                           for name in plugins.implementers(hook)})
        if involved:
            log.info("dicom.storage_workers: every association stays in this process, as "
                     "plugin(s) %s take part in storing instances", ", ".join(involved))
            return None
        return WorkerPool(
            self.settings, count,
            on_change=lambda: self.kernel.index.notify_changes(),
            notify_changes=plugins.has_impl("on_change") or plugins.has_impl(
                "on_stored_instance"),
            on_event=lambda: self.dicom.rebalance())

    def _query_retrieve_handlers(self) -> list[Any]:
        k = self.kernel
        limits = (self.settings.limit_find_results, self.settings.limit_find_instances)
        return QueryRetrieveHandlers(k, k.modalities, self.settings.dicom, limits).handlers()

    # -- addresses ---------------------------------------------------------------------

    @property
    def http_port(self) -> int:
        if self._http_socket is None:
            return self.settings.http.port
        return int(self._http_socket.getsockname()[1])

    @property
    def dicom_port(self) -> int:
        return self.dicom.port

    @property
    def http_url(self) -> str:
        host = self.settings.http.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.http_port}"

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        s = self.settings
        self._http_socket = self._bind_http(s.http.host, s.http.port)
        try:
            self.kernel.open()
            self.dicom.start()
        except BaseException:
            self._http_socket.close()
            self.kernel.close()
            raise
        self.kernel.server_info.dicom_port = self.dicom_port
        self.kernel.server_info.http_url = self.http_url
        plugin_routes = [route for _, route in self.kernel.plugins.collect(
            "register_routes")]
        app = build_app(self.kernel, plugin_routes)
        self._blocking_calls = app.state.blocking_calls
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=10)
        self._uvicorn = uvicorn.Server(config)
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            assert self._uvicorn is not None and self._http_socket is not None  # noqa: S101
            try:
                asyncio.run(self._serve(ready))
            except BaseException as exc:  # reported to start() below
                errors.append(exc)
                ready.set()

        self._http_thread = threading.Thread(target=run, name="isengard-http", daemon=True)
        self._http_thread.start()
        ready.wait(30)
        if errors or not self._uvicorn.started:
            self.stop()
            reason = errors[0] if errors else "timeout"
            raise StartupError(f"the HTTP server could not start: {reason}")
        log.info("HTTP server listening on %s", self.http_url)
        self.kernel.plugins.notify("on_startup")
        self._started = True
        log.info("%s is ready (Isengard %s, AE title %s, DICOM port %d, data in %s)",
                 s.name, self.kernel.server_info.version, s.dicom.aet, self.dicom_port,
                 s.data_path.resolve())

    async def _serve(self, ready: threading.Event) -> None:
        assert self._uvicorn is not None and self._http_socket is not None  # noqa: S101
        task = asyncio.create_task(self._uvicorn.serve(sockets=[self._http_socket]))
        while not self._uvicorn.started and not task.done():
            await asyncio.sleep(0.01)
        ready.set()
        await task

    @staticmethod
    def _bind_http(host: str, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only
        # when the listening socket says it is TCP; without it every keep-alive request
        # waits ~40 ms for Nagle's algorithm.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise StartupError(f"cannot listen for HTTP on {host}:{port}: "
                               f"{exc.strerror or exc} (is another server using port {port}? "
                               "choose another with --http-port)") from exc
        sock.listen(128)
        sock.set_inheritable(True)
        return sock

    def stop(self) -> None:
        """Stop listening, finish in-flight work, close the index. Idempotent."""
        log.info("stopping")
        self.dicom.stop()  # waits for running associations to finish their C-STOREs
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._http_thread is not None:
            self._http_thread.join(15)
            self._http_thread = None
        if self._http_socket is not None:
            self._http_socket.close()
            self._http_socket = None
        if self._blocking_calls is not None:
            # A request uvicorn gave up waiting for may still be running its blocking
            # part: it finishes before the index closes.
            self._blocking_calls.close(10)
            self._blocking_calls = None
        if self._started:
            self.kernel.plugins.notify("on_shutdown")
            self._started = False
        self.kernel.close()
        log.info("stopped")

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
