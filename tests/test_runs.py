"""The runs use case with a fake of its store: what a read finds while a response is answered."""

from __future__ import annotations

import pytest

from chat.engine.errors import StorageUnavailable
from chat.engine.history import Conversation, ResponseRecord
from chat.engine.items import FunctionCall, Message
from chat.engine.model import ArgumentsDelta, ItemStarted, TextDelta
from chat.engine.runs import Progress, Runs

pytestmark = pytest.mark.anyio

ALICE = Conversation("alice", "c1")
RECORD = ResponseRecord("resp_1", '{"status":"in_progress"}')


class FakeRunStore:
    def __init__(self, *, failing: bool = False) -> None:
        self.rows: dict[str, tuple[Conversation, ResponseRecord]] = {}
        self.failing = failing

    async def begin(self, conversation: Conversation, record: ResponseRecord, floor: int) -> None:
        if self.failing:
            raise StorageUnavailable("down")
        self.rows[record.id] = (conversation, record)

    async def end(self, conversation: Conversation, response_id: str) -> None:
        if self.failing:
            raise StorageUnavailable("down")
        self.rows.pop(response_id, None)

    async def find(self, owner: str, response_id: str) -> tuple[Conversation, ResponseRecord] | None:
        found = self.rows.get(response_id)
        return found if found is not None and found[0].owner == owner else None


def test_progress_grows_each_item_from_its_deltas():
    progress = Progress(ALICE, RECORD)
    progress.add(ItemStarted(Message("msg_1", "assistant", "")))
    progress.add(TextDelta("msg_1", "Hel"))
    progress.add(ItemStarted(FunctionCall("fc_1", "call_1", "lookup", "")))
    progress.add(TextDelta("msg_1", "lo"))
    progress.add(ArgumentsDelta("fc_1", '{"q":'))
    progress.add(ArgumentsDelta("fc_1", '"x"}'))
    assert progress.items == [
        Message("msg_1", "assistant", "Hello"),
        FunctionCall("fc_1", "call_1", "lookup", '{"q":"x"}'),
    ]


async def test_a_run_is_found_with_its_output_by_its_owner_only_until_it_ends():
    store = FakeRunStore()
    runs = Runs(store)
    progress = runs.begin(ALICE, RECORD, floor=0)
    await runs.recorded(progress)
    progress.add(ItemStarted(Message("msg_1", "assistant", "so far")))
    found = await runs.find("alice", "resp_1")
    assert found is not None and found.outputs == (Message("msg_1", "assistant", "so far"),)
    assert found.conversation_id == "c1"
    assert await runs.find("bob", "resp_1") is None
    await runs.end(progress)
    assert await runs.find("alice", "resp_1") is None and store.rows == {}


async def test_a_run_the_store_forgot_is_not_found_even_where_it_streams():
    """A delete on another instance removes the row: this instance asks the store, not its memory."""
    store = FakeRunStore()
    runs = Runs(store)
    progress = runs.begin(ALICE, RECORD, floor=0)
    await runs.recorded(progress)
    store.rows.clear()
    assert await runs.find("alice", "resp_1") is None
    await runs.end(progress)


async def test_a_run_whose_row_could_not_be_written_is_still_found_where_it_streams():
    runs = Runs(FakeRunStore(failing=True))
    progress = runs.begin(ALICE, RECORD, floor=0)
    await runs.recorded(progress)  # the failure is logged, not raised: the turn goes on
    found = await runs.find("alice", "resp_1")
    assert found is not None and found.record == RECORD
    await runs.end(progress)  # nor does the failed delete raise
    assert await runs.find("alice", "resp_1") is None
