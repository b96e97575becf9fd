"""A small, hand-written Prometheus exposition: request counts and durations, the log position.

prometheus-client would be one more dependency for three series; the text
format (version 0.0.4) is simple enough to write directly.
"""

from __future__ import annotations

import threading
from collections import defaultdict

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """Thread-safe counters, labelled by method, route template and status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self._seconds: defaultdict[tuple[str, str], float] = defaultdict(float)
        self._timed: defaultdict[tuple[str, str], int] = defaultdict(int)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._count[(method, route, str(status))] += 1
            self._seconds[(method, route)] += seconds
            self._timed[(method, route)] += 1

    def render(self, *, log_position: int | None) -> str:
        """The exposition text, with the event log position (None if unknown) as a gauge."""
        with self._lock:
            counts = sorted(self._count.items())
            seconds = sorted(self._seconds.items())
            timed = dict(self._timed)
        lines = [
            "# HELP lianhu_http_requests_total HTTP requests answered.",
            "# TYPE lianhu_http_requests_total counter",
        ]
        for (method, route, status), n in counts:
            labels = _labels(method=method, route=route, status=status)
            lines.append(f"lianhu_http_requests_total{labels} {n}")
        lines += [
            "# HELP lianhu_http_request_duration_seconds Time to answer HTTP requests.",
            "# TYPE lianhu_http_request_duration_seconds summary",
        ]
        for (method, route), total in seconds:
            labels = _labels(method=method, route=route)
            lines.append(f"lianhu_http_request_duration_seconds_sum{labels} {total:.6f}")
            lines.append(
                f"lianhu_http_request_duration_seconds_count{labels} {timed[(method, route)]}"
            )
        if log_position is not None:
            lines += [
                "# HELP lianhu_event_log_position Position of the newest event in the log "
                "(events recorded, case-number index events included).",
                "# TYPE lianhu_event_log_position gauge",
                f"lianhu_event_log_position {log_position}",
            ]
        return "\n".join(lines) + "\n"


def render_relay_lag(position: int, events: int, seconds: float) -> str:
    """The NATS relay's position and lag behind the event log, as exposition lines."""
    return (
        "# HELP lianhu_nats_relay_position Log position up to which every event is in JetStream.\n"
        "# TYPE lianhu_nats_relay_position gauge\n"
        f"lianhu_nats_relay_position {position}\n"
        "# HELP lianhu_nats_relay_lag_events Log positions not yet published to JetStream.\n"
        "# TYPE lianhu_nats_relay_lag_events gauge\n"
        f"lianhu_nats_relay_lag_events {events}\n"
        "# HELP lianhu_nats_relay_lag_seconds Age of the oldest event not yet published (0 when "
        "caught up).\n"
        "# TYPE lianhu_nats_relay_lag_seconds gauge\n"
        f"lianhu_nats_relay_lag_seconds {seconds:.3f}\n"
    )


def _labels(**labels: str) -> str:
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
