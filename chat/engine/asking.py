"""Asking the model: the request it is sent (the server's system prompt first, the window, the new
inputs, the caller's options under the server's answer cap), and the call, tried once more with half
the window after `context_length_exceeded`. A call that fails answered nothing: its reservation is
refunded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from chat.engine.errors import ChatError, ContextTooLong
from chat.engine.history import History
from chat.engine.items import item_text
from chat.engine.model import Completion, Model, ModelEvent, ModelRequest, tool_text
from chat.engine.quota import QuotaLedger, Reservation
from chat.engine.tokens import attachment_tokens
from chat.engine.turns import TurnInput
from chat.engine.window import prompt_items, shrunk

T = TypeVar("T")


class Asking:
    def __init__(
        self,
        model: Model,
        ledger: QuotaLedger,
        *,
        system_prompt: str,
        max_answer_tokens: int | None,
        estimate: Callable[[str], int],
    ) -> None:
        self._model = model
        self._ledger = ledger
        self._system_prompt = system_prompt
        self._answer_cap = max_answer_tokens
        self._estimate = estimate

    @property
    def model_name(self) -> str:
        return self._model.name

    async def complete(
        self, history: History, request: TurnInput, reservation: Reservation | None
    ) -> tuple[History, Completion]:
        return await self._ask(self._model.complete, history, request, reservation)

    async def stream(
        self, history: History, request: TurnInput, reservation: Reservation | None
    ) -> tuple[History, AsyncIterator[ModelEvent]]:
        return await self._ask(self._model.stream, history, request, reservation)

    def output_cap(self, request: TurnInput) -> int | None:
        """The answer's token limit: the server's, or the request's if lower."""
        caps = [cap for cap in (self._answer_cap, request.options.max_output_tokens) if cap is not None]
        return min(caps) if caps else None

    def prompt_tokens(self, history: History, request: TurnInput) -> int:
        """The estimate of the prompt the model would be sent: what a turn reserves besides its answer."""
        sent = self.model_request(history, request)
        texts = [sent.system_prompt, *([sent.instructions] if sent.instructions else []), *map(item_text, sent.items)]
        texts.extend(map(tool_text, sent.tools))
        return sum(self._estimate(text) for text in texts) + attachment_tokens(sent.items)

    def model_request(self, history: History, request: TurnInput) -> ModelRequest:
        options = request.options
        return ModelRequest(
            system_prompt=self._system_prompt,
            items=prompt_items(history.turns, request.inputs),
            instructions=options.instructions,
            tools=options.tools,
            tool_choice=options.tool_choice,
            parallel_tool_calls=options.parallel_tool_calls,
            max_output_tokens=self.output_cap(request),
            temperature=options.temperature,
            top_p=options.top_p,
            user=options.user,
            prompt_cache_key=options.prompt_cache_key,
            output_format=options.output_format,
            verbosity=options.verbosity,
            reasoning_effort=options.reasoning_effort,
        )

    async def _ask(
        self,
        call: Callable[[ModelRequest], Awaitable[T]],
        history: History,
        request: TurnInput,
        reservation: Reservation | None,
    ) -> tuple[History, T]:
        """Call the model; after context_length_exceeded, once more with half the window.

        Returns the history actually sent and the call's result."""
        try:
            try:
                return history, await call(self.model_request(history, request))
            except ContextTooLong:
                if not history.turns:
                    raise ContextTooLong("The message is too long for the model.") from None
                if not request.truncate:
                    raise ContextTooLong(
                        "The conversation is too long for the model, and truncation is disabled: "
                        "set truncation to auto to send only the newest turns that fit."
                    ) from None
                history = History(shrunk(history.turns), history.head, history.replay, history.replay_request_hash)
                return history, await call(self.model_request(history, request))
        except ChatError:
            await self._ledger.settle(reservation, 0)
            raise
