"""No caller can read, continue, list or delete another owner's conversation, end to end over HTTP.

Most tests run against a deployment that trusts `x-ms-client-principal`, as one behind Static Web
Apps or App Service authentication does; each test signs in users of its own.
"""

from __future__ import annotations

import base64
import json
import uuid
from contextlib import AsyncExitStack, suppress

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from tests.support.api import Api, Reply
from tests.support.servers import AppServer
from tests.support.wire import OBJECT_ID, PRINCIPAL

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TEAMS_ID = "19:abc@thread.tacv2;messageid=1"


def encoded(document: object) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def swa_principal() -> str:
    """A signed-in user as Static Web Apps describes them to a linked backend."""
    user = {"identityProvider": "github", "userId": uuid.uuid4().hex, "userDetails": "octocat", "userRoles": []}
    return encoded(user)


def app_service_principal() -> str:
    """A signed-in user as App Service authentication describes them."""
    return encoded(
        {
            "auth_typ": "aad",
            "claims": [{"typ": "name", "val": "Ada"}, {"typ": OBJECT_ID, "val": str(uuid.uuid4())}],
            "name_typ": "name",
            "role_typ": "roles",
        }
    )


MALFORMED_PRINCIPALS = {
    "not base64": "%%% not base64 %%%",
    "not json": base64.b64encode(b"<principal/>").decode(),
    "not an object": encoded(["github", "abc"]),
    "no userId": encoded({"identityProvider": "github", "userDetails": "octocat"}),
    "no provider": encoded({"userId": "abc"}),
    "claims of the wrong types": encoded({"auth_typ": "aad", "claims": [{"typ": [], "val": 1}]}),
    "over 16 KiB": encoded({"identityProvider": "github", "userId": "u", "pad": "x" * 20_000}),
}


@pytest.fixture
async def callers(trusted_server):
    """A Static Web Apps user, an App Service user, a caller without a principal, one with a malformed one."""
    headers = {
        "owner": {PRINCIPAL: swa_principal()},
        "other": {PRINCIPAL: app_service_principal()},
        "no principal": {},
        "invalid principal": {PRINCIPAL: MALFORMED_PRINCIPALS["no userId"]},
    }
    async with AsyncExitStack() as stack:
        yield {
            name: await stack.enter_async_context(Api(trusted_server.url, headers=value))
            for name, value in headers.items()
        }


def stored_rows(azurite, server: AppServer) -> int:
    """Every row of the server's two tables, read straight from Azurite."""
    total = 0
    for table_name in ("messages", "conversations"):
        name = server.env["CHAT_TABLE_PREFIX"] + table_name
        with (
            TableClient.from_connection_string(azurite.connection_string, table_name=name) as table,
            suppress(ResourceNotFoundError),  # the table is made on first use
        ):
            total += sum(1 for _ in table.list_entities(select=["RowKey"]))
    return total


def model_saw(standins, content: str) -> list[dict]:
    """The messages of the model request whose new turn was exactly `content`."""
    matches = [e["body"]["messages"] for e in standins.requests() if e["body"]["messages"][-1]["content"] == content]
    assert len(matches) == 1, f"the model saw {content!r} {len(matches)} times"
    return matches[0]


def contents(reply: Reply) -> list[tuple[str, str]]:
    assert reply.status == 200, reply.body
    return [(m["role"], m["content"]) for m in reply.body["messages"]]


def without_session(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "sessionState"}


async def listed_ids(api: Api) -> list[str]:
    reply = await api.conversations(limit=200)
    assert reply.status == 200, reply.body
    return [c["id"] for c in reply.body["conversations"]]


# -- the matrix: every route, every kind of caller ---------------------------------------------

ROUTES = ["POST chat", "POST chat/stream", "GET conversations", "GET messages", "DELETE conversation"]
CALLERS = ["owner", "other", "no principal", "invalid principal"]
UNAUTHENTICATED = (401, "unauthenticated", "intact")
INVALID = (401, "invalid_client_principal", "intact")
# Per route and caller: the status, a summary of what the caller saw, and what the owner then finds.
MATRIX = {
    "POST chat": {
        "owner": (200, "Echo #2", "continued"),
        "other": (200, "Echo #0", "intact"),
        "no principal": UNAUTHENTICATED,
        "invalid principal": INVALID,
    },
    "POST chat/stream": {
        "owner": (200, "Echo #2", "continued"),
        "other": (200, "Echo #0", "intact"),
        "no principal": UNAUTHENTICATED,
        "invalid principal": INVALID,
    },
    "GET conversations": {
        "owner": (200, "listed", "intact"),
        "other": (200, "not listed", "intact"),
        "no principal": UNAUTHENTICATED,
        "invalid principal": INVALID,
    },
    "GET messages": {
        "owner": (200, "2 messages", "intact"),
        "other": (404, "conversation_not_found", "intact"),
        "no principal": UNAUTHENTICATED,
        "invalid principal": INVALID,
    },
    "DELETE conversation": {
        "owner": (204, "", "gone"),
        "other": (204, "", "intact"),
        "no principal": UNAUTHENTICATED,
        "invalid principal": INVALID,
    },
}


async def call(route: str, api: Api, conversation_id: str, content: str) -> tuple[int, str]:
    """Call `route` on the conversation; the status and a short account of what the caller saw."""
    if route in ("POST chat", "POST chat/stream"):
        stream = route == "POST chat/stream"
        reply = await api.chat(content, conversation_id, stream=stream)
        if reply.status == 200:
            answer = reply.text if stream else reply.body["message"]["content"]
            session = reply.lines[0]["sessionState"] if stream else reply.body["sessionState"]
            assert session == conversation_id
            assert answer.endswith(f": {content}")
            return reply.status, answer.split(":")[0]
    elif route == "GET conversations":
        reply = await api.conversations(limit=200)
        if reply.status == 200:
            ids = [c["id"] for c in reply.body["conversations"]]
            return reply.status, "listed" if conversation_id in ids else "not listed"
    elif route == "GET messages":
        reply = await api.messages(conversation_id)
        if reply.status == 200:
            return reply.status, f"{len(reply.body['messages'])} messages"
    else:
        reply = await api.delete(conversation_id)
        if reply.status == 204:
            return reply.status, ""
    assert reply.headers["Content-Type"].startswith("application/json")
    return reply.status, reply.error_code


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", ROUTES)
async def test_who_may_do_what(trusted_server, azurite, standins, callers, route, caller):
    owner = callers["owner"]
    conversation_id = f"{TEAMS_ID}/{uuid.uuid4().hex}"
    opening = f"my secret plan {uuid.uuid4().hex}"
    assert (await owner.chat(opening, conversation_id)).status == 200
    before = [("user", opening), ("assistant", f"Echo #0: {opening}")]
    rows, model_calls = stored_rows(azurite, trusted_server), len(standins.requests())

    content = f"{caller} asks {uuid.uuid4().hex}"
    status, seen = await call(route, callers[caller], conversation_id, content)

    expected_status, expected_seen, owner_finds = MATRIX[route][caller]
    assert (status, seen) == (expected_status, expected_seen)
    if status == 401:
        assert stored_rows(azurite, trusted_server) == rows, "a caller without a valid principal stored something"
        assert len(standins.requests()) == model_calls, "a caller without a valid principal reached the model"
    messages = await owner.messages(conversation_id)
    if owner_finds == "gone":
        assert messages.status == 404
        assert conversation_id not in await listed_ids(owner)
        return
    assert conversation_id in await listed_ids(owner)
    if owner_finds == "continued":
        assert contents(messages) == [*before, ("user", content), ("assistant", f"Echo #2: {content}")]
    else:
        assert contents(messages) == before


# -- another owner's conversation -------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_the_same_id_under_two_owners_is_two_conversations(callers, standins, stream):
    alice, bob = callers["owner"], callers["other"]
    alice_first, alice_second = f"Alice's secret {uuid.uuid4().hex}", f"Alice again {uuid.uuid4().hex}"
    await alice.chat(alice_first, TEAMS_ID)
    await alice.chat(alice_second, TEAMS_ID)

    bob_first = f"Bob asks {uuid.uuid4().hex}"
    reply = await bob.chat(bob_first, TEAMS_ID, stream=stream)
    assert reply.status == 200
    assert (reply.text if stream else reply.body["message"]["content"]) == f"Echo #0: {bob_first}"
    assert model_saw(standins, bob_first) == [
        {"role": "system", "content": "You are the test assistant."},
        {"role": "user", "content": bob_first},
    ]

    bob_second = f"Bob continues {uuid.uuid4().hex}"
    assert (await bob.chat(bob_second, TEAMS_ID)).body["message"]["content"] == f"Echo #2: {bob_second}"
    assert [m["content"] for m in model_saw(standins, bob_second)[1:]] == [
        bob_first,
        f"Echo #0: {bob_first}",
        bob_second,
    ]

    alice_third = f"Alice a third time {uuid.uuid4().hex}"
    assert (await alice.chat(alice_third, TEAMS_ID)).body["message"]["content"] == f"Echo #4: {alice_third}"
    assert not any(bob_first in m["content"] for m in model_saw(standins, alice_third))

    assert contents(await alice.messages(TEAMS_ID))[::2] == [
        ("user", alice_first),
        ("user", alice_second),
        ("user", alice_third),
    ]
    assert contents(await bob.messages(TEAMS_ID))[::2] == [("user", bob_first), ("user", bob_second)]
    alice_list = (await alice.conversations()).body["conversations"]
    bob_list = (await bob.conversations()).body["conversations"]
    assert [(c["id"], c["title"], c["message_count"]) for c in alice_list] == [(TEAMS_ID, alice_first, 6)]
    assert [(c["id"], c["title"], c["message_count"]) for c in bob_list] == [(TEAMS_ID, bob_first, 4)]


async def test_another_owners_conversation_looks_like_one_never_used(callers):
    alice, bob = callers["owner"], callers["other"]
    taken, never_used = f"taken {uuid.uuid4().hex}", f"never used {uuid.uuid4().hex}"
    await alice.chat("hello", taken)
    await alice.chat("hello again", taken)
    alices_cursor = (await alice.messages(taken, limit=1)).body["next"]
    assert alices_cursor

    for params in ({}, {"limit": 1}, {"limit": 1, "cursor": alices_cursor}):
        foreign, unknown = await bob.messages(taken, **params), await bob.messages(never_used, **params)
        assert foreign.status == unknown.status
        assert without_session(foreign.body) == without_session(unknown.body)
        assert "hello" not in json.dumps(foreign.body)
        if "cursor" not in params:
            assert foreign.status == 404 and foreign.error_code == "conversation_not_found"

    deleted_foreign, deleted_unknown = await bob.delete(taken), await bob.delete(never_used)
    assert (deleted_foreign.status, deleted_foreign.body) == (204, None)
    assert (deleted_unknown.status, deleted_unknown.body) == (204, None)
    assert len(contents(await alice.messages(taken))) == 4


async def test_deleting_ones_own_copy_of_a_shared_id_leaves_the_others(callers):
    alice, bob = callers["owner"], callers["other"]
    await alice.chat("alice here", TEAMS_ID)
    await bob.chat("bob here", TEAMS_ID)
    assert (await bob.delete(TEAMS_ID)).status == 204
    assert (await bob.messages(TEAMS_ID)).status == 404
    assert await listed_ids(bob) == []
    assert contents(await alice.messages(TEAMS_ID)) == [("user", "alice here"), ("assistant", "Echo #0: alice here")]
    assert await listed_ids(alice) == [TEAMS_ID]


# -- callers without a valid principal ---------------------------------------------------------

REQUESTS = [
    ("POST", "/api/chat", {"messages": [{"role": "user", "content": "hi"}], "sessionState": "s"}),
    ("POST", "/api/chat/stream", {"messages": [{"role": "user", "content": "hi"}], "sessionState": "s"}),
    ("GET", "/api/conversations", None),
    ("GET", "/api/conversations/s/messages", None),
    ("DELETE", "/api/conversations/s", None),
]


@pytest.mark.parametrize(("method", "path", "document"), REQUESTS, ids=[f"{m} {p}" for m, p, _ in REQUESTS])
@pytest.mark.parametrize(
    ("principal", "code"),
    [(None, "unauthenticated"), ("", "unauthenticated")]
    + [(value, "invalid_client_principal") for value in MALFORMED_PRINCIPALS.values()],
    ids=["missing", "empty", *MALFORMED_PRINCIPALS],
)
async def test_no_valid_principal_is_401_on_every_route(
    trusted_server, azurite, standins, method, path, document, principal, code
):
    rows, model_calls = stored_rows(azurite, trusted_server), len(standins.requests())
    headers = {} if principal is None else {PRINCIPAL: principal}
    async with Api(trusted_server.url, headers=headers) as api:
        reply = await api.request(method, path, json_body=document)
    assert reply.status == 401
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.error_code == code and reply.body["error"]["message"]
    assert stored_rows(azurite, trusted_server) == rows
    assert len(standins.requests()) == model_calls


async def test_health_needs_no_principal(trusted_server):
    async with Api(trusted_server.url) as api:
        reply = await api.request("GET", "/api/health")
    assert reply.status == 200 and reply.body["status"] == "ok"


# -- a deployment that does not trust the header ------------------------------------------------


async def test_without_trust_the_principal_is_ignored_and_every_caller_is_the_app(server):
    conversation_id = f"untrusted {uuid.uuid4().hex}"
    async with (
        Api(server.url, headers={PRINCIPAL: swa_principal()}) as alice,
        Api(server.url, headers={PRINCIPAL: app_service_principal()}) as bob,
        Api(server.url, headers={PRINCIPAL: MALFORMED_PRINCIPALS["not base64"]}) as forged,
        Api(server.url) as anonymous,
    ):
        assert (await alice.chat("one", conversation_id)).status == 200
        answer = await bob.chat("two", conversation_id)
        assert answer.body["message"]["content"] == "Echo #2: two"
        expected = [("user", "one"), ("assistant", "Echo #0: one"), ("user", "two"), ("assistant", "Echo #2: two")]
        for caller in (alice, bob, forged, anonymous):
            assert contents(await caller.messages(conversation_id)) == expected
            assert conversation_id in await listed_ids(caller)
        assert (await forged.delete(conversation_id)).status == 204
        assert (await alice.messages(conversation_id)).status == 404
