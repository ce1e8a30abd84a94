"""Chat completions stand-in: speaks Azure OpenAI's and OpenAI's chat completions wire protocol.

Routes:

``POST /openai/deployments/{deployment}/chat/completions?api-version=...``
    Azure OpenAI, as a resource with local auth disabled serves it: only
    ``Authorization: Bearer <token>`` with a token the identity stand-in issued for
    ``https://cognitiveservices.azure.com`` (401 otherwise); an ``api-key`` header is refused with
    403 ``AuthenticationTypeDisabled``; no ``api-version`` is 404; another deployment is 404
    ``DeploymentNotFound``. Answers carry Azure's ``prompt_filter_results`` and
    ``content_filter_results``; a stream opens with Azure's ``choices: []`` prompt-filter chunk.
``POST /v1/chat/completions``
    OpenAI-compatible, with ``Authorization: Bearer <api key>``.
``GET /_standin/requests``, ``POST /_standin/clear``
    the journal, for tests that drive a stand-in another process runs. Each entry keeps the
    request's body, so a test sees every message and content part it was sent.

A message's ``content`` may be an array of content parts, checked as Azure OpenAI checks them
(parts.py): ``text`` in any message, ``image_url`` and ``file`` in user messages only; a malformed
part is a 400 naming it. The answer echoes the text parts.

The answer is deterministic and shows what it was sent:
``Echo #{k}: {last user content}``, where k counts the messages before the last user message,
leaving out system and developer messages; or, when the request ends with tool messages,
``Tool result: {output}`` for each of them, one a line, oldest first. Usage: ``prompt_tokens`` is
the sum over messages of ``len(content) // 4 + 1``, plus ``(len(name) + len(arguments)) // 4`` for
each tool call in them, plus a quarter of the length of the ``tools`` JSON; ``completion_tokens``
the number of whitespace-separated words, or ``(len(name) + len(arguments)) // 4 + 1`` summed over
the calls the answer makes.

An assistant message sent back may carry the model's ``refusal`` (a string) beside or instead of
its ``content``: one with a refusal may leave ``content`` out or null, as one with ``tool_calls``
may. Its refusal counts in ``prompt_tokens`` as its content does.

Function tools (``tools``, ``tool_choice``, ``parallel_tool_calls``, assistant ``tool_calls``,
``tool`` messages) are checked and answered as the real API does: see ``tools.py`` for its 400s
and for which calls the model makes. An answer that calls tools has ``content: null``,
``message.tool_calls`` (ids ``call_...``, ``type: "function"``, ``function.arguments`` a JSON
string) and ``finish_reason: "tool_calls"``. Streamed, the first chunk carries the role and the
first call's index, id, type and name with empty arguments; each further call opens with its own
such chunk; the arguments follow a few characters a chunk. The journal records each answer's calls
as ``tool_calls`` (id, name, arguments), ``None`` when it made none.

``response_format``, ``reasoning_effort`` and ``verbosity`` are checked and served as ``formats.py``
says: a JSON document valid against a json_schema, reasoning tokens in usage for an effort.

An output limit, ``max_completion_tokens`` or the older ``max_tokens``, stops the answer after that
many words with ``finish_reason`` ``length``, as the real API stops at that many tokens; a limit over
16,384 (gpt-4o-mini's output limit) is a 400 ``invalid_value``. Like Azure,
the Azure route refuses ``max_completion_tokens`` on API versions before ``2024-09-01-preview``
(400 ``Unrecognized request argument supplied``).

Directives anywhere in the last user message drive faults and tool calls:

====================== ===============================================================
``[[429]]``            429, ``retry-after: 7``, ``retry-after-ms: 10``, Azure's rate limit body
``[[500]]``            500 ``InternalServerError``
``[[503]]``            503 ``ServiceUnavailable``
``[[fail-first:N]]``   the first N requests with this exact last user message get 500
``[[sleep:S]]``        wait S seconds (float) before answering, before the first byte
``[[cut]]``            stream: two chunks after the role's (two content pieces, or a call's head
                       and two argument pieces), then the connection drops; JSON: drops at once
``[[filter]]``         400 ``content_filter`` (Azure's prompt filter, ``ResponsibleAIPolicyViolation``)
``[[finish:R]]``       R is ``content_filter`` or ``length``: the first word only, finish_reason R
``[[context-limit:N]]`` 400 ``context_length_exceeded`` when the request has more than N messages
``[[long:N]]``         an answer of exactly N characters, non-ASCII included, streamed ~1000 a chunk
``[[chunk-delay:MS]]`` MS milliseconds between streamed chunks
``[[tool:NAME ARGS]]`` call the tool NAME with arguments ARGS, as written (JSON, or any text up to
                       ``]]`` for broken arguments); ``[[tool:NAME]]`` builds them from its schema.
                       Several: one answer with several calls, in order. Only when the request
                       declares ``tools`` and ``tool_choice`` is not ``"none"``. When the request
                       ends with tool messages these are read from their outputs instead, so a
                       tool's output can ask for the next call and the user's are not repeated
``[[cached:N]]``       usage says N of the prompt's tokens (at most all) were read from the prompt cache
``[[reasoning:N]]``    usage says N reasoning tokens were spent (besides the answer's)
``[[refuse]]``         the model refuses: ``content: null`` and ``refusal: "I'm sorry, ..."`` (REFUSAL)
                       in the message, ``finish_reason: "stop"``, no tool calls; streamed, the
                       role chunk has ``refusal: ""`` and ``content: null``, and the text follows
                       as ``delta.refusal`` pieces
``[[hold:NAME]]``      held until a test calls ``holds.release(NAME)`` (at most 60 s): JSON before
                       answering, a stream after its first content chunk; ``holds.waiting(NAME)``
                       counts the answers it holds
====================== ===============================================================
"""

from __future__ import annotations

import asyncio
import collections
import json
import secrets
import threading
import time
import uuid
from typing import Any

from aiohttp import web

from . import tools
from .chunks import Body, drop_connection, dumps, response_headers, write
from .completion import Directives, complete, last_user_text, newest_input, output_limit, pieces, validate
from .credentials import Credentials
from .faults import fault_for
from .identity import IdentityStandIn, Journal
from .protocol import Reject

AZURE_MODEL = "gpt-4o-mini-2024-07-18"
_UNRECORDED_HEADERS = {"host", "content-length", "connection", "accept-encoding"}
_HOLD_LIMIT_SECONDS = 60.0  # a hold a test never releases ends here, so nothing hangs for ever
_HOLD_POLL_SECONDS = 0.01


class Holds:
    """Answers held back by ``[[hold:NAME]]`` until a test releases NAME.

    Thread-safe: the stand-in's handlers wait on its own event loop while a test, in another
    thread, counts the waiting answers and releases them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: collections.Counter[str] = collections.Counter()
        self._released: set[str] = set()

    async def wait(self, name: str) -> None:
        with self._lock:
            self._waiting[name] += 1
        deadline = time.monotonic() + _HOLD_LIMIT_SECONDS
        try:
            while time.monotonic() < deadline:
                with self._lock:
                    if name in self._released:
                        return
                await asyncio.sleep(_HOLD_POLL_SECONDS)
        finally:
            with self._lock:
                self._waiting[name] -= 1

    def waiting(self, name: str) -> int:
        with self._lock:
            return self._waiting[name]

    def release(self, name: str) -> None:
        """Let every answer held under NAME go on, and any that asks to be held under it later."""
        with self._lock:
            self._released.add(name)

    def clear(self) -> None:
        with self._lock:
            self._released.clear()


class ModelStandIn:
    """Chat completions over loopback, with a journal of every request and fault directives."""

    def __init__(
        self,
        identity: IdentityStandIn,
        *,
        deployment: str = "chat",
        openai_api_key: str | None = None,
        chunk_delay: float = 0.0,
    ) -> None:
        self.identity = identity
        self.deployment = deployment
        self.openai_api_key = openai_api_key or f"sk-standin-{secrets.token_urlsafe(24)}"
        self.credentials = Credentials(identity, self.openai_api_key)
        self.chunk_delay = chunk_delay
        self.journal = Journal()
        self.holds = Holds()
        self.models_requests = 0
        self._attempts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._azure)
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_get("/openai/models", self._azure_models)
        app.router.add_get("/v1/models", self._openai_models)
        app.router.add_get("/_standin/requests", self._journal_view)
        app.router.add_post("/_standin/clear", self._clear_view)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    def clear(self) -> None:
        """Forget every recorded request, every ``[[fail-first:N]]`` count and every released hold."""
        self.journal.clear()
        self.holds.clear()
        with self._lock:
            self._attempts.clear()

    async def _journal_view(self, request: web.Request) -> web.Response:
        return web.json_response(self.journal.entries())

    async def _clear_view(self, request: web.Request) -> web.Response:
        self.clear()
        self.identity.clear()
        return web.Response(status=204)

    async def _not_found(self, request: web.Request) -> web.Response:
        entry = await self._record(request, route=None)
        self.journal.update(entry, status=404)
        return web.json_response({"error": {"code": "404", "message": "Resource not found"}}, status=404)

    async def _azure_models(self, request: web.Request) -> web.Response:
        return self._models(request, azure=True)

    async def _openai_models(self, request: web.Request) -> web.Response:
        return self._models(request, azure=False)

    def _models(self, request: web.Request, *, azure: bool) -> web.Response:
        """The model list, which the app's health check reads; not journaled with the chat requests."""
        try:
            if azure and "api-version" not in request.query:
                raise Reject(404, {"error": {"code": "404", "message": "Resource not found"}})
            self.credentials.check(request, azure=azure)
        except Reject as reject:
            return web.json_response(reject.body, status=reject.status, headers=reject.headers)
        self.models_requests += 1
        model = {"id": self.deployment, "object": "model", "created": 0, "owned_by": "system"}
        return web.json_response({"object": "list", "data": [model]})

    async def _azure(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, azure=True)

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, azure=False)

    async def _record(self, request: web.Request, route: str | None) -> dict[str, Any]:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        auth, grant = self.credentials.of(request)
        return self.journal.record(
            {
                "route": route,
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": {
                    name.lower(): value
                    for name, value in request.headers.items()
                    if name.lower() not in _UNRECORDED_HEADERS
                },
                "body": body,
                "auth": auth,
                "grant": grant,
                "status": None,
                "fault": None,
                "tool_calls": None,
            }
        )

    async def _serve(self, request: web.Request, *, azure: bool) -> web.StreamResponse:
        entry = await self._record(request, route="azure" if azure else "openai")
        try:
            response = await self._respond(request, entry, azure=azure)
        except Reject as reject:
            self.journal.update(entry, status=reject.status)
            headers = {"x-request-id": str(uuid.uuid4()), **reject.headers}
            return web.json_response(reject.body, status=reject.status, headers=headers)
        if entry["fault"] != "cut":
            self.journal.update(entry, status=response.status)
        return response

    async def _respond(self, request: web.Request, entry: dict[str, Any], *, azure: bool) -> web.StreamResponse:
        if azure and not request.query.get("api-version"):
            raise Reject(404, {"error": {"code": "404", "message": "Resource not found"}})
        self.credentials.check(request, azure=azure)
        if azure and request.match_info["deployment"] != self.deployment:
            message = (
                "The API deployment for this resource does not exist. If you created the deployment within "
                "the last 5 minutes, please wait a moment and try again."
            )
            raise Reject(404, {"error": {"code": "DeploymentNotFound", "message": message}})
        body = entry["body"]
        messages = validate(body, azure=azure)
        limit = output_limit(body, request.query.get("api-version") if azure else None)

        last_text = last_user_text(messages)
        directives = Directives.parse(last_text)
        if directives.sleep:
            await asyncio.sleep(directives.sleep)
        api_version = request.query.get("api-version")
        fault = fault_for(directives, body, messages, azure=azure, api_version=api_version, attempt=self._attempt)
        if fault is not None:
            self.journal.update(entry, fault=fault[0])
            raise fault[1]

        stream = body.get("stream", False)
        if directives.cut and not stream:
            self.journal.update(entry, fault="cut")
            return drop_connection(request)

        calls = tools.choose_calls(body, newest_input(messages))
        if calls:
            self.journal.update(entry, tool_calls=[call.record() for call in calls])
        completion = complete(body, messages, directives, AZURE_MODEL if azure else str(body["model"]), calls, limit)
        if directives.finish_reason != "stop":
            self.journal.update(entry, fault=f"finish:{directives.finish_reason}")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and stream
        answer = Body(completion, azure=azure, include_usage=include_usage)
        if not stream:
            if directives.hold is not None:
                await self.holds.wait(directives.hold)
            return web.json_response(answer.json(), headers=response_headers(), dumps=dumps)
        return await self._stream(request, entry, answer, directives)

    def _attempt(self, key: str) -> int:
        with self._lock:
            self._attempts[key] += 1
            return self._attempts[key]

    async def _stream(
        self, request: web.Request, entry: dict[str, Any], answer: Body, directives: Directives
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                **response_headers(),
            }
        )
        await response.prepare(request)
        delay = self.chunk_delay if directives.chunk_delay is None else directives.chunk_delay
        text = answer.completion.content if answer.completion.refusal is None else answer.completion.refusal
        deltas = answer.deltas(pieces(text, directives) if text is not None else [])
        if directives.cut:
            self.journal.update(entry, status=response.status, fault="cut")
            # The role chunk and two more: two content pieces, or a call's head and two argument pieces.
            await write(response, [*answer.opening(), *deltas[:3]], delay)
            return drop_connection(request, response)
        chunks: list[dict[str, Any] | str] = [*answer.opening(), *deltas, *answer.tail(), "[DONE]"]
        if directives.hold is not None:
            # After the role chunk and the first content piece (or the first call's head).
            held_at = len(answer.opening()) + (1 if answer.completion.tool_calls else 2)
            await write(response, chunks[:held_at], delay)
            await self.holds.wait(directives.hold)
            chunks = chunks[held_at:]
        await write(response, chunks, delay)
        await response.write_eof()
        return response
