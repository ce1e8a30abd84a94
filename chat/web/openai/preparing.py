"""POST /v1/responses read into what the engine is asked: the parsed request, the skeleton of the
response (what it says besides its output, kept with its turn), and the turn. The same for a
response answered at once and for a background one, which its worker prepares again from the
stored body (chat/web/openai/background.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from chat.engine.ids import validate_conversation_id
from chat.engine.turns import ModelOptions, TurnInput
from chat.settings import Settings
from chat.web.openai.errors import InvalidParameter, ParameterNotFound
from chat.web.openai.objects import ResponseHead, response_object
from chat.web.openai.requests import ResponseRequest, parse_response_request


@dataclass(frozen=True)
class Prepared:
    parsed: ResponseRequest
    skeleton: dict[str, Any]
    turn: TurnInput


def prepare(body: bytes, settings: Settings, idempotency_key: str | None, *, created_at: int) -> Prepared:
    parsed = parse_response_request(body, refuse_instructions=settings.refuse_instructions)
    if parsed.model not in settings.model_names:
        raise ParameterNotFound(
            f"The model '{parsed.model[:100]}' does not exist here; use {' or '.join(settings.model_names)}.",
            param="model",
            code="model_not_found",
        )
    if not parsed.inputs and not parsed.references:
        raise InvalidParameter("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    conversation_id = parsed.conversation_id
    if conversation_id is not None:
        validate_conversation_id(conversation_id)
    options = parsed.options
    cap = settings.max_answer_tokens
    if cap is not None and (options.max_output_tokens is None or options.max_output_tokens > cap):
        # The response shows the output limit the model is actually given: the server's, if lower.
        options = replace(options, max_output_tokens=cap)
    head = ResponseHead("", created_at, parsed.model, options, conversation_id, parsed.previous_response_id)
    skeleton = {**response_object(head), "background": parsed.background}
    turn = TurnInput(
        inputs=parsed.inputs,
        references=parsed.references,
        conversation_id=conversation_id,
        idempotency_key=idempotency_key,
        options=ModelOptions(
            instructions=options.instructions,
            tools=options.tools,
            # Chat Completions refuses a tool_choice without tools; with none, there is nothing to choose.
            tool_choice=options.tool_choice if options.tools else None,
            parallel_tool_calls=options.parallel_tool_calls if options.tools else None,
            max_output_tokens=options.max_output_tokens,
            temperature=options.temperature,
            top_p=options.top_p,
            user=options.safety_identifier or options.user,
            prompt_cache_key=options.prompt_cache_key,
            output_format=options.output_format,
            verbosity=options.verbosity,
            reasoning_effort=options.reasoning_effort,
        ),
        response=json.dumps(skeleton, ensure_ascii=False, separators=(",", ":")),
        previous_response_id=parsed.previous_response_id,
        store=options.store,
        must_exist=conversation_id is not None,
        truncate=options.truncation == "auto",
        compact_threshold=options.compact_threshold,
    )
    return Prepared(parsed, skeleton, turn)
