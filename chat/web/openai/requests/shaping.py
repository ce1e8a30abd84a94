"""What shapes an answer: `text` (its format: plain text, a JSON object, or JSON valid against a
schema; its verbosity) and `reasoning` (its effort) of POST /v1/responses.

Chat Completions gives no reasoning summaries, so `reasoning.summary` and its older name
`generate_summary` are refused with a value.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Discriminator, Field, StringConstraints, Tag

from chat.engine.model import OutputFormat
from chat.web.openai.requests.strict import UNSUPPORTED, Refused, Strict, Unsupported, by_type, is_none
from chat.web.openai.requests.values import FUNCTION_NAME_PATTERN, Schema, Text

# The values the Chat Completions API takes (the openai SDK's ReasoningEffort and its `verbosity`).
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
Verbosity = Literal["low", "medium", "high"]
FormatName = Annotated[str, StringConstraints(pattern=FUNCTION_NAME_PATTERN)]  # OpenAI's: 1 to 64 of a-z A-Z 0-9 _ -


class _PlainText(Strict):
    type: Literal["text"]


class _JsonObject(Strict):
    type: Literal["json_object"]


class _JsonSchema(Strict):
    type: Literal["json_schema"]
    name: FormatName
    aliases: ClassVar[frozenset[str]] = frozenset({"schema"})

    schema_: Annotated[Schema, Field(alias="schema")]  # BaseModel has an attribute `schema`
    description: Text | None = None
    strict: bool | None = None


class _UnsupportedFormat(Unsupported):
    what = "text formats"
    supported = "text, json_object or json_schema"


FormatIn = Annotated[
    Annotated[_PlainText, Tag("=text")]
    | Annotated[_JsonObject, Tag("=json_object")]
    | Annotated[_JsonSchema, Tag("=json_schema")]
    | Annotated[_UnsupportedFormat, Tag("=unsupported"), UNSUPPORTED],
    Discriminator(by_type("text", "json_object", "json_schema")),
]


class TextIn(Strict):
    format: FormatIn | None = None
    verbosity: Verbosity | None = None


class ReasoningIn(Strict):
    refused: ClassVar[Refused] = {"summary": is_none, "generate_summary": is_none}

    effort: ReasoningEffort | None = None


def output_format(text: TextIn | None) -> OutputFormat | None:
    """The engine's output format of `text`: none for plain text."""
    shape = text.format if text is not None else None
    if isinstance(shape, _JsonSchema):
        return OutputFormat(name=shape.name, schema=shape.schema_, strict=shape.strict, description=shape.description)
    if isinstance(shape, _JsonObject):
        return OutputFormat()
    return None
