"""Background work that runs inside `lianhu serve`: followers, the timer, the relay.

Each worker is a name and a `run(stop)` function that returns when `stop` is set.
`lianhu serve` runs them on threads beside the API (the one-process shape);
at scale each runs as its own process with its own CLI command.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Worker:
    name: str
    run: Callable[[threading.Event], None]


class Workers:
    """Starts workers on daemon threads and stops them together."""

    def __init__(self, workers: Sequence[Worker]) -> None:
        self.workers = list(workers)
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for worker in self.workers:
            thread = threading.Thread(
                target=self._guarded, args=(worker,), name=f"lianhu-{worker.name}", daemon=True
            )
            thread.start()
            self.threads.append(thread)
            log.info("started %s", worker.name)

    def _guarded(self, worker: Worker) -> None:
        try:
            worker.run(self.stop_event)
        except Exception:  # logged loudly; the API keeps serving and /healthz reports it
            log.exception("worker %s stopped with an error", worker.name)

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout)

    def alive(self) -> dict[str, bool]:
        return {w.name: t.is_alive() for w, t in zip(self.workers, self.threads, strict=False)}
