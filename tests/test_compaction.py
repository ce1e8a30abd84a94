"""Compaction on the engine's own: the window and prompt with a compaction in them, the use case over
the fakes (what the model is asked to summarise, what is stored, what the next turn sends), the
door's parsing of context_management and of a compaction item's encrypted_content."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chat.engine.compaction import SUMMARY_REQUEST, transcript
from chat.engine.items import Compaction, FilePart, ImagePart, Turn, compaction, function_call_output
from chat.engine.items import message as new_message
from chat.engine.model import Completion, ItemStarted
from chat.engine.turns import replay_events
from chat.engine.window import compacted, prompt_items
from chat.web.openai.errors import InvalidParameter
from chat.web.openai.requests import parse_response_request
from chat.web.openai.sealed import seal, unseal
from tests.fakes.engine import CREATED, HELLO, FakeModel, service, stored_turn, turn
from tests.fakes.store import FakeStore

pytestmark = pytest.mark.anyio


def texts(items) -> list[str]:
    return [getattr(item, "text", None) or getattr(item, "summary", "") for item in items]


def test_the_prompt_starts_at_the_newest_compaction():
    window = [
        stored_turn(1, "old question", "old answer"),
        Turn(2, (new_message("user", "kept input"), compaction("summary one")), (), CREATED),
        stored_turn(3, "after", "answer after"),
    ]
    assert texts(prompt_items(window, [new_message("user", "new")])) == [
        "summary one",
        "after",
        "answer after",
        "new",
    ]


def test_a_compaction_made_while_answering_goes_before_its_turns_input():
    made = compaction("what came before")
    window = [
        stored_turn(1, "old", "older answer"),
        Turn(2, (new_message("user", "q"),), (made, new_message("assistant", "a")), CREATED),
    ]
    assert compacted(window[1]) and not compacted(window[0])
    assert texts(prompt_items(window, [])) == ["what came before", "q", "a"]


def test_a_compaction_in_the_new_input_stands_for_the_window_too():
    window = [stored_turn(1, "old", "answer")]
    assert texts(prompt_items(window, [compaction("sent back"), new_message("user", "next")])) == ["sent back", "next"]


async def test_the_window_read_stops_at_the_newest_compaction():
    store = FakeStore(
        turns=[stored_turn(1, "a", "b"), Turn(2, (compaction("s"),), (), CREATED), stored_turn(3, "c", "d")]
    )
    await service(store, FakeModel()).turns.reply("app", turn("e"))
    assert store.windows == [[2, 3]]


async def test_compact_summarises_the_window_and_stores_the_compaction_as_a_turn():
    store = FakeStore(turns=[stored_turn(1, "My code is 7391.", "Noted.")])
    model = FakeModel(answers=[Completion((new_message("assistant", "User's code: 7391."),), "stop", None)])
    engine = service(store, model)
    done = await engine.compacting.compact("app", replace(turn("and this"), response="{}", must_exist=False))
    [asked] = model.requests
    assert asked.items[0].text == SUMMARY_REQUEST + transcript([*store.turns[0].items, new_message("user", "and this")])
    assert done.item.summary == "User's code: 7391." and done.conversation_id == "c1"
    [(number, stored)] = store.appended
    assert number == 2 and stored.outputs == () and isinstance(stored.inputs[-1], Compaction)


def test_the_transcript_says_where_images_and_files_were_which_it_does_not_hold():
    png, pdf = "data:image/png;base64,AAAA", "data:application/pdf;base64,AAAA"
    looked = new_message("user", "", parts=("What is it?", ImagePart(png), ImagePart(png, "low")))
    shot = function_call_output("call_1", "", parts=(ImagePart(png), FilePart(pdf, "a.pdf")))
    plain = function_call_output("call_2", "12 C")
    assert transcript([looked, shot, plain]).split("\n\n") == [
        "user: What is it? [with 2 images, not shown here]",
        "tool result of call_1:  [with 1 image and 1 file, not shown here]",
        "tool result of call_2: 12 C",
    ]


async def test_context_management_compacts_only_from_its_threshold():
    store = FakeStore(turns=[stored_turn(1, "a" * 300, "b")])
    hello = Completion((HELLO,), "stop", None)
    model = FakeModel(answers=[hello, Completion((new_message("assistant", "the summary"),), "stop", None), hello])
    engine = service(store, model)
    await engine.turns.reply("app", replace(turn("short"), compact_threshold=10_000))
    assert len(model.requests) == 1  # under the threshold: no summary asked
    answer = await engine.turns.reply("app", replace(turn("short"), compact_threshold=50))
    summarising, answering = model.requests[1:]
    assert summarising.system_prompt != "sys" and answering.system_prompt == "sys"
    assert texts(answering.items) == ["the summary", "short"]
    assert isinstance(answer.outputs[0], Compaction) and answer.text == "Hello"


async def test_an_empty_summary_fails_and_stores_nothing():
    store = FakeStore(turns=[stored_turn(1, "a", "b")])
    model = FakeModel(answers=[Completion((new_message("assistant", " "),), "stop", None)])
    with pytest.raises(Exception, match="did not write the summary"):
        await service(store, model).compacting.compact("app", replace(turn("x"), response="{}"))
    assert store.appended == []


def test_encrypted_content_round_trips_and_a_forged_one_is_refused_by_name():
    assert unseal(seal("résumé 🙂"), "input[0].encrypted_content") == "résumé 🙂"
    sealed = seal("the summary")
    for forged in (
        sealed[:-1] + ("0" if sealed[-1] != "0" else "1"),
        "cmp1.!!.00",
        "nothing",
        sealed.replace("cmp1", "cmp2"),
    ):
        with pytest.raises(InvalidParameter) as caught:
            unseal(forged, "input[0].encrypted_content")
        assert caught.value.param == "input[0].encrypted_content"


def test_context_management_is_parsed_and_a_bad_one_refused_by_name():
    body = b'{"model": "m", "input": "hi", "context_management": [{"type": "compaction", "compact_threshold": 500}]}'
    assert parse_response_request(body).options.compact_threshold == 500
    for bad in ('[{"type": "truncate"}]', '[{"type": "compaction", "compact_threshold": 0}]', '"on"'):
        with pytest.raises(InvalidParameter) as caught:
            parse_response_request(b'{"model": "m", "input": "hi", "context_management": ' + bad.encode() + b"}")
        assert caught.value.param.startswith("context_management")


async def test_a_replayed_turn_shows_its_compaction_first():
    made = compaction("before")
    stored = Turn(3, (new_message("user", "q"),), (made, new_message("assistant", "a")), CREATED, "stop")
    events = [event async for event in replay_events(stored)]
    assert isinstance(events[0], ItemStarted) and events[0].item == made
    assert events[-1].outputs == (made, stored.outputs[1])
