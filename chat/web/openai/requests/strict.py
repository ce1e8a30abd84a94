"""A request's JSON object with exactly OpenAI's fields (Strict), the kinds this server does not
have (Unsupported), the discriminators of unions, and a body's first validation error, as OpenAI
words it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from chat.web import json_body
from chat.web.openai.errors import InvalidParameter
from chat.web.openai.requests.values import FUNCTION_NAME_PATTERN

# By field that this server does not honour: whether a value asks for nothing, so can be accepted.
Refused = Mapping[str, Callable[[Any], bool]]
TAG = "="  # discriminator tags start with it, so that they can be left out of a `param`


def is_none(value: Any) -> bool:
    return value is None


def is_none_or_false(value: Any) -> bool:
    return value is None or value is False


def is_none_or_empty(value: Any) -> bool:
    return value is None or value == []


class Strict(BaseModel):
    """A JSON object of a request with exactly OpenAI's fields: those in `refused` are accepted only
    with a value that asks for nothing, and any other field the model does not declare is unknown."""

    # defer_build: the validators are built at a model's first request, not when the worker starts.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)
    refused: ClassVar[Refused] = {}
    aliases: ClassVar[frozenset[str]] = frozenset()  # the wire's names of fields declared under others

    @model_validator(mode="before")
    @classmethod
    def _screen(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        # One pass that stops at the first offending key: extra="forbid" would report every one.
        for key, value in data.items():
            if key in cls.refused:
                if not cls.refused[key](value):
                    raise PydanticCustomError(
                        "unsupported_parameter", "this server does not support it", {"field": shown_key(key)}
                    )
            elif key not in cls.model_fields and key not in cls.aliases:
                raise PydanticCustomError("unknown_parameter", "unknown parameter", {"field": shown_key(key)})
        return {key: value for key, value in data.items() if key not in cls.refused}


class Unsupported(Strict):
    """Stands for a kind this server does not have (an item, a content part, a tool): always an error."""

    what: ClassVar[str] = "values"
    supported: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _screen(cls, data: Any) -> Any:
        kind = data.get("type") if isinstance(data, dict) else None
        if kind is not None and not isinstance(kind, str):
            # Not a kind at all (a number, an object): say what `type` must be.
            raise PydanticCustomError("string_type", "Input should be a valid string", {"field": "type"})
        shown = repr(kind[:40]) if isinstance(kind, str) else "that"
        raise PydanticCustomError(
            "unsupported_type",
            "{what} of type {kind} are not supported here; use {supported}",
            {"field": "type", "what": cls.what, "kind": shown, "supported": cls.supported},
        )


# The member of a union that stands for the kinds this server does not have: the request's JSON Schema
# (in /api/openapi.json) lists only the kinds it accepts.
UNSUPPORTED = SkipJsonSchema()


def by_type(*kinds: str) -> Callable[[Any], str]:
    """A discriminator on `type`: a known kind, else the Unsupported member. Non-objects and objects with
    no `type` (or a null one: null is not sent) go to the first kind, whose model then says what it expected."""

    def kind(value: Any) -> str:
        if not isinstance(value, dict):
            return TAG + kinds[0]
        found = value.get("type")
        if found is None:
            return TAG + kinds[0]
        return TAG + found if found in kinds else TAG + "unsupported"

    return kind


def text_or(value: Any) -> str:
    """A discriminator of a string or something else (a list of parts, an object)."""
    return TAG + ("text" if isinstance(value, str) else "other")


def validate_body(model: type[Strict], body: bytes) -> Any:
    document = _json_object(body)
    try:
        return model.model_validate(document)
    except ValidationError as e:
        raise _first_error(e) from None


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParameter("The body is not UTF-8.", param=None, code="invalid_encoding") from None
    try:
        document = json_body.loads(text)
    except json_body.NotJson as e:
        raise InvalidParameter(
            f"We could not parse the JSON body of your request: {e}", param=None, code="invalid_json"
        ) from None
    except (ValueError, RecursionError):  # ValueError: also an integer of more than 4,300 digits
        raise InvalidParameter(
            "We could not parse the JSON body of your request.", param=None, code="invalid_json"
        ) from None
    if not isinstance(document, dict):
        raise InvalidParameter("The body must be a JSON object.", param=None, code="invalid_json")
    return document


# ---------------------------------------------------------------------------------------------------
# The first validation error, as OpenAI words it

_OWN_CODES = ("unsupported_type", "invalid_text", "schema_too_deep", "object_above_max_properties")
_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "an array",
}


def _first_error(error: ValidationError) -> InvalidParameter:
    first = error.errors(include_url=False, include_input=True)[0]
    kind, ctx = first["type"], first.get("ctx") or {}
    path = [part for part in first["loc"] if not (isinstance(part, str) and part.startswith(TAG))]
    if "field" in ctx:
        path.append(ctx["field"])
    param = _param(path)
    if kind == "missing":
        return InvalidParameter(
            f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        )
    if kind == "unknown_parameter":
        return InvalidParameter(f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")
    if kind == "unsupported_parameter":
        return InvalidParameter(
            f"Unsupported parameter: '{param}' is not supported by this server; leave it out.",
            param=param,
            code="unsupported_parameter",
        )
    if kind in _TYPE_NAMES:
        return InvalidParameter(
            f"Invalid type for '{param}': expected {_TYPE_NAMES[kind]}.", param=param, code="invalid_type"
        )
    if kind == "too_long":
        return InvalidParameter(
            f"Invalid '{param}': array too long. Expected an array with maximum length {ctx['max_length']}, "
            f"but got an array with length {ctx['actual_length']} instead.",
            param=param,
            code="array_above_max_length",
        )
    if kind == "too_short":
        return InvalidParameter(
            f"Invalid '{param}': empty array. Expected an array with minimum length {ctx['min_length']}.",
            param=param,
            code="empty_array",
        )
    if kind == "string_too_long":
        return InvalidParameter(
            f"Invalid '{param}': string too long. Expected a string with maximum length {ctx['max_length']}.",
            param=param,
            code="string_above_max_length",
        )
    if kind == "string_unicode":
        return InvalidParameter(
            f"Invalid '{param}': the text contains an unpaired UTF-16 surrogate.", param=param, code="invalid_text"
        )
    if kind == "string_too_short":
        return InvalidParameter(f"Invalid '{param}': empty string.", param=param, code="empty_string")
    if kind == "string_pattern_mismatch":
        shape = (
            "a name is 1 to 64 letters, digits, underscores or dashes"
            if ctx["pattern"] == FUNCTION_NAME_PATTERN
            else "an ID holds only letters, digits, underscores or dashes"
        )
        return InvalidParameter(f"Invalid '{param}': {shape}.", param=param)
    if kind == "literal_error" and first["input"] is None:  # null is not sent, and this one is required
        return InvalidParameter(
            f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        )
    if kind == "literal_error":
        shown = first["input"]
        shown = repr(shown[:40]) if isinstance(shown, str) else "that value"
        return InvalidParameter(
            f"Invalid value for '{param}': {shown}. Supported values are: {ctx['expected']}.", param=param
        )
    code = kind if kind in _OWN_CODES else "invalid_value"
    return InvalidParameter(f"Invalid '{param}': {first['msg'][:1].lower()}{first['msg'][1:]}.", param=param, code=code)


def shown_key(key: str) -> str:
    """A key of the body as an error shows it: shortened, lone surrogates escaped."""
    return key[:64].encode("utf-8", "backslashreplace").decode("utf-8") + ("..." if len(key) > 64 else "")


def _param(path: list[Any]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part != "[key]":
            text += f".{shown_key(part)}" if text else shown_key(part)
    return text
