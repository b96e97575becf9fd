"""NATS JetStream: the relay, the department consumer, request/reply commands (docs/nats.md).

The only module that imports `nats`. The event store is the outbox and the system of
record; JetStream is a delivery channel. The relay:

* follows the log from its tracked position (engine.outbox) in batches, publishes every
  message of a batch with `Nats-Msg-Id = <position>:<subject>`, and moves the position
  only when every publish of the batch is acknowledged;
* pipelines: up to `max_in_flight` publishes await their PubAck at once, each with a
  timeout (nats-py's `publish_async` futures never resolve when the server answers with an
  error or the ack is lost, nats.py#985). Per case, a message is sent only once the
  case's previous message is acknowledged ("waves"), so a retry can never put a case's
  events out of order on any subject;
* retries a timed-out publish with the same id while JetStream still remembers it (half
  the duplicate window); after that, or after any connection failure or restart, it first
  reads the tail of the stream: the messages after its tracked position that are already
  stored are skipped, so nothing is published twice even past the duplicate window.

Everything is asyncio; `run_relay(...)` runs it on the calling thread until a
`threading.Event` is set (the `api.workers` shape). The store is read in a thread executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)

from engine.outbox import Outbox, Outgoing, position_of

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"


class PublishFailed(Exception):
    """A batch could not be fully acknowledged; the relay reconciles and tries again."""


class StreamMismatch(Exception):
    """The stream exists with settings the relay cannot accept (storage, subjects)."""


@dataclass(frozen=True)
class StreamSpec:
    """The stream of case events and how it is kept (docs/nats.md, "Stream settings")."""

    name: str = "CASES"
    prefix: str = "cases"
    duplicate_window: float = 120.0
    replicas: int = 1

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            subjects=[f"{self.prefix}.>"],
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            duplicate_window=self.duplicate_window,
            num_replicas=self.replicas,
            allow_direct=True,
        )


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> StreamInfo:
    """Create the stream, or check the existing one (and bring its duplicate window in line)."""
    try:
        info = await js.stream_info(spec.name)
    except nats.js.errors.NotFoundError:
        return await js.add_stream(spec.config())
    cfg = info.config
    problems = []
    if cfg.storage != StorageType.FILE:
        problems.append(f"storage is {cfg.storage}, not file")
    if f"{spec.prefix}.>" not in (cfg.subjects or []):
        problems.append(f"subjects {cfg.subjects} do not include {spec.prefix}.>")
    if problems:
        raise StreamMismatch(f"stream {spec.name}: " + "; ".join(problems))
    if abs((cfg.duplicate_window or 0) - spec.duplicate_window) > 1e-3:
        log.warning(
            "stream %s: duplicate window %.1f s, setting %.1f s",
            spec.name,
            cfg.duplicate_window or 0,
            spec.duplicate_window,
        )
        cfg.duplicate_window = spec.duplicate_window
        info = await js.update_stream(cfg)
    return info


async def connect(url: str, *, name: str, timeout: float = 5.0) -> NATS:
    """A connection that reconnects forever, quietly (the callers log what matters)."""

    async def quiet(error: Exception) -> None:
        log.debug("nats %s: %s", name, error)

    return await asyncio.wait_for(
        nats.connect(
            url,
            name=name,
            connect_timeout=2,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            error_cb=quiet,
        ),
        timeout,
    )


# -- the relay -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RelayConfig:
    url: str
    stream: StreamSpec = field(default_factory=StreamSpec)
    ack_timeout: float = 5.0
    max_in_flight: int = 256
    batch_size: int = 1000
    poll_interval: float = 0.01  # idle: how often to look for new events
    retries: int = 3  # publish attempts of a timed-out message before reconciling
    backoff: float = 0.5  # after a failure, doubling up to 5 s


@dataclass
class RelayStats:
    events: int = 0  # case events published and acknowledged
    messages: int = 0  # messages acknowledged (an event goes to one or more subjects)
    duplicates: int = 0  # acks saying JetStream already had the message
    skipped: int = 0  # found already stored when reconciling, not sent again
    retries: int = 0
    failures: int = 0
    position: int = 0


class Relay:
    """Moves the log to JetStream. One relay per store (a second one is refused at commit)."""

    def __init__(self, outbox: Outbox, config: RelayConfig) -> None:
        self.outbox = outbox
        self.config = config
        self.stats = RelayStats()

    async def run(self, stop: threading.Event) -> None:
        """Relay until `stop` is set, reconnecting and reconciling after any failure."""
        backoff = self.config.backoff
        while not stop.is_set():
            try:
                nc = await connect(self.config.url, name="lianhu-relay")
            except (OSError, TimeoutError, nats.errors.Error) as e:
                log.warning("relay cannot reach NATS at %s (%s); retrying", self.config.url, e)
                await _wait(stop, backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            try:
                await self._relay(nc, stop)
                backoff = self.config.backoff
            except (PublishFailed, nats.errors.Error, OSError, TimeoutError) as e:
                self.stats.failures += 1
                log.warning("relay interrupted (%s: %s); reconciling", type(e).__name__, e)
                await _wait(stop, backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):  # closing a broken connection
                    await nc.close()

    async def _relay(self, nc: NATS, stop: threading.Event) -> None:
        cfg = self.config
        # nats-py's own window never binds (its wait has no timeout): ours, in _send, does
        js = nc.jetstream(timeout=cfg.ack_timeout, publish_async_max_pending=cfg.max_in_flight + 1)
        await ensure_stream(js, cfg.stream)
        loop = asyncio.get_running_loop()
        position = await loop.run_in_executor(None, self.outbox.position)
        stored = await self.stored_after(js, position)
        reading = loop.run_in_executor(None, self.outbox.read, position, cfg.batch_size)
        try:
            while not stop.is_set():
                batch = await reading
                if not batch.last:
                    await _wait(stop, cfg.poll_interval)
                    reading = loop.run_in_executor(None, self.outbox.read, position, cfg.batch_size)
                    continue
                # read the next batch while this one is published (its position is not
                # committed before this one's is, so a failure still re-reads from here)
                reading = loop.run_in_executor(None, self.outbox.read, batch.last, cfg.batch_size)
                await self._publish(js, batch.messages, stored)
                await loop.run_in_executor(None, self.outbox.commit, position, batch.last)
                position = self.stats.position = batch.last
                self.stats.events += batch.events
                stored = set()
        finally:
            with contextlib.suppress(Exception):  # the read ahead is dropped; it re-reads
                await reading

    async def stored_after(self, js: JetStreamContext, position: int) -> set[str]:
        """Ids of the relay's messages after log `position` already in the stream.

        Reads the stream backwards from its last message until a message at or before
        `position`. Batches are published one after another, so everything after the
        tracked position sits at the tail: this set is exact, whatever the dedupe window.
        """
        name = self.config.stream.name
        state = (await js.stream_info(name)).state
        ids: set[str] = set()
        seq, newest = state.last_seq, None
        while seq >= max(state.first_seq, 1):
            try:
                msg = await js.get_msg(name, seq)
            except nats.js.errors.NotFoundError:  # deleted or expired
                seq -= 1
                continue
            seq -= 1
            mid = (msg.headers or {}).get(MSG_ID)
            at = position_of(mid) if mid else None
            if at is None:
                continue  # not the relay's
            newest = at if newest is None else newest
            if at <= position:
                break
            ids.add(mid)  # type: ignore[arg-type]  # mid is set when `at` is
        if newest is not None and newest < position:
            log.error(
                "stream %s ends at log position %d but the relay had %d acknowledged: NATS "
                "lost acknowledged messages (see docs/nats.md, 'Re-publishing'); "
                "`lianhu relay --from-position %d` publishes them again",
                name,
                newest,
                position,
                newest,
            )
        if ids:
            log.info("%d messages after position %d were already stored", len(ids), position)
        self.stats.skipped += len(ids)
        return ids

    async def _publish(
        self, js: JetStreamContext, messages: list[Outgoing], skip: set[str]
    ) -> None:
        todo = [m for m in messages if m.msg_id not in skip]
        for wave in waves(todo):
            await self._publish_wave(js, wave)

    async def _publish_wave(self, js: JetStreamContext, wave: list[Outgoing]) -> None:
        cfg = self.config
        started = time.monotonic()
        todo = wave
        for attempt in range(cfg.retries):
            failed = await self._send(js, todo)
            self.stats.messages += len(todo) - len(failed)
            if not failed:
                return
            todo = failed
            if time.monotonic() - started > cfg.stream.duplicate_window / 2:
                break  # JetStream may have forgotten the ids: reconcile instead
            if attempt + 1 < cfg.retries:
                self.stats.retries += len(failed)
                log.warning(
                    "%d publishes not acknowledged; retrying with the same ids", len(failed)
                )
        raise PublishFailed(f"{len(todo)} publishes not acknowledged")

    async def _send(self, js: JetStreamContext, messages: list[Outgoing]) -> list[Outgoing]:
        """Publish with at most `max_in_flight` acks outstanding, each waited for at most
        `ack_timeout` after its publish; returns the messages not acknowledged."""
        cfg = self.config
        in_flight: deque[tuple[Outgoing, asyncio.Future[Any], float]] = deque()
        failed: list[Outgoing] = []

        async def settle_oldest() -> None:
            m, future, deadline = in_flight.popleft()
            if not future.done():
                await asyncio.wait([future], timeout=max(deadline - time.monotonic(), 0))
            if not _acked(future, self.stats):
                failed.append(m)
            # settle, without waiting, every ack that came meanwhile: one wait frees many
            while in_flight and in_flight[0][1].done():
                m, future, _ = in_flight.popleft()
                if not _acked(future, self.stats):
                    failed.append(m)

        stream = cfg.stream.name
        window, timeout = cfg.max_in_flight, cfg.ack_timeout
        publish, monotonic = js.publish_async, time.monotonic
        for m in messages:
            if len(in_flight) >= window:
                await settle_oldest()
            future = await publish(m.subject, m.payload, stream=stream, headers={MSG_ID: m.msg_id})
            in_flight.append((m, future, monotonic() + timeout))
        while in_flight:
            await settle_oldest()
        return failed


def _acked(future: asyncio.Future[Any], stats: RelayStats) -> bool:
    if not future.done():
        future.cancel()  # frees its slot in nats-py's window
        return False
    if future.cancelled() or future.exception() is not None:
        return False
    if future.result().duplicate:
        stats.duplicates += 1
    return True


def waves(messages: list[Outgoing]) -> list[list[Outgoing]]:
    """Split messages so that each case has at most one log position per wave, in order."""
    per_case: dict[UUID, list[list[Outgoing]]] = {}
    for m in messages:
        groups = per_case.setdefault(m.case_id, [])
        if groups and groups[-1][0].position == m.position:
            groups[-1].append(m)
        else:
            groups.append([m])
    depth = max((len(g) for g in per_case.values()), default=0)
    return [[m for g in per_case.values() if d < len(g) for m in g[d]] for d in range(depth)]


def run_relay(outbox: Outbox, config: RelayConfig, stop: threading.Event) -> Relay:
    """Run a relay on this thread until `stop` is set (an api.workers run function)."""
    relay = Relay(outbox, config)
    asyncio.run(relay.run(stop))
    return relay


async def _wait(stop: threading.Event, seconds: float) -> None:
    """Sleep up to `seconds`, waking early (within 50 ms) when `stop` is set."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(left, 0.05))


# -- the department side ---------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """A message as a consumer receives it."""

    subject: str
    data: bytes
    stream_seq: int
    num_delivered: int


async def consume(
    url: str,
    spec: StreamSpec,
    *,
    filter_subject: str,
    durable: str,
    handle: Callable[[Delivery], None],
    stop: threading.Event,
    batch: int = 100,
    ack_wait: float = 30.0,
    limit: int | None = None,
) -> int:
    """A durable pull consumer: fetch, `handle` each message (in a thread), then ack it.

    A message is acknowledged only after `handle` returned, so one that was being handled
    when the process died comes again (at least once): `handle` must be idempotent (key
    it on the envelope's `event_id`). Returns how many messages were handled.
    """
    nc = await connect(url, name=f"lianhu-consume-{durable}")
    handled = 0
    try:
        js = nc.jetstream()
        await ensure_stream(js, spec)
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            filter_subject=filter_subject,
            ack_wait=ack_wait,
            max_ack_pending=max(batch * 4, 1000),
        )
        sub = await js.pull_subscribe(
            filter_subject, durable=durable, stream=spec.name, config=config
        )
        loop = asyncio.get_running_loop()
        while not stop.is_set() and (limit is None or handled < limit):
            want = batch if limit is None else min(batch, limit - handled)
            try:
                msgs = await sub.fetch(want, timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            for msg in msgs:
                await loop.run_in_executor(None, handle, _delivery(msg))
                await msg.ack()
                handled += 1
        return handled
    finally:
        with contextlib.suppress(Exception):
            await nc.drain()


def _delivery(msg: Msg) -> Delivery:
    meta = msg.metadata
    return Delivery(msg.subject, msg.data, meta.sequence.stream, meta.num_delivered)


# -- request / reply ---------------------------------------------------------------------------

Reply = tuple[bytes, dict[str, str]]
RequestHandler = Callable[[str, bytes], Reply]


async def serve_requests(
    url: str,
    subject: str,
    handler: RequestHandler,
    stop: threading.Event,
    *,
    queue: str = "lianhu-commands",
    ready: Callable[[], Awaitable[None] | None] | None = None,
) -> None:
    """Answer requests on `subject` (a queue group: run several) until `stop` is set.

    `handler(subject, body)` runs in a thread (it calls the synchronous service) and
    returns the reply body and headers.
    """
    while not stop.is_set():
        try:
            nc = await connect(url, name="lianhu-commands")
        except (OSError, TimeoutError, nats.errors.Error) as e:
            log.warning("commands cannot reach NATS at %s (%s); retrying", url, e)
            await _wait(stop, 1.0)
            continue
        loop = asyncio.get_running_loop()

        async def answer(msg: Msg, nc: NATS = nc, loop: Any = loop) -> None:
            body, headers = await loop.run_in_executor(None, handler, msg.subject, msg.data)
            if msg.reply:
                await nc.publish(msg.reply, body, headers=headers)

        try:
            await nc.subscribe(subject, queue=queue, cb=answer)
            await nc.flush()
            if ready is not None:
                maybe = ready()
                if maybe is not None:
                    await maybe
            while not stop.is_set():
                await _wait(stop, 0.5)
        finally:
            with contextlib.suppress(Exception):
                await nc.drain()


async def request(url: str, subject: str, body: bytes, *, timeout: float = 5.0) -> Msg:
    """One request and its reply (for tools and tests)."""
    nc = await connect(url, name="lianhu-request")
    try:
        return await nc.request(subject, body, timeout=timeout)
    finally:
        await nc.close()


async def stream_state(url: str, name: str, *, timeout: float = 2.0) -> dict[str, int]:
    """Messages, first and last sequence of a stream (for `lianhu status`)."""
    nc = await connect(url, name="lianhu-status", timeout=timeout)
    try:
        state = (await nc.jetstream(timeout=timeout).stream_info(name)).state
        return {
            "messages": state.messages,
            "first_seq": state.first_seq,
            "last_seq": state.last_seq,
        }
    finally:
        await nc.close()
