"""The rows of the table and how each is measured.

A *group* (``--only``) is a set of rows measured together: ``startup``, ``cstore``,
``cstore-nagle``, ``rest``, ``query``. Each run of an ingest row uses a fresh server
(fresh folder, empty index) so that every run stores the same instances for the first
time. Servers alternate A B B A from one run to the next to spread the machine's noise.
"""

from __future__ import annotations

import functools
import json
import math
import re
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pydicom

from . import data
from .clients import (
    STORESCP,
    ClientError,
    cfind_study,
    cmove_study,
    connect,
    count_instances,
    declare_modality,
    get_bytes,
    rest_upload,
    store_one_per_association,
    storescu,
    study_id,
    tools_find_study,
)
from .scales import Scale
from .servers import SERVERS, Launcher, RunningServer, ServerKind, dcmtk_env, free_port

__all__ = ["GROUPS", "Results", "Row", "build_rows", "run_groups"]


@dataclass(frozen=True)
class Row:
    key: str
    group: str
    label: str
    unit: str  # "inst/s", "ms", "MB", "s"
    better: str  # "higher" or "lower"
    target: float | None = None  # on the ratio Isengard / Orthanc
    absolute_target: float | None = None  # on Isengard's own figure (start-up)
    mb_per_unit: float | None = None  # throughput rows: MB per instance, for MB/s


def _ingest_rows(group: str, prefix: str, how: str, n_ct: int, n_small: int,
                 ct_mb: float, small_mb: float) -> list[Row]:
    out = []
    for set_key, set_label, mb in (("ct", f"CT 512×512 ×{n_ct}", ct_mb),
                                   ("small", f"small 64×64 ×{n_small}", small_mb)):
        for k in (1, 4):
            out.append(Row(f"{prefix}-{set_key}-{k}", group,
                           f"{how}, {set_label}, {k} {_plural(k, group)}", "inst/s",
                           "higher", target=1.5, mb_per_unit=mb))
    return out


def _cpu_rows(group: str, prefix: str, how: str, n_ct: int, n_small: int) -> list[Row]:
    """The server's CPU time (user + system) per instance during the ingest rows: on a
    shared machine a steadier comparison than throughput, and what shows where a server
    spends more per instance when senders run in parallel."""
    return [Row(f"{prefix}-cpu-{set_key}-{k}", group,
                f"Server CPU per instance, {how}, {set_label}, {k} {_plural(k, group)}",
                "ms", "lower")
            for set_key, set_label in (("ct", f"CT ×{n_ct}"), ("small", f"small ×{n_small}"))
            for k in (1, 4)]


def _plural(k: int, group: str) -> str:
    if group == "rest":
        return "thread" if k == 1 else "threads"
    return "association" if k == 1 else "parallel associations"


def _rest(server: RunningServer, dataset: data.DicomSet, *, threads: int) -> float:
    return rest_upload(server, dataset, threads)


def _storescu(server: RunningServer, dataset: data.DicomSet, *, associations: int,
              nodelay: bool) -> float:
    return storescu(server, dataset, associations, nodelay=nodelay)


WARM_UP = 400  # instances sent before the storage-worker row's measured send
_WORKER_READY = re.compile(r"storage worker 1 \(pid \d+\) ready")


@dataclass(frozen=True)
class _Send:
    """One ingest row's send: ``client`` sends ``dataset`` to a fresh server started
    with ``isengard_dicom`` (Isengard only), after ``warm_up`` when given."""

    key: str  # the row key's suffix
    dataset: data.DicomSet
    client: Callable[[RunningServer, data.DicomSet], float]
    warm_up: data.DicomSet | None = None
    isengard_dicom: dict[str, Any] | None = None


def _wait_for_storage_worker(server: RunningServer, timeout: float = 30.0) -> None:
    """Until Isengard's log says its storage worker is ready (Orthanc: at once)."""
    if server.kind.name != "Isengard":
        return
    deadline = time.monotonic() + timeout
    while not _WORKER_READY.search(server.log_tail(200)):
        if time.monotonic() > deadline:
            raise ClientError("Isengard's storage worker did not start: "
                              + server.log_tail(5))
        time.sleep(0.05)


QUERY_KINDS = (("pid", "exact PatientID"), ("name", "PatientName wildcard"),
               ("date", "StudyDate range"))


def build_rows(scale: Scale, meta: dict[str, Any]) -> list[Row]:
    """The rows for ``scale``; ``meta`` gives the MB per instance of each set."""
    ct_mb = float(meta.get("ct_mb", 0.0))
    small_mb = float(meta.get("small_mb", 0.0))
    n = scale.nagle_instances
    per_association = min(scale.per_association, scale.small_instances)
    rows = [
        Row("startup", "startup", "Start-up to the first HTTP answer", "s", "lower",
            absolute_target=1.0),
        Row("rss-idle", "startup", "Resident memory, idle (VmRSS)", "MB", "lower", target=3.0),
        Row("rss-peak-ingest", "cstore", "Resident memory, peak during C-STORE (VmHWM)", "MB",
            "lower"),
        Row("rss-peak-query", "query", "Resident memory, peak with the query set loaded and "
            "queried (VmHWM)", "MB", "lower"),
        *_ingest_rows("cstore", "cstore", "C-STORE storescu", scale.ct_slices,
                      scale.small_instances, ct_mb, small_mb),
        Row("cstore-assoc-small", "cstore", f"C-STORE, small 64×64 ×{per_association}, "
            "one association per instance (Python client, one at a time)", "inst/s",
            "higher", target=1.5, mb_per_unit=small_mb),
        Row("cstore-workers-small-4", "cstore", f"C-STORE storescu, small 64×64 "
            f"×{scale.small_instances}, 4 parallel associations, Isengard with "
            f"dicom.storage_workers: 1 (opt-in), its worker running", "inst/s", "higher",
            target=1.5, mb_per_unit=small_mb),
        *_ingest_rows("rest", "rest", "REST POST /instances", scale.ct_slices,
                      scale.small_instances, ct_mb, small_mb),
        *_cpu_rows("cstore", "cstore", "C-STORE", scale.ct_slices, scale.small_instances),
        Row("cstore-cpu-assoc-small", "cstore", f"Server CPU per instance, C-STORE, small "
            f"×{per_association}, one association per instance", "ms", "lower"),
        Row("cstore-cpu-workers-small-4", "cstore", f"Server CPU per instance, C-STORE, "
            f"small ×{scale.small_instances}, 4 parallel associations, Isengard with a "
            "storage worker (both processes)", "ms", "lower"),
        *_cpu_rows("rest", "rest", "REST", scale.ct_slices, scale.small_instances),
        Row("load-query", "query", f"C-STORE load of the query set "
            f"({scale.query_studies * scale.instances_per_study} tiny instances, "
            f"4 associations)", "inst/s", "higher", target=1.5),
    ]
    for proto, label in (("find", "/tools/find"), ("cfind", "C-FIND findscu")):
        for kind, kind_label in QUERY_KINDS:
            for stat in ("median", "p95"):
                rows.append(Row(f"{proto}-{kind}-{stat}", "query",
                                f"{label} study level, {kind_label} — {stat}", "ms",
                                "lower", target=0.7))
    rows += [
        Row("archive-ct", "retrieve", f"ZIP archive download of the CT study "
            f"({scale.ct_slices} slices)", "MB/s", "higher", target=1.5),
        Row("preview-median", "retrieve", "PNG preview of a CT slice — median", "ms",
            "lower", target=0.7),
        Row("preview-p95", "retrieve", "PNG preview of a CT slice — p95", "ms", "lower",
            target=0.7),
        Row("cmove-ct", "retrieve", f"C-MOVE of the CT study to DCMTK storescp "
            f"({scale.ct_slices} slices)", "inst/s", "higher", target=1.5),
    ]
    rows += _ingest_rows("cstore-nagle", "nagle", "C-STORE storescu without TCP_NODELAY",
                         min(n, scale.ct_slices), min(n, scale.small_instances), ct_mb,
                         small_mb)
    return rows


GROUPS = ("startup", "cstore", "rest", "query", "retrieve", "cstore-nagle")
PREVIEWS = 30  # slices previewed per run


@dataclass
class Results:
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    not_available: set[tuple[str, str]] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def add(self, row: str, server: str, value: float) -> None:
        self.samples.setdefault(row, {}).setdefault(server, []).append(value)

    def to_json(self) -> dict[str, Any]:
        return {"samples": self.samples, "not_available": sorted(self.not_available),
                "notes": self.notes, "meta": self.meta}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Results:
        return cls(obj["samples"], {(a, b) for a, b in obj["not_available"]},
                   obj["notes"], obj.get("meta", {}))


class Runner:
    """Measures the groups asked for, with the servers of ``launcher``."""

    def __init__(self, launcher: Launcher, scale: Scale, results: Results,
                 log: Callable[[str], None] = print, servers: tuple[ServerKind, ...] = SERVERS):
        self.launcher = launcher
        self.scale = scale
        self.results = results
        self.log = log
        self.servers = servers

    def order(self, run: int) -> Iterator[ServerKind]:
        """A B, then B A, then A B …"""
        return iter(self.servers if run % 2 == 0 else tuple(reversed(self.servers)))

    # -- start-up and idle memory -------------------------------------------------------

    def startup(self) -> None:
        for run in range(max(self.scale.repeat, 5)):
            for kind in self.order(run):
                server = self.launcher.start(kind)
                time.sleep(2.0)  # let lazy initialisation settle before reading VmRSS
                self.results.add("startup", kind.name, server.startup_s)
                self.results.add("rss-idle", kind.name, server.rss_mb())
                self.launcher.stop(server)
            self.log(f"  start-up run {run + 1}: " + self._last(["startup", "rss-idle"]))

    # -- ingest -------------------------------------------------------------------------

    def ingest(self, group: str, sets: dict[str, data.DicomSet]) -> None:
        nodelay = group != "cstore-nagle"
        prefix = {"cstore": "cstore", "cstore-nagle": "nagle", "rest": "rest"}[group]
        if group == "cstore-nagle":
            n = self.scale.nagle_instances
            sets = {k: v.subset(min(n, len(v.files))) for k, v in sets.items()}
        # Each a fresh server per server and run.
        sends: list[_Send] = []
        client: Callable[[RunningServer, data.DicomSet], float]
        for set_key in ("ct", "small"):
            for parallel in (1, 4):
                if group == "rest":
                    client = functools.partial(_rest, threads=parallel)
                else:
                    client = functools.partial(_storescu, associations=parallel,
                                               nodelay=nodelay)
                sends.append(_Send(f"{set_key}-{parallel}", sets[set_key], client))
        if group == "cstore":
            small = sets["small"]
            sends.append(_Send(
                "assoc-small", small.subset(min(self.scale.per_association, len(small.files))),
                store_one_per_association))
            # Isengard's opt-in storage worker, once it runs (it starts when a second
            # association arrives, ~0.5 s later): a burst from the same four senders
            # first, for both servers.
            sends.append(_Send(
                "workers-small-4", small, functools.partial(_storescu, associations=4,
                                                            nodelay=nodelay),
                warm_up=data.warm_up_set(WARM_UP, self.log),
                isengard_dicom={"storage_workers": 1}))
        for run in range(self.scale.repeat):
            peak: dict[str, float] = {}
            # Both servers take each send back to back (their order alternating from
            # one send and one run to the next), so that each run gives a ratio of two
            # figures measured a few seconds apart: the machine drifts over minutes.
            for step, send in enumerate(sends):
                for kind in self.order(run + step):
                    server = self.launcher.start(kind, nodelay=nodelay,
                                                 isengard_dicom=send.isengard_dicom)
                    before = 0
                    if send.warm_up is not None:
                        storescu(server, send.warm_up, 4, nodelay=nodelay)
                        before = len(send.warm_up.files)
                        _wait_for_storage_worker(server)
                    cpu = server.cpu_seconds()
                    seconds = send.client(server, send.dataset)
                    cpu = server.cpu_seconds() - cpu
                    count = len(send.dataset.files)
                    self._check_count(server, before + count, group)
                    if send.warm_up is None:
                        peak[kind.name] = max(peak.get(kind.name, 0.0), server.peak_rss_mb())
                    self.results.add(f"{prefix}-{send.key}", kind.name, count / seconds)
                    if group != "cstore-nagle":
                        self.results.add(f"{prefix}-cpu-{send.key}", kind.name,
                                         1000 * cpu / count)
                    self.launcher.stop(server)
            if group == "cstore":
                for name, value in peak.items():
                    self.results.add("rss-peak-ingest", name, value)
            self.log(f"  {group} run {run + 1}: " + self._last(
                [f"{prefix}-{send.key}" for send in sends]))

    # -- retrieve: archive, preview, C-MOVE --------------------------------------------

    def retrieve(self, ct: data.DicomSet) -> None:
        study_uid = str(pydicom.dcmread(ct.files[0], stop_before_pixels=True)
                        .StudyInstanceUID)
        megabytes = ct.total_bytes / 1e6
        for run in range(self.scale.repeat):
            for kind in self.order(run):
                server = self.launcher.start(kind)
                try:
                    storescu(server, ct, 4)
                    self._check_count(server, len(ct.files), "loading the CT study")
                    sid = study_id(server, study_uid)
                    conn = connect(server)
                    started = time.perf_counter()
                    get_bytes(server, f"/studies/{sid}/archive", conn)
                    self.results.add("archive-ct", kind.name,
                                     megabytes / (time.perf_counter() - started))
                    instances = json.loads(get_bytes(server, f"/studies/{sid}/instances",
                                                     conn))[:PREVIEWS]
                    latencies = []
                    for instance in instances:
                        started = time.perf_counter()
                        get_bytes(server, f"/instances/{instance['ID']}/preview", conn)
                        latencies.append((time.perf_counter() - started) * 1000)
                    conn.close()
                    self.results.add("preview-median", kind.name, statistics.median(latencies))
                    self.results.add("preview-p95", kind.name, _percentile(latencies, 95))
                    self.results.add("cmove-ct", kind.name,
                                     len(ct.files) / self._cmove(server, study_uid))
                finally:
                    self.launcher.stop(server)
            self.log(f"  retrieve run {run + 1}: " + self._last(
                ["archive-ct", "preview-median", "cmove-ct"]))

    def _cmove(self, server: RunningServer, study_uid: str) -> float:
        """C-MOVE to a DCMTK storescp that receives but does not write (``--ignore``):
        the figure is the sender's."""
        port = free_port()
        scp = subprocess.Popen([STORESCP, "-aet", "STORESCP", "--ignore", str(port)],
                               env=dcmtk_env(True), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not _listening(port):
                if time.monotonic() > deadline:
                    raise ClientError("storescp did not start listening")
                time.sleep(0.02)
            declare_modality(server, "storescp", "STORESCP", port)
            return cmove_study(server, study_uid, "STORESCP")
        finally:
            scp.terminate()
            scp.wait(10)

    def _check_count(self, server: RunningServer, expected: int, what: str) -> None:
        stored = count_instances(server)
        if stored != expected:
            raise ClientError(f"{server.kind.name} holds {stored} instances after {what}, "
                              f"expected {expected}: the figure would be wrong")

    # -- queries ------------------------------------------------------------------------

    def query(self, spec: data.QuerySpec) -> None:
        loaded: dict[str, RunningServer] = {}
        try:
            for kind in self.servers:
                server = self.launcher.start(kind)
                seconds = storescu(server, spec.dicom, 4)
                self._check_count(server, len(spec.dicom.files), "loading the query set")
                self.results.add("load-query", kind.name, len(spec.dicom.files) / seconds)
                self.log(f"  {kind.name}: query set loaded in {seconds:.1f} s")
                loaded[kind.name] = server
            for run in range(self.scale.repeat):
                for kind in self.order(run):
                    self._query_run(loaded[kind.name], spec)
                self.log(f"  query run {run + 1}: " + self._last(
                    [f"{p}-{k}-median" for p in ("find", "cfind") for k, _ in QUERY_KINDS]))
            for name, server in loaded.items():
                self.results.add("rss-peak-query", name, server.peak_rss_mb())
        finally:
            for server in loaded.values():
                self.launcher.stop(server)

    def _query_run(self, server: RunningServer, spec: data.QuerySpec) -> None:
        name = server.kind.name
        queries = {"pid": [({"PatientID": v}, n) for v, n in spec.patient_ids],
                   "name": [({"PatientName": v}, n) for v, n in spec.name_patterns],
                   "date": [({"StudyDate": v}, n) for v, n in spec.date_ranges]}
        conn = connect(server)
        try:
            tools_find_study(server, conn, {"PatientID": "*"})  # warm the connection
            for kind, items in queries.items():
                self._latencies(f"find-{kind}", name, items,
                                lambda q: tools_find_study(server, conn, q))
        finally:
            conn.close()
        if server.kind.supports_cfind:
            cfind_study(server, {"PatientID": "*"})  # warm up, as for /tools/find
        for kind, items in queries.items():
            if server.kind.supports_cfind:
                self._latencies(f"cfind-{kind}", name, items,
                                lambda q: cfind_study(server, q))
            else:
                for stat in ("median", "p95"):
                    self.results.not_available.add((f"cfind-{kind}-{stat}", name))

    def _latencies(self, prefix: str, server: str, items: list[tuple[dict[str, str], int]],
                   call: Callable[[dict[str, str]], tuple[float, int]]) -> None:
        times = []
        for query, expected in items:
            seconds, found = call(query)
            times.append(seconds * 1000)
            if found != expected:
                note = (f"{server}: {prefix} {query} returned {found} studies, "
                        f"expected {expected}")
                if note not in self.results.notes:
                    self.results.notes.append(note)
        self.results.add(f"{prefix}-median", server, statistics.median(times))
        self.results.add(f"{prefix}-p95", server, _percentile(times, 95))

    def _last(self, rows: list[str]) -> str:
        parts = []
        for row in rows:
            values = self.results.samples.get(row, {})
            parts.append(row + " " + "/".join(
                f"{values[k.name][-1]:.3g}" if values.get(k.name) else "n/a"
                for k in self.servers))
        return ", ".join(parts)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def run_groups(groups: list[str], launcher: Launcher, scale: Scale, results: Results,
               log: Callable[[str], None] = print) -> None:
    """Generate (or reuse) the data the groups need, then measure them in order."""
    runner = Runner(launcher, scale, results, log)
    sets: dict[str, data.DicomSet] = {}
    if any(g in groups for g in ("cstore", "rest", "cstore-nagle", "retrieve")):
        sets = {"ct": data.ct_series(scale.ct_slices, log),
                "small": data.small_set(scale.small_instances, log)}
        for key, dataset in sets.items():
            results.meta[f"{key}_mb"] = dataset.total_bytes / len(dataset.files) / 1e6
    for group in GROUPS:
        if group not in groups:
            continue
        log(f"[{group}]")
        if group == "startup":
            runner.startup()
        elif group == "retrieve":
            runner.retrieve(sets["ct"])
        elif group == "query":
            runner.query(data.query_set(scale.query_studies, scale.instances_per_study,
                                        scale.queries_per_kind, log))
        else:
            runner.ingest(group, sets)
