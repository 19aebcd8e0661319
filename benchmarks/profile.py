"""Profile Isengard's ingest paths with py-spy (``pip install py-spy``).

    python -m benchmarks.profile cstore-small   # storescu, small set, 1 association
    python -m benchmarks.profile cstore-ct      # storescu, CT series, 1 association
    python -m benchmarks.profile rest-small     # POST /instances, small set, 1 thread
    python -m benchmarks.profile rest-ct        # POST /instances, CT series, 1 thread

Starts a fresh Isengard, attaches ``py-spy record`` to it for the duration of the
workload, writes the collapsed stacks (``benchmarks/results/profile-<name>.txt``, which
speedscope and flamegraph.pl read) and prints the functions holding most samples:
*inclusive* (the function or anything it calls was running) and *self* (it was the
innermost frame). Samples cover every thread of the server; py-spy leaves out idle
threads (waiting on a lock, a socket, a condition) unless ``--idle`` is given; its
idle detection is approximate (a thread in pynetdicom's 1 ms polling sleeps often counts
as busy), so ``--gil`` — only the thread holding the GIL — is the better view of where
CPU goes: Isengard's C-STORE path is CPU-bound (see docs/performance.md).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import data
from .clients import rest_upload, storescu
from .scales import SCALES
from .servers import ISENGARD, Launcher

RESULTS_DIR = Path(__file__).resolve().parent / "results"
WORKLOADS = ("cstore-small", "cstore-ct", "rest-small", "rest-ct")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def _short(frame: str) -> str:
    """``ingest (/…/core/ingest.py:52)`` → ``ingest (core/ingest.py)``."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("site-packages/", "/lib/python3", "/work/main/", "isg-snap/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['func']} ({path})"


def summarise(collapsed: Path, top: int = 30) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", "inclusive %  function"]
    lines += [f"{100 * n / total:10.1f}%  {f}" for f, n in inclusive.most_common(top)]
    lines += ["", "self %       function"]
    lines += [f"{100 * n / total:10.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    p.add_argument("workload", choices=WORKLOADS)
    p.add_argument("--scale", choices=sorted(SCALES), default="quick")
    p.add_argument("--rate", type=int, default=200, help="samples per second (default 200)")
    p.add_argument("--idle", action="store_true", help="also sample idle threads")
    p.add_argument("--gil", action="store_true",
                   help="only sample the thread holding the GIL: where Python burns CPU "
                        "(sleeps, fsync and socket waits release the GIL)")
    args = p.parse_args(argv)
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        print("py-spy is missing: pip install py-spy", file=sys.stderr)
        return 2
    scale = SCALES[args.scale]
    kind, set_name = args.workload.split("-")
    dataset = (data.ct_series(scale.ct_slices) if set_name == "ct"
               else data.small_set(scale.small_instances))
    RESULTS_DIR.mkdir(exist_ok=True)
    suffix = ("-idle" if args.idle else "") + ("-gil" if args.gil else "")
    out = RESULTS_DIR / f"profile-{args.workload}{suffix}.txt"
    with Launcher() as launcher:
        server = launcher.start(ISENGARD)
        command = [py_spy, "record", "--pid", str(server.pid), "--rate", str(args.rate),
                   "--format", "raw", "--output", str(out), "--nonblocking"]
        if args.idle:
            command.append("--idle")
        if args.gil:
            command.append("--gil")
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            time.sleep(1.0)  # py-spy attaches
            if kind == "cstore":
                seconds = storescu(server, dataset, 1)
            else:
                seconds = rest_upload(server, dataset, 1)
        finally:
            spy.send_signal(signal.SIGINT)
            _, err = spy.communicate(timeout=60)
        print(f"{args.workload}: {len(dataset.files)} instances in {seconds:.1f} s "
              f"({len(dataset.files) / seconds:.1f}/s) under py-spy")
        if not out.exists():
            print(err.decode(errors="replace"), file=sys.stderr)
            return 1
    print(summarise(out))
    print(f"\ncollapsed stacks: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
