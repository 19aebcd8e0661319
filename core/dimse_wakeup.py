"""Wake pynetdicom's threads when there is work instead of letting them poll.

Each association runs two threads that poll with 1 ms sleeps: the DUL thread (socket
and outgoing PDUs) and the association's reactor (decoded DIMSE messages). Every
hand-off between the peer, the DUL and the reactor waits for the end of a sleep:
several milliseconds per C-FIND, up to ~2 ms per C-STORE. :func:`install` replaces the
sleeps of one association's threads by waits that end as soon as there is something to
do — data on the socket, a PDU queued for sending or the DUL told to stop (DUL); a
DIMSE message decoded, a primitive such as A-RELEASE received or the DUL thread ended
(reactor) — and otherwise last :data:`IDLE_WAIT`, for the timers they check.

pynetdicom calls ``time.sleep`` through its modules' ``time`` name; those names are
pointed at :data:`_TIME`, which behaves as :mod:`time` except in threads that
:func:`install` registered.
"""

from __future__ import annotations

import os
import select
import threading
import time
from typing import Any

import pynetdicom.association
import pynetdicom.dul

__all__ = ["install"]

_waits: dict[threading.Thread, Any] = {}  # thread → its wait(seconds) function
# How long an idle thread waits between its checks of timers (the network timeout, the
# ARTIM timer): everything else it waits for wakes it at once. pynetdicom's 1 ms polls
# cost 28 % of a core with four idle associations open.
IDLE_WAIT = 0.05


class _Time:
    """:mod:`time` with a ``sleep`` that registered threads turn into a wait."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        wait = _waits.get(threading.current_thread())
        if wait is None:
            time.sleep(seconds)
        else:
            wait(seconds)


_TIME = _Time()


def _patch_modules() -> None:
    pynetdicom.dul.time = _TIME  # type: ignore[assignment]
    pynetdicom.association.time = _TIME  # type: ignore[assignment]


def install(assoc: Any) -> None:
    """Make the threads of an association we accept wake on work. Call it on
    ``EVT_CONN_OPEN``, before the association starts; undone when its DUL thread ends.
    Associations we request are left as they are (their DUL thread is already running
    when the connection opens)."""
    dul = assoc.dul
    sock = getattr(getattr(dul, "socket", None), "socket", None)
    if sock is None or not assoc.is_acceptor or dul.is_alive():
        return
    _patch_modules()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    lock = threading.Lock()  # no write into a descriptor number closed and reused
    state = {"open": True, "poked": False}

    def dul_wait(seconds: float) -> None:
        # Events already queued (the A-ASSOCIATE-RQ that dimse handed over) need no wait.
        if (not dul.to_provider_queue.empty() or not dul.event_queue.empty()
                or dul._kill_thread):
            return
        try:
            ready, _, _ = select.select([sock, wake_r], [], [], max(seconds, IDLE_WAIT))
        except (OSError, ValueError):  # the socket closed under us: sleep as before
            time.sleep(seconds)
            return
        if wake_r in ready:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass

    def wake_dul() -> None:
        with lock:
            if state["open"]:
                try:
                    os.write(wake_w, b"\x01")
                except BlockingIOError:
                    pass  # the pipe is full: a wake-up is pending anyway

    original_send_pdu = dul.send_pdu
    original_kill_dul = dul.kill_dul

    def send_pdu(primitive: Any) -> None:
        original_send_pdu(primitive)
        wake_dul()

    def kill_dul() -> None:
        original_kill_dul()
        wake_dul()

    def stop_dul() -> bool:  # pynetdicom's, with a wake-up once the flag is set
        if dul.state_machine.current_state != "Sta1":
            return False
        dul._kill_thread = True
        wake_dul()
        while dul.is_alive():
            _TIME.sleep(dul._run_loop_delay)  # woken when the DUL thread ends
        return True

    messages = assoc.dimse.msg_queue
    primitives = dul.to_user_queue  # A-RELEASE, A-ABORT … for the reactor
    original_put = primitives.put

    def wake_reactor() -> None:
        with messages.not_empty:
            state["poked"] = True
            messages.not_empty.notify_all()

    def put(item: Any, block: bool = True, timeout: float | None = None) -> None:
        original_put(item, block, timeout)
        wake_reactor()

    def reactor_wait(seconds: float) -> None:
        # A poke wakes one wait only: a primitive the reactor does not take off the
        # queue must not turn its loop into a busy one.
        with messages.not_empty:
            if not (state["poked"] or messages._qsize()) and state["open"]:
                messages.not_empty.wait(max(seconds, IDLE_WAIT))
            state["poked"] = False

    original_target = dul._target

    def target() -> None:
        try:
            original_target()
        finally:
            _waits.pop(dul, None)
            _waits.pop(assoc, None)
            with lock:
                state["open"] = False
                os.close(wake_r)
                os.close(wake_w)
            wake_reactor()  # it may be waiting for this thread to end (Association.kill)

    dul.send_pdu = send_pdu
    dul.kill_dul = kill_dul
    dul.stop_dul = stop_dul
    primitives.put = put
    dul._target = target
    _waits[dul] = dul_wait
    _waits[assoc] = reactor_wait
