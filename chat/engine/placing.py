"""Before a turn reads anything: its inputs checked against the limits, the items it references
resolved, and where it goes (a conversation, a response chain, a branch of one)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from chat.engine.errors import AnswerTooLarge, InvalidRequest, ItemReferenceNotFound, NotFound, PayloadTooLarge
from chat.engine.history import Conversation, NewTurn, is_chain
from chat.engine.ids import new_chain_id, new_conversation_id, new_response_id
from chat.engine.items import MAX_ATTACHMENT_BYTES, FunctionCall, Item, Message, attachments, copied, item_text
from chat.engine.ports import ItemReads, TurnWrites
from chat.engine.turns import Place, TurnInput, new_turn


class Placement:
    """The rules every door's input meets, and where each turn goes."""

    def __init__(self, items: ItemReads, writes: TurnWrites, *, max_message_chars: int | None) -> None:
        self._items = items
        self._writes = writes
        self._max_chars = max_message_chars

    async def resolved(self, owner: str, request: TurnInput) -> TurnInput:
        """The request with each item reference replaced by the item the owner's earlier turn
        stored (under an ID of its own, as every input item is); a 404 naming an ID that the
        owner has no item under (another owner's included)."""
        if not request.references:
            return request
        found = await asyncio.gather(*(self._items.find_owned_item(owner, ref.id) for ref in request.references))
        inputs = list(request.inputs)
        for ref, item in sorted(zip(request.references, found, strict=True), key=lambda pair: pair[0].position):
            if item is None:
                raise ItemReferenceNotFound(ref.id, position=ref.position)
            inputs.insert(ref.position, copied(item))
        return replace(request, inputs=tuple(inputs), references=())

    async def place(self, owner: str, request: TurnInput) -> Place:
        """Where the turn goes. A response that continues another goes in that one's chain, after
        it (a branch, if other turns followed it); one that continues a response of a conversation
        starts a chain that branches off there; one in neither starts a chain."""
        self.check_inputs(request.inputs)
        if request.idempotency_key is not None and not request.store:
            raise InvalidRequest("An Idempotency-Key needs a stored response: leave it out with store false.")
        if request.response is None:
            conversation_id = request.conversation_id or new_conversation_id(owner, request.idempotency_key)
            return Place(Conversation(owner, conversation_id))
        continues = None
        if request.previous_response_id is not None:
            continues = await self._items.locate_response(owner, request.previous_response_id)
            if continues is None:
                raise NotFound(
                    f"Previous response with id '{request.previous_response_id[:100]}' not found.",
                    code="previous_response_not_found",
                )
            in_chain = is_chain(continues.conversation_id)
            chain_id = continues.conversation_id if in_chain else new_chain_id(owner, request.idempotency_key)
            conversation = Conversation(owner, chain_id)
        elif request.conversation_id is None:
            conversation = Conversation(owner, new_chain_id(owner, request.idempotency_key))
        else:
            conversation = Conversation(owner, request.conversation_id)
        return Place(conversation, continues, new_response_id(conversation.key if request.store else None))

    def check_fits(self, place: Place, request: TurnInput) -> None:
        """Refuse, before the model is asked, a turn whose input (and what is kept of its response)
        leaves no room in one write for an answer. (One message within the message cap always
        fits, with the longest answer: the cap is set so.)"""
        if request.store and (request.response is not None or len(request.inputs) > 1):
            answer = (Message("msg_" + "0" * 24, "assistant", ""),)
            self.check_input_fits(place.conversation, new_turn(place, request, answer, None, None))

    def check_input_fits(self, conversation: Conversation, turn: NewTurn) -> None:
        try:
            self._writes.check_storable(conversation, turn)
        except (AnswerTooLarge, ValueError):
            raise PayloadTooLarge(
                f"The input ({len(turn.inputs)} items, and the response's settings) is too large to store as "
                "one turn: send fewer or shorter items, or fewer or smaller tools.",
                code="input_too_large",
            ) from None

    def check_inputs(self, items: tuple[Item, ...]) -> None:
        """Every input item within the message cap, and every image and file within theirs: the
        rule of every front door."""
        for item in items:
            size = len(item_text(item)) if not isinstance(item, FunctionCall) else len(item.arguments)
            if self._max_chars is not None and size > self._max_chars:
                raise PayloadTooLarge(
                    f"An input item has {size:,} characters; the limit is {self._max_chars:,}.",
                    code="message_too_large",
                )
            if any(part.size > MAX_ATTACHMENT_BYTES for part in attachments(item)):
                raise PayloadTooLarge(
                    f"An image or file holds more than {MAX_ATTACHMENT_BYTES:,} bytes, the limit of one.",
                    code="input_too_large",
                )
