"""Storage faults around a turn's writes and a delete's, through a fault proxy in front of Azurite:
a transaction carried out whose answer is lost, a server error after the write, a write slower than
the storage deadline (held before or after Azurite carries it out), refused writes,
and a list write cut short. After each, what a client was told matches what is stored, the
conversation's items are whole turns only, and a conversation is listed exactly when it exists.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from tests.support.api import Api
from tests.support.azurite import AZURITE_ACCOUNT, AZURITE_KEY
from tests.support.fault_proxy import Fault, FaultProxy, batch_into, write_to
from tests.support.servers import AppServer, app_env

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture(scope="module")
def proxy(azurite):
    with FaultProxy(azurite.port) as instance:
        yield instance


@pytest.fixture(scope="module")
def faulty(standins, proxy):
    connection_string = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"TableEndpoint={proxy.endpoint};"
    )
    env = app_env(standins, connection_string)
    instance = AppServer(env).start()
    instance.tables = {name: env["CHAT_TABLE_PREFIX"] + name for name in ("messages", "conversations")}  # type: ignore[attr-defined]
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def impatient(standins, proxy):
    """The app on the same faulty storage, with a storage deadline of 1 s: a slow request outlives it."""
    connection_string = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"TableEndpoint={proxy.endpoint};"
    )
    env = app_env(standins, connection_string, CHAT_STORAGE_TIMEOUT_SECONDS="1")
    instance = AppServer(env).start()
    instance.tables = {name: env["CHAT_TABLE_PREFIX"] + name for name in ("messages", "conversations")}  # type: ignore[attr-defined]
    yield instance
    instance.stop()


@pytest.fixture
async def api(faulty, proxy):
    proxy.clear()
    async with Api(faulty.url) as client:
        yield client
    proxy.clear()


def session() -> str:
    return f"faults-{uuid.uuid4().hex}"


def from_nth(matches: Callable[[str, str, bytes], bool], n: int) -> Callable[[str, str, bytes], bool]:
    """A predicate matching the n-th request (from 1) that `matches` matches and every one after
    it (the storage client's own resends of it included), and none before."""
    seen = 0

    def predicate(method: str, path: str, body: bytes) -> bool:
        nonlocal seen
        if not matches(method, path, body):
            return False
        seen += 1
        return seen >= n

    return predicate


async def stored(api: Api, conversation: str) -> list[tuple[str, str]]:
    reply = await api.messages(conversation, limit=200)
    assert reply.status == 200, reply.body
    return [(m["role"], m["content"]) for m in reply.body["messages"]]


async def listed(api: Api) -> dict[str, int]:
    reply = await api.conversations(limit=200)
    assert reply.status == 200, reply.body
    ids = [c["id"] for c in reply.body["conversations"]]
    assert len(ids) == len(set(ids)), ids
    return {c["id"]: c["message_count"] for c in reply.body["conversations"]}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("action", ["lose answer", "500 after"])
async def test_a_turn_stored_whose_answer_was_lost_is_answered_and_stored_once(api, faulty, proxy, action, stream):
    conversation = session()
    assert (await api.chat("before", conversation)).status == 200
    fault = proxy.add(Fault(action, batch_into(faulty.tables["messages"])))

    reply = await api.chat("the lost answer", conversation, stream=stream)

    assert fault.seen == 1
    assert reply.status == 200, reply.body
    if stream:
        assert reply.text == "Echo #2: the lost answer"
        assert "error" not in reply.lines[-1] and reply.lines[-1]["context"]["finish_reason"] == "stop"
    else:
        assert reply.body["message"]["content"] == "Echo #2: the lost answer"
    assert await stored(api, conversation) == [
        ("user", "before"),
        ("assistant", "Echo #0: before"),
        ("user", "the lost answer"),
        ("assistant", "Echo #2: the lost answer"),
    ]
    assert (await listed(api))[conversation] == 4


async def test_a_first_turn_stored_whose_answer_was_lost_is_answered_and_listed_once(api, faulty, proxy):
    fault = proxy.add(Fault("lose answer", batch_into(faulty.tables["messages"])))
    reply = await api.chat("a first turn")
    assert fault.seen == 1
    assert reply.status == 200, reply.body
    conversation = reply.body["sessionState"]
    assert await stored(api, conversation) == [("user", "a first turn"), ("assistant", "Echo #0: a first turn")]
    assert (await listed(api))[conversation] == 2


@pytest.mark.parametrize("action", ["500", "503", "cut"])
async def test_a_turn_storage_refuses_is_an_error_and_stores_nothing(api, faulty, proxy, action):
    conversation = session()
    assert (await api.chat("before", conversation)).status == 200
    proxy.add(Fault(action, batch_into(faulty.tables["messages"]), times=1000))

    json_reply = await api.chat("refused", conversation)
    stream_reply = await api.chat("refused, streamed", conversation, stream=True)
    new_reply = await api.chat(f"a new conversation, refused {uuid.uuid4().hex}")

    assert json_reply.status == 503 and json_reply.error_code == "storage_unavailable", json_reply.body
    assert stream_reply.status == 200 and stream_reply.lines[-1]["error"]["code"] == "storage_unavailable"
    assert new_reply.status == 503 and new_reply.error_code == "storage_unavailable"
    proxy.clear()
    assert await stored(api, conversation) == [("user", "before"), ("assistant", "Echo #0: before")]
    titles = [c["title"] for c in (await api.conversations(limit=200)).body["conversations"]]
    assert not any(title.startswith("a new conversation, refused") for title in titles)
    # Listed still; its entry may have moved up with the refused turn's update beside the write.
    assert conversation in await listed(api)
    assert (await api.chat("after", conversation)).status == 200
    assert len(await stored(api, conversation)) == 4
    assert (await listed(api))[conversation] == 4


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("action", ["slow", "slow after"])
async def test_a_turn_whose_write_outlives_the_storage_deadline_is_answered_and_stored_once(
    impatient, proxy, action, stream
):
    """A write held past the 1 s deadline, before Azurite carries it out (it arrives late, after the
    turn was written again, and its ETag no longer matches) or after (it is stored, and read back)."""
    proxy.clear()
    async with Api(impatient.url) as api:
        conversation = session()
        assert (await api.chat("before", conversation)).status == 200
        fault = proxy.add(Fault(action, batch_into(impatient.tables["messages"]), delay=4))

        reply = await api.chat("a slow write", conversation, stream=stream)

        assert reply.status == 200, reply.body
        answer = reply.text if stream else reply.body["message"]["content"]
        assert answer == "Echo #2: a slow write"
        # Answered while the proxy still held the write: what the turn stored was read back, or
        # written again, past the deadline rather than waited for.
        assert fault.seen == 1 and fault.done == 0
        while fault.done < 1:  # noqa: ASYNC110 (the held request is let go in the proxy's thread)
            await asyncio.sleep(0.05)
        proxy.clear()
        assert await stored(api, conversation) == [
            ("user", "before"),
            ("assistant", "Echo #0: before"),
            ("user", "a slow write"),
            ("assistant", "Echo #2: a slow write"),
        ]
        assert (await listed(api))[conversation] == 4


async def test_a_first_turn_whose_list_entry_cannot_be_written_fails_and_stores_nothing(api, faulty, proxy):
    marker = uuid.uuid4().hex
    proxy.add(Fault("cut", write_to(faulty.tables["conversations"]), times=1000))
    reply = await api.chat(f"unlisted {marker}")
    assert reply.status == 503 and reply.error_code == "storage_unavailable", reply.body
    proxy.clear()
    reply = await api.chat(f"listed {marker}")
    assert reply.status == 200
    titles = [c["title"] for c in (await api.conversations(limit=200)).body["conversations"]]
    assert f"listed {marker}" in titles and f"unlisted {marker}" not in titles


async def test_a_first_turn_whose_list_confirmation_fails_is_listed(api, faulty, proxy):
    # The entry written ahead of the turn goes through; the one after it, which confirms it, is cut.
    fault = proxy.add(Fault("cut", from_nth(write_to(faulty.tables["conversations"]), 2), times=1000))
    reply = await api.chat("listed though not confirmed")
    assert fault.seen >= 1
    assert reply.status == 200, reply.body
    conversation = reply.body["sessionState"]
    assert (await listed(api))[conversation] == 2
    assert len(await stored(api, conversation)) == 2


async def test_a_delete_cut_short_after_the_floor_rose_is_not_listed(api, faulty, proxy):
    conversation = session()
    assert (await api.chat("to be deleted", conversation)).status == 200
    assert conversation in await listed(api)
    # The delete marks the list entry, raises the floor, then unlists: the unlisting is cut.
    proxy.add(Fault("cut", from_nth(write_to(faulty.tables["conversations"]), 2), times=1000))
    reply = await api.delete(conversation)
    assert reply.status == 503 and reply.error_code == "storage_unavailable", reply.body

    assert conversation not in await listed(api)
    assert (await api.messages(conversation)).status == 404
    proxy.clear()
    assert (await api.delete(conversation)).status == 204
    assert conversation not in await listed(api)


async def test_a_delete_refused_before_the_floor_rose_leaves_the_conversation_whole_and_listed(api, faulty, proxy):
    conversation = session()
    assert (await api.chat("kept", conversation)).status == 200
    proxy.add(Fault("cut", write_to(faulty.tables["messages"]), times=1000))
    reply = await api.delete(conversation)
    assert reply.status == 503 and reply.error_code == "storage_unavailable", reply.body
    proxy.clear()
    assert await stored(api, conversation) == [("user", "kept"), ("assistant", "Echo #0: kept")]
    assert (await listed(api))[conversation] == 2


@pytest.mark.parametrize("fault", ["[[429]]", "[[500]]", "[[cut]]", "[[sleep:5]]"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_model_faults_mid_turn_leave_whole_turns_only(api, fault, stream):
    conversation = session()
    assert (await api.chat("before", conversation)).status == 200
    reply = await api.chat(f"faulty {fault}", conversation, stream=stream)
    if stream and reply.status == 200:
        error = reply.lines[-1]["error"]
    else:
        assert reply.status in (429, 502, 503, 504), reply.body
        error = reply.body["error"]
    assert error["code"] == "rate_limited" or error["code"].startswith("model_"), error
    assert error["message"]
    assert await stored(api, conversation) == [("user", "before"), ("assistant", "Echo #0: before")]
    assert (await api.chat("after", conversation)).status == 200
    assert len(await stored(api, conversation)) == 4


async def test_a_response_stored_whose_answer_was_lost_is_answered_and_stored_once(api, faulty, proxy):
    first = await api.request("POST", "/api/v1/responses", json_body={"model": "chat", "input": "first"})
    assert first.status == 200, first.body
    fault = proxy.add(Fault("lose answer", batch_into(faulty.tables["messages"])))
    body = {"model": "chat", "input": "second", "previous_response_id": first.body["id"]}
    second = await api.request("POST", "/api/v1/responses", json_body=body)
    assert fault.seen == 1
    assert second.status == 200, second.body
    assert second.body["output"][0]["content"][0]["text"] == "Echo #2: second"
    # The chain holds each turn once: the next response's model saw four earlier messages.
    body = {"model": "chat", "input": "third", "previous_response_id": second.body["id"]}
    third = await api.request("POST", "/api/v1/responses", json_body=body)
    assert third.body["output"][0]["content"][0]["text"] == "Echo #4: third"
    items = await api.request("GET", f"/api/v1/responses/{second.body['id']}/input_items")
    assert [item["content"][0]["text"] for item in items.body["data"]] == ["second"]
