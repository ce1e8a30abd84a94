"""The OpenAI-compatible door's handlers of a window without an answer: POST /v1/responses/input_tokens
(the input counted) and POST /v1/responses/compact (the window summarised into a compaction item).
Both read a request with requests/compaction.py and ask the engine (counting.py, compaction.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chat.dependencies import Dependencies
from chat.engine.clock import epoch_seconds
from chat.engine.ids import new_response_id, validate_conversation_id
from chat.engine.items import Usage
from chat.engine.turns import ModelOptions, TurnInput
from chat.web import toolkit
from chat.web.openai.errors import InvalidParameter, ParameterNotFound
from chat.web.openai.objects import item_object, usage_object
from chat.web.openai.requests.compaction import WindowRequest, parse_compact, parse_input_tokens
from chat.web.openai.requests.query import no_query
from chat.web.toolkit import Params


@toolkit.owned
async def count_input_tokens(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    no_query(request.query_params.multi_items())
    parsed = parse_input_tokens(await toolkit.read_body(request), refuse_instructions=deps.settings.refuse_instructions)
    count = await deps.engine.input_tokens.count(owner, _turn_input(parsed, deps))
    return JSONResponse({"object": "response.input_tokens", "input_tokens": count})


@toolkit.owned
async def compact_response(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    no_query(request.query_params.multi_items())
    parsed = parse_compact(await toolkit.read_body(request), refuse_instructions=deps.settings.refuse_instructions)
    compacted = await deps.engine.compacting.compact(owner, _turn_input(parsed, deps))
    usage = compacted.usage or Usage(0, 0)
    return JSONResponse(
        {
            "id": new_response_id(None),
            "object": "response.compaction",
            "created_at": epoch_seconds(compacted.created_at),
            "output": [item_object(compacted.item)],
            "usage": usage_object(usage),
        }
    )


def _turn_input(parsed: WindowRequest, deps: Dependencies) -> TurnInput:
    names = deps.settings.model_names
    if parsed.model is not None and parsed.model not in names:
        raise ParameterNotFound(
            f"The model '{parsed.model[:100]}' does not exist here; use {' or '.join(names)}.",
            param="model",
            code="model_not_found",
        )
    if parsed.conversation_id is not None:
        validate_conversation_id(parsed.conversation_id)
    elif not parsed.inputs and not parsed.references and parsed.previous_response_id is None:
        raise InvalidParameter(
            "Missing required parameter: 'input' (or a conversation or previous_response_id to read).",
            param="input",
            code="missing_required_parameter",
        )
    return TurnInput(
        inputs=parsed.inputs,
        references=parsed.references,
        conversation_id=parsed.conversation_id,
        options=ModelOptions(
            instructions=parsed.instructions, tools=parsed.tools, prompt_cache_key=parsed.prompt_cache_key
        ),
        response="{}",  # placed as a response is (a conversation, or a chain), and never stored as one
        previous_response_id=parsed.previous_response_id,
        must_exist=parsed.conversation_id is not None,
        truncate=parsed.truncate,
    )
