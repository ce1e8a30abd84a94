"""The app's log levels: the SDKs' loggers at WARNING, so a turn logs only what the app says.

Under the Functions worker every Python record at INFO or above goes to Application Insights.
At INFO azure-core's HTTP logging policy writes a multi-line dump of every storage, token and
model request, azure-identity a line for each credential it tries, and the HTTP clients a line
per request: eighteen records on a worker's first turn and nine (about a hundred lines) on each
later one, against the app's one. Their warnings and errors still get through; the app's own
loggers (`chat.*`) are left as they are.
"""

from __future__ import annotations

import logging

SDK_LOGGERS = (
    "azure",  # azure-core (http_logging_policy), azure-identity, azure-data-tables, azure-monitor
    "msal",  # azure-identity's token cache and flows
    "openai",
    # The openai SDK's HTTP client: httpx2 in the release we pin, httpx in earlier ones.
    "httpx2",
    "httpcore2",
    "httpx",
    "httpcore",
    "aiohttp",  # azure-core's async transport
)


def quiet_sdk_loggers() -> None:
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
