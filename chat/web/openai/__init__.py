"""The wire layer of the OpenAI-compatible front door: Responses and Conversations as the SDKs speak them.

Pure translation, no storage and no model calls, a module each:

    requests/     request bodies and query strings -> engine items and option dataclasses
    objects.py    engine items and outcomes -> OpenAI's JSON objects
    events.py     the engine's stream events -> server-sent events of a streamed response
    errors.py     ChatError -> {"error": {"message", "type", "param", "code"}} and its status

What of POST /v1/responses is honoured, and what a field gets that is not:

- honoured: `model`, `input` (a string, or message / function_call / function_call_output items with
  text parts), `conversation` (an ID or `{"id"}`) or `previous_response_id`, `store` (default true),
  `stream`, `tools` (function tools), `tool_choice`, `parallel_tool_calls`, `max_output_tokens` (at
  least 16), `temperature`, `top_p`, `truncation` (default `auto`, the token-budget window),
  `metadata` (16 keys of at most 64 characters, string values of at most 512), `safety_identifier`,
  `user`, `prompt_cache_key` (1 to 256 characters, sent to the model as Chat Completions'
  `prompt_cache_key`), and `include` with any value but `message.output_text.logprobs` (the others
  ask for data this server never has, so there is nothing to add).
- `instructions`, and system or developer messages: served after the server's own system prompt, unless
  CHAT_REFUSE_INSTRUCTIONS refuses them.
- accepted only when null or the default, else a 400 `unsupported_parameter` naming the field:
  `text` (plain text only), `reasoning` (empty, or its fields null),
  `background_options`, `prompt`, `prompt_cache_options`, `prompt_cache_retention`, `service_tier`
  (auto or default), `top_logprobs` (0), `max_tool_calls`, `stream_options` (empty, or
  `include_obfuscation` true or false: the events carry no obfuscation either way), `context_management`,
  `moderation`, `image`, `access_programs`.
- other kinds of tools, input items and content parts (images, files, web search, item references
  ...): a 400 naming the item's `type`.
- a field OpenAI does not have: a 400 `unknown_parameter` naming it.
"""
