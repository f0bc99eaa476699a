"""Run every benchmark and write benchmarks/RESULTS.md: one table of every figure, its goal
and whether it is met, with the machine, the date and the command.

    python benchmarks/run.py            # full sizes (several minutes), writes RESULTS.md
    python benchmarks/run.py --smoke    # tiny sizes (< 30 s), prints the table only

Each script runs in a fresh interpreter (bounded by a timeout) and prints its figures as
JSON (see _common.py). A script that fails or times out is reported, not hidden. The
part of RESULTS.md after ANALYSIS_MARKER is written by hand (why a goal is missed, the
profiles) and kept when the file is regenerated. Soak figures come from the last
`CODEGEN_SOAK_RECORD=benchmarks/soak.json nox -s soak -- 5000` (see tests/runs/test_soak.py).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SOAK = HERE / "soak.json"
ANALYSIS_MARKER = "<!-- Everything below is written by hand and kept by run.py. -->"

# (script, arguments for the smoke run, timeout in seconds for the full run)
SCRIPTS = [
    ("bench_client.py", ["--smoke"], 600),
    ("bench_sync.py", ["--smoke"], 600),
    ("bench_fanout.py", ["--smoke"], 900),
    ("bench_poller.py", ["--smoke"], 900),
    ("bench_emulator.py", ["--smoke"], 300),
    ("bench_journal.py", ["--smoke"], 600),
    ("bench_stores.py", ["--smoke"], 300),
    ("bench_celery.py", ["--smoke"], 600),
]
SMOKE_TIMEOUT = 60
FIGURE_ORDER = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8a", "B8b", "B9", "EMU")


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "httpx": importlib.metadata.version("httpx"),
        "httpcore": importlib.metadata.version("httpcore"),
        **{name: _version(name) for name in ("httpx2", "aiohttp")},  # B1's other stacks
        "anyio": importlib.metadata.version("anyio"),
        "os": platform.platform(),
    }


def run_script(script: str, args: list[str], timeout: float) -> tuple[dict[str, Any], str | None]:
    """The script's figures, or ({}, why it gave none)."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, str(HERE / script), *args],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {}, f"{script}: no result within {timeout:.0f} s"
    took = time.monotonic() - started
    print(f"  {script} {' '.join(args)}: exit {done.returncode} in {took:.1f} s", file=sys.stderr)
    if done.returncode != 0:
        return {}, f"{script}: exit {done.returncode}: {done.stderr.strip()[-500:]}"
    try:
        return json.loads(done.stdout), None
    except json.JSONDecodeError:
        lines = done.stdout.strip().splitlines()
        return json.loads(lines[-1]) if lines else {}, None


def collect(smoke: bool) -> tuple[dict[str, Any], list[str]]:
    figures: dict[str, Any] = {}
    problems: list[str] = []
    for script, smoke_args, timeout in SCRIPTS:
        args, limit = (smoke_args, SMOKE_TIMEOUT) if smoke else ([], timeout)
        result, problem = run_script(script, args, limit)
        if problem:
            problems.append(problem)
        figures.update(result)
    return figures, problems


def verdict(fig: dict[str, Any]) -> str:
    if fig.get("goal") is None:
        return "reported"
    return "pass" if fig["value"] <= fig["goal"] else "**miss**"


def number(value: float) -> str:
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def table(figures: dict[str, Any]) -> list[str]:
    rows = ["| figure | what | value | goal | result |", "|---|---|---|---|---|"]
    order = sorted(figures, key=lambda k: (FIGURE_ORDER.index(k.split("-")[0]), k))
    for key in order:
        fig = figures[key]
        unit = fig.get("unit", "")
        goal = "-" if fig.get("goal") is None else f"<= {number(fig['goal'])} {unit}"
        value = f"{number(fig['value'])} {unit}"
        rows.append(f"| {key} | {fig['what']} | {value} | {goal} | {verdict(fig)} |")
    return rows


def details(figures: dict[str, Any]) -> list[str]:
    lines = []
    for key in sorted(figures):
        extra = {
            k: v for k, v in figures[key].items() if k not in ("value", "goal", "unit", "what")
        }
        if extra:
            lines.append(f"- {key}: `{json.dumps(extra)}`")
    return lines


SOAK_COLUMNS = (
    "backend", "date", "runs", "wall", "succeeded", "errors", "created on the server",
    "duplicate creates", "faults injected", "429s sent (forced)",
    "client memory growth after warm-up", "client peak RSS",
)  # fmt: skip


def soak_row(backend: str, s: dict[str, Any]) -> str:
    faults = s["faults"]
    cells = [
        backend, s["date"], f"{s['runs']:,}", f"{s['wall_s']} s", f"{s['succeeded']:,}",
        s["errors"], f"{s['runs_created']:,}", s["duplicates"],
        f"{sum(faults.values())} ({len(faults)} kinds)",
        f"{s['rate_limited_429']} ({faults.get('rate_limited', 0)})",
        f"{s['client_growth_kib']} KiB", f"{s['client_peak_rss_mib']} MiB",
    ]  # fmt: skip
    return "| " + " | ".join(str(c) for c in cells) + " |"


def soak_section() -> list[str]:
    if not SOAK.exists():
        return ["Not recorded (`CODEGEN_SOAK_RECORD=benchmarks/soak.json nox -s soak -- 5000`)."]
    recorded = sorted(json.loads(SOAK.read_text()).items())
    lines = ["| " + " | ".join(SOAK_COLUMNS) + " |", "|" + "---|" * len(SOAK_COLUMNS)]
    lines += [soak_row(backend, s) for backend, s in recorded]
    lines += ["", "Requests by route:", ""]
    lines += [f"- {backend}: `{json.dumps(s['requests'])}`" for backend, s in recorded]
    return lines


def render(figures: dict[str, Any], problems: list[str], command: str, took: float) -> str:
    info = machine()
    head = [
        "# Benchmark results",
        "",
        f"Generated by `{command}` on {datetime.date.today().isoformat()} in {took:.0f} s.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()) + ".",
        "",
        "A figure passes when its value is at most its goal; `reported` has no goal.",
        "",
        *table(figures),
        "",
    ]
    if problems:
        head += ["Not measured or failed:", "", *[f"- {p}" for p in problems], ""]
    head += ["## Details", "", *details(figures), "", "## Soak (tests/runs/test_soak.py)", ""]
    head += [*soak_section(), ""]
    return "\n".join(head)


def kept_analysis() -> str:
    if RESULTS.exists():
        text = RESULTS.read_text()
        if ANALYSIS_MARKER in text:
            return text[text.index(ANALYSIS_MARKER) :]
    return ANALYSIS_MARKER + "\n\n## Analysis\n\n(none yet)\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; print, don't write")
    args = parser.parse_args()
    command = "nox -s bench" + (" -- --smoke" if args.smoke else "")
    started = time.monotonic()
    figures, problems = collect(args.smoke)
    report = render(figures, problems, command, time.monotonic() - started)
    if args.smoke:
        print(report)
        return
    RESULTS.write_text(report + "\n" + kept_analysis())
    print(report)
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
