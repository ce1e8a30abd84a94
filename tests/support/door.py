"""The OpenAI door driven over HTTP with every answer held to OpenAI's published description: `Door`."""

from __future__ import annotations

import json
from typing import Any

from tests.support.api import Api
from tests.support.openai_schema import OpenAIDescription
from tests.support.openapi_doc import events


class Door:
    """Sends a request to /api/v1 and checks its answer against OpenAI's description of it; keeps
    what it saw (statuses, event types, schemas) for the tests to say they saw enough."""

    def __init__(self, api: Api, description: OpenAIDescription) -> None:
        self.api = api
        self.description = description
        self.statuses: set[int] = set()
        self.event_types: set[str] = set()
        self.schemas: set[str] = set()

    async def __call__(
        self,
        method: str,
        path: str,
        *,
        expect: int = 200,
        json_body: Any = None,
        body: bytes | None = None,
        content_type: str = "application/json",
        query: str = "",
        headers: dict[str, str] | None = None,
    ) -> Any:
        if json_body is not None:
            body = json.dumps(json_body).encode()
        sent = {**({"Content-Type": content_type} if body is not None else {}), **(headers or {})}
        status, answer_headers, raw = await self.api.send(
            method, "/api/v1" + path + (f"?{query}" if query else ""), body, sent
        )
        assert status == expect, (method, path, status, raw[:2000])
        self.statuses.add(status)
        media_type = answer_headers.get("Content-Type", "").split(";")[0].strip()
        if status >= 400:
            assert media_type == "application/json", (method, path, status, media_type)
            document = json.loads(raw)
            self._validate("ErrorResponse", document)
            return document
        schema = self.description.answer_schema(path, method, status, media_type)
        if media_type == "text/event-stream":
            found = []
            for number, (event, data) in enumerate(events(raw)):
                assert event == data["type"], f"event {event} with data of type {data['type']}"
                assert data["sequence_number"] == number, data
                self.description.validate_event(data)
                self.event_types.add(event)
                found.append(data)
            return found
        assert media_type == "application/json", (method, path, status, media_type)
        document = json.loads(raw)
        if schema is not None:
            self._validate(schema, document)
        return document

    def _validate(self, schema: str, document: Any) -> None:
        self.description.validate(schema, document)
        self.schemas.add(schema)
