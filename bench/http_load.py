"""A small, bounded HTTP/1.1 load generator: C keep-alive connections, N requests in all.

Why not httpx: measured here (2 cores), `httpx.AsyncClient` with 32 connections peaks at
~200-400 requests/s against a route that does nothing (`GET /healthz`) while the server
sits at ~7 % CPU: the client is the bottleneck (httpcore walks every pooled connection
per request and probes each socket; `sniffio` retries a failing import on every call).
This client writes prepared request bytes on raw asyncio streams (uvloop when installed)
and reads each response by its Content-Length; on the same route it reaches ~3,000/s,
so the figures below measure the server. httpx2 (httpx's maintained successor) is used
once per run to check that the API answers a filing as documented
(bench.filing.check_contract).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

try:  # uvloop is part of uvicorn[standard]; without it asyncio's loop is fine, only slower
    import uvloop
except ImportError:  # pragma: no cover - depends on the environment
    uvloop = None  # type: ignore[assignment]


@dataclass(frozen=True)
class LoadResult:
    """What a bounded run did: completed requests, wall time, per-request latencies (s)."""

    latencies: list[float]
    elapsed: float
    client_cpu: float  # this process's CPU seconds during the run

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        """Latency at quantile q (0..1), in milliseconds (nearest rank)."""
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


class HttpError(RuntimeError):
    """The server answered with an unexpected status."""


def post_request(host: str, port: int, path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("ascii") + body


def get_request(host: str, port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode("ascii")


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lowered = head.lower()
    at = lowered.find(b"\r\ncontent-length:")
    if at < 0:
        raise HttpError(f"response without Content-Length: {head[:200]!r}")
    end = lowered.find(b"\r\n", at + 2)
    body = await reader.readexactly(int(lowered[at + 17 : end]))
    return status, body


async def _run(
    host: str,
    port: int,
    requests: Sequence[bytes],
    n: int,
    seconds: float,
    connections: int,
    expect: int,
) -> LoadResult:
    latencies: list[float] = []
    work = itertools.count()
    began = time.perf_counter()
    cpu_began = time.process_time()
    stop_at = began + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < stop_at:
                i = next(work)
                if i >= n:
                    return
                sent = time.perf_counter()
                status, body = await _exchange(reader, writer, requests[i % len(requests)])
                if status != expect:
                    raise HttpError(f"expected {expect}, got {status}: {body[:300]!r}")
                latencies.append(time.perf_counter() - sent)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return LoadResult(latencies, time.perf_counter() - began, time.process_time() - cpu_began)


def run_load(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    n: int,
    seconds: float,
    connections: int,
    expect: int,
) -> LoadResult:
    """Send `requests` (cycled) over `connections` keep-alive connections until n have
    been answered or `seconds` have passed; every answer must have status `expect`."""
    coro = _run(host, port, requests, n, seconds, connections, expect)
    if uvloop is not None:
        return uvloop.run(coro)
    return asyncio.run(coro)


def loop_name() -> str:
    return "uvloop" if uvloop is not None else "asyncio"
