"""History and deletion: GET /api/conversations, GET /api/conversations/{id}/messages and
DELETE /api/conversations/{id}."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chat.dependencies import Dependencies
from chat.engine.history import StoredItem
from chat.engine.items import Compaction, FunctionCall, Message
from chat.web import toolkit
from chat.web.answers import (
    CompactionEntry,
    ConversationEntry,
    ConversationList,
    FunctionCallEntry,
    FunctionCallOutputEntry,
    MessageEntry,
    MessageList,
    answer_context,
    json_response,
)
from chat.web.toolkit import Params


@toolkit.owned
async def conversations(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    limit, cursor = toolkit.paging(request)
    page = await deps.engine.views.conversations(owner, limit, cursor)
    return json_response(
        ConversationList(
            conversations=[
                ConversationEntry(
                    id=c.id,
                    title=c.title,
                    created_at=c.created_at,
                    updated_at=c.updated_at,
                    message_count=c.message_count,
                )
                for c in page.items
            ],
            next=page.next_cursor,
        )
    )


@toolkit.owned
async def messages(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    conversation_id = toolkit.conversation_id_of(params["id"])
    limit, cursor = toolkit.paging(request)
    page = await deps.engine.views.messages(owner, conversation_id, limit, cursor)
    return json_response(
        MessageList(session_state=conversation_id, messages=[_message(m) for m in page.items], next=page.next_cursor)
    )


@toolkit.owned
async def delete(request: Request, params: Params, deps: Dependencies, owner: str) -> Response:
    await deps.engine.deletes.conversation(owner, toolkit.conversation_id_of(params["id"]))
    return Response(status_code=204)


def _message(stored: StoredItem) -> MessageEntry | FunctionCallEntry | FunctionCallOutputEntry | CompactionEntry:
    """An item as the AI Chat Protocol shows messages: role and content; a function call and its
    output say their type besides."""
    item = stored.item
    refusal = isinstance(item, Message) and item.refusal
    context = None
    if stored.output:
        context = answer_context(stored.finish_reason, stored.usage, refusal=refusal)
    elif refusal:
        # A refusal a client sent back as input (on the OpenAI door) is still marked as one.
        context = answer_context(None, None, refusal=True)
    if isinstance(item, Message):
        return MessageEntry(role=item.role, content=item.text, created_at=stored.created_at, context=context)
    if isinstance(item, FunctionCall):
        return FunctionCallEntry(
            call_id=item.call_id,
            name=item.name,
            arguments=item.arguments,
            created_at=stored.created_at,
            context=context,
        )
    if isinstance(item, Compaction):
        return CompactionEntry(content=item.summary, created_at=stored.created_at)
    return FunctionCallOutputEntry(
        call_id=item.call_id, content=item.output, created_at=stored.created_at, context=context
    )
