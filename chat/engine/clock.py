"""The engine's one clock: every time it stores, compares or shows comes from `now()`.

A turn's time is an ISO 8601 UTC string with microseconds (`utc_now`); OpenAI's objects carry Unix
seconds (`epoch_seconds` of that string, or `unix_now`); the daily quota counts by UTC day.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def now() -> datetime:
    return datetime.now(UTC)


def utc_now() -> str:
    """Now as a turn stores it: `2026-01-01T00:00:00.000000Z`."""
    return now().isoformat(timespec="microseconds").replace("+00:00", "Z")


def unix_now() -> float:
    return now().timestamp()


def epoch_seconds(timestamp: str) -> int:
    """Unix seconds of a utc_now() timestamp: the times OpenAI's objects carry."""
    return int(datetime.fromisoformat(timestamp).timestamp())


def utc_day() -> str:
    """Today's UTC date, `20260101`: the day the quota counts tokens under."""
    return now().strftime("%Y%m%d")


def seconds_to_midnight() -> int:
    """Whole seconds until the next UTC day, at least one."""
    current = now()
    midnight = (current + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((midnight - current).total_seconds()))
