"""The FastAPI application: `/v1` routers, problem responses, guards and metrics.

`create_app()` with no arguments builds the service from `Settings` (this is
what `lianhu serve` runs); tests pass their own service. Authentication plugs
in at `api.auth.current_principal`, a dependency of every `/v1` router
(see api/routes/__init__.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import problems
from api.metrics import Metrics
from api.middleware import RequestGuard, RequestMetrics
from api.responses import OrjsonResponse
from api.routes import cases, metrics, ops
from api.wiring import build_service, build_workers
from api.workers import Worker, Workers
from engine.service import CaseService
from engine.settings import Settings


def create_app(
    service: CaseService | None = None,
    settings: Settings | None = None,
    workers: Sequence[Worker] | None = (),
) -> FastAPI:
    """The HTTP API over `service` (built from `settings` if not given, and then closed on exit).

    `workers` run on background threads while the app is up (see api.workers); None means
    the configured ones (`api.wiring.build_workers`), which is what `lianhu serve` runs.
    """
    settings = settings or Settings()
    owned = service is None
    service = service or build_service(settings)
    background = Workers(build_workers(settings, service) if workers is None else workers)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        background.start()
        yield
        background.stop()
        if owned:
            service.close()

    app = FastAPI(
        title="lianhu",
        summary="Event-sourced case routing for grassroots governance (联户长制度)",
        version="0.1.0",
        default_response_class=OrjsonResponse,
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.workers = background

    app.include_router(cases.router)
    app.include_router(ops.router)
    app.include_router(metrics.router)
    app.include_router(metrics.cases_router)

    problems.install(app)
    # Added last runs first: metrics see every answer, including the guard's refusals.
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)
    return app


def serve_app() -> FastAPI:
    """The app `lianhu serve` runs: configured store, configured background workers."""
    return create_app(workers=None)
