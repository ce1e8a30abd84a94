"""function_app.py as the Functions worker sees it: its functions indexed, a handler by function
name, and a request built as the HTTP streams extension builds it."""

from __future__ import annotations

from functools import cache

from fastapi import Request

import function_app


@cache
def functions() -> list:
    """Indexed once, as the worker does: get_functions() refuses to index an app twice."""
    return function_app.app.get_functions()


def triggers(kind: str = "httpTrigger") -> dict[str, object]:
    """The functions of one trigger type, by name, and their trigger bindings."""
    found = {}
    for function in functions():
        for binding in function.get_bindings():
            if binding.type == kind:
                found[function.get_function_name()] = binding
    return found


def handler(name: str):
    """The user function the worker calls for a function name."""
    [function] = [f for f in functions() if f.get_function_name() == name]
    return function.get_user_function()


def request(method: str, path: str, body: bytes = b"", *, path_params=None, headers=None, query: str = "") -> Request:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query.encode(),
        "headers": [
            (b"content-type", b"application/json"),
            *((name.lower().encode(), value.encode()) for name, value in (headers or {}).items()),
        ],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 50000),
        "path_params": path_params or {},
    }
    scope["raw_path"] = path.encode()

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


async def body_of(response) -> bytes:
    if hasattr(response, "body_iterator"):
        return b"".join([chunk async for chunk in response.body_iterator])
    return response.body
