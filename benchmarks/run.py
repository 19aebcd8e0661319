"""``python -m benchmarks.run``: Isengard and Orthanc side by side, one command.

Starts both servers with equivalent settings (SQLite index, no compression, synchronous
storage, loopback), feeds them the same synthetic data, prints the table and rewrites it
in ``docs/performance.md``. See that document for what each row measures.

    python -m benchmarks.run                      # quick scale, every row (15-25 min)
    python -m benchmarks.run --scale full         # the issue's sizes (about an hour)
    python -m benchmarks.run --only cstore,rest   # some groups; docs left untouched
    python -m benchmarks.run --report FILE.json   # re-render saved results
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import FrameType

from .report import DOC, machine, render, write_docs
from .scales import SCALES
from .scenarios import GROUPS, Results, build_rows, run_groups
from .servers import Launcher

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run",
                                description="Benchmark Isengard against Orthanc.")
    p.add_argument("--scale", choices=sorted(SCALES), default="quick",
                   help="dataset sizes (default quick; full = 10,000 studies / 100,000 "
                        "instances for the queries, 5,000 small instances)")
    p.add_argument("--repeat", type=int, help="runs per figure (default: the scale's)")
    p.add_argument("--only", help="comma-separated groups among " + ", ".join(GROUPS)
                   + " (docs/performance.md is then left untouched)")
    p.add_argument("--no-docs", action="store_true", help="do not rewrite docs/performance.md")
    p.add_argument("--keep", action="store_true",
                   help="keep the servers' folders and logs (printed at the end)")
    p.add_argument("--workdir", type=Path,
                   help="where the servers' folders go (default: a new folder in /tmp)")
    p.add_argument("--report", type=Path, metavar="JSON",
                   help="render saved results instead of measuring")
    return p


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the Launcher, which stops the servers


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.report:
        saved = json.loads(args.report.read_text())
        scale = replace(SCALES[saved["info"]["scale"]], repeat=saved["info"]["repeat"])
        results = Results.from_json(saved["results"])
        block = render(build_rows(scale, results.meta), results, saved["info"])
        print(block)
        if not args.no_docs:
            write_docs(block)
            print(f"\nrewrote the table in {DOC}")
        return 0

    scale = SCALES[args.scale]
    if args.repeat:
        scale = replace(scale, repeat=args.repeat)
    groups = list(GROUPS)
    if args.only:
        groups = [g.strip() for g in args.only.split(",") if g.strip()]
        unknown = [g for g in groups if g not in GROUPS]
        if unknown:
            print(f"unknown group(s) {', '.join(unknown)}; choose among {', '.join(GROUPS)}",
                  file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Even when started with SIGINT ignored (a background job of a script), Ctrl-C must
    # reach the clean-up path.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    results = Results()
    started = time.monotonic()
    launcher = Launcher(args.workdir, keep=args.keep)
    try:
        with launcher:
            run_groups(groups, launcher, scale, results,
                       log=lambda m: print(m, flush=True))
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped", file=sys.stderr)
        return 130
    info = {"scale": scale.name, "repeat": scale.repeat, "groups": groups,
            "machine": machine(), "duration_s": round(time.monotonic() - started)}
    block = render(build_rows(scale, results.meta), results, info)
    print("\n" + block)
    RESULTS_DIR.mkdir(exist_ok=True)
    saved = RESULTS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-{scale.name}.json"
    saved.write_text(json.dumps({"info": info, "results": results.to_json()}, indent=1))
    print(f"\nresults saved in {saved} (took {info['duration_s']} s)")
    if args.keep:
        print(f"server folders and logs kept in {launcher.workdir}")
    if not args.only and not args.no_docs:
        write_docs(block)
        print(f"rewrote the table in {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
