"""What /api/openapi.json says an answer is, as a check of a real answer: by path, method, status
and content type, each JSON body (each line of JSON lines, each event of server-sent events)
validated with jsonschema against the schema the document gives there."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOCUMENT_URI = "urn:openapi"


def pointer(*parts: str) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def events(body: bytes) -> list[tuple[str, Any]]:
    """Server-sent events as (event, parsed data)."""
    found = []
    for block in body.decode("utf-8").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line)
        if fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


class Described:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(DOCUMENT_URI, resource)

    def response(self, path: str, method: str, status: int) -> tuple[str, dict[str, Any]]:
        """The Response Object for a status (its exact code, else its range such as 5XX), and where it is.
        A 405 answers a method the path does not serve: every operation of the path gives it."""
        operations = self.document["paths"][path]
        if method.lower() not in operations and status == 405:
            method = next(key for key in operations if key != "parameters")
        responses = operations[method.lower()]["responses"]
        key = str(status) if str(status) in responses else f"{status // 100}XX"
        assert key in responses, f"{method} {path} does not say it answers {status}"
        where = pointer("paths", path, method.lower(), "responses", key)
        found = responses[key]
        if "$ref" in found:
            where = found["$ref"].removeprefix("#")
            found = self.document["components"]["responses"][where.rpartition("/")[2]]
        return where, found

    def validator(self, path: str, method: str, status: int, content_type: str) -> Draft202012Validator:
        where, response = self.response(path, method, status)
        assert content_type in response.get("content", {}), f"{method} {path} {status} has no {content_type}"
        ref = DOCUMENT_URI + "#" + where + pointer("content", content_type, "schema")
        return Draft202012Validator({"$ref": ref}, registry=self.registry)

    def query_parameters(self, path: str, method: str) -> set[str]:
        parameters = self.document["paths"][path][method.lower()].get("parameters", [])
        return {p["name"] for p in parameters if p.get("in") == "query"}

    def check(self, path: str, method: str, status: int, headers: Mapping[str, str], body: bytes) -> list[Any]:
        """Validate a real answer; the documents it held (a stream's lines or events' data), parsed."""
        _, response = self.response(path, method, status)
        for name, header in response.get("headers", {}).items():
            if header.get("required"):
                assert name in headers, f"{method} {path} {status} without its {name} header"
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if not body:
            assert method == "HEAD" or not response.get("content"), f"{method} {path} {status} has an empty body"
            return []
        validator = self.validator(path, method, status, content_type)
        if content_type == "application/jsonl":
            documents = [json.loads(line) for line in body.decode("utf-8").split("\n") if line]
        elif content_type == "text/event-stream":
            documents = []
            for event, data in events(body):
                assert event == data["type"], f"event {event} with data of type {data['type']}"
                documents.append(data)
        else:
            documents = [json.loads(body)]
        for document in documents:
            validator.validate(document)
        return documents
