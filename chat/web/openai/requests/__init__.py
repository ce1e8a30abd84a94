"""Request bodies and query strings of OpenAI's Responses and Conversations APIs, as the official SDKs
send them, parsed into engine items and plain option dataclasses; a module a resource, as the
openai SDK splits them, and the parts they share:

    responses.py      POST /v1/responses (tools among it), and the query of GET /v1/responses/{id}
    conversations.py  POST /v1/conversations, POST /v1/conversations/{id}
    items.py          POST /v1/conversations/{id}/items, and the query of a list of items (a
                      conversation's, or a response's input items)
    inputs.py         input items (messages and their content parts, function calls and outputs,
                      item references) -> engine items
    query.py          query strings: single values, and `include` as the SDKs repeat it
    strict.py         a request's JSON object with exactly OpenAI's fields; a body's first error
    values.py         the fields' limits and value types, and the IDs this door makes

Every field OpenAI defines is either honoured or refused with a 400 that names it (`param`): a field
this server cannot honour is accepted only with a value that asks for nothing (null, `false`, the
default), so nothing a caller asks for is silently dropped. A field OpenAI does not define is a 400
too. Input item IDs (`id`, `status`) are echoes of items OpenAI returned: they are accepted and the
items get new IDs, unique in their conversation, as every stored item does.

A bad body costs what a good one does: lists, strings and metadata are bounded before their members
are validated, lists stop at their first bad member, and only the first error is reported.
"""

from chat.web.openai.requests.compaction import CompactBody, InputTokensBody
from chat.web.openai.requests.conversations import (
    ConversationCreate,
    ConversationCreateBody,
    ConversationUpdate,
    ConversationUpdateBody,
    parse_conversation_create,
    parse_conversation_update,
)
from chat.web.openai.requests.items import ItemsCreate, ItemsCreateBody, ListQuery, parse_items_create, parse_list_query
from chat.web.openai.requests.query import no_query, parse_include_query
from chat.web.openai.requests.responses import (
    ResponseBody,
    ResponseOptions,
    ResponseRequest,
    RetrieveQuery,
    parse_response_request,
    parse_response_retrieve_query,
)
from chat.web.openai.requests.values import (
    DEFAULT_PAGE_SIZE,
    MAX_CONVERSATION_ITEMS,
    MAX_PAGE_SIZE,
    ConversationId,
    Includes,
    ModelName,
    ObjectId,
    is_object_id,
)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_CONVERSATION_ITEMS",
    "MAX_PAGE_SIZE",
    "CompactBody",
    "ConversationCreate",
    "ConversationCreateBody",
    "ConversationId",
    "ConversationUpdate",
    "ConversationUpdateBody",
    "Includes",
    "InputTokensBody",
    "ItemsCreate",
    "ItemsCreateBody",
    "ListQuery",
    "ModelName",
    "ObjectId",
    "ResponseBody",
    "ResponseOptions",
    "ResponseRequest",
    "RetrieveQuery",
    "is_object_id",
    "no_query",
    "parse_conversation_create",
    "parse_conversation_update",
    "parse_include_query",
    "parse_items_create",
    "parse_list_query",
    "parse_response_request",
    "parse_response_retrieve_query",
]
