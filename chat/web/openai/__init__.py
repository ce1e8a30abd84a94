"""The wire layer of the OpenAI-compatible front door: Responses and Conversations as the SDKs speak them.

Pure translation, no storage and no model calls, a module each:

    requests/     request bodies and query strings -> engine items and option dataclasses
    objects.py    engine items and outcomes -> OpenAI's JSON objects
    events.py     the engine's stream events -> server-sent events of a streamed response
    errors.py     ChatError -> {"error": {"message", "type", "param", "code"}} and its status

What of POST /v1/responses is served and what is refused, property by property, is the table
"Every property of a create" of docs/openai-compatible.md (tests/test_openai_create_properties.py
holds it to OpenAI's description and to requests/responses.py). Other kinds of tools, input items
and content parts are a 400 naming the item's `type`; a field OpenAI does not have is a 400
`unknown_parameter` naming it.
"""
