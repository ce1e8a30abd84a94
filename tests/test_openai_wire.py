"""The OpenAI wire layer (chat/web/openai), read and written by the real openai SDK.

A small Starlette app in this module stands where the front door will: it parses each request with
the wire layer, answers with its objects, streams its events from canned engine events and maps
errors with it. It runs under uvicorn on a loopback port, and the official SDK, unchanged, talks
to it, so the bodies parsed are the bodies the SDK sends and the answers are read by the SDK's own
types, streaming helper included. The rest are unit tests of the parsers and serializers, each
object validated against the SDK's pydantic types with no field unknown to them.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import openai
import pytest
import uvicorn
from openai.types.conversations import (
    Conversation,
    ConversationDeletedResource,
    ConversationItem,
    ConversationItemList,
)
from openai.types.responses import (
    EasyInputMessageParam,
    Response,
    ResponseFunctionToolCall,
    ResponseInputItemParam,
    ResponseItem,
    ResponseItemList,
    ResponseOutputItem,
    ResponseOutputMessage,
    ResponseStreamEvent,
)
from pydantic import BaseModel, TypeAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from chat.engine import errors
from chat.engine.items import FunctionCall, Item, Message, Usage, function_call, function_call_output, message
from chat.engine.model import ArgumentsDelta, Completion, Finished, FunctionTool, ItemStarted, NamedFunction, TextDelta
from chat.web.openai.errors import ChatError, InvalidParameter, error_reply
from chat.web.openai.events import Done, Failed, StreamEvent, error_events, response_events
from chat.web.openai.objects import (
    ResponseHead,
    conversation_deleted,
    conversation_object,
    failed_response,
    finished_response,
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
    assert caught.value.status == 400
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
    401: errors.Unauthenticated("The client principal header is not base64 JSON.", code="invalid_client_principal"),
    403: errors.OriginNotAllowed("The origin is not allowed."),
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
                reply = error_reply(e)
                return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)

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
        if kind == "early":
            return StreamingResponse(error_events(ERRORS[429]), media_type="text/event-stream")
        if kind == "raise":
            *answer, _, _ = text_events()
            events = replay(answer, raise_after=errors.ModelTimeout("The model did not answer in time."))
        else:
            events = replay(SCENARIOS[kind]())
        if parsed.stream:
            return StreamingResponse(response_events(head, events), media_type="text/event-stream")
        done = SCENARIOS[kind]()[-1]
        assert isinstance(done, Done)
        return JSONResponse(finished_response(head, done.completion, completed_at=done.completed_at))

    async def retrieve_response(self, request: Request) -> Any:
        response_id = request.path_params["id"]
        if response_id.startswith("resp_error_"):
            raise ERRORS[int(response_id.removeprefix("resp_error_"))]
        self.parsed.append(parse_response_retrieve_query(request.query_params.multi_items()))
        done = text_events()[-1]
        assert isinstance(done, Done)
        head = ResponseHead(response_id, CREATED, MODEL, ResponseOptions())
        return JSONResponse(finished_response(head, done.completion, completed_at=done.completed_at))

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
            raise errors.ChatError("No such item.", code="item_not_found", status=404)
        return JSONResponse(item_object(found))

    async def delete_item(self, request: Request) -> Any:
        return JSONResponse(conversation_object(request.path_params["id"], CREATED, {}))


@pytest.fixture(scope="module")
def wire() -> Iterator[WireServer]:
    server = WireServer().start()
    yield server
    server.stop()


@pytest.fixture
def client(wire: WireServer) -> Iterator[openai.OpenAI]:
    with wire.client() as sdk:
        yield sdk


# ---------------------------------------------------------------------------------------------------
# Request bodies as the SDK sends them


def test_a_string_input_is_one_user_message(client, wire):
    client.responses.create(model=MODEL, input="hello there")
    parsed = wire.parsed[-1]
    assert [(item.kind, item.role, item.text) for item in parsed.inputs] == [("message", "user", "hello there")]
    assert (parsed.model, parsed.stream, parsed.conversation_id, parsed.previous_response_id) == (
        MODEL,
        False,
        None,
        None,
    )
    assert parsed.options == ResponseOptions()


def test_every_message_shape_the_sdk_sends_becomes_a_message_item(client, wire):
    easy: EasyInputMessageParam = {"role": "user", "content": "hello, short form"}
    typed: ResponseInputItemParam = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Two "}, {"type": "input_text", "text": "parts"}],
    }
    echoed: ResponseInputItemParam = {
        "id": "msg_from_before",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "An earlier answer", "annotations": []}],
    }
    easy_assistant: EasyInputMessageParam = {"role": "assistant", "content": "Said before", "type": "message"}
    client.responses.create(
        model=MODEL, input=[easy, typed, echoed, easy_assistant, {"role": "user", "content": "hello"}]
    )
    inputs = wire.parsed[-1].inputs
    assert [(item.role, item.text) for item in inputs] == [
        ("user", "hello, short form"),
        ("user", "Two parts"),
        ("assistant", "An earlier answer"),
        ("assistant", "Said before"),
        ("user", "hello"),
    ]
    # IDs are the server's: an echoed one is not kept, and every item has its own.
    assert all(item.id.startswith("msg_") and item.id != "msg_from_before" for item in inputs)
    assert len({item.id for item in inputs}) == len(inputs)


def test_an_assistant_refusal_sent_back_becomes_a_refusal_message(client, wire):
    refused: ResponseInputItemParam = {
        "id": "msg_refused_before",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "refusal", "refusal": "I can't "}, {"type": "refusal", "refusal": "do that."}],
    }
    client.responses.create(
        model=MODEL, input=[{"role": "user", "content": "Do it"}, refused, {"role": "user", "content": "answer this"}]
    )
    inputs = wire.parsed[-1].inputs
    assert [(item.role, item.text, item.refusal) for item in inputs] == [
        ("user", "Do it", False),
        ("assistant", "I can't do that.", True),
        ("user", "answer this", False),
    ]
    assert inputs[1].id != "msg_refused_before"


@pytest.mark.parametrize(
    ("content", "role", "param", "code"),
    [
        ([{"type": "output_text", "text": "Well"}, {"type": "refusal", "refusal": "No."}], "assistant",
         "input[0].content[0].type", "invalid_value"),
        ([{"type": "refusal", "refusal": "No."}, {"type": "output_text", "text": "Well"}], "assistant",
         "input[0].content[1].type", "invalid_value"),
        ([{"type": "refusal", "refusal": "No."}], "user", "input[0].content[0].type", "invalid_value"),
        ([{"type": "refusal", "refusal": 7}], "assistant", "input[0].content[0].refusal", "invalid_type"),
        ([{"type": "refusal"}], "assistant", "input[0].content[0].refusal", "missing_required_parameter"),
        ([{"type": "refusal", "refusal": "No.", "why": 1}], "assistant", "input[0].content[0].why",
         "unknown_parameter"),
    ],
)  # fmt: skip
def test_a_refusal_part_that_does_not_fit_is_a_400_naming_it(content, role, param, code):
    error = refusal(lambda: parse_response_request(body(model=MODEL, input=[{"role": role, "content": content}])))
    assert (error.param, error.code) == (param, code)


def test_function_calls_and_outputs_in_input_become_items(client, wire):
    items: list[ResponseInputItemParam] = [
        {"role": "user", "content": "Weather in Oslo and Bergen?"},
        {"type": "function_call", "call_id": "call_a", "name": "weather", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call", "call_id": "call_b", "name": "weather", "arguments": '{"city": "Bergen"}'},
        {"type": "function_call_output", "call_id": "call_a", "output": "-3 C"},
        {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "4 C"}]},
    ]
    client.responses.create(model=MODEL, input=items, tools=[WEATHER])
    inputs = wire.parsed[-1].inputs
    assert [(item.kind, getattr(item, "call_id", None)) for item in inputs] == [
        ("message", None),
        ("function_call", "call_a"),
        ("function_call", "call_b"),
        ("function_call_output", "call_a"),
        ("function_call_output", "call_b"),
    ]
    assert (inputs[2].name, inputs[2].arguments) == ("weather", '{"city": "Bergen"}')
    assert (inputs[3].output, inputs[4].output) == ("-3 C", "4 C")


def test_the_sdk_s_stateless_tool_loop_sends_back_what_it_was_given(client, wire):
    question = {"role": "user", "content": "weather in Oslo?"}
    first = client.responses.create(model=MODEL, input=[question], tools=[WEATHER])
    said, call = first.output
    assert isinstance(said, ResponseOutputMessage) and isinstance(call, ResponseFunctionToolCall)
    # The SDK's own output objects go back as input, with their ids, statuses and empty annotations.
    second = client.responses.create(
        model=MODEL,
        input=[question, *first.output, {"type": "function_call_output", "call_id": call.call_id, "output": "-3 C"}],
        tools=[WEATHER],
    )
    inputs = wire.parsed[-1].inputs
    assert [item.kind for item in inputs] == ["message", "message", "function_call", "function_call_output"]
    assert (inputs[1].role, inputs[1].text) == ("assistant", "Let me look.")
    assert (inputs[2].call_id, inputs[2].name, inputs[2].arguments) == ("call_weather", "weather", '{"city": "Oslo"}')
    assert inputs[3].call_id == "call_weather"
    assert second.output_text == "Hello, world"


def test_options_reach_the_request_and_come_back_in_the_response(client, wire):
    response = client.responses.create(
        model=MODEL,
        input="hello",
        conversation={"id": "conv_1"},
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "weather"},
        parallel_tool_calls=False,
        max_output_tokens=64,
        temperature=0.2,
        top_p=0.9,
        truncation="disabled",
        metadata={"topic": "weather"},
        store=False,
        safety_identifier="caller-hash",
        user="user-1",
        include=["reasoning.encrypted_content"],
    )
    parsed = wire.parsed[-1]
    assert parsed.conversation_id == "conv_1" and parsed.include == ("reasoning.encrypted_content",)
    assert parsed.options == ResponseOptions(
        tools=(FunctionTool("weather", WEATHER["description"], WEATHER["parameters"], None),),
        tool_choice=NamedFunction("weather"),
        parallel_tool_calls=False,
        max_output_tokens=64,
        temperature=0.2,
        top_p=0.9,
        truncation="disabled",
        metadata={"topic": "weather"},
        store=False,
        safety_identifier="caller-hash",
        user="user-1",
    )
    assert response.conversation.id == "conv_1"
    assert (response.tool_choice.type, response.tool_choice.name) == ("function", "weather")
    assert (response.tools[0].name, response.tools[0].parameters) == ("weather", WEATHER["parameters"])
    assert (response.parallel_tool_calls, response.max_output_tokens, response.temperature, response.top_p) == (
        False,
        64,
        0.2,
        0.9,
    )
    assert (response.truncation, response.metadata, response.store) == ("disabled", {"topic": "weather"}, False)
    assert (response.safety_identifier, response.user) == ("caller-hash", "user-1")


def test_a_conversation_id_as_a_string_and_a_previous_response_id(client, wire):
    client.responses.create(model=MODEL, input="hello", conversation="19:abc@thread.tacv2;messageid=1")
    assert wire.parsed[-1].conversation_id == "19:abc@thread.tacv2;messageid=1"
    response = client.responses.create(model=MODEL, input="hello", previous_response_id="resp_1")
    assert (wire.parsed[-1].previous_response_id, response.previous_response_id) == ("resp_1", "resp_1")


def test_instructions_and_system_messages_are_the_callers_kept_in_order(client, wire):
    response = client.responses.create(
        model=MODEL,
        instructions="Be brief.",
        input=[
            {"role": "system", "content": "Answer in French."},
            {"role": "developer", "content": "Sign with your name."},
            {"role": "user", "content": "hello"},
        ],
    )
    parsed = wire.parsed[-1]
    assert parsed.options.instructions == response.instructions == "Be brief."
    assert [(item.role, item.text) for item in parsed.inputs] == [
        ("system", "Answer in French."),
        ("developer", "Sign with your name."),
        ("user", "hello"),
    ]


def test_a_deployment_that_refuses_instructions_says_so_by_name(client, wire):
    before = len(wire.parsed)
    with wire.client(default_headers={"x-refuse": "1"}) as refusing:
        with pytest.raises(openai.BadRequestError) as caught:
            refusing.responses.create(model=MODEL, input="hello", instructions="Be brief.")
        assert (caught.value.param, caught.value.code) == ("instructions", "instructions_not_allowed")
        with pytest.raises(openai.BadRequestError) as caught:
            refusing.responses.create(model=MODEL, input=[{"role": "developer", "content": "Be brief."}])
        assert (caught.value.param, caught.value.code) == ("input[0].role", "system_message_not_allowed")
    assert len(wire.parsed) == before


@pytest.mark.parametrize(
    ("options", "param", "code"),
    [
        ({"reasoning": {"effort": "low"}}, "reasoning", "unsupported_parameter"),
        (
            {"text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}}},
            "text",
            "unsupported_parameter",
        ),
        ({"background": True}, "background", "unsupported_parameter"),
        ({"extra_body": {"frobnicate": 1}}, "frobnicate", "unknown_parameter"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "unsupported_type"),
        ({"include": ["message.output_text.logprobs"]}, "include[0]", "invalid_value"),
        (
            {
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "image_url": "https://example.com/a.png"}]}
                ]
            },
            "input[0].content[0].type",
            "unsupported_type",
        ),
        ({"input": [{"type": "reasoning", "id": "rs_1", "summary": []}]}, "input[0].type", "unsupported_type"),
    ],
)
def test_what_this_server_cannot_honour_is_a_400_naming_it(client, wire, options, param, code):
    before = len(wire.parsed)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(**{"model": MODEL, "input": "hello", **options})
    error = caught.value
    assert (error.status_code, error.type, error.param, error.code) == (400, "invalid_request_error", param, code)
    assert f"'{param}'" in error.body["message"]
    assert len(wire.parsed) == before


# ---------------------------------------------------------------------------------------------------
# Request parsing: refusals and bounds


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reasoning", {"effort": "high"}),
        ("text", {"format": {"type": "json_object"}}),
        ("text", {"verbosity": "low"}),
        ("background", True),
        ("background_options", {"completion_window": "2h"}),
        ("prompt", {"id": "pmpt_1"}),
        ("prompt_cache_retention", "24h"),
        ("prompt_cache_options", {"ttl": "30m"}),
        ("service_tier", "flex"),
        ("top_logprobs", 3),
        ("max_tool_calls", 2),
        ("stream_options", {"include_usage": True}),
        ("stream_options", {"include_obfuscation": "yes"}),
        ("stream_options", "on"),
        ("reasoning", {"summary": "auto"}),
        ("reasoning", {"effort": None, "summary": None, "generate_summary": "auto"}),
        ("reasoning", "high"),
        ("context_management", [{"type": "compaction"}]),
        ("moderation", {"model": "omni-moderation-latest"}),
        ("image", {"context_compression": "enabled"}),
        ("access_programs", {"cyber": "standard"}),
    ],
)
def test_each_field_not_honoured_is_refused_by_name(field, value):
    error = refusal(lambda: parse_response_request(body(model=MODEL, **{field: value})))
    assert (error.param, error.code) == (field, "unsupported_parameter")
    assert f"'{field}'" in error.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reasoning", None),
        ("text", {"format": {"type": "text"}}),
        ("text", {}),
        ("background", False),
        ("service_tier", "auto"),
        ("service_tier", "default"),
        ("top_logprobs", 0),
        ("max_tool_calls", None),
        ("stream_options", {"include_obfuscation": False}),
        ("stream_options", {"include_obfuscation": True}),
        ("stream_options", {}),
        ("stream_options", None),
        ("reasoning", {}),
        ("reasoning", {"effort": None, "summary": None}),
        ("reasoning", {"effort": None, "summary": None, "generate_summary": None}),
        ("context_management", []),
        ("prompt", None),
        ("prompt_cache_key", None),
    ],
)
def test_a_field_not_honoured_is_accepted_when_it_asks_for_nothing(field, value):
    parsed = parse_response_request(body(model=MODEL, input="hello", **{field: value}))
    assert [item.text for item in parsed.inputs] == ["hello"]


def test_a_prompt_cache_key_is_kept_for_the_model():
    parsed = parse_response_request(body(model=MODEL, input="hello", prompt_cache_key="tenant-7/chat"))
    assert parsed.options.prompt_cache_key == "tenant-7/chat"
    assert parse_response_request(body(model=MODEL, input="hello")).options.prompt_cache_key is None


@pytest.mark.parametrize(
    ("value", "code"), [(7, "invalid_type"), ("k" * 257, "string_above_max_length"), ("", "empty_string")]
)
def test_a_prompt_cache_key_that_is_no_short_string_is_a_400(value, code):
    error = refusal(lambda: parse_response_request(body(model=MODEL, input="hello", prompt_cache_key=value)))
    assert (error.param, error.code) == ("prompt_cache_key", code)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"frobnicate": 1}, "frobnicate"),
        ({"input": [{"role": "user", "content": "hi", "name": "bob"}]}, "input[0].name"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_text", "text": "hi", "x": 1}]}]},
            "input[0].content[0].x",
        ),
        ({"tools": [{**WEATHER, "examples": []}]}, "tools[0].examples"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "name": "weather", "why": 1}}, "tool_choice.why"),
        ({"conversation": {"id": "conv_1", "owner": "me"}}, "conversation.owner"),
        (
            {"input": [{"type": "function_call_output", "call_id": "c", "output": "x", "name": "weather"}]},
            "input[0].name",
        ),
        ({"tools": [{**WEATHER, "defer_loading": True}]}, "tools[0].defer_loading"),
        ({"\ud800key": 1}, "\\ud800key"),
        ({"k" * 10_000: 1}, "k" * 64 + "..."),
    ],
)
def test_unknown_and_refused_fields_are_named_at_any_depth(fields, param):
    error = refusal(lambda: parse_response_request(body(model=MODEL, **fields)))
    assert error.param == param
    assert error.code in ("unknown_parameter", "unsupported_parameter")


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "object_above_max_properties"),
        ({"metadata": {"k" * 65: "v"}}, "metadata." + "k" * 64 + "...", "string_above_max_length"),
        ({"metadata": {"k": "v" * 513}}, "metadata.k", "string_above_max_length"),
        ({"metadata": {"k": 1}}, "metadata.k", "invalid_type"),
        ({"metadata": ["k"]}, "metadata", "invalid_type"),
        ({"input": [{"role": "user", "content": "x"}] * 1001}, "input", "array_above_max_length"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_text", "text": "x"}] * 101}]},
            "input[0].content",
            "array_above_max_length",
        ),
        ({"tools": [{**WEATHER, "name": f"t{i}"} for i in range(129)]}, "tools", "array_above_max_length"),
        ({"include": ["reasoning.encrypted_content"] * 17}, "include", "array_above_max_length"),
        ({"max_output_tokens": 15}, "max_output_tokens", "invalid_value"),
        ({"max_output_tokens": 2**31}, "max_output_tokens", "invalid_value"),
        ({"temperature": 2.5}, "temperature", "invalid_value"),
        ({"top_p": -0.1}, "top_p", "invalid_value"),
        ({"temperature": "0.5"}, "temperature", "invalid_type"),
        ({"stream": "true"}, "stream", "invalid_type"),
        ({"max_output_tokens": 64.0}, "max_output_tokens", "invalid_type"),
        ({"store": 1}, "store", "invalid_type"),
        ({"truncation": "middle"}, "truncation", "invalid_value"),
        ({"safety_identifier": "s" * 129}, "safety_identifier", "string_above_max_length"),
        ({"model": ""}, "model", "empty_string"),
        ({"model": "m" * 257}, "model", "string_above_max_length"),
        ({"previous_response_id": "@results.ress"}, "previous_response_id", "invalid_value"),
        ({"conversation": ""}, "conversation", "empty_string"),
        ({"conversation": "c" * 1025}, "conversation", "string_above_max_length"),
        (
            {"input": [{"type": "function_call", "call_id": "c", "name": "bad name", "arguments": "{}"}]},
            "input[0].name",
            "invalid_value",
        ),
        (
            {"input": [{"type": "function_call_output", "output": "x"}]},
            "input[0].call_id",
            "missing_required_parameter",
        ),
        ({"input": [{"role": "user"}]}, "input[0].content", "missing_required_parameter"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role", "invalid_value"),
        (
            {"input": [{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]},
            "input[0].content[0].type",
            "invalid_value",
        ),
        ({"input": ["hello"]}, "input[0]", "invalid_type"),
        ({"input": 5}, "input", "invalid_type"),
        ({"input": "\ud800"}, "input", "invalid_text"),
        (
            {"tools": [{"type": "function", "name": "deep", "parameters": json.loads('{"a":' * 40 + "1" + "}" * 40)}]},
            "tools[0].parameters",
            "schema_too_deep",
        ),
        ({"tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
        (
            {"tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []}},
            "tool_choice.type",
            "unsupported_type",
        ),
    ],
)
def test_bad_values_and_sizes_are_a_400_naming_the_field(fields, param, code):
    error = refusal(lambda: parse_response_request(body(**{"model": MODEL, **fields})))
    assert (error.param, error.code) == (param, code)
    assert "Traceback" not in error.message and len(error.message) < 400


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"input": "hello"}, "model", "missing_required_parameter"),
        (
            {"model": MODEL, "conversation": "c", "previous_response_id": "resp_1"},
            "conversation",
            "mutually_exclusive_parameters",
        ),
        (
            {"model": MODEL, "tools": [WEATHER], "tool_choice": {"type": "function", "name": "other"}},
            "tool_choice.name",
            "invalid_value",
        ),
        ({"model": MODEL, "tool_choice": "required"}, "tool_choice", "invalid_value"),
        ({"model": MODEL, "tools": [WEATHER, WEATHER]}, "tools[1].name", "invalid_value"),
    ],
)
def test_fields_that_contradict_each_other_are_a_400(fields, param, code):
    error = refusal(lambda: parse_response_request(json.dumps(fields).encode()))
    assert (error.param, error.code) == (param, code)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b'{"model": "m", "temperature": NaN}', "invalid_json"),
        (b'{"model": "m", "temperature": Infinity}', "invalid_json"),
        (b'{"model": "m", "temperature": -Infinity}', "invalid_json"),
        (b'{"model": "m", "input": "a", "input": "b"}', "invalid_json"),
        (b'{"model": "m", "metadata": {"k": "1", "k": "2"}}', "invalid_json"),
        (b'{"model": "m", "input": [{"role": "user", "content": "a", "role": "user"}]}', "invalid_json"),
        (b'{"model": "m", "max_output_tokens": ' + b"9" * 5000 + b"}", "invalid_json"),
        (b"[" * 100_000, "invalid_json"),
        (b'{"model": "\xff"}', "invalid_encoding"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_400(raw, code):
    error = refusal(lambda: parse_response_request(raw))
    assert (error.code, error.param) == (code, None)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "m", "input": [' + b"[]," * 100_000 + b"[]]}",
        b'{"model": "m", "metadata": {"a": [' + b"0," * 100_000 + b"0]}}",
    ],
    ids=["arrays", "numbers"],
)
def test_a_body_holding_too_many_json_values_is_refused_before_they_are_built(raw):
    # The door's bound is the chat routes' (chat/web/json_body.py): a 300 KB body of empty lists
    # would otherwise become 100,000 lists before a validator saw the first.
    with pytest.raises(errors.PayloadTooLarge) as raised:
        parse_response_request(raw)
    assert raised.value.code == "json_too_complex" and raised.value.status == 413


def test_a_bad_body_stops_at_its_first_error():
    # Counted before their entries are validated, which alone would make an error of each one.
    huge = {f"key{i}": i for i in range(50_000)}
    error = refusal(lambda: parse_response_request(body(model=MODEL, metadata=huge)))
    assert error.code == "object_above_max_properties" and "50000" in error.message
    # (Within the body's bound on JSON values: 15,000 items are 75,000 of them.)
    many = [{"role": "user", "content": "x"}] * 15_000
    error = refusal(lambda: parse_response_request(body(model=MODEL, input=many)))
    assert error.code == "array_above_max_length" and "15000" in error.message
    error = refusal(lambda: parse_response_request(body(model=MODEL, input=[{"role": "nobody"}] * 1_000)))
    assert error.param == "input[0].role"
    unknown = {f"field{i}": 1 for i in range(50_000)}
    error = refusal(lambda: parse_response_request(body(model=MODEL, **unknown)))
    assert error.param == "field0"


def test_conversation_bodies():
    made = parse_conversation_create(
        body(items=[{"role": "user", "content": "hello"}, {"role": "assistant", "content": "Hi"}], metadata={"a": "b"})
    )
    assert [(item.role, item.text) for item in made.items] == [("user", "hello"), ("assistant", "Hi")]
    assert made.metadata == {"a": "b"}
    assert parse_conversation_create(b"") == parse_conversation_create(b"{}")
    assert parse_conversation_create(b"{}").items == ()
    error = refusal(lambda: parse_conversation_create(body(items=[{"role": "user", "content": "x"}] * 21)))
    assert (error.param, error.code) == ("items", "array_above_max_length")
    assert [
        item.role for item in parse_conversation_create(body(items=[{"role": "system", "content": "x"}])).items
    ] == ["system"]
    refusing = lambda: parse_conversation_create(  # noqa: E731
        body(items=[{"role": "system", "content": "x"}]), refuse_instructions=True
    )
    error = refusal(refusing)
    assert (error.param, error.code) == ("items[0].role", "system_message_not_allowed")
    error = refusal(lambda: parse_conversation_create(body(title="mine")))
    assert (error.param, error.code) == ("title", "unknown_parameter")

    assert parse_conversation_update(body(metadata={"topic": "x"})).metadata == {"topic": "x"}
    assert parse_conversation_update(body(metadata=None)).metadata == {}
    error = refusal(lambda: parse_conversation_update(b"{}"))
    assert (error.param, error.code) == ("metadata", "missing_required_parameter")

    added = parse_items_create(body(items=[{"type": "function_call_output", "call_id": "c", "output": "ok"}]))
    assert [item.kind for item in added.items] == ["function_call_output"] and added.include == ()
    error = refusal(lambda: parse_items_create(body(items=[])))
    assert (error.param, error.code) == ("items", "empty_array")
    error = refusal(lambda: parse_items_create(b"{}"))
    assert (error.param, error.code) == ("items", "missing_required_parameter")


def test_list_queries():
    assert parse_list_query([]) == ListQuery(None, 20, "desc", ())
    query = parse_list_query(
        [
            ("after", "msg_1"),
            ("limit", "100"),
            ("order", "asc"),
            ("include[]", "reasoning.encrypted_content"),
            ("code", "k"),
        ]
    )
    assert query == ListQuery("msg_1", 100, "asc", ("reasoning.encrypted_content",))
    assert parse_include_query([("include", "file_search_call.results")]) == ("file_search_call.results",)
    assert parse_response_retrieve_query([("stream", "false")]) == ()
    for bad, param in [
        ([("limit", "0")], "limit"),
        ([("limit", "101")], "limit"),
        ([("limit", "ten")], "limit"),
        ([("limit", "１")], "limit"),
        ([("limit", "10.0")], "limit"),
        ([("limit", "5"), ("limit", "6")], "limit"),
        ([("order", "sideways")], "order"),
        ([("after", "msg 1")], "after"),
        ([("after", "x" * 257)], "after"),
        ([("include", "message.output_text.logprobs")], "include"),
        ([("sort", "asc")], "sort"),
    ]:
        assert refusal(lambda bad=bad: parse_list_query(bad)).param == param
    assert refusal(lambda: parse_response_retrieve_query([("stream", "true")])).param == "stream"
    assert refusal(lambda: parse_response_retrieve_query([("starting_after", "3")])).param == "starting_after"


# ---------------------------------------------------------------------------------------------------
# Objects, read by the SDK's types

HEAD = ResponseHead("resp_1", CREATED, MODEL, ResponseOptions(tools=(FunctionTool("weather"),)), "conv_1")


def answer(*outputs: Item, finish: str = "stop") -> Completion:
    return Completion(outputs, finish, Usage(prompt_tokens=12, completion_tokens=5))


def test_the_skeleton_of_a_response_reads_as_one_in_progress():
    data = response_object(HEAD)
    response = exact(Response, data)
    assert set(data) >= RESPONSE_KEYS
    assert (response.status, response.output, response.usage, response.error) == ("in_progress", [], None, None)
    assert (response.conversation.id, response.tools[0].name, response.tool_choice) == ("conv_1", "weather", "auto")
    assert (response.instructions, response.text.format.type, response.completed_at) == (None, "text", None)


def test_a_completed_response_with_text_and_a_call():
    said = message("assistant", "Let me look.")
    call = function_call("call_1", "weather", '{"city": "Oslo"}')
    data = finished_response(HEAD, answer(said, call, finish="tool_calls"), completed_at=CREATED + 2)
    response = exact(Response, data)
    assert set(data) >= RESPONSE_KEYS
    assert (response.status, response.completed_at, response.incomplete_details) == ("completed", CREATED + 2, None)
    assert response.output_text == "Let me look."
    message_out, call_out = response.output
    assert isinstance(message_out, ResponseOutputMessage) and message_out.id == said.id
    assert (message_out.status, message_out.content[0].annotations) == ("completed", [])
    assert isinstance(call_out, ResponseFunctionToolCall)
    assert (call_out.id, call_out.call_id, call_out.name, call_out.arguments, call_out.status) == (
        call.id,
        "call_1",
        "weather",
        '{"city": "Oslo"}',
        "completed",
    )
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (12, 5, 17)
    assert (usage.input_tokens_details.cached_tokens, usage.output_tokens_details.reasoning_tokens) == (0, 0)


@pytest.mark.parametrize(("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")])
def test_an_answer_cut_short_is_an_incomplete_response(finish, reason):
    data = finished_response(HEAD, answer(message("assistant", "Hel"), finish=finish), completed_at=CREATED + 2)
    response = exact(Response, data)
    assert (response.status, response.incomplete_details.reason, response.completed_at) == ("incomplete", reason, None)
    assert response.output[0].status == "incomplete"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.RateLimited("The model is rate limited.", retry_after=3), "rate_limit_exceeded"),
        (errors.ContentFiltered("The prompt was filtered by the model's content policy."), "invalid_prompt"),
        (errors.ModelUnavailable("The model's answer was cut off.", code="model_stream_interrupted"), "server_error"),
        (errors.StorageUnavailable("Table Storage is unreachable."), "server_error"),
    ],
)
def test_a_failed_response_carries_its_error(error, code):
    data = failed_response(HEAD, error, [message("assistant", "Hel")])
    response = exact(Response, data)
    assert (response.status, response.error.code, response.error.message) == ("failed", code, error.message)
    assert (response.output[0].status, response.usage) == ("incomplete", None)


def test_items_read_as_conversation_items_and_response_items():
    shapes = {
        "user": message("user", "Weather?"),
        "assistant": message("assistant", "Sunny."),
        "call": function_call("call_1", "weather", "{}"),
        "output": function_call_output("call_1", "-3 C"),
    }
    for name, item in shapes.items():
        data = item_object(item)
        assert data["id"] == item.id and data["status"] == "completed"
        for sdk_type in (ConversationItem, ResponseItem):
            read = exact(sdk_type, data)
            assert read.type == item.kind and read.id == item.id, (name, sdk_type)
    assert item_object(shapes["user"])["content"] == [{"type": "input_text", "text": "Weather?"}]
    assert item_object(shapes["assistant"])["content"] == [
        {"type": "output_text", "text": "Sunny.", "annotations": [], "logprobs": []}
    ]
    assert exact(ResponseOutputItem, item_object(shapes["call"])).call_id == "call_1"
    assert exact(ResponseOutputItem, item_object(shapes["assistant"])).role == "assistant"


def test_a_refusal_is_a_message_with_a_refusal_part_and_no_output_text():
    refused = message("assistant", REFUSED, refusal=True)
    data = finished_response(HEAD, answer(refused), completed_at=CREATED + 2)
    response = exact(Response, data)
    assert (response.status, response.output_text) == ("completed", "")
    [shown] = response.output
    assert isinstance(shown, ResponseOutputMessage) and shown.id == refused.id
    assert (shown.content[0].type, shown.content[0].refusal) == ("refusal", REFUSED)
    assert item_object(refused)["content"] == [{"type": "refusal", "refusal": REFUSED}]
    for sdk_type in (ConversationItem, ResponseItem):
        assert exact(sdk_type, item_object(refused)).content[0].type == "refusal"


def test_lists_conversations_and_deletions():
    data = item_list(CONVERSATION_ITEMS[:2], has_more=True)
    for sdk_type in (ConversationItemList, ResponseItemList):
        read = exact(sdk_type, data)
        assert (read.first_id, read.last_id, read.has_more) == (
            CONVERSATION_ITEMS[0].id,
            CONVERSATION_ITEMS[1].id,
            True,
        )
    assert item_list((), has_more=False) == {
        "object": "list",
        "data": [],
        "first_id": "",
        "last_id": "",
        "has_more": False,
    }
    conversation = exact(Conversation, conversation_object("conv_1", CREATED, {"topic": "x"}))
    assert (conversation.id, conversation.created_at, conversation.metadata) == ("conv_1", CREATED, {"topic": "x"})
    deleted = exact(ConversationDeletedResource, conversation_deleted("conv_1"))
    assert (deleted.id, deleted.deleted) == ("conv_1", True)
    assert response_deleted("resp_1") == {"id": "resp_1", "object": "response.deleted", "deleted": True}


# ---------------------------------------------------------------------------------------------------
# Streamed events


async def collect(chunks: AsyncIterator[bytes]) -> list[dict[str, Any]]:
    """The events of a stream, each checked for OpenAI's framing and read by the SDK's event type."""
    events = []
    async for chunk in chunks:
        match = re.fullmatch(rb"event: ([a-z_.]+)\ndata: (.+)\n\n", chunk, re.DOTALL)
        assert match, chunk
        data = json.loads(match.group(2))
        assert data["type"] == match.group(1).decode()
        exact(ResponseStreamEvent, data)
        events.append(data)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    return events


TEXT_STREAM = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]
CALL_STREAM = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.mark.anyio
async def test_a_streamed_text_answer_is_framed_and_ordered_as_openai_sends_it():
    events = await collect(response_events(HEAD, replay(text_events())))
    assert [event["type"] for event in events] == TEXT_STREAM
    added, part = events[2], events[3]
    assert added["item"]["content"] == [] and added["item"]["status"] == "in_progress"
    assert part["part"] == {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    assert [event["delta"] for event in events[4:7]] == list(TEXT_PIECES)
    assert {(event["item_id"], event["output_index"], event["content_index"]) for event in events[3:9]} == {
        (added["item"]["id"], 0, 0)
    }
    assert events[7]["text"] == events[8]["part"]["text"] == "Hello, world"
    assert events[9]["item"]["status"] == "completed"
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["output"] == [events[9]["item"]]
    assert final["usage"]["total_tokens"] == 14 and final["completed_at"] == CREATED + 1


@pytest.mark.anyio
async def test_a_streamed_text_then_call_closes_each_item_before_the_next():
    events = await collect(response_events(HEAD, replay(call_events("Let me look."))))
    kinds = [event["type"] for event in events]
    assert kinds[:11] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
    ]
    call_added = events[8]
    assert (call_added["output_index"], call_added["item"]["arguments"], call_added["item"]["call_id"]) == (
        1,
        "",
        "call_weather",
    )
    assert events[-3]["arguments"] == '{"city": "Oslo"}'
    assert [item["type"] for item in events[-1]["response"]["output"]] == ["message", "function_call"]


REFUSAL_STREAM = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.refusal.delta",
    "response.refusal.delta",
    "response.refusal.delta",
    "response.refusal.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.mark.anyio
async def test_a_streamed_refusal_is_a_refusal_part_with_its_own_deltas():
    events = await collect(response_events(HEAD, replay(refusal_events())))
    assert [event["type"] for event in events] == REFUSAL_STREAM
    added, part = events[2], events[3]
    assert added["item"]["content"] == [] and part["part"] == {"type": "refusal", "refusal": ""}
    assert [event["delta"] for event in events[4:7]] == list(REFUSAL_PIECES)
    assert all("logprobs" not in event for event in events[4:8])
    assert {(event["item_id"], event["output_index"], event["content_index"]) for event in events[3:9]} == {
        (added["item"]["id"], 0, 0)
    }
    assert events[7]["refusal"] == REFUSED and "text" not in events[7]
    assert events[8]["part"] == {"type": "refusal", "refusal": REFUSED}
    assert events[9]["item"]["content"] == [{"type": "refusal", "refusal": REFUSED}]
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["output"] == [events[9]["item"]]


@pytest.mark.anyio
async def test_a_refusal_cut_short_shows_the_refusal_so_far():
    *started, _, _ = refusal_events()
    failure = Failed(errors.ModelUnavailable("The model's answer was cut off.", code="model_stream_interrupted"))
    events = await collect(response_events(HEAD, replay([*started[:2], failure])))
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["output"][0]["content"] == [{"type": "refusal", "refusal": REFUSAL_PIECES[0]}]


@pytest.mark.anyio
async def test_a_stream_cut_short_ends_incomplete():
    events = await collect(response_events(HEAD, replay(text_events("length"))))
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-2]["item"]["status"] == events[-1]["response"]["output"][0]["status"] == "incomplete"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "events",
    [
        lambda: replay(failed_events()),
        lambda: replay(text_events()[:-2], raise_after=errors.ModelTimeout("The model did not answer in time.")),
    ],
)
async def test_a_failure_after_the_response_started_is_response_failed(events):
    seen = await collect(response_events(HEAD, events()))
    assert [event["type"] for event in seen][-2:] == ["response.output_text.delta", "response.failed"]
    failed = seen[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert failed["output"][0]["content"][0]["text"] == "Hello, world"
    assert failed["output"][0]["status"] == "incomplete"


@pytest.mark.anyio
async def test_a_stream_that_ends_without_an_outcome_fails():
    seen = await collect(response_events(HEAD, replay(text_events()[:-1])))
    assert seen[-1]["type"] == "response.failed" and seen[-1]["response"]["error"]["code"] == "server_error"


@pytest.mark.anyio
async def test_items_the_answer_has_but_the_stream_never_started_are_shown_whole():
    call = function_call("call_9", "weather", '{"city": "Bergen"}')
    *answer_events, _finished, done = text_events()
    completion = Completion((*done.completion.outputs, call), "tool_calls", done.completion.usage)
    events = await collect(response_events(HEAD, replay([*answer_events, Done(completion, CREATED + 1)])))
    assert [event["type"] for event in events][-6:] == [
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[-4]["delta"] == events[-3]["arguments"] == '{"city": "Bergen"}'
    assert [item["id"] for item in events[-1]["response"]["output"]][1] == call.id


@pytest.mark.anyio
async def test_a_failure_before_the_response_exists_is_one_error_event():
    (event,) = await collect(error_events(ERRORS[429]))
    assert event == {
        "type": "error",
        "sequence_number": 0,
        "code": "rate_limit_exceeded",
        "message": ERRORS[429].message,
        "param": None,
    }


# ---------------------------------------------------------------------------------------------------
# Streams and answers read by the SDK


def test_create_with_stream_reads_every_event(client):
    with client.responses.create(model=MODEL, input="hello", stream=True) as stream:
        events = list(stream)
    assert [event.type for event in events] == TEXT_STREAM
    assert [event.sequence_number for event in events] == list(range(len(TEXT_STREAM)))
    assert "".join(event.delta for event in events if event.type == "response.output_text.delta") == "Hello, world"
    assert events[-1].response.output_text == "Hello, world"


def test_the_stream_helper_assembles_the_final_text_response(client):
    with client.responses.stream(model=MODEL, input="hello") as stream:
        events = list(stream)
        final = stream.get_final_response()
    snapshots = [event.snapshot for event in events if event.type == "response.output_text.delta"]
    assert snapshots == ["Hel", "Hello, ", "Hello, world"]
    assert events[0].type == "response.created" and events[0].response.id == final.id
    assert (final.status, final.output_text, final.usage.total_tokens) == ("completed", "Hello, world", 14)


def test_the_stream_helper_assembles_a_function_call_from_its_deltas(client):
    with client.responses.stream(model=MODEL, input="call the tool", tools=[{**WEATHER, "strict": True}]) as stream:
        snapshots = [event.snapshot for event in stream if event.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    assert snapshots == ['{"ci', '{"city": "Os', '{"city": "Oslo"}']
    (call,) = final.output
    assert (call.type, call.call_id, call.name, call.arguments) == (
        "function_call",
        "call_weather",
        "weather",
        '{"city": "Oslo"}',
    )
    assert call.parsed_arguments == {"city": "Oslo"}


def test_the_stream_helper_and_a_plain_create_read_a_refusal(client):
    with client.responses.stream(model=MODEL, input="refuse this") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds == REFUSAL_STREAM
    for response in (final, client.responses.create(model=MODEL, input="refuse this")):
        assert response.output_text == ""
        assert [(part.type, part.refusal) for part in response.output[0].content] == [("refusal", REFUSED)]


def test_the_stream_helper_reads_text_then_a_call(client):
    with client.responses.stream(model=MODEL, input="weather in Oslo?", tools=[WEATHER]) as stream:
        final = stream.get_final_response()
    assert [item.type for item in final.output] == ["message", "function_call"]
    assert final.output_text == "Let me look." and final.output[1].arguments == '{"city": "Oslo"}'


@pytest.mark.anyio
async def test_the_async_client_s_stream_helper(wire):
    sdk = openai.AsyncOpenAI(base_url=wire.url, api_key="test-key", max_retries=0)
    async with sdk, sdk.responses.stream(model=MODEL, input="call it", tools=[WEATHER]) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds == CALL_STREAM
    assert final.output[0].arguments == '{"city": "Oslo"}'


def test_a_plain_create_reads_the_response_object(client):
    response = client.responses.create(model=MODEL, input="hello")
    assert (response.object, response.status, response.model, response.output_text) == (
        "response",
        "completed",
        MODEL,
        "Hello, world",
    )
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 3)


@pytest.mark.parametrize(
    ("text", "last", "check"),
    [
        ("long answer", "response.incomplete", lambda r: r.incomplete_details.reason == "max_output_tokens"),
        ("filtered answer", "response.incomplete", lambda r: r.incomplete_details.reason == "content_filter"),
        ("fail now", "response.failed", lambda r: r.error.code == "server_error"),
        ("raise now", "response.failed", lambda r: r.error.message == "The model did not answer in time."),
    ],
)
def test_a_stream_that_does_not_complete_says_how_it_ended(client, text, last, check):
    with client.responses.create(model=MODEL, input=text, stream=True) as stream:
        events = list(stream)
    assert events[-1].type == last and check(events[-1].response)
    assert events[-1].response.output[0].content[0].text == "Hello, world"


def test_an_early_failure_reaches_the_sdk_as_an_error_event(client):
    with client.responses.create(model=MODEL, input="early", stream=True) as stream:
        (event,) = list(stream)
    assert (event.type, event.code, event.sequence_number) == ("error", "rate_limit_exceeded", 0)


# ---------------------------------------------------------------------------------------------------
# Conversations, items and stored responses through the SDK


def test_conversations_through_the_sdk(client, wire):
    made = client.conversations.create(items=[{"role": "user", "content": "hello"}], metadata={"topic": "weather"})
    assert isinstance(made, Conversation) and (made.id, made.metadata) == ("conv_made", {"topic": "weather"})
    assert [(item.role, item.text) for item in wire.parsed[-1].items] == [("user", "hello")]
    assert client.conversations.retrieve("conv_1").metadata == {"topic": "weather"}
    assert client.conversations.update("conv_1", metadata={"topic": "snow"}).metadata == {"topic": "snow"}
    assert wire.parsed[-1].metadata == {"topic": "snow"}
    deleted = client.conversations.delete("conv_1")
    assert (deleted.id, deleted.deleted, deleted.object) == ("conv_1", True, "conversation.deleted")


def test_items_added_and_read_through_the_sdk(client, wire):
    added = client.conversations.items.create(
        "conv_1",
        items=[
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
            {"type": "function_call_output", "call_id": "call_1", "output": "-3 C"},
        ],
        include=["reasoning.encrypted_content"],
    )
    assert wire.parsed[-1].include == ("reasoning.encrypted_content",)
    assert ("include[]", "reasoning.encrypted_content") in wire.queries[-1]
    assert [item.type for item in added.data] == ["message", "function_call_output"]
    assert (added.first_id, added.last_id) == (added.data[0].id, added.data[1].id)
    item = client.conversations.items.retrieve(CONVERSATION_ITEMS[1].id, conversation_id="conv_1")
    assert (item.type, item.call_id, item.status) == ("function_call", "call_1", "completed")
    with pytest.raises(openai.NotFoundError) as caught:
        client.conversations.items.retrieve("msg_missing", conversation_id="conv_1")
    assert caught.value.code == "item_not_found"
    assert client.conversations.items.delete(CONVERSATION_ITEMS[0].id, conversation_id="conv_1").id == "conv_1"


def test_item_lists_page_both_ways_through_the_sdk(client, wire):
    ascending = client.conversations.items.list("conv_1", limit=2, order="asc")
    assert [item.id for item in ascending] == [item.id for item in CONVERSATION_ITEMS]
    descending = client.conversations.items.list("conv_1", limit=2)
    assert [item.id for item in descending] == [item.id for item in reversed(CONVERSATION_ITEMS)]
    first = client.conversations.items.list("conv_1", limit=2, order="asc", after=CONVERSATION_ITEMS[2].id)
    assert [item.id for item in first.data] == [item.id for item in CONVERSATION_ITEMS[3:]]
    assert first.has_more is False and not first.has_next_page()
    empty = client.conversations.items.list("conv_empty")
    assert (empty.data, empty.has_more, empty.last_id, empty.has_next_page()) == ([], False, "", False)
    with pytest.raises(openai.BadRequestError) as caught:
        client.conversations.items.list("conv_1", limit=101)
    assert (caught.value.param, caught.value.type) == ("limit", "invalid_request_error")


def test_stored_responses_through_the_sdk(client, wire):
    response = client.responses.retrieve("resp_7")
    assert (response.id, response.output_text) == ("resp_7", "Hello, world")
    assert client.responses.delete("resp_7") is None
    inputs = client.responses.input_items.list("resp_7", limit=3, order="asc")
    assert [item.id for item in inputs] == [item.id for item in CONVERSATION_ITEMS]
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.retrieve("resp_7", extra_query={"stream": "true"})
    assert caught.value.param == "stream"


# ---------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("status", "sdk_error", "kind"),
    [
        (400, openai.BadRequestError, "invalid_request_error"),
        (401, openai.AuthenticationError, "invalid_request_error"),
        (403, openai.PermissionDeniedError, "invalid_request_error"),
        (404, openai.NotFoundError, "invalid_request_error"),
        (409, openai.ConflictError, "invalid_request_error"),
        (413, openai.APIStatusError, "invalid_request_error"),
        (422, openai.UnprocessableEntityError, "invalid_request_error"),
        (429, openai.RateLimitError, "requests"),
        (502, openai.InternalServerError, "server_error"),
        (503, openai.InternalServerError, "server_error"),
        (504, openai.InternalServerError, "server_error"),
    ],
)
def test_each_error_reaches_the_sdk_as_its_class(client, status, sdk_error, kind):
    with pytest.raises(sdk_error) as caught:
        client.responses.retrieve(f"resp_error_{status}")
    error, raised = caught.value, ERRORS[status]
    assert (error.status_code, error.type, error.body["message"]) == (status, kind, raised.message)
    assert error.code == ("rate_limit_exceeded" if status == 429 else raised.code)
    assert set(error.body) == {"message", "type", "param", "code"}
    assert error.response.headers.get("retry-after") == raised.headers.get("Retry-After")
    assert "Traceback" not in error.response.text


def test_the_error_body_and_headers():
    reply = error_reply(InvalidParameter("Invalid 'limit'.", param="limit"))
    assert (reply.status, reply.headers) == (400, {})
    assert reply.body == {
        "error": {
            "message": "Invalid 'limit'.",
            "type": "invalid_request_error",
            "param": "limit",
            "code": "invalid_value",
        }
    }
    quota = error_reply(errors.RateLimited("The daily token quota is spent.", retry_after=3600, code="quota_exceeded"))
    assert (quota.status, quota.headers, quota.body["error"]["type"]) == (429, {"Retry-After": "3600"}, "tokens")
    assert quota.body["error"]["code"] == "quota_exceeded"
    method = error_reply(errors.MethodNotAllowed("PUT", ("GET", "POST")))
    assert (method.status, method.headers["Allow"]) == (405, "GET, POST")
    internal = error_reply(errors.ChatError("The answer ended before it was settled.", code="server_error"))
    assert (internal.status, internal.body["error"]["type"]) == (500, "server_error")


def test_item_references_keep_their_places_with_or_without_a_type():
    parsed = parse_response_request(
        body(
            model=MODEL,
            input=[
                {"role": "user", "content": "hello"},
                {"type": "item_reference", "id": "msg_1"},
                {"id": "fc_2"},
                {"content": "and then?", "role": "user"},
            ],
        )
    )
    assert [(ref.position, ref.id) for ref in parsed.references] == [(1, "msg_1"), (2, "fc_2")]
    assert [(item.role, item.text) for item in parsed.inputs] == [("user", "hello"), ("user", "and then?")]


def test_an_item_reference_elsewhere_than_a_responses_input_is_a_400():
    error = refusal(lambda: parse_conversation_create(body(items=[{"type": "item_reference", "id": "msg_1"}])))
    assert (error.param, error.code) == ("items[0]", "unsupported_parameter")
