"""GET/HEAD /api/health: liveness, configuration and reachability; names what is wrong, never a value."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from starlette.requests import Request
from starlette.responses import Response

from chat.dependencies import Dependencies
from chat.engine.errors import ChatError, ConfigurationError
from chat.web.answers import (
    Health,
    HealthChecks,
    HealthWarning,
    Misconfigured,
    ModelKind,
    error_detail,
    json_response,
)
from chat.web.callers import PRINCIPAL_IGNORED
from chat.web.toolkit import Params


async def health(request: Request, params: Params, deps: Dependencies) -> Response:
    storage, model = await asyncio.gather(_check(deps.store.ping()), _check(deps.model.check()))
    healthy = storage == "ok" and model == "ok"
    return json_response(
        Health(
            status="ok" if healthy else "degraded",
            model=ModelKind(kind="azure_openai" if deps.settings.uses_azure_openai else "openai_compatible"),
            checks=HealthChecks(storage=storage, model=model),
            warnings=_warnings(deps),
        ),
        status_code=200 if healthy else 503,
    )


def misconfigured(error: ConfigurationError) -> Response:
    """The answer when the dependencies cannot be built: which setting is wrong."""
    return json_response(Misconfigured(error=error_detail(error)), status_code=503)


def _warnings(deps: Dependencies) -> list[HealthWarning]:
    # Health stays 200: the app serves these requests as configured, and a platform health check
    # that recycled the instances for it would take the service down without mending anything.
    if deps.ignored_principals.seen:
        return [HealthWarning(code="client_principal_ignored", message=PRINCIPAL_IGNORED)]
    return []


async def _check(probe: Awaitable[None]) -> str:
    try:
        await probe
    except ChatError as e:
        return e.code
    return "ok"
