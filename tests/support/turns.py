"""Turns as the AI Chat Protocol makes them (one user message in, one assistant message out), for
tests that write or read the store directly."""

from __future__ import annotations

from chat.engine.clock import utc_now
from chat.engine.history import NewTurn
from chat.engine.items import Turn, Usage, message, message_text
from chat.engine.tokens import estimate_tokens
from chat.engine.window import turn_cost


def chat_turn(
    user: str,
    answer: str,
    finish_reason: str | None = "stop",
    usage: Usage | None = None,
    *,
    created_at: str | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
) -> NewTurn:
    return NewTurn(
        inputs=(message("user", user),),
        outputs=(message("assistant", answer),),
        finish_reason=finish_reason,
        usage=usage,
        created_at=created_at or utc_now(),
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )


def user_text(turn: Turn | NewTurn) -> str:
    return message_text(turn.inputs)


def answer_text(turn: Turn | NewTurn) -> str:
    return message_text(turn.outputs)


def cost(turn: Turn) -> int:
    """A turn's cost in the window, as the engine counts it."""
    return turn_cost(turn, estimate_tokens)
