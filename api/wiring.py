"""Building the application service from settings: the one place the CLI and the app share."""

from __future__ import annotations

import threading
from collections.abc import Callable

from api.workers import Worker
from engine.clock import Clock, SystemClock
from engine.persistence import postgres_env, store_env
from engine.service import CaseService
from engine.settings import Settings
from engine.timer import AdvisoryLock, Leadership, SoleLeader, Timer
from engine.viewstore import ViewStore
from routing_rules import RuleSet, default_rule_set_path, load_rule_set


def load_rules(settings: Settings) -> RuleSet:
    """The rule set in force: `settings.rules_dir`, or the shipped default. Raises RuleSetError."""
    return load_rule_set(settings.rules_dir or default_rule_set_path())


def build_service(
    settings: Settings, clock: Clock | None = None, rules: RuleSet | None = None
) -> CaseService:
    """A CaseService on the configured store (SQLite under data_dir, or PostgreSQL)."""
    return CaseService(
        rules=rules or load_rules(settings),
        clock=clock or SystemClock(),
        env=store_env(settings),
    )


def build_workers(settings: Settings, service: CaseService) -> list[Worker]:
    """The background workers `lianhu serve` runs beside the API (one process shape).

    Each capability adds its worker here (the SLA timer, read-model followers, the NATS
    relay); each also has a CLI command to run it alone in the scaled-out shape.
    """
    workers: list[Worker] = []
    workers.append(Worker("sla-timer", build_timer_worker(settings, service)))
    workers.append(Worker("projections", build_projections_worker(settings, service)))
    workers += nats_workers(settings, service)  # the NATS relay and commands, when configured
    return workers


def nats_workers(settings: Settings, service: CaseService) -> list[Worker]:
    from api.nats_wiring import nats_workers as workers

    return workers(settings, service)


def build_timer(settings: Settings, service: CaseService) -> Timer:
    """The SLA timer on the configured store; on PostgreSQL it fires only while it leads."""
    leadership: Leadership = (
        AdvisoryLock(settings.database_url) if settings.database_url else SoleLeader()
    )
    return Timer(service, ViewStore.for_settings(settings), leadership=leadership)


def build_timer_worker(
    settings: Settings, service: CaseService
) -> Callable[[threading.Event], None]:
    """Runs the SLA timer until stopped (`lianhu timer` runs the same thing alone)."""

    def run(stop: threading.Event) -> None:
        timer = build_timer(settings, service)
        try:
            timer.run(stop)
        finally:
            timer.views.close()

    return run


def describe_store(settings: Settings) -> str:
    """Where the events go, for people: a SQLite path or a PostgreSQL host/db (no password)."""
    if settings.database_url:
        env = postgres_env(settings.database_url)
        host, port, db = env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_DBNAME"]
        return f"PostgreSQL {host}:{port}/{db}"
    return f"SQLite {settings.sqlite_path.resolve()}"


def build_projections_worker(
    settings: Settings, service: CaseService
) -> Callable[[threading.Event], None]:
    """Keeps every read model (projections.registry) live from the event log."""
    from projections.registry import Projections, run_live

    def run(stop: threading.Event) -> None:
        views = ViewStore.for_settings(settings)
        try:
            run_live(Projections(views), service.recorder, service.mapper, stop)
        finally:
            views.close()

    return run
