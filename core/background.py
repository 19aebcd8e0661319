"""Background workers: change dispatch to plugins and stable-resource detection.

Both keep their state in the index (a durable cursor, the unstable-resources table), so a
restart resumes where the previous process stopped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from isengard_sdk.types import Change, ChangeType, ResourceLevel, StoredInstance

from .index import SQLiteIndex
from .plugins import PluginHost

__all__ = ["ChangeDispatcher", "StabilityMonitor"]

log = logging.getLogger("isengard.changes")
CURSOR_PROPERTY = "change_dispatch_cursor"


class _Worker:
    name = "worker"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"isengard-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Look for work now rather than at the end of the idle wait."""
        with self._wake:
            self._wake.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.step()
            except Exception:
                log.exception("%s failed; retrying in a second", self.name)
                busy = False
            if not busy:
                with self._wake:
                    if not self._stop.is_set():
                        self._wake.wait(self.idle_wait)

    idle_wait = 1.0

    def step(self) -> bool:  # returns True when there may be more work right away
        raise NotImplementedError


class ChangeDispatcher(_Worker):
    """Feeds ``on_stored_instance`` and ``on_change`` from the change log, in order."""

    name = "change-dispatch"
    batch = 200

    def __init__(self, index: SQLiteIndex, plugins: PluginHost,
                 stored_instance: Callable[[str], StoredInstance | None]):
        super().__init__()
        self.index = index
        self.plugins = plugins
        self.stored_instance = stored_instance
        self.active = plugins.has_impl("on_change") or plugins.has_impl("on_stored_instance")
        cursor = index.get_property(CURSOR_PROPERTY)
        # A server that never dispatched starts from now, not from the beginning of time.
        self.cursor = int(cursor) if cursor is not None else index.last_change()
        index.add_change_listener(self.wake)

    def start(self) -> None:
        if self.active:
            super().start()

    def step(self) -> bool:
        changes, _, done = self.index.changes(self.cursor, self.batch)
        for change in changes:
            self._dispatch(change)
            self.cursor = change.seq
        if changes:
            self.index.set_property(CURSOR_PROPERTY, str(self.cursor))
        return not done

    def _dispatch(self, change: Change) -> None:
        if change.change_type is ChangeType.NEW_INSTANCE:
            instance = self.stored_instance(change.id)
            if instance is not None:
                self.plugins.notify("on_stored_instance", instance=instance)
        self.plugins.notify("on_change", change=change)


class StabilityMonitor(_Worker):
    """Marks series, studies and patients stable ``stable_age`` seconds after their last
    instance arrived, logging StableSeries / StableStudy / StablePatient."""

    name = "stability"

    def __init__(self, index: SQLiteIndex, interval: float = 1.0):
        super().__init__()
        self.index = index
        self.idle_wait = interval

    def step(self) -> bool:
        for level, public_id in self.index.stabilize_due():
            log.debug("%s %s is stable", ResourceLevel(level).title, public_id)
        return False
