"""`lianhu demo` and `lianhu simulate`: a simulated county played through the real engine."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from queue import Empty
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from api.cli.errors import reports_errors
from engine.settings import Settings
from engine.sim.behaviour import BEHAVIOURS
from engine.sim.county import SIZES
from engine.sim.report import measure, table
from engine.sim.run import Design, Scenario, design_for, designs, scratch_dir
from routing_rules import default_rule_set_path, load_rule_set

Seed = Annotated[int, typer.Option(help="same seed, same cases and events, byte for byte")]
Weeks = Annotated[int, typer.Option(min=1, max=104, help="simulated weeks of petitions")]
Size = Annotated[
    str,
    typer.Option(
        "--county-size",
        help="default (the rule set's own units), village, township, county (DOMAIN §7: "
        "~10⁴ leaders), province (10⁶), or a number of household leaders",
    ),
]
Settle = Annotated[
    int, typer.Option(min=0, max=180, help="days people keep working after the last filing")
]
AsJson = Annotated[bool, typer.Option("--json", help="print the figures as JSON, for scripts")]
Keep = Annotated[
    Path | None,
    typer.Option(help="keep each design's store (lianhu.db, views.db, rules/) under this folder"),
]


def register(app: typer.Typer) -> None:
    app.command(
        "demo",
        epilog="Examples:\n\n    lianhu demo\n\n    lianhu demo --weeks 8 --seed 7\n\n"
        "    lianhu demo --county-size county --weeks 1 --json",
    )(demo)
    app.command(
        "simulate",
        epilog="Examples:\n\n"
        "    lianhu simulate --rules ./proposed-rules\n\n"
        "    lianhu simulate --rules ./a --rules ./b --no-current --weeks 8 --json\n\n"
        "    lianhu simulate --rules routing_rules/relay_chain --behaviour relay",
    )(simulate)


@reports_errors
def demo(
    weeks: Weeks = 4,
    seed: Seed = 2026,
    county_size: Size = "default",
    settle_days: Settle = 14,
    as_json: AsJson = False,
    keep: Keep = None,
) -> None:
    """Play the same simulated county through the old relay chain and through lianhu.

    Files every petition through the real engine (commands, SLA timer, projections) on a
    fresh store and a simulated clock, once per design, and prints the plan's indicators
    side by side. Every figure is read from the projections.
    """
    scenario = _scenario(seed, weeks, county_size, settle_days)
    ds = designs()
    _run([ds["relay"], ds["lianhu"]], scenario, as_json, keep)


@reports_errors
def simulate(
    rules: Annotated[
        list[Path],
        typer.Option(
            "--rules",
            exists=True,
            file_okay=False,
            help="a rule-set folder to simulate (repeat to compare several)",
        ),
    ],
    current: Annotated[
        bool,
        typer.Option(help="also run the rules in force (LIANHU_RULES_DIR, else the default)"),
    ] = True,
    behaviour: Annotated[
        str, typer.Option(help=f"who works the rules: {' or '.join(BEHAVIOURS)}")
    ] = "lianhu",
    weeks: Weeks = 4,
    seed: Seed = 2026,
    county_size: Size = "default",
    settle_days: Settle = 14,
    as_json: AsJson = False,
    keep: Keep = None,
) -> None:
    """Play the same simulated cases through proposed rule sets (and the current one).

    A planner's question: what would this change have done? Each rule set is played on
    its own fresh store with the same seed, so the petitions are the same.
    """
    if behaviour not in BEHAVIOURS:
        raise typer.BadParameter(f"choose {' or '.join(BEHAVIOURS)}", param_hint="--behaviour")
    chosen: list[Design] = []
    if current:
        in_force = Settings().rules_dir or default_rule_set_path()
        chosen.append(design_for(in_force, behaviour, name=f"current ({in_force.name})"))
    names = [p.resolve().name for p in rules]
    for path, name in zip(rules, names, strict=True):
        label = name if names.count(name) == 1 else str(path)
        chosen.append(design_for(path.resolve(), behaviour, name=label))
    scenario = _scenario(seed, weeks, county_size, settle_days)
    _run(chosen, scenario, as_json, keep)


def _scenario(seed: int, weeks: int, county_size: str, settle_days: int) -> Scenario:
    if county_size != "default" and county_size not in SIZES and not county_size.isdigit():
        choices = ", ".join(["default", *SIZES])
        raise typer.BadParameter(
            f"unknown county size {county_size!r}; use {choices} or a number of household leaders",
            param_hint="--county-size",
        )
    return Scenario(seed=seed, weeks=weeks, county_size=county_size, settle_days=settle_days)


def _run(chosen: Sequence[Design], scenario: Scenario, as_json: bool, keep: Path | None) -> None:
    for design in chosen:  # a broken rule set fails here, naming its file and rule
        load_rule_set(design.rules_dir)
    started = time.perf_counter()
    err = Console(stderr=True)
    with _workdir(keep) as root, Progress(
        TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=err, transient=as_json,
    ) as bar:  # fmt: skip
        workdirs = [root / f"{n}-{_slug(d.name)}" for n, d in enumerate(chosen)]
        results = _play_all(chosen, scenario, workdirs, bar)
    elapsed = time.perf_counter() - started
    if as_json:
        json.dump(results, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return
    first = results[0]
    typer.echo(
        f"\n{first['county']}; {scenario.weeks} weeks of petitions from "
        f"{scenario.start:%Y-%m-%d}, then {scenario.settle_days} days to settle; seed "
        f"{scenario.seed}; figures as of {scenario.end:%Y-%m-%d %H:%M} from the projections\n"
    )
    typer.echo(table(results))
    refused = sum(r["refused"] for r in results)
    typer.echo(
        f"\n{len(results)} designs in {elapsed:.1f} s"
        + (f"; {refused} actions refused by the engine" if refused else "")
        + ". Calibration and its limits: docs/simulation.md"
    )
    if keep is not None:
        typer.echo(f"stores kept under {keep}")


def _play_all(
    chosen: Sequence[Design], scenario: Scenario, workdirs: Sequence[Path], bar: Progress
) -> list[dict[str, Any]]:
    """Each design in its own process (they share nothing), at most one per core."""
    tasks: dict[str, TaskID] = {}

    def show(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    workers = min(len(chosen), os.cpu_count() or 1)
    if workers == 1:
        return [measure(d, scenario, w, show) for d, w in zip(chosen, workdirs, strict=True)]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(workers, mp_context=context) as pool:
        queue = manager.Queue()
        futures = [
            pool.submit(measure_in_process, d, scenario, w, queue)
            for d, w in zip(chosen, workdirs, strict=True)
        ]
        while not all(f.done() for f in futures):
            _drain(queue, show, timeout=0.1)
        _drain(queue, show, timeout=0)
        return [f.result() for f in futures]


def _drain(queue: Any, show: Callable[[str, int, int], None], timeout: float) -> None:
    try:
        item = queue.get(timeout=timeout) if timeout else queue.get_nowait()
        while True:
            show(*item)
            item = queue.get_nowait()
    except Empty:
        return


def measure_in_process(
    design: Design, scenario: Scenario, workdir: Path, queue: Any
) -> dict[str, Any]:
    return measure(design, scenario, workdir, lambda *item: queue.put(item))


@contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    root = scratch_dir("lianhu-sim-")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name).strip("-") or "design"
