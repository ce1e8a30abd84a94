"""One chat turn: read the window, ask the model, store both messages, answer.

The service knows nothing of HTTP or of the Azure SDKs: it talks to a HistoryStore and a
ModelClient and raises the errors of errors.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

from .errors import ChatError, ContextTooLong, ConversationBusy, IdempotencyKeyReused, TurnConflict
from .model import Finished, ModelClient, TextDelta
from .models import TurnInput
from .store import (
    Conversation,
    History,
    HistoryStore,
    NewTurn,
    Page,
    Turn,
    Usage,
    request_hash,
    utc_now,
)
from .tokens import estimate_tokens

log = logging.getLogger(__name__)

MAX_COMMIT_ATTEMPTS = 64
SHUTDOWN_GRACE_SECONDS = 30


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


class ChatService:
    def __init__(
        self,
        store: HistoryStore,
        model: ModelClient,
        *,
        system_prompt: str,
        history_token_budget: int,
        estimate: Callable[[str], int] = estimate_tokens,
    ) -> None:
        self._store = store
        self._model = model
        self._system_prompt = system_prompt
        self._budget = history_token_budget
        self._estimate = estimate
        self._streams: set[asyncio.Task] = set()

    async def aclose(self) -> None:
        """Let answers still streaming to a departed client finish and be stored."""
        if self._streams:
            await asyncio.wait(set(self._streams), timeout=SHUTDOWN_GRACE_SECONDS)

    async def reply(self, owner: str, request: TurnInput) -> Answer:
        conversation, history = await self._prepare(owner, request)
        if history.replay is not None:
            return _replayed(conversation, history.replay)
        try:
            completion = await self._model.complete(self._prompt(history, request.content))
        except ContextTooLong:
            history = _shrunk(history)
            completion = await self._model.complete(self._prompt(history, request.content))
        new_turn = self._new_turn(request, completion.content, completion.finish_reason, completion.usage)
        replay = await self._commit(conversation, history, new_turn)
        if replay is not None:
            return _replayed(conversation, replay)
        return Answer(conversation.id, completion.content, completion.finish_reason, completion.usage)

    async def stream(self, owner: str, request: TurnInput) -> StreamedAnswer:
        """Start a streamed turn. Errors before the model's first byte raise here.

        The model's answer is drained by a task of its own, so a client that disconnects does not
        stop it: the answer is stored and waits in the history when the client comes back.
        """
        conversation, history = await self._prepare(owner, request)
        if history.replay is not None:
            return StreamedAnswer(conversation.id, _replay_events(history.replay))
        try:
            events = await self._model.stream(self._prompt(history, request.content))
        except ContextTooLong:
            history = _shrunk(history)
            events = await self._model.stream(self._prompt(history, request.content))
        queue: asyncio.Queue[StreamEvent] = asyncio.Queue()
        task = asyncio.create_task(self._drain(conversation, history, request, events, queue))
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)
        return StreamedAnswer(conversation.id, _from_queue(queue))

    async def _drain(
        self,
        conversation: Conversation,
        history: History,
        request: TurnInput,
        events: AsyncIterator[TextDelta | Finished],
        queue: asyncio.Queue[StreamEvent],
    ) -> None:
        parts: list[str] = []
        try:
            async for event in events:
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                    queue.put_nowait(event)
                    continue
                answer = "".join(parts)
                new_turn = self._new_turn(request, answer, event.finish_reason, event.usage)
                replay = await self._commit(conversation, history, new_turn)
                if replay is not None:
                    log.warning("a concurrent request with the same Idempotency-Key stored its answer first")
                queue.put_nowait(Done(event.finish_reason, event.usage))
        except ChatError as e:
            queue.put_nowait(Failed(e))
        except Exception:
            log.exception("a streamed turn failed")
            queue.put_nowait(Failed(ChatError("The answer failed.")))
            raise

    # -- reading ------------------------------------------------------------------------

    async def messages(self, owner: str, conversation_id: str, limit: int, cursor: str | None) -> Page:
        return await self._store.messages_page(Conversation(owner, conversation_id), limit, cursor)

    async def conversations(self, owner: str, limit: int, cursor: str | None) -> Page:
        return await self._store.list_conversations(owner, limit, cursor)

    async def delete(self, owner: str, conversation_id: str) -> None:
        await self._store.delete_conversation(Conversation(owner, conversation_id))

    # -- the steps of a turn ---------------------------------------------------------------

    async def _prepare(self, owner: str, request: TurnInput) -> tuple[Conversation, History]:
        conversation = Conversation(owner, request.conversation_id or _new_id(owner, request.idempotency_key))
        history = await self._store.read_history(conversation, self._budget, self._estimate, request.idempotency_key)
        if history.replay is not None and history.replay_request_hash != request_hash(request.content):
            raise IdempotencyKeyReused("This Idempotency-Key was already used for a different message.")
        return conversation, history

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
        """Store the turn under the next free number; the list entry is kept up beside it.

        Returns the stored turn of an earlier request with the same Idempotency-Key, if that one
        won the race (this turn is then not stored).
        """
        planned = history.latest_turn + 1
        opening = history.turns[0] if history.turns else None
        first_message = opening.user.content if opening and opening.number == 1 else turn.user_content
        listing = asyncio.create_task(self._record_activity(conversation, first_message, turn.created_at, planned))
        try:
            number, replay = await self._insert(conversation, planned, turn)
        finally:
            await listing
        if replay is None and number != planned:
            await self._record_activity(conversation, first_message, turn.created_at, number)
        return replay

    async def _insert(self, conversation: Conversation, number: int, turn: NewTurn) -> tuple[int, Turn | None]:
        for _ in range(MAX_COMMIT_ATTEMPTS):
            try:
                await self._store.append_turn(conversation, number, turn)
                return number, None
            except TurnConflict:
                if turn.idempotency_key is not None:
                    found = await self._store.find_idempotent(conversation, turn.idempotency_key)
                    if found is not None:
                        return number, found[0]
                number = await self._store.latest_turn(conversation) + 1
        raise ConversationBusy("Too many turns at once on this conversation; try again.")

    async def _record_activity(self, conversation: Conversation, first_message: str, at: str, number: int) -> None:
        try:
            await self._store.record_activity(
                conversation, first_message=first_message, at=at, message_count=2 * number
            )
        except ChatError as e:
            # The turn itself is what matters; the list entry heals on the next turn.
            log.warning("conversation list not updated: %s", e.code)


def _new_id(owner: str, idempotency_key: str | None) -> str:
    """A new unguessable conversation ID, or, for a retried request, the one its first try got."""
    if idempotency_key is None:
        return secrets.token_urlsafe(18)
    digest = hashlib.sha256(f"{len(owner)}:{owner}:{idempotency_key}".encode()).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode("ascii")


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
