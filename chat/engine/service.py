"""One turn: read the window, ask the model, store the turn's items, answer.

The engine knows nothing of HTTP, of the Azure SDKs or of the model's wire format: it talks to the
protocols of ports.py (the turn store, the conversation index, the token ledger, the tracer) and of
model.py (the model), and raises the errors of errors.py. A turn is its input items (a user
message; a caller's function call outputs) and the model's output items (a message, function
calls), stored together in one write.

A streamed answer is drained by a task of its own, so a client that leaves does not stop it; every
stream ends with one Done or Failed, whatever happens to that task (shut-down cancels what is left
after its grace period, and says which turns it cut).

With a daily quota, a turn reserves its tokens before the model is asked: the estimate of its
prompt and the answer cap, which the model gets as its output limit. The reservation is added to
the owner's count first and the total read after, so of two concurrent turns at least one sees
the other's reservation: the reservations of admitted turns never add up to more than the quota.
A turn that does not fit is refunded and refused (429 `quota_exceeded`), unless only other turns
in flight hold the room: it then tries again after a random wait, as turns that refused each
other would otherwise all come back at once. Once the model has answered, the reservation is
settled to the tokens the model reports (whether or not the turn is then stored); a model call
that fails answered nothing and is refunded. A settle or refund that fails leaves the
reservation counted: the count then runs over, never under.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from chat.engine.errors import (
    AnswerTooLarge,
    ChatError,
    ContextTooLong,
    ConversationBusy,
    ConversationNotFound,
    DuplicateRequest,
    IdempotencyKeyReused,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    StorageUnavailable,
    TurnConflict,
    TurnOutcomeUnknown,
)
from chat.engine.history import (
    Conversation,
    ConversationInfo,
    ConversationSummary,
    Head,
    History,
    ItemPage,
    NewTurn,
    Page,
    ResponseRecord,
    StoredItem,
    StoredResponse,
    digest,
    epoch_seconds,
    is_chain,
    new_chain_id,
    new_response_id,
    request_hash,
    utc_now,
)
from chat.engine.items import (
    FunctionCall,
    FunctionCallOutput,
    Item,
    ItemReference,
    Message,
    Turn,
    TurnRef,
    Usage,
    copied,
    item_text,
    message_text,
)
from chat.engine.model import (
    ArgumentsDelta,
    Finished,
    FunctionTool,
    ItemStarted,
    Model,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ToolChoice,
)
from chat.engine.ports import ConversationIndex, DayCount, TokenLedger, Tracer, TurnSpan, TurnStore
from chat.engine.runs import Progress, Run, Runs
from chat.engine.tokens import estimate_tokens
from chat.engine.window import prompt_items, shrunk, turn_cost

log = logging.getLogger(__name__)

MAX_COMMIT_ATTEMPTS = 64
MAX_UNANSWERED_WRITES = 2  # a turn's writes whose answer was lost, before the turn fails
# How long an unconfirmed list entry may wait for the first turn or delete it was written ahead
# of before a reader of the list puts it right (a turn's write, retries included, takes far less).
UNCONFIRMED_GRACE_SECONDS = 120
# A turn that only turns in flight keep out of the quota tries this many times, waiting a random
# time of up to twice, four and eight times RESERVE_BACKOFF_SECONDS between tries.
RESERVE_ATTEMPTS = 4
RESERVE_BACKOFF_SECONDS = 0.1
# Then its Retry-After: about as long as a turn in flight takes to answer.
BUSY_RETRY_AFTER_SECONDS = 5
SHUTDOWN_GRACE_SECONDS = 30.0
UNLIMITED = 2**62  # the token budget of a request that disables truncation
T = TypeVar("T")
KEY_REUSED = "This Idempotency-Key was already used for a different message."
DELETED = "The conversation was deleted while this turn was in flight; the turn was not stored."
CUT = "The server stopped before the answer was finished; it was not stored."


@dataclass(frozen=True)
class TurnInput:
    """What one request asks for: new input items, in a conversation or a new one, and how to answer.

    A response of the OpenAI-compatible door also says what to keep of it (`response`, opaque
    here) and may continue a response (`previous_response_id`) rather than a conversation; it
    names only conversations that exist (`must_exist`), and may ask that nothing be stored, that
    nothing of the history be left out (`truncate` false), or for the model's sampling options.
    """

    inputs: tuple[Item, ...]
    conversation_id: str | None
    idempotency_key: str | None = None
    references: tuple[ItemReference, ...] = ()  # stored items the input names, resolved into `inputs`
    tools: tuple[FunctionTool, ...] = ()
    tool_choice: ToolChoice | None = None
    response: str | None = None
    previous_response_id: str | None = None
    store: bool = True
    must_exist: bool = False
    truncate: bool = True
    instructions: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None
    prompt_cache_key: str | None = None

    @property
    def text(self) -> str:
        """The text of the input messages: what names a new conversation."""
        return message_text(self.inputs)


@dataclass(frozen=True)
class Reservation:
    """The tokens a turn holds in its owner's count for the day until it settles."""

    owner: str
    day: str
    prompt: int  # the estimate of the prompt sent to the model
    tokens: int  # the prompt's estimate and the answer cap


@dataclass(frozen=True)
class Place:
    """Where a turn goes: its conversation (or chain), the turn it continues in a chain, and the
    ID of the response it answers."""

    conversation: Conversation
    continues: TurnRef | None = None
    response_id: str | None = None


@dataclass(frozen=True)
class Answer:
    conversation_id: str
    outputs: tuple[Item, ...]
    finish_reason: str | None
    usage: Usage | None
    replayed: bool = False
    response_id: str | None = None
    created_at: str | None = None  # when the turn was made (stored, if it is kept)

    @property
    def text(self) -> str:
        return message_text(self.outputs)


@dataclass(frozen=True)
class Done:
    """The last event of a stream: the turn is stored."""

    finish_reason: str | None
    usage: Usage | None
    outputs: tuple[Item, ...] = ()
    created_at: str | None = None


@dataclass(frozen=True)
class Failed:
    error: ChatError


StreamEvent = ItemStarted | TextDelta | ArgumentsDelta | Done | Failed


@dataclass(frozen=True)
class StreamedAnswer:
    conversation_id: str
    events: AsyncIterator[StreamEvent]
    replayed: bool = False
    response_id: str | None = None


class _NoSpan:
    def succeed(self, *, finish_reason: str | None, usage: Usage | None, replayed: bool = False) -> None:
        pass

    def fail(self, error: BaseException) -> None:
        pass


class _NoTracer:
    def turn(self, conversation_key: str, model: str, *, streamed: bool) -> TurnSpan:
        return _NoSpan()


@dataclass
class _Drain:
    """A streamed turn being drained: its task, and its queue, which always gets a last event."""

    place: Place
    run: Progress | None = None  # the response it answers, readable in progress
    queue: asyncio.Queue[StreamEvent] = field(default_factory=asyncio.Queue)
    ended: bool = False

    def put(self, event: StreamEvent) -> None:
        if not self.ended:
            self.ended = isinstance(event, Done | Failed)
            self.queue.put_nowait(event)


class ChatService:
    def __init__(
        self,
        store: TurnStore,
        conversations: ConversationIndex,
        token_counts: TokenLedger,
        model: Model,
        *,
        system_prompt: str,
        history_token_budget: int,
        daily_token_quota: int = 0,
        max_answer_tokens: int | None = None,
        max_message_chars: int | None = None,
        log_content: bool = False,
        estimate: Callable[[str], int] = estimate_tokens,
        tracer: Tracer | None = None,
        shutdown_grace_seconds: float = SHUTDOWN_GRACE_SECONDS,
        runs: Runs | None = None,
    ) -> None:
        if daily_token_quota and max_answer_tokens is None:
            raise ValueError("a daily token quota needs max_answer_tokens: every turn reserves it")
        self._store = store
        self._conversations = conversations
        self._token_counts = token_counts
        self._model = model
        self._system_prompt = system_prompt
        self._budget = history_token_budget
        self._quota = daily_token_quota
        self._answer_cap = max_answer_tokens
        self._max_chars = max_message_chars
        self._log_content = log_content
        self._estimate = estimate
        self._tracer: Tracer = tracer or _NoTracer()
        self._grace = shutdown_grace_seconds
        self._streams: dict[asyncio.Task[None], _Drain] = {}
        self._runs = runs or Runs()

    async def aclose(self) -> None:
        """Let answers still streaming to a departed client finish and be stored, for the grace
        period; then cut what is left, and say which turns were cut."""
        if not self._streams:
            return
        _, pending = await asyncio.wait(set(self._streams), timeout=self._grace)
        for task in pending:
            drain = self._streams.get(task)
            if drain is not None:
                log.warning("shut-down cut the streamed turn of %s: not stored", drain.place.conversation.key[:16])
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def reply(self, owner: str, request: TurnInput) -> Answer:
        request = await self._resolved(owner, request)
        place = await self._place(owner, request)
        self._check_fits(place, request)
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
            return _replayed(conversation, history.replay)
        history, completion = await self._ask(self._model.complete, history, request, reservation)
        new_turn = self._new_turn(place, request, completion.outputs, completion.finish_reason, completion.usage)
        replay = await self._store_turn(place, history, new_turn, reservation, store=request.store)
        if replay is not None:
            return _replayed(conversation, replay)
        return Answer(
            conversation.id,
            completion.outputs,
            completion.finish_reason,
            completion.usage,
            response_id=place.response_id,
            created_at=new_turn.created_at,
        )

    async def stream(self, owner: str, request: TurnInput) -> StreamedAnswer:
        """Start a streamed turn. Errors before the model's first byte raise here.

        The model's answer is drained by a task of its own, so a client that disconnects does not
        stop it: the answer is stored and waits in the history when the client comes back.
        """
        request = await self._resolved(owner, request)
        place = await self._place(owner, request)
        self._check_fits(place, request)
        conversation = place.conversation
        span = self._tracer.turn(conversation.key, self._model.name, streamed=True)
        try:
            history, reservation = await self._prepare(place, request)
            if history.replay is not None:
                replay = history.replay
                span.succeed(finish_reason=replay.finish_reason, usage=replay.usage, replayed=True)
                return StreamedAnswer(
                    conversation.id, _replay_events(replay), replayed=True, response_id=replay.response_id
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
        drain = _Drain(place, run)
        task = asyncio.create_task(self._drain(drain, history, request, reservation, events, span))
        self._streams[task] = drain
        task.add_done_callback(self._drained)
        return StreamedAnswer(conversation.id, _from_queue(drain.queue), response_id=place.response_id)

    def _begin_run(self, place: Place, request: TurnInput, history: History) -> Progress | None:
        """A stored response being streamed is readable in progress until its turn is stored."""
        if request.response is None or place.response_id is None or not request.store:
            return None
        record = ResponseRecord(place.response_id, request.response)
        return self._runs.begin(place.conversation, record, history.head.floor)

    def _drained(self, task: asyncio.Task[None]) -> None:
        """Whatever ended the drain (even a cancel before it began), its reader gets a last event."""
        drain = self._streams.pop(task)
        if not drain.ended:
            drain.put(Failed(ChatError(CUT, code="server_shutting_down", status=503)))

    async def _drain(
        self,
        drain: _Drain,
        history: History,
        request: TurnInput,
        reservation: Reservation | None,
        events: AsyncIterator[ModelEvent],
        span: TurnSpan,
    ) -> None:
        try:
            await self._drain_turn(drain, history, request, reservation, events, span)
        finally:
            if drain.run is not None:
                await self._runs.end(drain.run)

    async def _drain_turn(
        self,
        drain: _Drain,
        history: History,
        request: TurnInput,
        reservation: Reservation | None,
        events: AsyncIterator[ModelEvent],
        span: TurnSpan,
    ) -> None:
        text: list[str] = []
        answered = False
        try:
            async for event in events:
                if not isinstance(event, Finished):
                    if isinstance(event, TextDelta):
                        text.append(event.text)
                    if drain.run is not None:
                        drain.run.add(event)
                    drain.put(event)
                    continue
                answered = True
                completion = event.completion
                new_turn = self._new_turn(
                    drain.place, request, completion.outputs, completion.finish_reason, completion.usage
                )
                stored = await self._store_turn(drain.place, history, new_turn, reservation, store=request.store)
                if stored is not None:
                    # The client has read an answer that is not the one kept: say so.
                    raise DuplicateRequest(
                        "A concurrent request with the same Idempotency-Key was stored first, so this answer "
                        "was not kept; send the request again with that key to read the stored one."
                    )
                span.succeed(finish_reason=completion.finish_reason, usage=completion.usage)
                drain.put(Done(completion.finish_reason, completion.usage, completion.outputs, new_turn.created_at))
        except ChatError as e:
            await self._settle_cut(reservation, answered, text)
            span.fail(e)
            drain.put(Failed(e))
        except asyncio.CancelledError as e:
            # Shut-down: the cut answer is charged what it used, the span ends, and _drained gives
            # the reader its last event.
            await self._settle_cut(reservation, answered, text)
            span.fail(e)
            raise
        except Exception as e:
            log.exception("a streamed turn failed")
            await self._settle_cut(reservation, answered, text)
            span.fail(e)
            drain.put(Failed(ChatError("The answer failed.")))
        if not drain.ended:
            # The model's events ended without a Finished: an adapter's bug, but the stream still ends.
            log.error("a streamed answer ended without finishing")
            await self._settle_cut(reservation, answered, text)
            span.fail(RuntimeError("stream ended early"))
            drain.put(Failed(ChatError("The answer failed.")))

    async def _settle_cut(self, reservation: Reservation | None, answered: bool, text: list[str]) -> None:
        """Settle a stream that failed before the model finished: its usage is unknown, so it is
        charged its prompt and the text it sent. (A finished answer settled as it was stored.)"""
        if reservation is not None and not answered:
            await self._settle(reservation, reservation.prompt + self._estimate("".join(text)))

    # -- reading ------------------------------------------------------------------------

    async def items(self, owner: str, conversation_id: str, limit: int, cursor: str | None) -> Page[StoredItem]:
        return await self._store.items_page(Conversation(owner, conversation_id), limit, cursor)

    async def conversations(self, owner: str, limit: int, cursor: str | None) -> Page[ConversationSummary]:
        """A page of the owner's list. An entry written ahead of its first turn or of a delete,
        and not confirmed since, is shown only if its conversation's head says it exists under
        the entry's floor; one older than UNCONFIRMED_GRACE_SECONDS is put right as well."""
        page = await self._conversations.list_conversations(owner, limit, cursor)
        unconfirmed = [summary for summary in page.items if summary.unconfirmed_since is not None]
        if not unconfirmed:
            return page
        conversations = [Conversation(owner, summary.id) for summary in unconfirmed]
        heads = await asyncio.gather(*(self._store.read_head(conversation) for conversation in conversations))
        hidden: set[str] = set()
        repairs: list[Awaitable[None]] = []
        now = time.time()
        for summary, conversation, head in zip(unconfirmed, conversations, heads, strict=True):
            listed = head.exists and head.floor == summary.floor
            if not listed:
                hidden.add(summary.id)
            if now - (summary.unconfirmed_since or 0) < UNCONFIRMED_GRACE_SECONDS:
                continue  # its turn or delete may be in flight still
            if listed:
                repairs.append(self._conversations.confirm(conversation, summary.floor))
            elif head.floor > summary.floor:
                repairs.append(self._conversations.forget(conversation, head.floor))
            elif not head.exists:
                repairs.append(self._conversations.discard(conversation, summary.floor))
        for outcome in await asyncio.gather(*repairs, return_exceptions=True):
            if isinstance(outcome, ChatError):
                log.warning("conversation list not repaired: %s", outcome.code)
            elif isinstance(outcome, BaseException):
                raise outcome
        return Page([summary for summary in page.items if summary.id not in hidden], page.next_cursor)

    async def delete(self, owner: str, conversation_id: str) -> None:
        """Delete the conversation; it wins over every turn in flight.

        The floor goes up first: from then on no turn that read the conversation before can be
        stored, and none of its rows is read. Then it is unlisted, then its rows are removed; a
        delete cut short leaves rows nothing reads nor lists (its list entry is marked before
        the floor goes up), and a retry finishes it.
        """
        conversation = Conversation(owner, conversation_id)
        if not is_chain(conversation_id):
            # Should the delete be cut short before it unlists the conversation, readers of the
            # list see the mark, find the raised floor and do not show it.
            await self._conversations.mark_unconfirmed(conversation)
        floor = await self._store.raise_floor(conversation)
        await self._conversations.forget(conversation, floor)
        await self._store.delete_turns(conversation, floor)

    # -- the OpenAI-compatible door's conversations, items and responses ----------------------

    async def create_conversation(
        self, owner: str, items: tuple[Item, ...], metadata: Mapping[str, str]
    ) -> ConversationInfo:
        """A new conversation, with its first items (a turn of inputs only) stored with it."""
        self._check_inputs(items)
        conversation = Conversation(owner, new_openai_conversation_id())
        created_at = utc_now()
        turn = (
            NewTurn(inputs=items, outputs=(), finish_reason=None, usage=None, created_at=created_at) if items else None
        )
        if turn is not None:
            self._check_input_fits(conversation, turn)
        seconds = epoch_seconds(created_at)
        if turn is not None:
            await self._conversations.record_activity(
                conversation,
                floor=0,
                first_message=_title_text(items),
                at=created_at,
                message_count=len(items),
                ahead=True,
            )
        await self._store.create_conversation(conversation, seconds, metadata, turn)
        if turn is not None:
            await self._record_activity(conversation, Head(), _title_text(items), created_at, len(items), retitle=True)
        return ConversationInfo(conversation.id, seconds, dict(metadata))

    async def conversation(self, owner: str, conversation_id: str) -> ConversationInfo:
        head = await self._existing(Conversation(owner, conversation_id))
        return ConversationInfo(conversation_id, head.created_at or 0, head.metadata)

    async def update_conversation(
        self, owner: str, conversation_id: str, metadata: Mapping[str, str]
    ) -> ConversationInfo:
        head = await self._store.update_metadata(Conversation(owner, conversation_id), metadata)
        return ConversationInfo(conversation_id, head.created_at or 0, head.metadata)

    async def delete_conversation(self, owner: str, conversation_id: str) -> None:
        """Delete a conversation that exists (404 otherwise), as delete() does."""
        await self._existing(Conversation(owner, conversation_id))
        await self.delete(owner, conversation_id)

    async def add_items(self, owner: str, conversation_id: str, items: tuple[Item, ...]) -> tuple[Item, ...]:
        """Append items to a conversation as a turn of inputs only: the model is not asked."""
        self._check_inputs(items)
        conversation = Conversation(owner, conversation_id)
        head = await self._existing(conversation)
        turn = NewTurn(inputs=items, outputs=(), finish_reason=None, usage=None)
        self._check_input_fits(conversation, turn)
        await self._commit(conversation, History([], head), turn)
        return items

    async def item_list(
        self, owner: str, conversation_id: str, *, after: str | None, limit: int, order: str
    ) -> ItemPage:
        return await self._store.item_list(Conversation(owner, conversation_id), after, limit, order)

    async def item(self, owner: str, conversation_id: str, item_id: str) -> StoredItem:
        found = await self._store.get_item(Conversation(owner, conversation_id), item_id)
        if found is None:
            raise _item_not_found(item_id)
        return found

    async def delete_item(self, owner: str, conversation_id: str, item_id: str) -> ConversationInfo:
        """Delete one item, and recount the list entry from the head; the conversation as it is after."""
        conversation = Conversation(owner, conversation_id)
        if not await self._store.delete_item(conversation, item_id):
            raise _item_not_found(item_id)
        head = await self._existing(conversation)
        try:
            await self._conversations.recount(conversation, floor=head.floor, message_count=head.item_count)
        except ChatError as e:
            # The item is gone either way; the list entry heals on the next turn.
            log.warning("conversation list not recounted: %s", e.code)
        return ConversationInfo(conversation_id, head.created_at or 0, head.metadata)

    async def response(self, owner: str, response_id: str) -> StoredResponse:
        found = await self._store.read_response(owner, response_id)
        if found is None:
            raise _response_not_found(response_id)
        return found

    async def response_or_run(self, owner: str, response_id: str) -> StoredResponse | Run:
        """A stored response, or else one still being answered."""
        found = await self._store.read_response(owner, response_id)
        if found is not None:
            return found
        run = await self._runs.find(owner, response_id)
        if run is None:
            raise _response_not_found(response_id)
        return run

    async def delete_response(self, owner: str, response_id: str) -> None:
        if not await self._store.delete_response(owner, response_id):
            raise _response_not_found(response_id)

    async def _existing(self, conversation: Conversation) -> Head:
        head = await self._store.read_head(conversation)
        if not head.exists:
            raise ConversationNotFound()
        return head

    async def ping(self) -> None:
        await self._store.ping()

    async def check_model(self) -> None:
        await self._model.check()

    # -- the steps of a turn ---------------------------------------------------------------

    async def _resolved(self, owner: str, request: TurnInput) -> TurnInput:
        """The request with each item reference replaced by the item the owner's earlier turn
        stored (under an ID of its own, as every input item is); a 404 naming an ID that the
        owner has no item under (another owner's included)."""
        if not request.references:
            return request
        found = await asyncio.gather(*(self._store.find_owned_item(owner, ref.id) for ref in request.references))
        inputs = list(request.inputs)
        for ref, item in sorted(zip(request.references, found, strict=True), key=lambda pair: pair[0].position):
            if item is None:
                raise NotFound(
                    f"Item with id '{ref.id[:100]}' not found.", code="item_not_found", param=f"input[{ref.position}]"
                )
            inputs.insert(ref.position, copied(item))
        return replace(request, inputs=tuple(inputs), references=())

    def _turn_cost(self, turn: Turn) -> int:
        return turn_cost(turn, self._estimate)

    async def _place(self, owner: str, request: TurnInput) -> Place:
        """Where the turn goes. A response that continues another goes in that one's chain, after
        it (a branch, if other turns followed it); one that continues a response of a conversation
        starts a chain that branches off there; one in neither starts a chain."""
        self._check_inputs(request.inputs)
        if request.idempotency_key is not None and not request.store:
            raise InvalidRequest("An Idempotency-Key needs a stored response: leave it out with store false.")
        if request.response is None:
            return Place(_conversation(owner, request))
        continues = None
        if request.previous_response_id is not None:
            continues = await self._store.locate_response(owner, request.previous_response_id)
            if continues is None:
                raise NotFound(
                    f"Previous response with id '{request.previous_response_id[:100]}' not found.",
                    code="previous_response_not_found",
                    param="previous_response_id",
                )
            in_chain = is_chain(continues.conversation_id)
            chain_id = continues.conversation_id if in_chain else new_chain_id(owner, request.idempotency_key)
            conversation = Conversation(owner, chain_id)
        elif request.conversation_id is None:
            conversation = Conversation(owner, new_chain_id(owner, request.idempotency_key))
        else:
            conversation = Conversation(owner, request.conversation_id)
        return Place(conversation, continues, new_response_id(conversation if request.store else None))

    def _check_fits(self, place: Place, request: TurnInput) -> None:
        """Refuse, before the model is asked, a turn whose input (and what is kept of its response)
        leaves no room in one write for an answer. (One message within the message cap always
        fits, with the longest answer: the cap is set so.)"""
        if request.store and (request.response is not None or len(request.inputs) > 1):
            answer = (Message("msg_" + "0" * 24, "assistant", ""),)
            self._check_input_fits(place.conversation, self._new_turn(place, request, answer, None, None))

    def _check_input_fits(self, conversation: Conversation, turn: NewTurn) -> None:
        try:
            self._store.check_storable(conversation, turn)
        except (AnswerTooLarge, ValueError):
            raise PayloadTooLarge(
                f"The input ({len(turn.inputs)} items, and the response's settings) is too large to store as "
                "one turn: send fewer or shorter items, or fewer or smaller tools.",
                code="input_too_large",
            ) from None

    def _check_inputs(self, items: tuple[Item, ...]) -> None:
        """Every input item within the message cap: the rule of every front door."""
        if self._max_chars is None:
            return
        for item in items:
            size = len(item_text(item)) if not isinstance(item, FunctionCall) else len(item.arguments)
            if size > self._max_chars:
                raise PayloadTooLarge(
                    f"An input item has {size:,} characters; the limit is {self._max_chars:,}.",
                    code="message_too_large",
                )

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

    async def _prepare(self, place: Place, request: TurnInput) -> tuple[History, Reservation | None]:
        """Read the window and, with a quota, reserve the turn's tokens (the owner's count for the
        day is read beside the window)."""
        conversation = place.conversation
        reading = self._read(place, request)
        day = _today()
        count: DayCount | None
        if self._quota:
            history, count = await asyncio.gather(reading, self._token_counts.read(conversation.owner, day))
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
        prompt = self._prompt_tokens(self._model_request(history, request))
        reservation = Reservation(conversation.owner, day, prompt, prompt + answer_cap)
        await self._reserve(reservation, count)
        return history, reservation

    def _prompt_tokens(self, request: ModelRequest) -> int:
        texts = [
            request.system_prompt,
            *([request.instructions] if request.instructions else []),
            *map(item_text, request.items),
        ]
        return sum(self._estimate(text) for text in texts)

    async def _reserve(self, reservation: Reservation, count: DayCount) -> None:
        """Hold the turn's tokens in the owner's count, or refuse the turn.

        `count` is a read from before: if it leaves no room, nothing is written. A turn that only
        turns in flight keep out (their reservations will settle or be refunded) waits and tries
        again; one that settled usage keeps out is refused at once.
        """
        for attempt in range(RESERVE_ATTEMPTS):
            if attempt:
                await asyncio.sleep(random.uniform(0, RESERVE_BACKOFF_SECONDS * 2**attempt))
                count = await self._token_counts.read(reservation.owner, reservation.day)
            if count.settled + reservation.tokens > self._quota:
                raise self._quota_exceeded(reservation, busy=False)
            if count.total + reservation.tokens <= self._quota and await self._hold(reservation, count):
                return
        raise self._quota_exceeded(reservation, busy=True)

    async def _hold(self, reservation: Reservation, count: DayCount) -> bool:
        """Add the reservation, then read the total: whether it fits; if not, it is refunded."""
        counts = self._token_counts
        await counts.add(reservation.owner, reservation.day, reservation.tokens, held=reservation.tokens, seen=count)
        try:
            after = await counts.read(reservation.owner, reservation.day)
        except ChatError:
            await self._settle(reservation, 0)
            raise
        if after.total <= self._quota:
            return True
        await self._settle(reservation, 0, seen=after)
        return False

    def _quota_exceeded(self, reservation: Reservation, *, busy: bool) -> RateLimited:
        if busy:
            message = (
                f"Your other turns in progress hold what is left of the daily quota of {self._quota:,} tokens; "
                "try again when they are done."
            )
            return RateLimited(message, retry_after=BUSY_RETRY_AFTER_SECONDS, code="quota_exceeded")
        if reservation.tokens > self._quota:
            message = (
                f"This turn needs up to {reservation.tokens:,} tokens (its message, the history sent with it and "
                f"an answer of up to {self._answer_cap or 0:,}), more than the daily quota of {self._quota:,}: "
                "send a shorter message or start a new conversation."
            )
        else:
            message = (
                f"The daily quota of {self._quota:,} tokens has no room left for this turn (up to "
                f"{reservation.tokens:,} with its answer); it renews at midnight UTC."
            )
        return RateLimited(message, retry_after=_seconds_to_midnight(), code="quota_exceeded")

    async def _settle(self, reservation: Reservation | None, used: int, *, seen: DayCount | None = None) -> None:
        """Replace the turn's reservation in the owner's count with the tokens it used."""
        if reservation is None:
            return
        change = used - reservation.tokens
        try:
            await self._token_counts.add(
                reservation.owner, reservation.day, change, held=-reservation.tokens, seen=seen
            )
        except ChatError as e:
            # Counted up front, a reservation that stays over-counts; only a turn that used more
            # than it reserved (an estimate too low) is under-counted by a failed settle.
            log.log(
                logging.ERROR if change > 0 else logging.WARNING,
                "daily token count not settled (%s): %+d tokens of owner %s not applied",
                e.code,
                change,
                digest("owner", reservation.owner)[:16],
            )

    def _output_cap(self, request: TurnInput) -> int | None:
        """The answer's token limit: the server's, or the request's if lower."""
        caps = [cap for cap in (self._answer_cap, request.max_output_tokens) if cap is not None]
        return min(caps) if caps else None

    def _model_request(self, history: History, request: TurnInput) -> ModelRequest:
        return ModelRequest(
            system_prompt=self._system_prompt,
            items=prompt_items(history.turns, request.inputs),
            instructions=request.instructions,
            tools=request.tools,
            tool_choice=request.tool_choice,
            parallel_tool_calls=request.parallel_tool_calls,
            max_output_tokens=self._output_cap(request),
            temperature=request.temperature,
            top_p=request.top_p,
            user=request.user,
            prompt_cache_key=request.prompt_cache_key,
        )

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
            await self._settle(reservation, 0)
            raise

    @staticmethod
    def _new_turn(
        place: Place, request: TurnInput, outputs: tuple[Item, ...], finish_reason: str | None, usage: Usage | None
    ) -> NewTurn:
        response = None
        if request.response is not None and place.response_id is not None:
            response = ResponseRecord(place.response_id, request.response)
        return NewTurn(
            inputs=request.inputs,
            outputs=outputs,
            finish_reason=finish_reason,
            usage=usage,
            created_at=utc_now(),
            idempotency_key=request.idempotency_key,
            request_hash=request_hash(request.inputs) if request.idempotency_key else None,
            response=response,
            continues=place.continues,
        )

    async def _commit(self, conversation: Conversation, history: History, turn: NewTurn) -> Turn | None:
        """Store the turn under the next free number, and keep the owner's list up.

        Returns the stored turn of an earlier request with the same Idempotency-Key, if that one
        won the race (this turn is then not stored). Raises ConversationNotFound if the
        conversation was deleted since its history was read.
        """
        # Refuse an oversized turn before anything is written.
        self._store.check_storable(conversation, turn)
        head = history.head
        planned = head.latest_turn + 1
        opening = history.turns[0] if history.turns else None
        first_message = _title_text(opening.inputs if opening and opening.number == head.first_turn else turn.inputs)
        listed = not conversation.is_chain
        count = head.item_count + len(turn.items)
        if listed and planned == head.first_turn:
            # A new conversation is listed before its first turn is stored, marked unconfirmed, so
            # a conversation that exists is always listed: if this write fails, nothing is stored.
            await self._conversations.record_activity(
                conversation,
                floor=head.floor,
                first_message=first_message,
                at=turn.created_at,
                message_count=count,
                ahead=True,
            )
        # Beside the turn's transaction: the list entry of a conversation that is already listed.
        # The list entry carries the head's floor, so a turn that loses to a delete cannot list it.
        beside = None
        if listed and planned > head.first_turn:
            beside = asyncio.ensure_future(
                self._record_activity(conversation, head, first_message, turn.created_at, count)
            )
        # A response's items are also indexed for their owner, so a later request's item_reference
        # finds them without naming their conversation.
        indexed = (
            asyncio.ensure_future(self._index_items(conversation, planned, turn)) if turn.response is not None else None
        )
        try:
            number, replay, stored_after = await self._insert(conversation, head, turn)
        finally:
            beside_done = await beside if beside is not None else True
            if indexed is not None:
                await indexed
        if replay is None and indexed is not None and number != planned:
            await self._index_items(conversation, number, turn)
        if replay is None:
            if listed and (number != planned or planned == head.first_turn or not beside_done):
                # The turn that took the first number names the conversation (and confirms its
                # entry), even if a racing first turn listed it before; an update that failed
                # beside the transaction is tried once more.
                updated = await self._record_activity(
                    conversation,
                    head,
                    first_message,
                    turn.created_at,
                    stored_after.item_count + len(turn.items),
                    retitle=number == head.first_turn,
                )
                if not updated and number != head.first_turn:
                    log.error("conversation list not updated for turn %d of %s", number, conversation.key[:16])
            self._log_turn(conversation, number, turn)
        return replay

    async def _store_turn(
        self, place: Place, history: History, turn: NewTurn, reservation: Reservation | None, *, store: bool = True
    ) -> Turn | None:
        """Commit the turn (unless it is not to be stored) and, beside it, settle its reservation:
        the model's tokens are spent whether or not the turn is then stored."""
        conversation = place.conversation
        commit = self._commit(conversation, history, turn) if store else _nothing()
        if reservation is None:
            return await commit
        if turn.usage is not None:
            used = turn.usage.total_tokens
        else:
            used = reservation.prompt + sum(self._estimate(item_text(item)) for item in turn.outputs)
        settling = asyncio.ensure_future(self._settle(reservation, used))
        try:
            return await commit
        finally:
            await settling

    def _log_turn(self, conversation: Conversation, number: int, turn: NewTurn) -> None:
        if self._log_content:
            log.info(
                "turn %d of %s: input %r, output %r",
                number,
                conversation.key[:16],
                [item_text(item) for item in turn.inputs],
                [item_text(item) for item in turn.outputs],
            )
        else:
            log.info("turn %d of %s stored", number, conversation.key[:16])

    async def _insert(self, conversation: Conversation, head: Head, turn: NewTurn) -> tuple[int, Turn | None, Head]:
        """Append the turn after the newest: its number, the stored turn of a request with its
        Idempotency-Key that won instead, and the head it was stored after.

        A write whose answer was lost (TurnOutcomeUnknown), or one the storage client sent again
        after such a loss and which then clashed with itself, may have stored the turn: the turn
        it tried to take is read back, and if it holds this turn's items (their IDs are this
        request's own), that is the answer. Otherwise the head is read again and the write
        retried once, still conditional on the head, so a write that lands late makes the retry
        clash and is found by the next read-back; a second lost answer not followed by the turn
        fails it (StorageUnavailable), with nothing stored.
        """
        floor = head.floor
        unanswered = 0
        for _ in range(MAX_COMMIT_ATTEMPTS):
            try:
                return await self._store.append_turn(conversation, head, turn), None, head
            except (TurnConflict, TurnOutcomeUnknown) as e:
                if isinstance(e, TurnOutcomeUnknown):
                    unanswered += 1
                tried, tried_after = head.latest_turn + 1, head
                found = None
                if turn.idempotency_key is None:
                    head = await self._store.read_head(conversation)
                else:
                    head, found = await asyncio.gather(
                        self._store.read_head(conversation),
                        self._store.find_idempotent(conversation, turn.idempotency_key, floor),
                    )
                if head.latest_turn >= tried and await self._is_stored(conversation, tried, turn):
                    return tried, None, tried_after
                if unanswered == MAX_UNANSWERED_WRITES:
                    raise StorageUnavailable(
                        "Storage did not answer the write, and the turn is not stored; try again."
                    ) from None
                if head.floor != floor:
                    # Deleted since this turn read it: the delete wins, and nothing of the turn is kept.
                    raise ConversationNotFound(DELETED) from None
                if found is not None:
                    stored, stored_hash = found
                    if stored_hash != turn.request_hash:
                        raise IdempotencyKeyReused(KEY_REUSED) from None
                    return stored.number, stored, head
        raise ConversationBusy("Too many turns at once on this conversation; try again.")

    async def _is_stored(self, conversation: Conversation, number: int, turn: NewTurn) -> bool:
        """Whether turn `number` is this one: the same items, by their IDs."""
        stored = await self._store.find_turn(conversation, number)
        return stored is not None and [item.id for item in stored.items] == [item.id for item in turn.items]

    async def _index_items(self, conversation: Conversation, number: int, turn: NewTurn) -> None:
        try:
            await self._store.index_items(conversation, number, turn.items)
        except ChatError as e:
            # The turn is what matters: a later reference to one of its items is a 404 naming it.
            log.warning("items of turn %d not indexed for their owner: %s", number, e.code)

    async def _record_activity(
        self, conversation: Conversation, head: Head, first_message: str, at: str, count: int, *, retitle: bool = False
    ) -> bool:
        """List the conversation with `count` items, at its turn of `at`; whether that was written.

        A stored turn is not failed for its list entry: the entry exists already (a first turn
        wrote it ahead, unconfirmed, which readers of the list check and put right)."""
        try:
            await self._conversations.record_activity(
                conversation,
                floor=head.floor,
                first_message=first_message,
                at=at,
                message_count=count,
                retitle=retitle,
            )
        except ChatError as e:
            log.warning("conversation list not updated: %s", e.code)
            return False
        return True


def _conversation(owner: str, request: TurnInput) -> Conversation:
    return Conversation(owner, request.conversation_id or new_conversation_id(owner, request.idempotency_key))


def new_openai_conversation_id() -> str:
    """A conversation ID as OpenAI makes them: `conv_` and 48 hex digits."""
    return "conv_" + secrets.token_hex(24)


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


def _title_text(items: tuple[Item, ...]) -> str:
    """What names a conversation in its owner's list: the text of its first messages."""
    return " ".join(item.text for item in items if isinstance(item, Message) and item.text)


def _response_not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id[:100]}' not found.", code="response_not_found")


def _item_not_found(item_id: str) -> NotFound:
    return NotFound(f"Item with id '{item_id[:100]}' not found.", code="item_not_found")


def _today() -> str:
    return datetime.now(UTC).strftime("%Y%m%d")


def _seconds_to_midnight() -> int:
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((midnight - now).total_seconds()))


def new_conversation_id(owner: str, idempotency_key: str | None) -> str:
    """A new unguessable conversation ID, or, for a retried request, the one its first try got."""
    if idempotency_key is None:
        return secrets.token_urlsafe(18)
    return base64.urlsafe_b64encode(bytes.fromhex(digest("new conversation", owner, idempotency_key))[:18]).decode()


def _replayed(conversation: Conversation, turn: Turn) -> Answer:
    return Answer(
        conversation.id,
        turn.outputs,
        turn.finish_reason,
        turn.usage,
        replayed=True,
        response_id=turn.response_id,
        created_at=turn.created_at,
    )


async def _nothing() -> None:
    return None


async def _replay_events(turn: Turn) -> AsyncIterator[StreamEvent]:
    for item in turn.outputs:
        if isinstance(item, Message):
            yield ItemStarted(replace(item, text=""))
            if item.text:
                yield TextDelta(item.id, item.text)
        elif isinstance(item, FunctionCall):
            yield ItemStarted(FunctionCall(item.id, item.call_id, item.name, ""))
            if item.arguments:
                yield ArgumentsDelta(item.id, item.arguments)
    yield Done(turn.finish_reason, turn.usage, turn.outputs, turn.created_at)


async def _from_queue(queue: asyncio.Queue[StreamEvent]) -> AsyncIterator[StreamEvent]:
    while True:
        event = await queue.get()
        yield event
        if isinstance(event, Done | Failed):
            return
