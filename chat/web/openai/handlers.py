"""The OpenAI-compatible door's handlers: Responses, Conversations and Models under /api/v1.

Each handler reads a request with requests/, asks the engine, and answers with objects.py (or,
streamed, events.py); errors take OpenAI's shape (errors.py). Owners, limits, quotas and
concurrency are the engine's, as on the chat routes.

A response is kept with its turn: the door hands the engine its in-progress skeleton (what the
response says besides its output, with no ID yet) as the record to keep, and builds the finished
response from the skeleton and the turn's items, the same way when it answers and when the response
is read back.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from chat.dependencies import Dependencies
from chat.engine.clock import epoch_seconds, unix_now
from chat.engine.errors import NotFound
from chat.engine.history import StoredResponse
from chat.engine.ids import parse_idempotency_key
from chat.engine.model import Completion
from chat.engine.runs import Run
from chat.web import toolkit
from chat.web.openai import background
from chat.web.openai.errors import ChatError, InvalidParameter, ParameterNotFound, error_object
from chat.web.openai.events import door_events, response_events
from chat.web.openai.objects import (
    conversation_deleted,
    conversation_object,
    finish,
    in_progress,
    item_list,
    item_object,
    response_deleted,
)
from chat.web.openai.preparing import prepare
from chat.web.openai.requests import (
    is_object_id,
    no_query,
    parse_conversation_create,
    parse_conversation_update,
    parse_include_query,
    parse_items_create,
    parse_list_query,
    parse_response_retrieve_query,
)
from chat.web.toolkit import Params

EVENT_STREAM = "text/event-stream"


def error_body(error: ChatError) -> dict[str, Any]:
    return {"error": error_object(error)}


# -- responses -------------------------------------------------------------------------------------


@toolkit.owned
async def create_response(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    _no_query(request)
    body = await toolkit.read_body(request)
    key = parse_idempotency_key(request.headers.get("idempotency-key"))
    prepared = prepare(body, deps.settings, key, created_at=int(unix_now()))
    skeleton, turn = prepared.skeleton, prepared.turn
    if prepared.parsed.background:
        return await background.submit(deps, owner, prepared, body)
    if prepared.parsed.stream:
        streamed = await deps.engine.turns.stream(owner, turn)
        assert streamed.response_id is not None
        if streamed.replayed:
            skeleton = _skeleton(await deps.engine.views.response(owner, streamed.response_id))
        else:
            skeleton = {**skeleton, "id": streamed.response_id}
        return StreamingResponse(
            response_events(skeleton, door_events(streamed.events)),
            media_type=EVENT_STREAM,
            headers={**toolkit.STREAM_HEADERS, **toolkit.replayed_header(streamed.replayed)},
        )
    answer = await deps.engine.turns.reply(owner, turn)
    assert answer.response_id is not None
    if answer.replayed:
        document = stored_response_object(await deps.engine.views.response(owner, answer.response_id))
    else:
        document = finish(
            {**skeleton, "id": answer.response_id},
            Completion(answer.outputs, answer.finish_reason, answer.usage),
            completed_at=epoch_seconds(answer.created_at) if answer.created_at else None,
        )
    return JSONResponse(document, headers=toolkit.replayed_header(answer.replayed))


@toolkit.owned
async def get_response(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    query = parse_response_retrieve_query(request.query_params.multi_items())
    response_id = _response_id(params["id"])
    job = await background.find(deps, owner, response_id)
    if query.stream:
        if job is None:
            await deps.engine.views.response_or_run(owner, response_id)  # 404 when there is none
            raise InvalidParameter("Only a background response can be streamed again.", param="stream")
        if job.status == "completed":
            await deps.engine.views.response(owner, response_id)  # 404 once the response is deleted
        return background.stream(background.engine_of(deps), owner, job, query.starting_after)
    if job is not None and job.status != "completed":
        return JSONResponse(await background.view(background.engine_of(deps), job))
    found = await deps.engine.views.response_or_run(owner, response_id)
    if isinstance(found, Run):
        return JSONResponse(in_progress(_skeleton(found), found.outputs))
    return JSONResponse(stored_response_object(found))


@toolkit.owned
async def cancel_response(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    _no_query(request)
    response_id = _response_id(params["id"])
    job = await background.cancel(deps, owner, response_id)
    if job is None:
        await deps.engine.views.response_or_run(owner, response_id)  # 404 when there is none
        raise InvalidParameter("Only a background response can be cancelled.", param=None)
    if job.status == "completed":
        return JSONResponse(stored_response_object(await deps.engine.views.response(owner, response_id)))
    return JSONResponse(await background.view(background.engine_of(deps), job))


@toolkit.owned
async def delete_response(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    _no_query(request)
    response_id = _response_id(params["id"])
    await deps.engine.deletes.response(owner, response_id)
    return JSONResponse(response_deleted(response_id))


@toolkit.owned
async def response_input_items(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    query = parse_list_query(request.query_params.multi_items())
    stored = await deps.engine.views.response(owner, _response_id(params["id"]))
    items = list(stored.turn.inputs)
    if query.order == "desc":
        items.reverse()
    if query.after is not None:
        ids = [item.id for item in items]
        if query.after not in ids:
            raise InvalidParameter("'after' names no input item of this response.", param="after")
        items = items[ids.index(query.after) + 1 :]
    page = items[: query.limit]
    return JSONResponse(item_list(page, has_more=len(items) > len(page)))


def stored_response_object(stored: StoredResponse) -> dict[str, Any]:
    """A stored response as it was answered: its skeleton, finished with its turn's output items."""
    turn = stored.turn
    return finish(
        _skeleton(stored),
        Completion(turn.outputs, turn.finish_reason, turn.usage),
        completed_at=epoch_seconds(turn.created_at),
    )


def _skeleton(stored: StoredResponse | Run) -> dict[str, Any]:
    return {**json.loads(stored.record.data), "id": stored.record.id}


# -- conversations -------------------------------------------------------------------------------------


@toolkit.owned
async def create_conversation(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    _no_query(request)
    refuse = deps.settings.refuse_instructions
    parsed = parse_conversation_create(await toolkit.read_body(request), refuse_instructions=refuse)
    info = await deps.engine.writes.create(owner, parsed.items, parsed.metadata)
    return JSONResponse(conversation_object(info.id, info.created_at, info.metadata))


@toolkit.owned
async def get_conversation(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    _no_query(request)
    info = await deps.engine.views.conversation(owner, toolkit.conversation_id_of(params["id"]))
    return JSONResponse(conversation_object(info.id, info.created_at, info.metadata))


@toolkit.owned
async def update_conversation(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    _no_query(request)
    conversation_id = toolkit.conversation_id_of(params["id"])
    parsed = parse_conversation_update(await toolkit.read_body(request))
    info = await deps.engine.writes.update_metadata(owner, conversation_id, parsed.metadata)
    return JSONResponse(conversation_object(info.id, info.created_at, info.metadata))


@toolkit.owned
async def delete_conversation(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    _no_query(request)
    conversation_id = toolkit.conversation_id_of(params["id"])
    await deps.engine.deletes.existing_conversation(owner, conversation_id)
    return JSONResponse(conversation_deleted(conversation_id))


@toolkit.owned
async def create_items(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    conversation_id = toolkit.conversation_id_of(params["id"])
    parsed = parse_items_create(
        await toolkit.read_body(request),
        request.query_params.multi_items(),
        refuse_instructions=deps.settings.refuse_instructions,
    )
    items = await deps.engine.writes.add_items(owner, conversation_id, parsed.items)
    return JSONResponse(item_list(items, has_more=False))


@toolkit.owned
async def list_items(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    conversation_id = toolkit.conversation_id_of(params["id"])
    query = parse_list_query(request.query_params.multi_items())
    page = await deps.engine.views.items(
        owner, conversation_id, after=query.after, limit=query.limit, order=query.order
    )
    return JSONResponse(item_list([stored.item for stored in page.items], has_more=page.has_more))


@toolkit.owned
async def get_item(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    conversation_id = toolkit.conversation_id_of(params["id"])
    parse_include_query(request.query_params.multi_items())
    stored = await deps.engine.views.item(owner, conversation_id, _item_id(params["item_id"]))
    return JSONResponse(item_object(stored.item))


@toolkit.owned
async def delete_item(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    _no_query(request)
    conversation_id = toolkit.conversation_id_of(params["id"])
    info = await deps.engine.deletes.item(owner, conversation_id, _item_id(params["item_id"]))
    return JSONResponse(conversation_object(info.id, info.created_at, info.metadata))


# -- models -------------------------------------------------------------------------------------------


@toolkit.owned
async def list_models(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    _no_query(request)
    return JSONResponse({"object": "list", "data": [_model(name) for name in deps.settings.model_names]})


@toolkit.owned
async def get_model(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    _no_query(request)
    name = unquote(params["model"])
    if name not in deps.settings.model_names:
        raise ParameterNotFound(f"The model '{name[:100]}' does not exist here.", param="model", code="model_not_found")
    return JSONResponse(_model(name))


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "system"}


# -- helpers ------------------------------------------------------------------------------------------


def _response_id(segment: str) -> str:
    return _object_id(segment, "Response", "response_not_found")


def _item_id(segment: str) -> str:
    return _object_id(segment, "Item", "item_not_found")


def _object_id(segment: str, what: str, code: str) -> str:
    """An ID from the URL: one we could have made (letters, digits, `_` and `-`), else not found."""
    if not is_object_id(segment):
        raise NotFound(f"{what} with id '{unquote(segment)[:100]}' not found.", code=code)
    return segment


def _no_query(request: Request) -> None:
    no_query(request.query_params.multi_items())
