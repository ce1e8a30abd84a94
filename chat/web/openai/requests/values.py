"""The values of OpenAI's request fields: their limits, strings bounded before their content is
checked, metadata, schemas and includes, and the IDs this door makes."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
)
from pydantic_core import PydanticCustomError

from chat.engine.ids import MAX_CONVERSATION_ID_CHARS

MAX_INPUT_ITEMS = 1_000
MAX_CONVERSATION_ITEMS = 20  # OpenAI's limit on the items a conversation is created or extended with
MAX_CONTENT_PARTS = 100
MAX_TOOLS = 128
MAX_INCLUDES = 16
MAX_METADATA_KEYS = 16  # metadata: OpenAI's rules
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_MODEL_CHARS = 256
MAX_ID_CHARS = 256  # response and item IDs
MAX_CALL_ID_CHARS = 256
MAX_SAFETY_IDENTIFIER_CHARS = 128
MAX_USER_CHARS = 256
MAX_PROMPT_CACHE_KEY_CHARS = 256
MAX_SCHEMA_DEPTH = 32
MIN_OUTPUT_TOKENS = 16  # OpenAI's minimum
MAX_OUTPUT_TOKENS = 2**31 - 1
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# What `include` may ask for: extra data of tools and inputs this server never has (so nothing to add),
# or reasoning it never returns. Log probabilities it cannot give, so they are refused.
INCLUDABLE = (
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
)

_ID_PATTERN = r"^[A-Za-z0-9_-]+$"
_ID = re.compile(_ID_PATTERN[1:-1])
FUNCTION_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


def _utf8(value: str) -> str:
    """Reject lone surrogates (JSON may escape them): they cannot be stored or sent as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("invalid_text", "the text contains an unpaired UTF-16 surrogate") from None
    return value


def _shallow_schema(value: dict[str, Any]) -> dict[str, Any]:
    """A tool's JSON Schema goes to the model as it is: only its depth is bounded here."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            raise PydanticCustomError(
                "schema_too_deep", "the schema nests deeper than {max_depth} levels", {"max_depth": MAX_SCHEMA_DEPTH}
            )
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return value


def _few_keys(value: Any) -> Any:
    # Counted before the keys and values are validated, which pydantic does for every entry first.
    if isinstance(value, dict) and len(value) > MAX_METADATA_KEYS:
        raise PydanticCustomError(
            "object_above_max_properties",
            "too many properties. Expected an object with at most {max} properties, "
            "but got an object with {count} properties instead",
            {"max": MAX_METADATA_KEYS, "count": len(value)},
        )
    return value


# Strings: their length is bounded before their content is checked.
UTF8 = AfterValidator(_utf8)
Text = Annotated[str, UTF8]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_MODEL_CHARS), UTF8]
ObjectId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=_ID_PATTERN)]
ConversationId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CONVERSATION_ID_CHARS), UTF8]
CallId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CALL_ID_CHARS), UTF8]
FunctionName = Annotated[str, StringConstraints(pattern=FUNCTION_NAME_PATTERN)]
SafetyIdentifier = Annotated[str, StringConstraints(max_length=MAX_SAFETY_IDENTIFIER_CHARS), UTF8]
User = Annotated[str, StringConstraints(max_length=MAX_USER_CHARS), UTF8]
PromptCacheKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PROMPT_CACHE_KEY_CHARS), UTF8]
MetadataKey = Annotated[str, StringConstraints(max_length=MAX_METADATA_KEY_CHARS), UTF8]
MetadataValue = Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE_CHARS), UTF8]
Metadata = Annotated[
    dict[MetadataKey, MetadataValue],
    BeforeValidator(_few_keys),
    Field(json_schema_extra={"maxProperties": MAX_METADATA_KEYS}),  # what _few_keys checks
]
Schema = Annotated[dict[str, Any], AfterValidator(_shallow_schema)]
Includes = Annotated[list[Literal[INCLUDABLE]], Field(max_length=MAX_INCLUDES, fail_fast=True)]  # type: ignore[valid-type]
ItemStatus = Literal["in_progress", "completed", "incomplete"]


def is_object_id(value: str) -> bool:
    """Whether `value` is an ID this door could have made: 1 to 256 letters, digits, `_` or `-`."""
    return len(value) <= MAX_ID_CHARS and _ID.fullmatch(value) is not None
