"""History and deletion: GET /api/conversations, GET /api/conversations/{id}/messages and
DELETE /api/conversations/{id}."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chat.dependencies import Dependencies
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
    page = await deps.service.messages(owner, conversation_id, limit, cursor)
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


def _message(message) -> dict[str, Any]:
    document: dict[str, Any] = {"role": message.role, "content": message.content, "created_at": message.created_at}
    if message.role == "assistant":
        document["context"] = context_document(message.finish_reason, message.usage)
    return document
