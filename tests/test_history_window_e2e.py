"""The history sent to the model is the newest whole turns that fit the token budget.

What the model receives is read from the model stand-in's journal; the budget is the app's own
estimate (chat.engine.tokens), which the window must never exceed however long the conversation grows.
"""

from __future__ import annotations

import json
import random
import uuid

import pytest
from azure.data.tables.aio import TableClient

from chat.engine.history import Conversation, NewTurn
from chat.engine.tokens import estimate_tokens
from chat.storage import codec
from chat.storage.limits import MAX_TRANSACTION_ENTITIES
from chat.storage.messages import TurnStore
from chat.storage.tables import Table
from tests.support.api import Api
from tests.support.servers import AppServer, app_env
from tests.support.turns import answer_text, chat_turn, user_text
from tests.support.turns import cost as turn_cost

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

BUDGET = 150
SYSTEM_PROMPT = "You are the test assistant."


@pytest.fixture(scope="module")
def small_budget_server(standins, azurite):
    env = app_env(standins, azurite.connection_string, CHAT_HISTORY_TOKEN_BUDGET=str(BUDGET))
    instance = AppServer(env).start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def no_history_server(standins, azurite):
    instance = AppServer(app_env(standins, azurite.connection_string, CHAT_HISTORY_TOKEN_BUDGET="0")).start()
    yield instance
    instance.stop()


def sent_to_model(standins, content: str) -> list[dict[str, str]]:
    """The messages of the one model request whose new user message is `content`."""
    requests = [e for e in standins.requests() if e["body"]["messages"][-1]["content"] == content]
    assert len(requests) == 1, f"{len(requests)} model requests for {content[:40]!r}"
    return [{"role": m["role"], "content": m["content"]} for m in requests[0]["body"]["messages"]]


def cost(messages: list[dict[str, str]]) -> int:
    return sum(estimate_tokens(m["content"]) for m in messages)


def check_window(sent: list[dict[str, str]], conversation: list[dict[str, str]], content: str) -> int:
    """The request is system + the newest whole turns that fit + the new message; returns its turns."""
    assert sent[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert sent[-1] == {"role": "user", "content": content}
    history = sent[1:-1]
    assert [m["role"] for m in history] == ["user", "assistant"] * (len(history) // 2), "a turn was cut in two"
    assert history == conversation[len(conversation) - len(history) :], "not the newest turns, in order"
    assert cost(history) <= BUDGET
    if len(history) < len(conversation):
        older_turn = conversation[len(conversation) - len(history) - 2 : len(conversation) - len(history)]
        assert cost(older_turn) + cost(history) > BUDGET, "the next older turn would have fit"
    return len(history) // 2


async def take_turn(api: Api, content: str, session: str, *, stream: bool) -> str:
    reply = await api.chat(content, session, stream=stream)
    assert reply.status == 200, reply.body
    return reply.text if stream else reply.body["message"]["content"]


async def test_a_long_conversation_sends_only_the_newest_whole_turns_that_fit(small_budget_server, standins):
    """60 turns of uneven sizes, JSON and streamed: every request's history fits the budget."""
    session = f"window-{uuid.uuid4().hex}"
    sizes = random.Random(7).choices([0, 5, 20, 60, 120], k=60)
    sizes[10] = sizes[30] = 400  # a turn larger than the whole budget blocks every older turn
    conversation: list[dict[str, str]] = []
    turns_sent = []
    async with Api(small_budget_server.url) as api:
        for number, size in enumerate(sizes):
            content = f"{session} turn {number} " + "ü" * size
            answer = await take_turn(api, content, session, stream=number % 2 == 1)
            sent = sent_to_model(standins, content)
            turns_sent.append(check_window(sent, conversation, content))
            assert answer == f"Echo #{len(sent) - 2}: {content}"
            conversation += [{"role": "user", "content": content}, {"role": "assistant", "content": answer}]
        stored = await api.messages(session, limit=200)
    assert [{"role": m["role"], "content": m["content"]} for m in stored.body["messages"]] == conversation
    assert turns_sent[11] == 0 and turns_sent[31] == 0  # right after a turn over the budget: none
    assert 2 <= max(turns_sent) <= 5 and max(turns_sent[40:]) > 0  # bounded, not growing with the conversation


async def test_a_short_conversation_is_sent_whole(small_budget_server, standins):
    session = f"whole-{uuid.uuid4().hex}"
    conversation: list[dict[str, str]] = []
    async with Api(small_budget_server.url) as api:
        for number in range(3):
            content = f"{session} {number}"
            answer = await take_turn(api, content, session, stream=False)
            sent = sent_to_model(standins, content)
            assert sent[1:-1] == conversation
            conversation += [{"role": "user", "content": content}, {"role": "assistant", "content": answer}]


async def test_a_long_answer_leaves_its_question_out_too(small_budget_server, standins):
    """A turn whose answer alone is over the budget is left out whole, never its question alone."""
    session = f"long-answer-{uuid.uuid4().hex}"
    async with Api(small_budget_server.url) as api:
        await take_turn(api, f"{session} first", session, stream=False)
        await take_turn(api, f"{session} [[long:600]]", session, stream=True)
        content = f"{session} after"
        await take_turn(api, content, session, stream=False)
    assert sent_to_model(standins, content) == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": content},
    ]


async def test_budget_zero_sends_only_the_system_prompt_and_the_new_message(no_history_server, standins):
    session = f"no-history-{uuid.uuid4().hex}"
    async with Api(no_history_server.url) as api:
        for number in range(3):
            content = f"{session} {number}"
            stream = number == 1
            assert await take_turn(api, content, session, stream=stream) == f"Echo #0: {content}"
            assert sent_to_model(standins, content) == [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": content},
            ]
        stored = await api.messages(session)
    assert len(stored.body["messages"]) == 6  # the budget limits what is sent, not what is kept


# -- what the history read costs ------------------------------------------------------------------


class QueryCounter:
    """Counts the query pages a TableClient receives, and the rows in them."""

    def __init__(self) -> None:
        self.pages = self.rows = 0

    def __call__(self, response) -> None:
        if response.http_request.method == "GET" and "()" in response.http_request.url:
            self.pages += 1
            self.rows += len(json.loads(response.http_response.body()).get("value", []))


async def test_the_history_read_costs_the_window_not_the_conversation(azurite):
    """In-process against Azurite: rows and round trips of a read follow the window's size."""
    counter = QueryCounter()
    prefix = "window" + uuid.uuid4().hex[:8]
    messages = TableClient.from_connection_string(
        azurite.connection_string, table_name=prefix + "messages", raw_response_hook=counter
    )
    store = TurnStore(Table(messages))
    try:
        await store.table.ready()  # creates the table
        await check_read_costs(store, messages, counter)
        await messages.delete_table()
    finally:
        await store.close()


def turn_of(number: int) -> NewTurn:
    return chat_turn(f"question {number}", f"answer {number}")


async def check_read_costs(store: TurnStore, messages: TableClient, counter: QueryCounter) -> None:
    short, long = Conversation("app", "short"), Conversation("app", "long")
    for conversation, turns in ((short, 5), (long, 1_000)):
        rows = [row for n in range(1, turns + 1) for row in codec.turn_entities(conversation, n, turn_of(n))]
        for start in range(0, len(rows), MAX_TRANSACTION_ENTITIES):
            await messages.submit_transaction([("create", r) for r in rows[start : start + MAX_TRANSACTION_ENTITIES]])

    async def read(conversation: Conversation, budget: int):
        counter.pages = counter.rows = 0
        history = await store.read_history(conversation, budget, turn_cost)
        return history, counter.pages, counter.rows

    # A small budget: the same window from both, one page of at most 32 rows from the long one.
    small, pages, rows = await read(long, 40)
    assert [t.number for t in small.turns] == [999, 1000] and small.latest_turn == 1000
    assert pages == 1 and rows <= 32
    assert [t.number for t in (await read(short, 40))[0].turns] == [4, 5]

    # A window of 300 turns: a few pages that double in size, at most about twice the rows used.
    budget = sum(
        estimate_tokens(user_text(t)) + estimate_tokens(answer_text(t)) for t in map(turn_of, range(701, 1001))
    )
    window, pages, rows = await read(long, budget)
    assert [t.number for t in window.turns] == list(range(701, 1001))
    assert pages <= 5 and rows <= 2 * 600 + 32

    # The whole conversation: 2,000 rows in pages of 32, 64, ... up to 1,000.
    everything, pages, rows = await read(long, 10**9)
    assert [t.number for t in everything.turns] == list(range(1, 1001))
    assert [(user_text(t), answer_text(t)) for t in everything.turns[:2]] == [
        ("question 1", "answer 1"),
        ("question 2", "answer 2"),
    ]
    assert rows == 2_000 and pages <= 8
