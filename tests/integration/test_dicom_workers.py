"""Storage associations running at once are shared with a worker process
(``dicom.storage_workers``, :mod:`isengard.dimse_workers`): the peer notices nothing, every
instance is stored and indexed once, the server counts, stops and replaces its workers."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from isengard.errors import ConfigError
from isengard.store_association import PeerError
from isengard_sdk import hookimpl
from tests.conftest import dataset_bytes
from tests.integration.dicom_helpers import (
    assert_index_matches_storage,
    associate,
    store_ct,
    wait_for,
)

WORKERS = {"dicom": {"storage_workers": 1}}


class _Sender:
    """One association sending new instances of one patient."""

    def __init__(self, server: Any, aet: str, dicom_factory: Any):
        self.assoc = associate(server, aet)
        self.aet = aet
        self.factory = dicom_factory
        self.message_id = 0
        self.uids: list[str] = []

    def store(self, count: int = 1) -> None:
        for _ in range(count):
            self.message_id += 1
            ds = self.factory.dataset(PatientID=self.aet)
            uid = str(ds.SOPInstanceUID)
            assert store_ct(self.assoc, dataset_bytes(self.factory.encode(ds)), uid,
                            self.message_id) == 0
            self.uids.append(uid)


def _workers(server: Any) -> Any:
    return server.server.dicom.workers


def _here(server: Any) -> int:
    return sum(1 for a in list(server.server.dicom._own) if a.established)


def _share(server: Any, dicom_factory: Any, aets: tuple[str, ...] = ("FIRST", "SECOND")
           ) -> list[_Sender]:
    """Two associations at once: a worker starts, and one of them moves to it at its next
    message."""
    senders = [_Sender(server, aet, dicom_factory) for aet in aets]
    for sender in senders:
        sender.store()
    workers = _workers(server)
    wait_for(lambda: workers.workers[0].ready or None, "the storage worker to start")
    wait_for(lambda: workers.workers[0].pending == 1 or None, "an association to be sent")
    for sender in senders:
        sender.store()
    # (The moved association's thread here may end a moment after the worker answered.)
    wait_for(lambda: (_here(server), workers.active) == (1, 1) or None,
             "one association in each process")
    return senders


def _count(server: Any) -> int:
    return int(server.get("/statistics").json()["CountInstances"])


def test_associations_running_at_once_are_shared_with_a_worker(isengard_factory,
                                                              dicom_factory, capfd, caplog):
    caplog.set_level("INFO", logger="isengard.dicom")  # the worker logs at this level too
    s = isengard_factory(WORKERS)
    senders = _share(s, dicom_factory)
    for sender in senders:
        sender.store(5)
        sender.assoc.release()
    assert _count(s) == 14
    assert_index_matches_storage(s)
    for sender in senders:  # every instance answers, wherever it was stored
        for uid in sender.uids:
            found = s.post("/tools/find", json={"Level": "Instance",
                                                "Query": {"SOPInstanceUID": uid}}).json()
            assert len(found) == 1
    # The moved association's summary comes from the worker, with what it carried over.
    stderr: list[str] = []

    def summary() -> str | None:
        stderr.extend(capfd.readouterr().err.splitlines())
        return next((line for line in stderr
                     if "[storage worker 1]" in line and "released" in line), None)

    line = wait_for(summary, "the worker's summary line")
    assert "7 instance(s) stored" in line
    wait_for(lambda: _workers(s).active == 0 or None, "the worker to report the end")


def test_instances_stored_by_a_worker_reach_the_plugins(isengard_factory, dicom_factory):
    seen: list[str] = []

    class Watcher:
        @hookimpl
        def on_stored_instance(self, context, instance):
            seen.append(instance.sop_instance_uid)

    s = isengard_factory({**WORKERS, "plugins": {"watcher": {}}}, plugins=[("watcher", Watcher())])
    senders = _share(s, dicom_factory)
    for sender in senders:
        sender.store(3)
        sender.assoc.release()
    expected = sorted(uid for sender in senders for uid in sender.uids)
    wait_for(lambda: sorted(seen) == expected or None, "on_stored_instance for all 10")


def test_associations_in_a_worker_count_toward_the_maximum(isengard_factory, dicom_factory):
    s = isengard_factory({"dicom": {"storage_workers": 1, "maximum_associations": 2}})
    senders = _share(s, dicom_factory)
    with pytest.raises(PeerError, match="rejected"):
        associate(s, "THIRD")
    for sender in senders:
        sender.assoc.release()
    wait_for(lambda: _workers(s).active == 0 or None, "the worker to report the end")
    associate(s, "THIRD").release()


def test_a_worker_that_dies_is_replaced(isengard_factory, dicom_factory, caplog):
    s = isengard_factory(WORKERS)
    first, second = _share(s, dicom_factory)
    worker = _workers(s).workers[0]
    os.kill(worker.process.pid, signal.SIGKILL)
    wait_for(lambda: worker.process is None or None, "the server to notice")
    assert "ended (exit status -9) with 1 association(s) running" in caplog.text
    # The moved association is gone (its peer sees the connection close); the other
    # goes on, and the next pair of associations gets a new worker.
    moved, stayed = ((first, second) if any(
        a.established for a in s.server.dicom._own if a.requestor.calling_aet == "SECOND")
        else (second, first))
    with pytest.raises(PeerError):
        moved.store()
    stayed.store()
    third = _Sender(s, "THIRD", dicom_factory)
    third.store()
    wait_for(lambda: worker.ready or None, "a new storage worker")
    stayed.store()
    third.store()
    for sender in (stayed, third):
        sender.store(2)
        sender.assoc.release()
    assert _count(s) == 4 + 4 + 4
    assert_index_matches_storage(s)


def test_a_worker_leaves_signals_to_the_server(isengard_factory, dicom_factory):
    # Ctrl-C and systemd's SIGTERM reach every process of the group: the server stops
    # its workers itself, after their C-STOREs.
    s = isengard_factory(WORKERS)
    senders = _share(s, dicom_factory)
    worker = _workers(s).workers[0]
    for signum in (signal.SIGINT, signal.SIGTERM):
        os.kill(worker.process.pid, signum)
    for sender in senders:
        sender.store(2)
        sender.assoc.release()
    assert worker.process.poll() is None
    assert _count(s) == 8


def test_an_idle_worker_stops_and_stopping_the_server_stops_a_busy_one(
        isengard_factory, dicom_factory):
    s = isengard_factory(WORKERS)
    workers = _workers(s)
    workers.idle_exit = 0.5
    for sender in _share(s, dicom_factory):
        sender.assoc.release()
    first = workers.workers[0]
    wait_for(lambda: first.process is None or None, "the idle worker to stop")
    senders = _share(s, dicom_factory, ("THIRD", "FOURTH"))
    process = workers.workers[0].process
    s.server.stop()
    assert process.poll() == 0
    for sender in senders:  # both were aborted: the server's and the worker's
        with pytest.raises(PeerError):
            sender.store()


def test_a_worker_that_cannot_start_leaves_the_associations_here(isengard_factory,
                                                                 dicom_factory, caplog):
    s = isengard_factory(WORKERS)
    workers = _workers(s)
    workers.command = ["/bin/false"]
    senders = [_Sender(s, aet, dicom_factory) for aet in ("FIRST", "SECOND", "THIRD")]
    for sender in senders:
        sender.store()
    wait_for(lambda: "failed to start" in caplog.text or None, "the failure in the log")
    for sender in senders:  # one attempt only, then everything is stored here
        sender.store(3)
        sender.assoc.release()
    assert caplog.text.count("failed to start") == 1
    assert _count(s) == 12


def test_no_worker_when_a_plugin_filters_incoming_instances(isengard_factory,
                                                           dicom_factory):
    class Filter:
        @hookimpl
        def filter_incoming_instance(self, context, instance):
            return instance.tags.get("PatientID") != "REFUSED"

    s = isengard_factory({**WORKERS, "plugins": {"filter": {}}}, plugins=[("filter", Filter())])
    assert _workers(s) is None
    assert isengard_factory().server.dicom.workers is None  # the default: none
    senders = [_Sender(s, aet, dicom_factory) for aet in ("FIRST", "SECOND")]
    for sender in senders:
        sender.store(2)
        sender.assoc.release()
    assert _count(s) == 4


@pytest.mark.parametrize("value", [-1, 65])
def test_storage_workers_out_of_range_is_a_config_error(isengard_factory, value):
    with pytest.raises(ConfigError, match="dicom.storage_workers"):
        isengard_factory({"dicom": {"storage_workers": value}})
