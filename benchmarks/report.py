"""Statistics, the Markdown table, the machine's description, and the rewrite of the
table in ``docs/performance.md`` (between :data:`BEGIN` and :data:`END`)."""

from __future__ import annotations

import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .scenarios import Results, Row

__all__ = ["BEGIN", "END", "DOC", "code_revision", "machine", "paired_ratio", "render",
           "write_docs"]

DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
BEGIN = "<!-- benchmark-table:begin (written by python -m benchmarks.run) -->"
END = "<!-- benchmark-table:end -->"


def _first_line(command: list[str], env: dict[str, str] | None = None) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def code_revision(repo: Path, code: Path) -> str:
    """The revision of the Isengard code measured: this checkout's (``git describe``) or,
    for a frozen copy run through ``PYTHONPATH``, what its ``REVISION`` file (next to the
    copied ``core/``) says."""
    if repo in code.parents:
        return _first_line(["git", "-C", str(repo), "describe", "--always", "--dirty"])
    marker = code.parent / "REVISION"
    try:
        return f"copy of {marker.read_text().strip()}"
    except OSError:
        return f"a copy in {code.parent} without a REVISION file"


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    repo = Path(__file__).resolve().parent.parent
    spec = importlib.util.find_spec("isengard")  # what the servers run (PYTHONPATH)
    code = Path(spec.origin).resolve().parent if spec and spec.origin else repo / "core"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "isengard": _first_line([sys.executable, "-m", "isengard", "--version"]),
        "isengard_revision": code_revision(repo, code),
        "orthanc": _first_line(["Orthanc", "--version"]),
        "dcmtk": _first_line(["/usr/bin/storescu", "--version"]).strip("$ ").removeprefix(
            "dcmtk: "),
        "load": " ".join(Path("/proc/loadavg").read_text().split()[:3])
        if Path("/proc/loadavg").exists() else "unknown",
    }


def _summary(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def paired_ratio(isengard: list[float], orthanc: list[float]) -> tuple[float, float, float]:
    """Isengard / Orthanc: the median of each run's ratio, with their min and max, when
    both servers have one figure per run (the i-th of each list measured in the same
    run, near each other in time); the ratio of the medians otherwise (min = max)."""
    if len(isengard) == len(orthanc) and all(isengard) and all(orthanc):
        return _summary([i / o for i, o in zip(isengard, orthanc, strict=True)])
    ratio = statistics.median(isengard) / statistics.median(orthanc)
    return ratio, ratio, ratio


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(row: Row, values: list[float] | None, not_available: bool) -> str:
    if not_available:
        return "n/a"
    if not values:
        return "–"
    median, low, high = _summary(values)
    text = f"**{_number(median)}** {row.unit}"
    if row.mb_per_unit:
        text += f" · {_number(median * row.mb_per_unit)} MB/s"
    if len(values) > 1:
        text += f" ({_number(low)}–{_number(high)})"
    return text


def _verdict(row: Row, ratio: float | None, isengard: float | None) -> tuple[str, str]:
    if row.absolute_target is not None:
        target = f"Isengard ≤ {row.absolute_target:g} {row.unit}"
        if isengard is None:
            return target, ""
        return target, "✅" if isengard <= row.absolute_target else "❌"
    if row.target is None:
        return "", ""
    target = f"{'≥' if row.better == 'higher' else '≤'} {row.target:g}×"
    if ratio is None:
        return target, ""
    ok = ratio >= row.target if row.better == "higher" else ratio <= row.target
    return target, "✅" if ok else "❌"


def render(rows: list[Row], results: Results, info: dict[str, Any]) -> str:
    """The Markdown block: machine, settings, then one line per measured row."""
    m = info["machine"]
    lines = [
        f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, "
        f"{m['os']}; Python {m['python']}; {m['isengard']} ({m['isengard_revision']}); "
        f"{m['orthanc']}; DCMTK {m['dcmtk']}. Load average at the end: {m['load']}.",
        "",
        f"Scale `{info['scale']}`, {info['repeat']} runs per figure: **median** "
        "(min–max over the runs). Ratio = Isengard / Orthanc: the median of the runs' "
        "ratios, each from the two servers measured back to back in one run (min–max).",
        "",
        "| Measure | Isengard | Orthanc | Isengard / Orthanc | Target | |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        per_server = results.samples.get(row.key, {})
        isengard = per_server.get("Isengard")
        orthanc = per_server.get("Orthanc")
        na_i = (row.key, "Isengard") in results.not_available
        na_o = (row.key, "Orthanc") in results.not_available
        if not (isengard or orthanc or na_i or na_o):
            continue
        ratio = None
        ratio_text = "n/a"
        if isengard and orthanc:
            ratio, low, high = paired_ratio(isengard, orthanc)
            ratio_text = f"{ratio:.2f}×" + (f" ({low:.2f}–{high:.2f})" if high > low else "")
        target, verdict = _verdict(row, ratio,
                                   statistics.median(isengard) if isengard else None)
        lines.append(f"| {row.label} | {_cell(row, isengard, na_i)} | "
                     f"{_cell(row, orthanc, na_o)} | {ratio_text} | {target} | "
                     f"{verdict} |")
    if results.notes:
        lines += ["", "Warnings raised during the run:", ""]
        lines += [f"- {note}" for note in results.notes]
    return "\n".join(lines)


def write_docs(block: str, doc: Path = DOC) -> None:
    """Replace the text between the markers (append a section if they are missing)."""
    text = doc.read_text() if doc.exists() else "# Performance\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = f"{head}{BEGIN}\n{block}\n{END}{tail}"
    else:
        text = f"{text.rstrip()}\n\n## Results\n\n{BEGIN}\n{block}\n{END}\n"
    doc.write_text(text)
