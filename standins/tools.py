"""Function tools as Chat Completions speaks them: what a request may declare and send back, and which
calls the model stand-in makes.

A request is checked as the real API checks it, with its 400 ``invalid_request_error`` params and
messages: ``tools`` (function tools, at most 128, names of 1 to 64 of ``a-zA-Z0-9_-``, ``parameters``
a JSON Schema of type object), ``tool_choice`` (``"none"``, ``"auto"``, ``"required"`` or
``{"type": "function", "function": {"name": ...}}`` naming a declared tool) and
``parallel_tool_calls``, both only beside ``tools``; an assistant message's ``tool_calls`` (its
``content`` may then be null) and a ``tool`` message's ``tool_call_id``, ids of at most 40
characters. The order rules: each ``tool`` message answers, once, a call of the assistant message
that opens its run of tool messages, and every call of that message is answered before the next
message of another role, or the end of the list.

The model calls tools only when the request declares some and ``tool_choice`` is not ``"none"``:
the calls that ``[[tool:NAME ARGUMENTS]]`` directives ask for (see ``model.py``), in order; with
``"required"`` and no directive, the first tool; with a named function, that function only (the
directives' calls of it, or one call). ``parallel_tool_calls: false`` keeps the first call. A call
without written arguments gets arguments built from the tool's schema: the required properties,
each its ``default``, ``const``, first ``enum`` value, or an empty value of its type (``""``, ``0``,
``false``, ``[]``, ``{}`` filled the same way).
"""

from __future__ import annotations

import json
import re
import secrets
import string
from dataclasses import dataclass
from typing import Any

from .protocol import Reject, invalid_request, text_of

MAX_TOOLS = 128
MAX_NAME_LENGTH = 64
MAX_ID_LENGTH = 40
_NAME_PATTERN = "^[a-zA-Z0-9_-]+$"
_CHOICES = ("none", "auto", "required")
_ID_ALPHABET = string.ascii_letters + string.digits
_DIRECTIVE = re.compile(r"\[\[tool:([a-zA-Z0-9_-]{1,64})(?=\]\]|\s)")
_DECODER = json.JSONDecoder()
_EMPTY = {"string": "", "integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}


@dataclass(frozen=True)
class ToolCall:
    """One call the model makes: ``arguments`` is the JSON text, as the API sends it."""

    id: str
    name: str
    arguments: str

    def wire(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}

    def record(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


# Request validation


def _kind(value: Any) -> str:
    """The JSON type of ``value`` as the API's messages name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _invalid_type(where: str, expected: str, value: Any) -> Reject:
    return invalid_request(
        f"Invalid type for '{where}': expected {expected}, but got {_kind(value)} instead.", where, "invalid_type"
    )


def _missing(where: str) -> Reject:
    return invalid_request(f"Missing required parameter: '{where}'.", where, "missing_required_parameter")


def _unsupported(where: str, value: Any, supported: tuple[str, ...]) -> Reject:
    quoted = [f"'{option}'" for option in supported]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + ", and " + quoted[-1]
    return invalid_request(f"Invalid value: '{value}'. Supported values are: {listed}.", where, "invalid_value")


def _empty_array(where: str) -> Reject:
    return invalid_request(
        f"Invalid '{where}': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        where,
        "empty_array",
    )


def _object(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.get(key)
    if value is None:
        raise _missing(where)
    if not isinstance(value, dict):
        raise _invalid_type(where, "an object", value)
    return value


def _string(parent: dict[str, Any], key: str, where: str, *, max_length: int | None = None) -> str:
    value = parent.get(key)
    if value is None:
        raise _missing(where)
    if not isinstance(value, str):
        raise _invalid_type(where, "a string", value)
    if max_length is not None and len(value) > max_length:
        raise invalid_request(
            f"Invalid '{where}': string too long. Expected a string with maximum length {max_length}, "
            f"but got a string with length {len(value)} instead.",
            where,
            "string_above_max_length",
        )
    return value


def _function_name(parent: dict[str, Any], where: str) -> str:
    name = _string(parent, "name", where, max_length=MAX_NAME_LENGTH)
    if not re.fullmatch(_NAME_PATTERN, name):
        raise invalid_request(
            f"Invalid '{where}': string does not match pattern. Expected a string that matches the pattern "
            f"'{_NAME_PATTERN}'.",
            where,
            "invalid_value",
        )
    return name


def _validate_tool(tool: Any, where: str) -> str:
    """Check one entry of ``tools``; return its function's name."""
    if not isinstance(tool, dict):
        raise _invalid_type(where, "an object", tool)
    kind = _string(tool, "type", f"{where}.type")
    if kind != "function":
        raise _unsupported(f"{where}.type", kind, ("function",))
    function = _object(tool, "function", f"{where}.function")
    name = _function_name(function, f"{where}.function.name")
    description = function.get("description")
    if description is not None and not isinstance(description, str):
        raise _invalid_type(f"{where}.function.description", "a string", description)
    parameters = function.get("parameters")
    if parameters is not None:
        if not isinstance(parameters, dict):
            raise _invalid_type(f"{where}.function.parameters", "an object", parameters)
        if parameters.get("type") != "object":
            raise invalid_request(
                f"Invalid schema for function '{name}': schema must be a JSON Schema of 'type: \"object\"', "
                f"got 'type: \"{parameters.get('type')}\"'.",
                f"{where}.function.parameters",
                "invalid_function_parameters",
            )
    return name


def _only_with_tools(name: str) -> Reject:
    return invalid_request(f"Invalid value for '{name}': '{name}' is only allowed when 'tools' are specified.", name)


def validate_tools(body: dict[str, Any]) -> None:
    """Check ``tools``, ``tool_choice`` and ``parallel_tool_calls`` as the API does."""
    tools = body.get("tools")
    names: list[str] = []
    if tools is not None:
        if not isinstance(tools, list):
            raise _invalid_type("tools", "an array", tools)
        if not tools:
            raise _empty_array("tools")
        if len(tools) > MAX_TOOLS:
            raise invalid_request(
                f"Invalid 'tools': array too long. Expected an array with maximum length {MAX_TOOLS}, "
                f"but got an array with length {len(tools)} instead.",
                "tools",
                "array_above_max_length",
            )
        names = [_validate_tool(tool, f"tools[{index}]") for index, tool in enumerate(tools)]

    choice = body.get("tool_choice")
    if choice is not None:
        forced = _validate_tool_choice(choice)
        if not names:
            raise _only_with_tools("tool_choice")
        if forced is not None and forced not in names:
            raise invalid_request(
                f"Invalid value for 'tool_choice': no function named '{forced}' was specified in the 'tools' "
                "parameter.",
                "tool_choice",
            )

    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        if not isinstance(parallel, bool):
            raise _invalid_type("parallel_tool_calls", "a boolean", parallel)
        if not names:
            raise _only_with_tools("parallel_tool_calls")


def _validate_tool_choice(choice: Any) -> str | None:
    """Check the shape of ``tool_choice``; return the function it forces, if it names one."""
    if isinstance(choice, str):
        if choice not in _CHOICES:
            raise _unsupported("tool_choice", choice, _CHOICES)
        return None
    if not isinstance(choice, dict):
        raise _invalid_type("tool_choice", "one of a string or an object", choice)
    kind = _string(choice, "type", "tool_choice.type")
    if kind != "function":
        raise _unsupported("tool_choice.type", kind, ("function",))
    return _string(_object(choice, "function", "tool_choice.function"), "name", "tool_choice.function.name")


def has_tool_calls(message: dict[str, Any]) -> bool:
    return message["role"] == "assistant" and message.get("tool_calls") is not None


def validate_message(message: dict[str, Any], index: int) -> None:
    """Check an assistant message's ``tool_calls`` and a tool message's ``tool_call_id``."""
    where = f"messages[{index}]"
    if has_tool_calls(message):
        calls = message["tool_calls"]
        if not isinstance(calls, list):
            raise _invalid_type(f"{where}.tool_calls", "an array", calls)
        if not calls:
            raise _empty_array(f"{where}.tool_calls")
        for number, call in enumerate(calls):
            at = f"{where}.tool_calls[{number}]"
            if not isinstance(call, dict):
                raise _invalid_type(at, "an object", call)
            _string(call, "id", f"{at}.id", max_length=MAX_ID_LENGTH)
            kind = _string(call, "type", f"{at}.type")
            if kind != "function":
                raise _unsupported(f"{at}.type", kind, ("function",))
            function = _object(call, "function", f"{at}.function")
            _string(function, "name", f"{at}.function.name")
            _string(function, "arguments", f"{at}.function.arguments")
    elif message["role"] == "tool":
        if message.get("tool_call_id") is None:
            raise invalid_request(
                "Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'.",
                f"messages.[{index}].tool_call_id",
            )
        _string(message, "tool_call_id", f"{where}.tool_call_id", max_length=MAX_ID_LENGTH)


def _unanswered(ids: list[str], index: int) -> Reject:
    return invalid_request(
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(ids)}",
        f"messages.[{index}].role",
    )


def check_sequence(messages: list[dict[str, Any]]) -> None:
    """Every tool message answers a pending call once; no call is left unanswered."""
    calls: list[str] | None = None  # the ids of the assistant message whose tool messages may follow
    answered: set[str] = set()
    opened_at = 0
    for index, message in enumerate(messages):
        if message["role"] == "tool":
            call_id = message["tool_call_id"]
            if calls is None:
                # "preceeding" is the API's own spelling.
                raise invalid_request(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    "with 'tool_calls'.",
                    f"messages.[{index}].role",
                )
            if call_id not in calls:
                raise invalid_request(
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of previous message.",
                    f"messages.[{index}].tool_call_id",
                )
            if call_id in answered:
                raise invalid_request(
                    f"Invalid parameter: Duplicate value for 'tool_call_id' of '{call_id}' in message[{index}]",
                    f"messages.[{index}].tool_call_id",
                )
            answered.add(call_id)
            continue
        if calls is not None and (missing := [i for i in calls if i not in answered]):
            raise _unanswered(missing, index)
        calls = [call["id"] for call in message["tool_calls"]] if has_tool_calls(message) else None
        answered, opened_at = set(), index
    if calls is not None and (missing := [i for i in calls if i not in answered]):
        raise _unanswered(missing, opened_at)


# The model's side


def tool_outputs(messages: list[dict[str, Any]]) -> list[str]:
    """The outputs of the tool messages that end the request, oldest first (none if it ends otherwise)."""
    outputs: list[str] = []
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        outputs.append(text_of(message.get("content")))
    return outputs[::-1]


def requested_calls(text: str) -> list[tuple[str, str | None]]:
    """The ``[[tool:NAME ARGUMENTS]]`` directives in ``text``: name and arguments as written (None if none).

    The arguments run to the ``]]`` that closes a JSON value, so JSON holding ``]]`` still works; text
    that is not JSON runs to the next ``]]`` and is sent as written, as a model's broken arguments are.
    """
    calls: list[tuple[str, str | None]] = []
    position = 0
    while match := _DIRECTIVE.search(text, position):
        name = match[1]
        start = len(text) - len(text[match.end() :].lstrip())
        if text.startswith("]]", start):
            calls.append((name, None))
            position = start + 2
            continue
        close = text.find("]]", start)
        if close < 0:
            break
        end = close
        try:
            _, parsed_end = _DECODER.raw_decode(text, start)
        except ValueError:
            parsed_end = None
        if parsed_end is not None:
            after = len(text) - len(text[parsed_end:].lstrip())
            if text.startswith("]]", after):
                end, close = parsed_end, after
        calls.append((name, text[start:end]))
        position = close + 2
    return calls


def _example(schema: Any) -> Any:
    """A value that fits ``schema``: its default, const or first enum value, else an empty one of its type."""
    if not isinstance(schema, dict):
        return None
    for key in ("default", "const"):
        if key in schema:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return _example(schema[key][0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        return {name: _example(properties.get(name)) for name in schema.get("required") or []}
    return _EMPTY.get(kind) if isinstance(kind, str) else None


def example_arguments(parameters: Any) -> str:
    return json.dumps(_example(parameters) if parameters else {}, ensure_ascii=False, separators=(",", ":"))


def new_call_id() -> str:
    """An id shaped like the API's: ``call_`` and 24 letters and digits."""
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def choose_calls(body: dict[str, Any], newest_input: str) -> list[ToolCall]:
    """The calls the model makes for a validated request whose newest input is ``newest_input``."""
    tools = body.get("tools") or []
    choice = body.get("tool_choice") or "auto"
    if not tools or choice == "none":
        return []
    parameters: dict[str, Any] = {}
    for tool in tools:
        parameters.setdefault(tool["function"]["name"], tool["function"].get("parameters"))
    requested = requested_calls(newest_input)
    if isinstance(choice, dict):
        forced = choice["function"]["name"]
        requested = [call for call in requested if call[0] == forced] or [(forced, None)]
    elif choice == "required" and not requested:
        requested = [(tools[0]["function"]["name"], None)]
    if body.get("parallel_tool_calls") is False:
        requested = requested[:1]
    return [
        ToolCall(
            id=new_call_id(),
            name=name,
            arguments=arguments if arguments else example_arguments(parameters.get(name)),
        )
        for name, arguments in requested
    ]
