"""Counting a request's input (POST /responses/input_tokens): the estimate a turn's window budget and
reservation are made with (tokens.py, Asking.prompt_tokens), of the prompt the model would be sent:
the server's system prompt, the caller's instructions and tools, the window of the conversation or
of the previous response, and the input. Nothing is stored and the model is not asked."""

from __future__ import annotations

from chat.engine.asking import Asking
from chat.engine.errors import ConversationNotFound
from chat.engine.placing import Placement
from chat.engine.reading import Reading
from chat.engine.turns import TurnInput


class InputTokens:
    def __init__(self, placement: Placement, reading: Reading, asking: Asking) -> None:
        self._placement = placement
        self._reading = reading
        self._asking = asking

    async def count(self, owner: str, request: TurnInput) -> int:
        request = await self._placement.resolved(owner, request)
        self._placement.check_inputs(request.inputs)
        place = await self._placement.place(owner, request)
        history = await self._reading.window(place, request)
        if request.must_exist and not history.head.exists:
            raise ConversationNotFound()
        return self._asking.prompt_tokens(history, request)
