"""The model adapter: one seam around the openai SDK, raising only the engine's errors.

It speaks Chat Completions to Azure OpenAI (keyless: a bearer token from azure-identity on every
request; one the endpoint refuses with 401 is renewed once, see chat/upstream/tokens.py) or to any
OpenAI-compatible endpoint. The SDK retries 429 and 5xx itself, honouring
`retry-after-ms` / `retry-after`; what still fails after its retries becomes an engine error here.

The answer's limit goes as `max_completion_tokens`: the parameter that replaced `max_tokens`, and
the only one reasoning models and the newest chat models accept. An endpoint that does not know it
(an Azure OpenAI API version before 2024-09-01-preview, some OpenAI-compatible servers) refuses it
with a 400; the client then sends `max_tokens` instead, from then on.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import openai
from azure.core.exceptions import ClientAuthenticationError

from chat.engine.errors import (
    ChatError,
    ContentFiltered,
    ContextTooLong,
    InvalidRequest,
    ModelCredentialUnavailable,
    ModelOverloaded,
    ModelTimeout,
    ModelUnavailable,
    RateLimited,
)
from chat.engine.items import FunctionCall, Item, Message, Usage, message
from chat.engine.items import function_call as new_function_call
from chat.engine.model import (
    ArgumentsDelta,
    Completion,
    Finished,
    ItemStarted,
    ModelEvent,
    ModelRequest,
    TextDelta,
)
from chat.upstream.chat_completions import chat_messages, output_items, request_options
from chat.upstream.tokens import BearerTokens

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER_SECONDS = 10
CHECK_SECONDS = 30.0
LIMIT = "max_completion_tokens"
LEGACY_LIMIT = "max_tokens"
DEVELOPER_ROLE_SINCE = "2024-12-01-preview"  # the first Azure OpenAI API version with the developer role


def has_developer_role(api_version: str) -> bool:
    """Whether an Azure OpenAI API version takes `developer` messages (versions are dates, so
    they sort as strings)."""
    return api_version >= DEVELOPER_ROLE_SINCE


class ModelClient:
    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str,
        *,
        tokens: BearerTokens | None = None,
        developer_role: bool = False,
    ) -> None:
        """`tokens` is the bearer token source the client was made with, if any: a token the
        endpoint refuses (401) is then renewed once and the call made again. A caller's
        instructions go as developer messages where the API has the role (`developer_role`),
        else as system messages after the server's."""
        self._client = client
        self._model = model
        self._tokens = tokens
        self._caller_role = "developer" if developer_role else "system"
        self._checked_until = 0.0
        self._limit = LIMIT

    @property
    def name(self) -> str:
        return self._model

    async def close(self) -> None:
        await self._client.close()

    async def check(self) -> None:
        """One cheap authenticated call (the model list), to tell whether the endpoint answers.

        A good answer holds for CHECK_SECONDS, so probes of the anonymous health route cannot
        make the app call the model endpoint at their pace.
        """
        if self._checked_until > time.monotonic():
            return
        try:
            await self._with_token_renewed(self._client.models.list)
        except (openai.OpenAIError, ClientAuthenticationError) as e:
            raise translate(e) from e
        self._checked_until = time.monotonic() + CHECK_SECONDS

    async def complete(self, request: ModelRequest) -> Completion:
        try:
            response = await self._create(request)
        except (openai.OpenAIError, ClientAuthenticationError) as e:
            raise translate(e, client_shaped=_client_shaped(request)) from e
        if not response.choices:
            raise ModelUnavailable("The model returned no answer.")
        choice = response.choices[0]
        return Completion(
            outputs=output_items(choice.message.content, choice.message.tool_calls, choice.message.refusal),
            finish_reason=choice.finish_reason,
            usage=_usage(response.usage),
        )

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Start a streamed answer: HTTP errors raise here, before any event is produced.

        Returns an iterator of events ending with one Finished; a failure in the middle raises an
        engine error from the iterator.
        """
        try:
            stream = await self._create(request, stream=True, stream_options={"include_usage": True})
        except (openai.OpenAIError, ClientAuthenticationError) as e:
            raise translate(e, client_shaped=_client_shaped(request)) from e
        return self._events(stream)

    async def _with_token_renewed(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """The call; once more with a fresh token if the endpoint refused the one in hand."""
        try:
            return await call()
        except openai.AuthenticationError:
            if self._tokens is None or not await self._tokens.renew():
                raise
        log.warning("the model refused the app's token; calling again with a fresh one")
        return await call()

    async def _create(self, request: ModelRequest, **extra: Any) -> Any:
        return await self._with_token_renewed(lambda: self._create_once(request, **extra))

    async def _create_once(self, request: ModelRequest, **extra: Any) -> Any:
        """One chat completions call, with the output limit under the name the endpoint knows."""
        options: dict[str, Any] = {"model": self._model}
        options.update(request_options(request), **extra)
        # The messages and tools go as they are, in extra_body: the SDK walks every typed parameter
        # to transform it (for these, into the same JSON), which for a full window of messages was
        # about half the serving process's CPU per turn. Its placeholder `messages` is replaced by
        # extra_body's; everything else (the Azure deployment path, retries, parsing) is the SDK's.
        messages = chat_messages(
            request.system_prompt, request.items, instructions=request.instructions, caller_role=self._caller_role
        )
        body = {"messages": messages}
        if "tools" in options:
            body["tools"] = options.pop("tools")
        options.update(messages=[], extra_body=body)
        create = self._client.chat.completions.create
        if request.max_output_tokens is None:
            return await create(**options)
        limit = self._limit
        try:
            return await create(**options, **_limit(limit, request.max_output_tokens))
        except openai.BadRequestError as e:
            if limit == LEGACY_LIMIT or not _refuses_parameter(e, LIMIT):
                raise
        log.warning("the model endpoint does not know %s; sending %s from now on", LIMIT, LEGACY_LIMIT)
        self._limit = LEGACY_LIMIT
        return await create(**options, **_limit(LEGACY_LIMIT, request.max_output_tokens))

    async def _events(self, stream: openai.AsyncStream[Any]) -> AsyncIterator[ModelEvent]:
        answer = _Assembly()
        finish_reason = None
        usage = None
        try:
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = _usage(chunk.usage)
                # Azure's first chunk carries only prompt filter results and no choices.
                for choice in chunk.choices[:1]:
                    if choice.delta is not None:
                        for event in answer.add(choice.delta):
                            yield event
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
        except openai.OpenAIError as e:
            raise translate(e, during_stream=True) from e
        finally:
            await stream.close()
        if finish_reason is None:
            raise ModelUnavailable("The model's answer was cut off.", code="model_stream_interrupted")
        outputs = answer.items()
        if not answer.started:
            yield ItemStarted(outputs[0])
        yield Finished(Completion(outputs=outputs, finish_reason=finish_reason, usage=usage))


@dataclass
class _Assembly:
    """A streamed answer put together from its deltas: a message's text, a refusal (`delta.refusal`,
    a message of its own), then function calls by index."""

    message: Message | None = None
    text: list[str] = field(default_factory=list)
    refusal: Message | None = None
    refusal_text: list[str] = field(default_factory=list)
    calls: dict[int, FunctionCall] = field(default_factory=dict)
    arguments: dict[int, list[str]] = field(default_factory=dict)

    @property
    def started(self) -> bool:
        return self.message is not None or self.refusal is not None or bool(self.calls)

    def add(self, delta: Any) -> list[ModelEvent]:
        events: list[ModelEvent] = []
        if delta.content:
            if self.message is None:
                self.message = message("assistant", "")
                events.append(ItemStarted(self.message))
            self.text.append(delta.content)
            events.append(TextDelta(self.message.id, delta.content))
        refused = getattr(delta, "refusal", None)
        if refused:
            if self.refusal is None:
                self.refusal = message("assistant", "", refusal=True)
                events.append(ItemStarted(self.refusal))
            self.refusal_text.append(refused)
            events.append(TextDelta(self.refusal.id, refused))
        for call in delta.tool_calls or ():
            function = call.function
            known = self.calls.get(call.index)
            if known is None:
                known = new_function_call(call.id or "", (function.name if function else None) or "", "")
                self.calls[call.index] = known
                self.arguments[call.index] = []
                events.append(ItemStarted(known))
            if function is not None and function.arguments:
                self.arguments[call.index].append(function.arguments)
                events.append(ArgumentsDelta(known.id, function.arguments))
        return events

    def items(self) -> tuple[Item, ...]:
        if not self.started:
            return output_items("", None)
        items: list[Item] = []
        if self.message is not None:
            items.append(Message(self.message.id, "assistant", "".join(self.text)))
        if self.refusal is not None:
            items.append(Message(self.refusal.id, "assistant", "".join(self.refusal_text), refusal=True))
        for index in sorted(self.calls):
            call = self.calls[index]
            items.append(FunctionCall(call.id, call.call_id, call.name, "".join(self.arguments[index])))
        return tuple(items)


def translate(error: Exception, *, during_stream: bool = False, client_shaped: bool = False) -> ChatError:
    """One place that says what each upstream failure means to our client.

    A request the model refuses is our fault (502) unless the client shaped it with tools,
    function call items, an output format, a verbosity or a reasoning effort of its own
    (`client_shaped`): then it is the client's, a 400 with the model's reason, as the model's own
    API would answer it."""
    if isinstance(error, ClientAuthenticationError):
        log.error("no token for the model: %s", error.message)
        return ModelCredentialUnavailable("The app could not get a token for the model; check its managed identity.")
    if isinstance(error, openai.APITimeoutError):
        return ModelTimeout("The model did not answer in time.")
    if isinstance(error, openai.APIConnectionError):
        if during_stream:
            return ModelUnavailable("The model's answer was cut off.", code="model_stream_interrupted")
        return ModelUnavailable("The model endpoint is unreachable.", code="model_unreachable")
    if isinstance(error, openai.RateLimitError):
        return RateLimited(
            "The model is rate limited; retry after the time in Retry-After.",
            retry_after=_retry_after_seconds(error.response.headers),
        )
    if isinstance(error, openai.BadRequestError):
        if error.code == "content_filter":
            return ContentFiltered("The prompt was filtered by the model's content policy.")
        if error.code == "context_length_exceeded":
            return ContextTooLong("The message and its history are too long for the model.")
        if client_shaped:
            reason = _reason(error)
            return InvalidRequest(f"The model refused the request: {reason}", code="model_rejected_request")
        log.error("the model rejected the request: %s", error.code)
        return ModelUnavailable("The model rejected the request.", code="model_rejected_request")
    if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
        log.error("the model refused our credential: status %s", error.status_code)
        return ModelUnavailable("The model refused the app's credential.", code="model_auth_failed")
    if isinstance(error, openai.NotFoundError):
        return ModelUnavailable("The model deployment was not found.", code="model_not_found")
    if isinstance(error, openai.APIStatusError):
        log.error("the model failed: status %s", error.status_code)
        if error.status_code == 503:
            return ModelOverloaded("The model failed; try again.")
        return ModelUnavailable("The model failed; try again.")
    if during_stream:
        log.error("the model's stream failed: %s", type(error).__name__)
        return ModelUnavailable("The model's answer was cut off.", code="model_stream_interrupted")
    log.error("the model call failed: %s", type(error).__name__)
    return ModelUnavailable("The model failed; try again.")


def _reason(error: openai.BadRequestError) -> str:
    """The model's message for a request it refused: about the request's own tools and items,
    so the client may read it; shortened."""
    body = error.body if isinstance(error.body, dict) else {}
    message = body.get("message") if isinstance(body.get("message"), str) else None
    return (message or "invalid request")[:500]


def _client_shaped(request: ModelRequest) -> bool:
    """Whether the client shaped the request: its tools or function items, an output format, a
    verbosity or a reasoning effort, which a model may not take."""
    asked = (request.output_format, request.verbosity, request.reasoning_effort)
    return (
        bool(request.tools)
        or any(value is not None for value in asked)
        or any(not isinstance(item, Message) for item in request.items)
    )


def _limit(name: str, tokens: int) -> dict[str, Any]:
    return {name: tokens}


def _refuses_parameter(error: openai.BadRequestError, name: str) -> bool:
    """Whether a 400 says the endpoint does not know the parameter at all (not that its value is
    wrong): Azure's `Unrecognized request argument supplied: <name>`, OpenAI's `unsupported_parameter`."""
    if error.code == "unsupported_parameter" and error.param == name:
        return True
    return f"unrecognized request argument supplied: {name}" in error.message.lower()


def _retry_after_seconds(headers: Mapping[str, str]) -> int:
    """Whole seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    seconds = headers.get("retry-after")
    try:
        if seconds is not None:
            return max(1, math.ceil(float(seconds)))
        if ms is not None:
            return max(1, math.ceil(float(ms) / 1000))
    except ValueError:
        parsed = email.utils.parsedate_tz(seconds) if seconds else None
        if parsed:
            return max(1, math.ceil(email.utils.mktime_tz(parsed) - time.time()))
    return DEFAULT_RETRY_AFTER_SECONDS


def _usage(usage: Any) -> Usage | None:
    if usage is None:
        return None
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    return Usage(
        prompt_tokens=usage.prompt_tokens or 0,
        completion_tokens=usage.completion_tokens or 0,
        cached_tokens=(getattr(prompt_details, "cached_tokens", None) or 0) if prompt_details else 0,
        reasoning_tokens=(getattr(completion_details, "reasoning_tokens", None) or 0) if completion_details else 0,
    )
