"""History and deletion: GET /api/conversations, GET /api/conversations/{id}/messages and
DELETE /api/conversations/{id}."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chat.dependencies import Dependencies
from chat.engine.history import StoredItem
from chat.engine.items import FunctionCall, Message
from chat.web import toolkit
from chat.web.chat import context_document
from chat.web.toolkit import Params


async def conversations(request: Request, params: Params, deps: Dependencies) -> Response:
    owner = toolkit.owner(request, deps)
    limit, cursor = toolkit.paging(request)
    page = await deps.service.conversations(owner, limit, cursor)
    return JSONResponse(
        {
            "conversations": [
                {
                    "id": c.id,
                    "title": c.title,
                    "created_at": c.created_at,
                    "updated_at": c.updated_at,
                    "message_count": c.message_count,
                }
                for c in page.items
            ],
            "next": page.next_cursor,
        }
    )


async def messages(request: Request, params: Params, deps: Dependencies) -> Response:
    owner = toolkit.owner(request, deps)
    conversation_id = toolkit.conversation_id_of(params["id"])
    limit, cursor = toolkit.paging(request)
    page = await deps.service.items(owner, conversation_id, limit, cursor)
    return JSONResponse(
        {
            "sessionState": conversation_id,
            "messages": [_message(m) for m in page.items],
            "next": page.next_cursor,
        }
    )


async def delete(request: Request, params: Params, deps: Dependencies) -> Response:
    owner = toolkit.owner(request, deps)
    await deps.service.delete(owner, toolkit.conversation_id_of(params["id"]))
    return Response(status_code=204)


def _message(stored: StoredItem) -> dict[str, Any]:
    """An item as the AI Chat Protocol shows messages: role and content; a function call and its
    output say their type besides."""
    item = stored.item
    document: dict[str, Any]
    if isinstance(item, Message):
        document = {"role": item.role, "content": item.text}
    elif isinstance(item, FunctionCall):
        document = {
            "role": "assistant",
            "type": "function_call",
            "call_id": item.call_id,
            "name": item.name,
            "arguments": item.arguments,
        }
    else:
        document = {"role": "tool", "type": "function_call_output", "call_id": item.call_id, "content": item.output}
    document["created_at"] = stored.created_at
    if stored.output:
        document["context"] = context_document(stored.finish_reason, stored.usage)
    return document
