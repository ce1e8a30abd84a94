"""One chat turn: read the window, ask the model, store both messages, answer.

The service knows nothing of HTTP or of the Azure SDKs: it talks to the history store, the
conversation list, the daily token counts and the model client, and raises the errors of errors.py.

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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from chat.engine.errors import (
    ChatError,
    ContextTooLong,
    ConversationBusy,
    ConversationNotFound,
    DuplicateRequest,
    IdempotencyKeyReused,
    RateLimited,
    TurnConflict,
)
from chat.engine.tokens import estimate_tokens
from chat.model_client import Finished, ModelClient, TextDelta
from chat.storage import keys
from chat.storage.conversations import ConversationList
from chat.storage.messages import (
    Conversation,
    Head,
    History,
    HistoryStore,
    NewTurn,
    Page,
    Turn,
    Usage,
    request_hash,
    utc_now,
)
from chat.storage.quota import DayCount, TokenCounts
from chat.telemetry import TurnSpan
from chat.web.chat_protocol import TurnInput

log = logging.getLogger(__name__)

MAX_COMMIT_ATTEMPTS = 64
# A turn that only turns in flight keep out of the quota tries this many times, waiting a random
# time of up to twice, four and eight times RESERVE_BACKOFF_SECONDS between tries.
RESERVE_ATTEMPTS = 4
RESERVE_BACKOFF_SECONDS = 0.1
# Then its Retry-After: about as long as a turn in flight takes to answer.
BUSY_RETRY_AFTER_SECONDS = 5
SHUTDOWN_GRACE_SECONDS = 30
T = TypeVar("T")
KEY_REUSED = "This Idempotency-Key was already used for a different message."
DELETED = "The conversation was deleted while this turn was in flight; the turn was not stored."


@dataclass(frozen=True)
class Reservation:
    """The tokens a turn holds in its owner's count for the day until it settles."""

    owner: str
    day: str
    prompt: int  # the estimate of the prompt sent to the model
    tokens: int  # the prompt's estimate and the answer cap


@dataclass(frozen=True)
class Answer:
    conversation_id: str
    content: str
    finish_reason: str | None
    usage: Usage | None
    replayed: bool = False


@dataclass(frozen=True)
class Done:
    """The last event of a stream: the turn is stored."""

    finish_reason: str | None
    usage: Usage | None


@dataclass(frozen=True)
class Failed:
    error: ChatError


StreamEvent = TextDelta | Done | Failed


@dataclass(frozen=True)
class StreamedAnswer:
    conversation_id: str
    events: AsyncIterator[StreamEvent]
    replayed: bool = False


class ChatService:
    def __init__(
        self,
        store: HistoryStore,
        conversations: ConversationList,
        token_counts: TokenCounts,
        model: ModelClient,
        *,
        system_prompt: str,
        history_token_budget: int,
        daily_token_quota: int = 0,
        max_answer_tokens: int | None = None,
        log_content: bool = False,
        estimate: Callable[[str], int] = estimate_tokens,
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
        self._log_content = log_content
        self._estimate = estimate
        self._streams: set[asyncio.Task] = set()

    async def aclose(self) -> None:
        """Let answers still streaming to a departed client finish and be stored."""
        if self._streams:
            await asyncio.wait(set(self._streams), timeout=SHUTDOWN_GRACE_SECONDS)

    async def reply(self, owner: str, request: TurnInput) -> Answer:
        conversation = _conversation(owner, request)
        span = TurnSpan(conversation.partition, self._model.model, streamed=False)
        try:
            answer = await self._reply(conversation, request)
        except BaseException as e:
            span.fail(e)
            raise
        span.succeed(finish_reason=answer.finish_reason, usage=answer.usage, replayed=answer.replayed)
        return answer

    async def _reply(self, conversation: Conversation, request: TurnInput) -> Answer:
        history, reservation = await self._prepare(conversation, request)
        if history.replay is not None:
            return _replayed(conversation, history.replay)
        history, completion = await self._ask(self._model.complete, history, request.content, reservation)
        new_turn = self._new_turn(request, completion.content, completion.finish_reason, completion.usage)
        replay = await self._store_turn(conversation, history, new_turn, reservation)
        if replay is not None:
            return _replayed(conversation, replay)
        return Answer(conversation.id, completion.content, completion.finish_reason, completion.usage)

    async def stream(self, owner: str, request: TurnInput) -> StreamedAnswer:
        """Start a streamed turn. Errors before the model's first byte raise here.

        The model's answer is drained by a task of its own, so a client that disconnects does not
        stop it: the answer is stored and waits in the history when the client comes back.
        """
        conversation = _conversation(owner, request)
        span = TurnSpan(conversation.partition, self._model.model, streamed=True)
        try:
            history, reservation = await self._prepare(conversation, request)
            if history.replay is not None:
                assistant = history.replay.assistant
                span.succeed(finish_reason=assistant.finish_reason, usage=assistant.usage, replayed=True)
                return StreamedAnswer(conversation.id, _replay_events(history.replay), replayed=True)
            history, events = await self._ask(self._model.stream, history, request.content, reservation)
        except BaseException as e:
            span.fail(e)
            raise
        queue: asyncio.Queue[StreamEvent] = asyncio.Queue()
        task = asyncio.create_task(self._drain(conversation, history, request, reservation, events, queue, span))
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)
        return StreamedAnswer(conversation.id, _from_queue(queue))

    async def _drain(
        self,
        conversation: Conversation,
        history: History,
        request: TurnInput,
        reservation: Reservation | None,
        events: AsyncIterator[TextDelta | Finished],
        queue: asyncio.Queue[StreamEvent],
        span: TurnSpan,
    ) -> None:
        parts: list[str] = []
        answered = False
        try:
            async for event in events:
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                    queue.put_nowait(event)
                    continue
                answered = True
                answer = "".join(parts)
                new_turn = self._new_turn(request, answer, event.finish_reason, event.usage)
                if await self._store_turn(conversation, history, new_turn, reservation) is not None:
                    # The client has read an answer that is not the one kept: say so.
                    raise DuplicateRequest(
                        "A concurrent request with the same Idempotency-Key was stored first, so this answer "
                        "was not kept; send the request again with that key to read the stored one."
                    )
                span.succeed(finish_reason=event.finish_reason, usage=event.usage)
                queue.put_nowait(Done(event.finish_reason, event.usage))
        except ChatError as e:
            await self._settle_cut(reservation, answered, parts)
            span.fail(e)
            queue.put_nowait(Failed(e))
        except Exception as e:
            log.exception("a streamed turn failed")
            await self._settle_cut(reservation, answered, parts)
            span.fail(e)
            queue.put_nowait(Failed(ChatError("The answer failed.")))

    async def _settle_cut(self, reservation: Reservation | None, answered: bool, parts: list[str]) -> None:
        """Settle a stream that failed before the model finished: its usage is unknown, so it is
        charged its prompt and the text it sent. (A finished answer settled as it was stored.)"""
        if reservation is not None and not answered:
            await self._settle(reservation, reservation.prompt + self._estimate("".join(parts)))

    # -- reading ------------------------------------------------------------------------

    async def messages(self, owner: str, conversation_id: str, limit: int, cursor: str | None) -> Page:
        return await self._store.messages_page(Conversation(owner, conversation_id), limit, cursor)

    async def conversations(self, owner: str, limit: int, cursor: str | None) -> Page:
        return await self._conversations.list_conversations(owner, limit, cursor)

    async def delete(self, owner: str, conversation_id: str) -> None:
        """Delete the conversation; it wins over every turn in flight.

        The floor goes up first: from then on no turn that read the conversation before can be
        stored, and none of its rows is read. Then it is unlisted, then its rows are removed; a
        delete cut short leaves rows nothing reads nor lists, and a retry finishes it.
        """
        conversation = Conversation(owner, conversation_id)
        floor = await self._store.raise_floor(conversation)
        await self._conversations.forget(conversation, floor)
        await self._store.delete_turns(conversation, floor)

    # -- the steps of a turn ---------------------------------------------------------------

    async def _prepare(self, conversation: Conversation, request: TurnInput) -> tuple[History, Reservation | None]:
        """Read the window and, with a quota, reserve the turn's tokens (the owner's count for the
        day is read beside the window)."""
        reading = self._store.read_history(conversation, self._budget, self._estimate, request.idempotency_key)
        day = _today()
        if self._quota:
            history, count = await asyncio.gather(reading, self._token_counts.read(conversation.owner, day))
        else:
            history, count = await reading, None
        if history.replay is not None:
            if history.replay_request_hash != request_hash(request.content):
                raise IdempotencyKeyReused(KEY_REUSED)
            return history, None
        if count is None:
            return history, None
        prompt = sum(self._estimate(message["content"]) for message in self._prompt(history, request.content))
        reservation = Reservation(conversation.owner, day, prompt, prompt + self._answer_cap)
        await self._reserve(reservation, count)
        return history, reservation

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
                f"an answer of up to {self._answer_cap:,}), more than the daily quota of {self._quota:,}: "
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
                keys.owner_partition(reservation.owner)[:16],
            )

    async def _ask(
        self,
        call: Callable[[list[dict[str, str]], int | None], Awaitable[T]],
        history: History,
        content: str,
        reservation: Reservation | None,
    ) -> tuple[History, T]:
        """Call the model; after context_length_exceeded, once more with half the window.

        Returns the history actually sent and the call's result. A call that fails answered
        nothing, so its reservation is refunded.
        """
        try:
            try:
                return history, await call(self._prompt(history, content), self._answer_cap)
            except ContextTooLong:
                history = _shrunk(history)
                return history, await call(self._prompt(history, content), self._answer_cap)
        except ChatError:
            await self._settle(reservation, 0)
            raise

    def _prompt(self, history: History, content: str) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": self._system_prompt}]
        for turn in history.turns:
            messages.append({"role": "user", "content": turn.user.content})
            messages.append({"role": "assistant", "content": turn.assistant.content})
        messages.append({"role": "user", "content": content})
        return messages

    @staticmethod
    def _new_turn(request: TurnInput, answer: str, finish_reason: str | None, usage: Usage | None) -> NewTurn:
        return NewTurn(
            user_content=request.content,
            answer=answer,
            finish_reason=finish_reason,
            usage=usage,
            created_at=utc_now(),
            idempotency_key=request.idempotency_key,
            request_hash=request_hash(request.content) if request.idempotency_key else None,
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
        first_message = opening.user.content if opening and opening.number == head.first_turn else turn.user_content
        # Beside the turn's transaction: the list entry of a conversation that is already listed.
        # A new conversation is listed only once its first turn is stored. The list entry carries
        # the head's floor, so a turn that loses to a delete cannot list it.
        beside = []
        if planned > head.first_turn:
            beside.append(self._record_activity(conversation, head, first_message, turn.created_at, planned))
        beside_task = asyncio.ensure_future(asyncio.gather(*beside))
        try:
            number, replay = await self._insert(conversation, head, turn)
        finally:
            await beside_task
        if replay is None:
            if number != planned or planned == head.first_turn:
                # The turn that took the first number names the conversation, even if a racing
                # first turn listed it before.
                await self._record_activity(
                    conversation, head, first_message, turn.created_at, number, retitle=number == head.first_turn
                )
            self._log_turn(conversation, number, turn)
        return replay

    async def _store_turn(
        self, conversation: Conversation, history: History, turn: NewTurn, reservation: Reservation | None
    ) -> Turn | None:
        """Commit the turn and, beside it, settle its reservation: the model's tokens are spent
        whether or not the turn is then stored."""
        if reservation is None:
            return await self._commit(conversation, history, turn)
        if turn.usage is not None:
            used = turn.usage.prompt_tokens + turn.usage.completion_tokens
        else:
            used = reservation.prompt + self._estimate(turn.answer)
        settling = asyncio.ensure_future(self._settle(reservation, used))
        try:
            return await self._commit(conversation, history, turn)
        finally:
            await settling

    def _log_turn(self, conversation: Conversation, number: int, turn: NewTurn) -> None:
        if self._log_content:
            log.info(
                "turn %d of %s: user %r, answer %r", number, conversation.partition[:16], turn.user_content, turn.answer
            )
        else:
            log.info("turn %d of %s stored", number, conversation.partition[:16])

    async def _insert(self, conversation: Conversation, head: Head, turn: NewTurn) -> tuple[int, Turn | None]:
        floor = head.floor
        for _ in range(MAX_COMMIT_ATTEMPTS):
            try:
                return await self._store.append_turn(conversation, head, turn), None
            except TurnConflict:
                found = None
                if turn.idempotency_key is None:
                    head = await self._store.read_head(conversation)
                else:
                    head, found = await asyncio.gather(
                        self._store.read_head(conversation),
                        self._store.find_idempotent(conversation, turn.idempotency_key, floor),
                    )
                if head.floor != floor:
                    # Deleted since this turn read it: the delete wins, and nothing of the turn is kept.
                    raise ConversationNotFound(DELETED) from None
                if found is not None:
                    stored, stored_hash = found
                    if stored_hash != turn.request_hash:
                        raise IdempotencyKeyReused(KEY_REUSED) from None
                    return stored.number, stored
        raise ConversationBusy("Too many turns at once on this conversation; try again.")

    async def _record_activity(
        self, conversation: Conversation, head: Head, first_message: str, at: str, number: int, *, retitle: bool = False
    ) -> None:
        try:
            await self._conversations.record_activity(
                conversation,
                floor=head.floor,
                first_message=first_message,
                at=at,
                message_count=2 * (number - head.floor),
                retitle=retitle,
            )
        except ChatError as e:
            # The turn itself is what matters; the list entry heals on the next turn.
            log.warning("conversation list not updated: %s", e.code)


def _conversation(owner: str, request: TurnInput) -> Conversation:
    return Conversation(owner, request.conversation_id or _new_id(owner, request.idempotency_key))


def _today() -> str:
    return datetime.now(UTC).strftime("%Y%m%d")


def _seconds_to_midnight() -> int:
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((midnight - now).total_seconds()))


def _new_id(owner: str, idempotency_key: str | None) -> str:
    """A new unguessable conversation ID, or, for a retried request, the one its first try got."""
    if idempotency_key is None:
        return secrets.token_urlsafe(18)
    return base64.urlsafe_b64encode(
        bytes.fromhex(keys.digest("new conversation", owner, idempotency_key))[:18]
    ).decode()


def _shrunk(history: History) -> History:
    """Half the window, newest turns kept: used once after context_length_exceeded."""
    if not history.turns:
        raise ContextTooLong("The message is too long for the model.")
    return replace(history, turns=history.turns[len(history.turns) // 2 + len(history.turns) % 2 :])


def _replayed(conversation: Conversation, turn: Turn) -> Answer:
    return Answer(
        conversation.id,
        turn.assistant.content,
        turn.assistant.finish_reason,
        turn.assistant.usage,
        replayed=True,
    )


async def _replay_events(turn: Turn) -> AsyncIterator[StreamEvent]:
    if turn.assistant.content:
        yield TextDelta(turn.assistant.content)
    yield Done(turn.assistant.finish_reason, turn.assistant.usage)


async def _from_queue(queue: asyncio.Queue[StreamEvent]) -> AsyncIterator[StreamEvent]:
    while True:
        event = await queue.get()
        yield event
        if not isinstance(event, TextDelta):
            return
