"""The OpenAI wire layer (chat/web/openai) served as a door of its own, for the real openai SDK.

A small Starlette app stands where the front door is: it parses each request with the wire layer,
answers with its objects, streams its events from canned engine events and maps errors with it.
It runs under uvicorn on a loopback port (the `wire` fixture), and the official SDK, unchanged,
talks to it (the `client` fixture). Beside it: the canned answers, and `exact`, which reads an
object with the SDK's pydantic types and no field unknown to them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import openai
import pytest
import uvicorn
from pydantic import BaseModel, TypeAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from chat.engine import errors
from chat.engine.items import FunctionCall, Item, Message, Usage, function_call, function_call_output, message
from chat.engine.model import ArgumentsDelta, Completion, Finished, FunctionTool, ItemStarted, TextDelta
from chat.web import errors as web_errors
from chat.web.errors import headers_of, status_of
from chat.web.openai.errors import ChatError, InvalidParameter, error_object
from chat.web.openai.events import Done, Failed, StreamEvent, response_events
from chat.web.openai.objects import (
    ResponseHead,
    conversation_deleted,
    conversation_object,
    finish,
    item_list,
    item_object,
    response_deleted,
    response_object,
)
from chat.web.openai.requests import (
    ListQuery,
    ResponseOptions,
    parse_conversation_create,
    parse_conversation_update,
    parse_include_query,
    parse_items_create,
    parse_list_query,
    parse_response_request,
    parse_response_retrieve_query,
)
from tests.support.ports import free_port

MODEL = "gpt-4o-mini"
CREATED = 1_767_225_600
TEXT_PIECES = ("Hel", "lo, ", "world")
CALL_PIECES = ('{"ci', 'ty": "Os', 'lo"}')
WEATHER = {
    "type": "function",
    "name": "weather",
    "description": "The weather in a city now.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
# Fields OpenAI always sends in a response object, beside those the SDK requires.
# `usage` and `user` too, when there are some: OpenAI's description does not let them be null.
RESPONSE_KEYS = {
    "id", "object", "created_at", "status", "model", "output", "conversation", "previous_response_id",
    "tools", "tool_choice", "parallel_tool_calls", "temperature", "top_p", "max_output_tokens", "truncation",
    "metadata", "store", "error", "incomplete_details", "instructions", "text", "safety_identifier",
}  # fmt: skip


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def refusal(parse: Callable[[], Any]) -> InvalidParameter:
    with pytest.raises(InvalidParameter) as caught:
        parse()
    assert status_of(caught.value) == 400
    return caught.value


# OpenAI sends `store` in a response object, and `name` in response.function_call_arguments.done (its
# description requires it), but the SDK's types do not declare them.
BEYOND_THE_SDK = {"Response": {"store"}, "ResponseFunctionCallArgumentsDoneEvent": {"name"}}


def exact(sdk_type: Any, data: Any) -> Any:
    """The SDK's reading of `data`, which must have every field it requires and none it does not know."""
    value = TypeAdapter(sdk_type).validate_python(data)
    _known_fields_only(value)
    return value


def _known_fields_only(value: Any) -> None:
    if isinstance(value, BaseModel):
        unknown = set(value.model_extra or {}) - BEYOND_THE_SDK.get(type(value).__name__, set())
        assert not unknown, f"{type(value).__name__} does not know {sorted(unknown)}"
        for name in value.model_fields_set:
            _known_fields_only(getattr(value, name))
    elif isinstance(value, list):
        for member in value:
            _known_fields_only(member)


# ---------------------------------------------------------------------------------------------------
# Canned engine answers, keyed by the first word of the caller's last message


def text_events(finish: str = "stop") -> list[StreamEvent]:
    started = message("assistant", "")
    events: list[StreamEvent] = [ItemStarted(started)]
    events += [TextDelta(started.id, piece) for piece in TEXT_PIECES]
    completion = Completion((Message(started.id, "assistant", "".join(TEXT_PIECES)),), finish, Usage(11, 3))
    return [*events, Finished(completion), Done(completion, CREATED + 1)]


def call_events(preamble: str | None = None) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    outputs: list[Item] = []
    if preamble is not None:
        said = message("assistant", "")
        events += [ItemStarted(said), TextDelta(said.id, preamble)]
        outputs.append(Message(said.id, "assistant", preamble))
    call = function_call("call_weather", "weather", "")
    events += [ItemStarted(call)] + [ArgumentsDelta(call.id, piece) for piece in CALL_PIECES]
    outputs.append(FunctionCall(call.id, call.call_id, call.name, "".join(CALL_PIECES)))
    completion = Completion(tuple(outputs), "tool_calls", Usage(20, 9))
    return [*events, Finished(completion), Done(completion, CREATED + 1)]


REFUSAL_PIECES = ("I can't ", "help with ", "that.")
REFUSED = "".join(REFUSAL_PIECES)


def refusal_events() -> list[StreamEvent]:
    started = message("assistant", "", refusal=True)
    events: list[StreamEvent] = [ItemStarted(started)]
    events += [TextDelta(started.id, piece) for piece in REFUSAL_PIECES]
    completion = Completion((Message(started.id, "assistant", REFUSED, refusal=True),), "stop", Usage(11, 4))
    return [*events, Finished(completion), Done(completion, CREATED + 1)]


def failed_events() -> list[StreamEvent]:
    *answer, _, _ = text_events()
    return [
        *answer,
        Failed(errors.ModelUnavailable("The model's answer was cut off.", code="model_stream_interrupted")),
    ]


SCENARIOS: dict[str, Callable[[], list[StreamEvent]]] = {
    "hello": text_events,
    "weather": lambda: call_events("Let me look."),
    "call": call_events,
    "long": lambda: text_events("length"),
    "filtered": lambda: text_events("content_filter"),
    "fail": failed_events,
    "answer": lambda: text_events(),
    "refuse": refusal_events,
}


def scenario(inputs: tuple[Item, ...]) -> str:
    last = inputs[-1] if inputs else None
    if isinstance(last, Message):
        return last.text.split()[0].lower()
    return "answer"


async def replay(events: list[StreamEvent], raise_after: ChatError | None = None) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event
    if raise_after is not None:
        raise raise_after


# ---------------------------------------------------------------------------------------------------
# The front door's stand-in, served by uvicorn in a thread

CONVERSATION_ITEMS: tuple[Item, ...] = (
    message("user", "Weather in Oslo?"),
    function_call("call_1", "weather", '{"city": "Oslo"}'),
    function_call_output("call_1", "-3 C"),
    message("assistant", "It is -3 C in Oslo."),
    message("user", "Thanks"),
)
ERRORS: dict[int, ChatError] = {
    400: errors.InvalidRequest("The body is not valid JSON.", code="invalid_json"),
    401: web_errors.Unauthenticated("The client principal header is not base64 JSON.", code="invalid_client_principal"),
    403: web_errors.OriginNotAllowed("The origin is not allowed."),
    404: errors.ConversationNotFound(),
    409: errors.ConversationBusy("Another turn is running on this conversation; retry."),
    413: errors.PayloadTooLarge("The body is larger than 16,777,216 bytes.", code="request_too_large"),
    422: errors.IdempotencyKeyReused("The Idempotency-Key was used with another request."),
    429: errors.RateLimited("The model is rate limited; retry after the time in Retry-After.", retry_after=7),
    502: errors.ModelUnavailable("The model failed; try again."),
    503: errors.StorageUnavailable("Table Storage is unreachable."),
    504: errors.ModelTimeout("The model did not answer in time."),
}


def page(items: tuple[Item, ...], query: ListQuery) -> dict[str, Any]:
    ordered = list(items) if query.order == "asc" else list(reversed(items))
    start = 0
    if query.after is not None:
        start = next(index for index, item in enumerate(ordered) if item.id == query.after) + 1
    chunk = ordered[start : start + query.limit]
    return item_list(chunk, has_more=start + query.limit < len(ordered))


class WireServer:
    def __init__(self) -> None:
        self.parsed: list[Any] = []
        self.queries: list[list[tuple[str, str]]] = []
        route = self._route
        self.app = Starlette(
            routes=[
                Route("/v1/responses", route(self.create_response), methods=["POST"]),
                Route("/v1/responses/{id}", route(self.retrieve_response), methods=["GET"]),
                Route("/v1/responses/{id}", route(self.delete_response), methods=["DELETE"]),
                Route("/v1/responses/{id}/input_items", route(self.input_items), methods=["GET"]),
                Route("/v1/conversations", route(self.create_conversation), methods=["POST"]),
                Route("/v1/conversations/{id}", route(self.retrieve_conversation), methods=["GET"]),
                Route("/v1/conversations/{id}", route(self.update_conversation), methods=["POST"]),
                Route("/v1/conversations/{id}", route(self.delete_conversation), methods=["DELETE"]),
                Route("/v1/conversations/{id}/items", route(self.create_items), methods=["POST"]),
                Route("/v1/conversations/{id}/items", route(self.list_items), methods=["GET"]),
                Route("/v1/conversations/{id}/items/{item_id}", route(self.retrieve_item), methods=["GET"]),
                Route("/v1/conversations/{id}/items/{item_id}", route(self.delete_item), methods=["DELETE"]),
            ]
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> WireServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the wire test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def client(self, **options: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key="test-key", max_retries=0, **options)

    def _route(self, handler: Callable[..., Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Any:
            self.queries.append(request.query_params.multi_items())
            try:
                return await handler(request)
            except ChatError as e:
                status, headers, body = error_reply(e)
                return JSONResponse(body, status_code=status, headers=headers)

        return endpoint

    async def create_response(self, request: Request) -> Any:
        parsed = parse_response_request(await request.body(), refuse_instructions="x-refuse" in request.headers)
        self.parsed.append(parsed)
        head = ResponseHead(
            f"resp_{len(self.parsed)}",
            CREATED,
            parsed.model,
            parsed.options,
            parsed.conversation_id,
            parsed.previous_response_id,
        )
        kind = scenario(parsed.inputs)
        if kind == "raise":
            *answer, _, _ = text_events()
            events = replay(answer, raise_after=errors.ModelTimeout("The model did not answer in time."))
        else:
            events = replay(SCENARIOS[kind]())
        if parsed.stream:
            return StreamingResponse(response_events(head, events), media_type="text/event-stream")
        done = SCENARIOS[kind]()[-1]
        assert isinstance(done, Done)
        return JSONResponse(finish(response_object(head), done.completion, completed_at=done.completed_at))

    async def retrieve_response(self, request: Request) -> Any:
        response_id = request.path_params["id"]
        if response_id.startswith("resp_error_"):
            raise ERRORS[int(response_id.removeprefix("resp_error_"))]
        self.parsed.append(parse_response_retrieve_query(request.query_params.multi_items()))
        done = text_events()[-1]
        assert isinstance(done, Done)
        head = ResponseHead(response_id, CREATED, MODEL, ResponseOptions())
        return JSONResponse(finish(response_object(head), done.completion, completed_at=done.completed_at))

    async def delete_response(self, request: Request) -> Any:
        return JSONResponse(response_deleted(request.path_params["id"]))

    async def input_items(self, request: Request) -> Any:
        return JSONResponse(page(CONVERSATION_ITEMS, parse_list_query(request.query_params.multi_items())))

    async def create_conversation(self, request: Request) -> Any:
        parsed = parse_conversation_create(await request.body())
        self.parsed.append(parsed)
        return JSONResponse(conversation_object("conv_made", CREATED, parsed.metadata))

    async def retrieve_conversation(self, request: Request) -> Any:
        return JSONResponse(conversation_object(request.path_params["id"], CREATED, {"topic": "weather"}))

    async def update_conversation(self, request: Request) -> Any:
        parsed = parse_conversation_update(await request.body())
        self.parsed.append(parsed)
        return JSONResponse(conversation_object(request.path_params["id"], CREATED, parsed.metadata))

    async def delete_conversation(self, request: Request) -> Any:
        return JSONResponse(conversation_deleted(request.path_params["id"]))

    async def create_items(self, request: Request) -> Any:
        parsed = parse_items_create(await request.body(), request.query_params.multi_items())
        self.parsed.append(parsed)
        return JSONResponse(item_list(parsed.items, has_more=False))

    async def list_items(self, request: Request) -> Any:
        query = parse_list_query(request.query_params.multi_items())
        items = () if request.path_params["id"] == "conv_empty" else CONVERSATION_ITEMS
        return JSONResponse(page(items, query))

    async def retrieve_item(self, request: Request) -> Any:
        self.parsed.append(parse_include_query(request.query_params.multi_items()))
        found = next((item for item in CONVERSATION_ITEMS if item.id == request.path_params["item_id"]), None)
        if found is None:
            raise errors.NotFound("No such item.", code="item_not_found")
        return JSONResponse(item_object(found))

    async def delete_item(self, request: Request) -> Any:
        return JSONResponse(conversation_object(request.path_params["id"], CREATED, {}))


def serve() -> Iterator[WireServer]:
    """The `wire` fixture of a test module: `wire = pytest.fixture(scope="module", name="wire")(serve)`."""
    server = WireServer().start()
    yield server
    server.stop()


def sdk_client(wire: WireServer) -> Iterator[openai.OpenAI]:
    """The `client` fixture of a test module, the SDK pointed at `wire`."""
    with wire.client() as sdk:
        yield sdk


def error_reply(error: ChatError) -> tuple[int, dict[str, str], dict[str, Any]]:
    """What the door answers for an error: its status and headers, and the body in OpenAI's shape."""
    return status_of(error), headers_of(error), {"error": error_object(error)}


HEAD = ResponseHead("resp_1", CREATED, MODEL, ResponseOptions(tools=(FunctionTool("weather"),)), "conv_1")
