"""The window and the prompt it makes: whole turns, and function calls only with their outputs."""

from __future__ import annotations

from chat.engine.items import FunctionCall, FunctionCallOutput, Message, Turn, function_call, function_call_output
from chat.engine.items import message as new_message
from chat.engine.window import prompt_items, shrunk, turn_cost
from chat.upstream.chat_completions import chat_messages, output_items


def turn(number: int, *inputs, outputs=()) -> Turn:
    return Turn(number, tuple(inputs), tuple(outputs), "2026-01-01T00:00:00Z")


def kinds(items) -> list[str]:
    return [f"{i.kind}:{getattr(i, 'call_id', getattr(i, 'text', ''))}" for i in items]


def test_a_call_and_its_output_in_two_turns_both_reach_the_model():
    call = function_call("call_1", "weather", '{"city": "Oslo"}')
    window = [
        turn(1, new_message("user", "Weather in Oslo?"), outputs=[call]),
        turn(2, function_call_output("call_1", "-3 C"), outputs=[new_message("assistant", "It is -3 C.")]),
    ]
    assert kinds(prompt_items(window, [new_message("user", "Thanks")])) == [
        "message:Weather in Oslo?",
        "function_call:call_1",
        "function_call_output:call_1",
        "message:It is -3 C.",
        "message:Thanks",
    ]


def test_a_trim_between_a_call_and_its_output_drops_both():
    # The window starts at turn 2: the call (turn 1) is outside, so its output goes too.
    window = [turn(2, function_call_output("call_1", "-3 C"), outputs=[new_message("assistant", "It is -3 C.")])]
    assert kinds(prompt_items(window, [new_message("user", "Thanks")])) == ["message:It is -3 C.", "message:Thanks"]


def test_a_pending_call_reaches_the_model_with_the_turn_that_brings_its_output():
    window = [turn(1, new_message("user", "Weather?"), outputs=[function_call("call_1", "weather", "{}")])]
    assert kinds(prompt_items(window, [function_call_output("call_1", "sunny")])) == [
        "message:Weather?",
        "function_call:call_1",
        "function_call_output:call_1",
    ]


def test_a_call_answered_after_other_turns_goes_to_the_model_just_before_its_output():
    # The caller went on before it answered: the prompt ends with the output, which the model answers.
    window = [
        turn(1, new_message("user", "Weather?"), outputs=[function_call("call_1", "weather", "{}")]),
        turn(2, new_message("user", "Say hi"), outputs=[new_message("assistant", "Hi")]),
    ]
    items = prompt_items(window, [function_call_output("call_1", "sunny")])
    assert kinds(items) == [
        "message:Weather?",
        "message:Say hi",
        "message:Hi",
        "function_call:call_1",
        "function_call_output:call_1",
    ]
    messages = chat_messages("system", items)
    assert [m["role"] for m in messages] == ["system", "user", "user", "assistant", "tool"]
    assert messages[3]["content"] == "Hi" and [c["id"] for c in messages[3]["tool_calls"]] == ["call_1"]
    assert messages[4] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


def test_a_call_the_caller_never_answered_is_dropped_when_it_moves_on():
    window = [turn(1, new_message("user", "Weather?"), outputs=[function_call("call_1", "weather", "{}")])]
    assert kinds(prompt_items(window, [new_message("user", "Never mind")])) == [
        "message:Weather?",
        "message:Never mind",
    ]


def test_of_parallel_calls_only_the_answered_ones_stay():
    calls = [function_call("call_a", "f", "{}"), function_call("call_b", "g", "{}")]
    window = [turn(1, new_message("user", "Both?"), outputs=calls)]
    assert kinds(prompt_items(window, [function_call_output("call_b", "B")])) == [
        "message:Both?",
        "function_call:call_b",
        "function_call_output:call_b",
    ]


def test_turn_cost_counts_every_item_of_the_turn():
    t = turn(1, new_message("user", "abc"), outputs=[function_call("c", "fn", "{}"), new_message("assistant", "x")])
    assert turn_cost(t, len) == len("abc") + len("fn{}") + len("x")


def test_shrunk_keeps_the_newer_half():
    window = [turn(n, new_message("user", str(n))) for n in range(1, 6)]
    assert [t.number for t in shrunk(window)] == [4, 5]


def test_chat_messages_put_calls_in_one_assistant_message_and_each_output_right_after_it():
    calls = [function_call("call_a", "f", '{"x": 1}'), function_call("call_b", "g", "{}")]
    items = [
        new_message("user", "Go"),
        new_message("assistant", "Calling both."),
        *calls,
        # The caller's next turn: a note first, then the outputs, in another order.
        new_message("user", "Here you are"),
        function_call_output("call_b", "B"),
        function_call_output("call_a", "A"),
    ]
    assert chat_messages("sys", items) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Go"},
        {
            "role": "assistant",
            "content": "Calling both.",
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
                {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "A"},
        {"role": "tool", "tool_call_id": "call_b", "content": "B"},
        {"role": "user", "content": "Here you are"},
    ]


def test_a_call_without_text_is_an_assistant_message_with_no_content():
    items = [new_message("user", "Go"), function_call("call_a", "f", "{}"), function_call_output("call_a", "A")]
    assert chat_messages("sys", items)[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
    }


def test_a_refusal_goes_back_to_the_model_as_the_assistant_messages_refusal():
    refused = new_message("assistant", "I can't help with that.", refusal=True)
    items = [new_message("user", "Do it"), refused, new_message("user", "Something else")]
    assert chat_messages("sys", items) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Do it"},
        {"role": "assistant", "refusal": "I can't help with that."},
        {"role": "user", "content": "Something else"},
    ]


def test_an_answer_s_text_refusal_and_calls_are_items_in_that_order():
    class Call:
        id = "call_a"
        function = type("Function", (), {"name": "f", "arguments": "{}"})

    refused = output_items(None, None, "No.")
    assert [(type(i), i.text, i.refusal) for i in refused] == [(Message, "No.", True)]
    both = output_items("Well", [Call()], "No.")
    assert [(i.kind, getattr(i, "refusal", None)) for i in both] == [
        ("message", False),
        ("message", True),
        ("function_call", None),
    ]
    # No refusal (null, or empty): the answer is its text, an empty message if it has none.
    assert [(i.text, i.refusal) for i in output_items(None, None, "")] == [("", False)]
    assert [(i.text, i.refusal) for i in output_items("Hi", None, None)] == [("Hi", False)]


def test_item_ids_are_unique_and_say_their_kind():
    made = [new_message("user", "a"), function_call("c", "f", "{}"), function_call_output("c", "o")]
    assert [type(i) for i in made] == [Message, FunctionCall, FunctionCallOutput]
    assert [i.id.split("_")[0] for i in made] == ["msg", "fc", "fco"]
    assert len({new_message("user", "a").id for _ in range(1000)}) == 1000


def test_the_servers_system_prompt_comes_first_then_the_callers_instructions_and_messages():
    items = [
        new_message("system", "Answer in French."),
        new_message("user", "hello"),
        new_message("developer", "Be brief."),
    ]
    assert chat_messages("sys", items, instructions="Sign your name.") == [
        {"role": "system", "content": "sys"},
        {"role": "system", "content": "Sign your name."},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "hello"},
        {"role": "system", "content": "Be brief."},
    ]
    assert [m["role"] for m in chat_messages("sys", items, instructions="x", caller_role="developer")] == [
        "system",
        "developer",
        "developer",
        "user",
        "developer",
    ]
