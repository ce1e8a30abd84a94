"""GET/HEAD /api/health: liveness, configuration and reachability; names what is wrong, never a value."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from chat.dependencies import Dependencies
from chat.engine.errors import ChatError, ConfigurationError, ModelTimeout, StorageUnavailable, TableMissing
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

# A probe answers within this, or its check fails: load balancers give a health check a few seconds.
PROBE_SECONDS = 3.0


async def health(request: Request, params: Params, deps: Dependencies) -> Response:
    tables = (deps.messages_table, deps.conversations_table)
    *table_checks, model = await asyncio.gather(
        *(_check(table.ping(), StorageUnavailable) for table in tables), _check(deps.model.check(), ModelTimeout)
    )
    storage = next((check for check in table_checks if check.code != "ok"), table_checks[0])
    healthy = storage.code == "ok" and model.code == "ok"
    return json_response(
        Health(
            status="ok" if healthy else "degraded",
            model=ModelKind(kind="azure_openai" if deps.settings.uses_azure_openai else "openai_compatible"),
            checks=HealthChecks(storage=storage.code, model=model.code),
            missing_tables=sorted(check.table for check in table_checks if check.table is not None),
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


@dataclass(frozen=True)
class _Checked:
    code: str
    table: str | None = None  # a table that does not exist


async def _check(probe: Awaitable[None], late: type[ChatError]) -> _Checked:
    """`ok`, or the code of the error the probe raised; `late`'s when it did not answer in time."""
    try:
        await asyncio.wait_for(probe, PROBE_SECONDS)
    except TimeoutError:
        return _Checked(late.code)
    except TableMissing as e:
        return _Checked(e.code, e.table)
    except ChatError as e:
        return _Checked(e.code)
    return _Checked("ok")
