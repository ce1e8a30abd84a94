"""One turn: place it, read the window (and reserve its tokens), ask the model, store the turn, answer.

The engine knows nothing of HTTP, of the Azure SDKs or of the model's wire format: a turn talks to
the protocols of ports.py and model.py and raises the errors of errors.py. A streamed answer is
drained by streams.py; the write is commit.py's; the quota is quota.py's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from chat.engine.clock import utc_day
from chat.engine.commit import KEY_REUSED, TurnWriter
from chat.engine.errors import ChatError, ContextTooLong, ConversationNotFound, IdempotencyKeyReused, InvalidRequest
from chat.engine.history import Head, History, ResponseRecord, request_hash
from chat.engine.items import FunctionCall, FunctionCallOutput, Item, Turn, item_text
from chat.engine.model import Model, ModelRequest
from chat.engine.placing import Placement
from chat.engine.ports import DayCount, Tracer, TurnStore
from chat.engine.quota import QuotaLedger, Reservation
from chat.engine.runs import Progress, Runs
from chat.engine.streams import Drain, Streams
from chat.engine.turns import Answer, Place, StreamedAnswer, TurnInput, new_turn, replay_events, replayed
from chat.engine.window import prompt_items, shrunk, turn_cost

UNLIMITED = 2**62  # the token budget of a request that disables truncation
T = TypeVar("T")


class Turns:
    """The turn use case: `reply` answers whole, `stream` as the model writes."""

    def __init__(
        self,
        store: TurnStore,
        model: Model,
        *,
        placement: Placement,
        writer: TurnWriter,
        ledger: QuotaLedger,
        streams: Streams,
        runs: Runs,
        tracer: Tracer,
        system_prompt: str,
        history_token_budget: int,
        max_answer_tokens: int | None,
        estimate: Callable[[str], int],
    ) -> None:
        self._store = store
        self._model = model
        self._placement = placement
        self._writer = writer
        self._ledger = ledger
        self._streams = streams
        self._runs = runs
        self._tracer = tracer
        self._system_prompt = system_prompt
        self._budget = history_token_budget
        self._answer_cap = max_answer_tokens
        self._estimate = estimate

    async def reply(self, owner: str, request: TurnInput) -> Answer:
        request = await self._placement.resolved(owner, request)
        place = await self._placement.place(owner, request)
        self._placement.check_fits(place, request)
        span = self._tracer.turn(place.conversation.key, self._model.name, streamed=False)
        try:
            answer = await self._reply(place, request)
        except BaseException as e:
            span.fail(e)
            raise
        span.succeed(finish_reason=answer.finish_reason, usage=answer.usage, replayed=answer.replayed)
        return answer

    async def _reply(self, place: Place, request: TurnInput) -> Answer:
        conversation = place.conversation
        history, reservation = await self._prepare(place, request)
        if history.replay is not None:
            return replayed(conversation, history.replay)
        history, completion = await self._ask(self._model.complete, history, request, reservation)
        turn = new_turn(place, request, completion.outputs, completion.finish_reason, completion.usage)
        replay = await self._writer.store_turn(conversation, history, turn, reservation, store=request.store)
        if replay is not None:
            return replayed(conversation, replay)
        return Answer(
            conversation.id,
            completion.outputs,
            completion.finish_reason,
            completion.usage,
            response_id=place.response_id,
            created_at=turn.created_at,
        )

    async def stream(self, owner: str, request: TurnInput) -> StreamedAnswer:
        """Start a streamed turn. Errors before the model's first byte raise here; later ones are
        the stream's last event."""
        request = await self._placement.resolved(owner, request)
        place = await self._placement.place(owner, request)
        self._placement.check_fits(place, request)
        conversation = place.conversation
        span = self._tracer.turn(conversation.key, self._model.name, streamed=True)
        try:
            history, reservation = await self._prepare(place, request)
            if history.replay is not None:
                replay = history.replay
                span.succeed(finish_reason=replay.finish_reason, usage=replay.usage, replayed=True)
                return StreamedAnswer(
                    conversation.id, replay_events(replay), replayed=True, response_id=replay.response_id
                )
            run = self._begin_run(place, request, history)
            try:
                history, events = await self._ask(self._model.stream, history, request, reservation)
                if run is not None:
                    await self._runs.recorded(run)
            except BaseException:
                if run is not None:
                    await self._runs.end(run)
                raise
        except BaseException as e:
            span.fail(e)
            raise
        drained = self._streams.start(Drain(place, request, history, reservation, span, run), events)
        return StreamedAnswer(conversation.id, drained, response_id=place.response_id)

    async def aclose(self) -> None:
        await self._streams.aclose()

    def _begin_run(self, place: Place, request: TurnInput, history: History) -> Progress | None:
        """A stored response being streamed is readable in progress until its turn is stored."""
        if request.response is None or place.response_id is None or not request.store:
            return None
        record = ResponseRecord(place.response_id, request.response)
        return self._runs.begin(place.conversation, record, history.head.floor)

    async def _read(self, place: Place, request: TurnInput) -> History:
        """The window: a conversation's newest turns, or the turns a chain's response continues."""
        budget = self._budget if request.truncate else UNLIMITED
        conversation, key = place.conversation, request.idempotency_key
        if place.continues is None:
            if conversation.is_chain and key is None:
                return History([], Head())  # a new chain: nothing to read
            return await self._store.read_history(conversation, budget, self._turn_cost, key)
        chain = self._store.read_chain(conversation.owner, place.continues, budget, self._turn_cost)
        if key is None:
            turns, head = await asyncio.gather(chain, self._store.read_head(conversation))
            return History(turns, head)
        turns, head, found = await asyncio.gather(
            chain, self._store.read_head(conversation), self._store.find_idempotent(conversation, key)
        )
        replay, replay_hash = found if found else (None, None)
        return History(turns, head, replay, replay_hash)

    def _turn_cost(self, turn: Turn) -> int:
        return turn_cost(turn, self._estimate)

    async def _prepare(self, place: Place, request: TurnInput) -> tuple[History, Reservation | None]:
        """Read the window and, with a quota, reserve the turn's tokens (the owner's count for the
        day is read beside the window)."""
        owner = place.conversation.owner
        reading = self._read(place, request)
        day = utc_day()
        count: DayCount | None
        if self._ledger.enabled:
            history, count = await asyncio.gather(reading, self._ledger.count(owner, day))
        else:
            history, count = await reading, None
        if history.replay is not None:
            if history.replay_request_hash != request_hash(request.inputs):
                raise IdempotencyKeyReused(KEY_REUSED)
            if request.response is not None and history.replay.response_id is None:
                raise IdempotencyKeyReused("This Idempotency-Key was already used for a chat turn, not a response.")
            return history, None
        if request.must_exist and not history.head.exists:
            raise ConversationNotFound()
        _check_outputs_answer_calls(history, request.inputs)
        answer_cap = self._output_cap(request)
        if count is None or answer_cap is None:
            return history, None
        prompt = prompt_tokens(self._model_request(history, request), self._estimate)
        reservation = Reservation(owner, day, prompt, prompt + answer_cap)
        await self._ledger.reserve(reservation, count)
        return history, reservation

    def _model_request(self, history: History, request: TurnInput) -> ModelRequest:
        return model_request(self._system_prompt, history, request, self._output_cap(request))

    def _output_cap(self, request: TurnInput) -> int | None:
        """The answer's token limit: the server's, or the request's if lower."""
        caps = [cap for cap in (self._answer_cap, request.options.max_output_tokens) if cap is not None]
        return min(caps) if caps else None

    async def _ask(
        self,
        call: Callable[[ModelRequest], Awaitable[T]],
        history: History,
        request: TurnInput,
        reservation: Reservation | None,
    ) -> tuple[History, T]:
        """Call the model; after context_length_exceeded, once more with half the window.

        Returns the history actually sent and the call's result. A call that fails answered
        nothing, so its reservation is refunded.
        """
        try:
            try:
                return history, await call(self._model_request(history, request))
            except ContextTooLong:
                if not history.turns:
                    raise ContextTooLong("The message is too long for the model.") from None
                if not request.truncate:
                    raise ContextTooLong(
                        "The conversation is too long for the model, and truncation is disabled: "
                        "set truncation to auto to send only the newest turns that fit."
                    ) from None
                history = History(shrunk(history.turns), history.head, history.replay, history.replay_request_hash)
                return history, await call(self._model_request(history, request))
        except ChatError:
            await self._ledger.settle(reservation, 0)
            raise


def model_request(system_prompt: str, history: History, request: TurnInput, cap: int | None) -> ModelRequest:
    """What the model is sent: the server's system prompt, the window and the new inputs, and the
    request's instructions, tools and sampling options."""
    options = request.options
    return ModelRequest(
        system_prompt=system_prompt,
        items=prompt_items(history.turns, request.inputs),
        instructions=options.instructions,
        tools=options.tools,
        tool_choice=options.tool_choice,
        parallel_tool_calls=options.parallel_tool_calls,
        max_output_tokens=cap,
        temperature=options.temperature,
        top_p=options.top_p,
        user=options.user,
        prompt_cache_key=options.prompt_cache_key,
    )


def prompt_tokens(request: ModelRequest, estimate: Callable[[str], int]) -> int:
    """The estimate of a model request's prompt: what a turn reserves of the quota besides its answer."""
    texts = [
        request.system_prompt,
        *([request.instructions] if request.instructions else []),
        *map(item_text, request.items),
    ]
    return sum(estimate(text) for text in texts)


def _check_outputs_answer_calls(history: History, inputs: tuple[Item, ...]) -> None:
    """Each function call output a request sends answers a call the model can see: one of the
    window's, or one sent beside it. Otherwise the model would never be shown it."""
    calls = {item.call_id for turn in history.turns for item in turn.items if isinstance(item, FunctionCall)}
    calls.update(item.call_id for item in inputs if isinstance(item, FunctionCall))
    for item in inputs:
        if isinstance(item, FunctionCallOutput) and item.call_id not in calls:
            raise InvalidRequest(
                f"No function call with call_id {item.call_id[:100]!r} is in the history this response continues.",
                code="function_call_not_found",
            )
