"""Delivery to departments, built from settings: the relay, NATS commands, the embedded server."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from api.nats_commands import CommandHandler
from api.workers import Worker
from engine.bus import RelayConfig, StreamSpec, run_relay, serve_requests
from engine.outbox import Outbox
from engine.servers import NatsServer, ServerStartError
from engine.service import CaseService
from engine.settings import Settings
from engine.viewstore import ViewStore

log = logging.getLogger(__name__)


def stream_spec(settings: Settings) -> StreamSpec:
    return StreamSpec(
        name=settings.nats_stream,
        prefix=settings.nats_subject_prefix,
        duplicate_window=settings.nats_duplicate_window,
    )


def relay_config(settings: Settings) -> RelayConfig:
    if not settings.nats_url:
        raise ValueError("no NATS URL configured (LIANHU_NATS_URL)")
    return RelayConfig(
        url=settings.nats_url,
        stream=stream_spec(settings),
        ack_timeout=settings.nats_ack_timeout,
        max_in_flight=settings.nats_max_in_flight,
        batch_size=settings.nats_relay_batch,
    )


def build_outbox(settings: Settings, service: CaseService) -> Outbox:
    return Outbox(service, ViewStore.for_settings(settings), prefix=settings.nats_subject_prefix)


def build_relay_worker(
    settings: Settings, service: CaseService
) -> Callable[[threading.Event], None]:
    """Runs the NATS relay until stopped (`lianhu relay` runs the same thing alone)."""

    def run(stop: threading.Event) -> None:
        outbox = build_outbox(settings, service)
        try:
            run_relay(outbox, relay_config(settings), stop)
        finally:
            outbox.views.close()

    return run


def build_commands_worker(
    settings: Settings, service: CaseService
) -> Callable[[threading.Event], None]:
    """Answers departments' accept / return / resolve requests over NATS until stopped."""

    def run(stop: threading.Event) -> None:
        assert settings.nats_url
        handler = CommandHandler(service, settings.nats_command_prefix)
        asyncio.run(serve_requests(settings.nats_url, handler.subscription, handler, stop))

    return run


def nats_workers(settings: Settings, service: CaseService) -> list[Worker]:
    """The relay and the command responder, when a NATS URL is configured."""
    if not settings.nats_url:
        return []
    return [
        Worker("nats-relay", build_relay_worker(settings, service)),
        Worker("nats-commands", build_commands_worker(settings, service)),
    ]


def start_embedded_nats(settings: Settings) -> tuple[Settings, NatsServer | None]:
    """With no NATS URL and `embedded_nats` on, a local nats-server with its store under the
    data dir (kept across restarts); the settings returned point at it."""
    if settings.nats_url or not settings.embedded_nats:
        return settings, None
    store = (settings.data_dir / "nats").absolute()
    try:
        server = NatsServer(store, port=settings.embedded_nats_port, monitor=False).start()
    except ServerStartError as e:
        log.warning(
            "port %d unavailable for NATS (%s); using a free one", settings.embedded_nats_port, e
        )
        server = NatsServer(store, monitor=False).start()
    return settings.model_copy(update={"nats_url": server.url}), server


def describe_nats(settings: Settings, server: NatsServer | None) -> str:
    if not settings.nats_url:
        return "off (set LIANHU_NATS_URL, or LIANHU_EMBEDDED_NATS=true)"
    where = "embedded nats-server, store " + str(server.store_dir) if server else "external"
    return f"{settings.nats_url} ({where}); stream {settings.nats_stream}"
