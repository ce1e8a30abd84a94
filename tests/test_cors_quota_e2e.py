"""CORS for front ends on another origin, and the per-owner daily token quota, end to end.

The quota tests run two instances on one storage account, and read the owner's count straight
from Azurite after the turns, to compare it with the usage the clients were told.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from azure.data.tables.aio import TableClient

from chat.engine.tokens import estimate_tokens
from chat.storage import keys
from tests.support.api import Api, Reply, signed_in
from tests.support.servers import AppServer, app_env

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def cors_server(standins, azurite):
    server = AppServer(
        app_env(standins, azurite.connection_string, CHAT_ALLOWED_ORIGINS=f"{ORIGIN}, http://localhost:4280")
    ).start()
    yield server
    server.stop()


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "content-type"}


async def test_preflight_from_an_allowed_origin(cors_server):
    async with Api(cors_server.url) as api:
        reply = await api.request("OPTIONS", "/api/chat/stream", headers=preflight(ORIGIN))
    assert reply.status == 204
    assert reply.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert reply.headers["Access-Control-Allow-Methods"] == "POST"
    assert "Idempotency-Key" in reply.headers["Access-Control-Allow-Headers"]
    assert reply.headers["Vary"] == "Origin"


async def test_preflight_from_another_origin_is_refused(cors_server, api):
    async with Api(cors_server.url) as cors_api:
        reply = await cors_api.request("OPTIONS", "/api/chat", headers=preflight("https://evil.example.net"))
    assert reply.status == 403 and reply.error_code == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in reply.headers
    # With no CHAT_ALLOWED_ORIGINS, no origin is allowed.
    reply = await api.request("OPTIONS", "/api/chat", headers=preflight(ORIGIN))
    assert reply.status == 403


async def test_answers_carry_cors_headers_for_allowed_origins_only(cors_server):
    async with Api(cors_server.url) as api:
        allowed = await api.chat("hi from the web", headers={"Origin": ORIGIN})
        streamed = await api.chat("hi again", allowed.body["sessionState"], stream=True, headers={"Origin": ORIGIN})
        other = await api.chat("hi from elsewhere", headers={"Origin": "https://evil.example.net"})
        error = await api.request("GET", "/api/chat", headers={"Origin": ORIGIN})
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Retry-After" in allowed.headers["Access-Control-Expose-Headers"]
    assert streamed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert error.status == 405 and error.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert other.status == 200 and "Access-Control-Allow-Origin" not in other.headers


async def test_plain_options_lists_the_methods(cors_server):
    async with Api(cors_server.url) as api:
        reply = await api.request("OPTIONS", "/api/conversations/abc")
    assert reply.status == 204 and reply.headers["Allow"] == "DELETE, OPTIONS"


# -- quota --------------------------------------------------------------------------------------

QUOTA = 200
CAP = 50  # CHAT_MAX_ANSWER_TOKENS: each turn reserves its prompt's estimate and this many answer tokens
QUOTA_PREFIX = "quota" + uuid.uuid4().hex[:8]
ROOMY_PREFIX = "roomy" + uuid.uuid4().hex[:8]


def quota_env(standins, azurite, quota: int, prefix: str, **overrides: str) -> dict[str, str]:
    return app_env(
        standins,
        azurite.connection_string,
        CHAT_DAILY_TOKEN_QUOTA=str(quota),
        CHAT_TRUST_CLIENT_PRINCIPAL="true",
        WEBSITE_AUTH_ENABLED="True",
        CHAT_TABLE_PREFIX=prefix,
        **overrides,
    )


@pytest.fixture(scope="module")
def quota_servers(standins, azurite):
    """Two instances sharing one storage account: the quota must hold across them."""
    env = quota_env(standins, azurite, QUOTA, QUOTA_PREFIX, CHAT_MAX_ANSWER_TOKENS=str(CAP))
    servers = [AppServer(env).start(), AppServer(env).start()]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def roomy_servers(standins, azurite):
    """Two instances with a quota no test here reaches, and the default answer cap."""
    env = quota_env(standins, azurite, 1_000_000, ROOMY_PREFIX)
    servers = [AppServer(env).start(), AppServer(env).start()]
    yield servers
    for server in servers:
        server.stop()


def user_of(label: str) -> tuple[str, dict[str, str]]:
    """A new signed-in user: the owner the app makes of them, and their request headers."""
    user_id = f"{label}-{uuid.uuid4().hex}"
    return f"user:aad:{user_id}", signed_in(user_id)


async def stored_count(azurite, prefix: str, owner: str) -> int:
    """The owner's token count as stored: every count row of their partition, whatever the day."""
    partition = keys.owner_partition(owner)
    table = TableClient.from_connection_string(azurite.connection_string, table_name=f"{prefix}conversations")
    async with table:
        rows = table.query_entities(
            "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi",
            parameters={"p": partition, "lo": keys.USAGE_PREFIX, "hi": chr(ord(keys.USAGE_PREFIX) + 1)},
        )
        return sum([int(row["tokens"]) async for row in rows])


def usage_told(reply: Reply) -> int:
    """The tokens a successful turn told its client it used."""
    context = reply.lines[-1]["context"] if reply.lines else reply.body["context"]
    return context["usage"]["prompt_tokens"] + context["usage"]["completion_tokens"]


def finish_reason(reply: Reply) -> str:
    return (reply.lines[-1]["context"] if reply.lines else reply.body["context"])["finish_reason"]


def assert_quota_exceeded(reply: Reply) -> None:
    assert reply.status == 429 and reply.error_code == "quota_exceeded", (reply.status, reply.body)
    assert 0 < int(reply.headers["Retry-After"]) <= 86_400


async def test_the_daily_quota_holds_across_instances_and_owners(quota_servers, standins):
    first, second = quota_servers
    user = signed_in(f"heavy-{uuid.uuid4().hex}")
    # About 170 tokens reserved (the estimate of the prompt, and the cap): it fits the quota once,
    # and its answer, 62 tokens on the stand-in, is cut at the cap. No second turn fits after it.
    big = "word " * 60
    async with Api(first.url, headers=user) as a, Api(second.url, headers=user) as b:
        used = await a.chat(big, "q1", headers={"Idempotency-Key": "big-one"})
        assert used.status == 200
        calls = len(standins.requests())
        refused = await b.chat("one more", "q1")
        refused_stream = await a.chat("one more", "q1", stream=True)
        replay = await b.chat(big, "q1", headers={"Idempotency-Key": "big-one"})
        stored = await a.messages("q1")
    for reply in (refused, refused_stream):
        assert reply.status == 429 and reply.error_code == "quota_exceeded"
        assert 0 < int(reply.headers["Retry-After"]) <= 86_400
    assert len(standins.requests()) == calls, "a refused turn must not reach the model"
    assert replay.status == 200 and replay.headers.get("Idempotent-Replayed") == "true"
    assert len(stored.body["messages"]) == 2
    async with Api(second.url, headers=signed_in(f"light-{uuid.uuid4().hex}")) as other:
        assert (await other.chat("my own quota", "q1")).status == 200


@pytest.mark.parametrize("stream", [False, True])
async def test_a_turn_larger_than_the_quota_is_refused_before_the_model_and_stores_nothing(
    quota_servers, standins, azurite, stream
):
    owner, user = user_of("novelist")
    calls = len(standins.requests())
    async with Api(quota_servers[0].url, headers=user) as api:
        reply = await api.chat("a" * 100_000, "long", stream=stream)
        history = await api.messages("long")
        listed = await api.conversations()
    assert_quota_exceeded(reply)
    assert "more than the daily quota" in reply.body["error"]["message"]
    assert len(standins.requests()) == calls, "a refused turn must not reach the model"
    assert history.status == 404 and listed.body["conversations"] == []
    assert await stored_count(azurite, QUOTA_PREFIX, owner) == 0


async def test_the_answer_cap_is_the_models_output_limit_and_the_charge_is_what_it_used(
    quota_servers, standins, azurite
):
    owner, user = user_of("capped")
    async with Api(quota_servers[1].url, headers=user) as api:
        reply = await api.chat("tell me " + "more " * 70, "capped")  # the echo is 74 words
    assert reply.status == 200, reply.body
    sent = standins.requests()[-1]["body"]
    assert sent["max_completion_tokens"] == CAP and "max_tokens" not in sent
    assert finish_reason(reply) == "length" and reply.body["context"]["usage"]["completion_tokens"] == CAP
    assert await stored_count(azurite, QUOTA_PREFIX, owner) == usage_told(reply)


async def test_a_failed_model_call_is_refunded_and_a_cut_stream_charged_what_it_sent(quota_servers, azurite):
    owner, user = user_of("unlucky")
    async with Api(quota_servers[0].url, headers=user) as api:
        failed = await api.chat("please [[500]]", "unlucky")
        assert failed.status == 502
        assert await stored_count(azurite, QUOTA_PREFIX, owner) == 0
        cut = await api.chat("go on [[cut]]", "unlucky", stream=True)
    assert cut.lines[-1]["error"]["code"] == "model_stream_interrupted" and cut.text
    # Its usage unknown, the cut stream is charged the estimates of its prompt and of the text it sent.
    system_prompt = quota_servers[0].env["CHAT_SYSTEM_PROMPT"]
    expected = estimate_tokens(system_prompt) + estimate_tokens("go on [[cut]]") + estimate_tokens(cut.text)
    assert await stored_count(azurite, QUOTA_PREFIX, owner) == expected


async def test_twenty_concurrent_turns_stay_within_the_quota_and_are_counted_exactly(quota_servers, azurite):
    owner, user = user_of("crowd")
    first, second = quota_servers
    # Each reserves 95 tokens and uses 71: two fit at once, three would not.
    async with Api(first.url, headers=user) as a, Api(second.url, headers=user) as b:
        replies = await asyncio.gather(
            *((a, b)[n % 2].chat(f"{n:02d} " + "w " * 40, f"crowd-{n}", stream=n % 2 == 1) for n in range(20))
        )
    served = [reply for reply in replies if reply.status == 200]
    for reply in replies:
        if reply.status != 200:
            assert_quota_exceeded(reply)
    stored = await stored_count(azurite, QUOTA_PREFIX, owner)
    # Refused turns refunded their reservations; served ones are charged what the model used.
    assert stored == sum(usage_told(reply) for reply in served)
    # The admitted reservations never exceed the quota, and the stand-in never uses more than a
    # turn reserves, so the burst does not overshoot at all (the guarantee is one turn's cap).
    assert stored <= QUOTA


async def test_fifty_concurrent_turns_of_one_owner_are_all_counted(roomy_servers, standins, azurite):
    owner, user = user_of("busy")
    first, second = roomy_servers
    async with Api(first.url, headers=user) as a, Api(second.url, headers=user) as b:
        replies = await asyncio.gather(
            *((a, b)[n % 2].chat(f"turn {n} of the burst", f"burst-{n % 5}", stream=n % 3 == 0) for n in range(50))
        )
    assert [reply.status for reply in replies] == [200] * 50
    told = sum(usage_told(reply) for reply in replies)
    assert await stored_count(azurite, ROOMY_PREFIX, owner) == told


async def test_without_a_quota_no_answer_cap_is_sent_unless_set(api, standins):
    reply = await api.chat("no cap here")
    assert reply.status == 200
    sent = standins.requests()[-1]["body"]
    assert "max_completion_tokens" not in sent and "max_tokens" not in sent


@pytest.fixture(scope="module")
def legacy_server(standins, azurite):
    """An Azure OpenAI API version from before max_completion_tokens: the cap goes as max_tokens."""
    env = quota_env(
        standins,
        azurite,
        1_000_000,
        "legacy" + uuid.uuid4().hex[:8],
        CHAT_MAX_ANSWER_TOKENS="3",
        AZURE_OPENAI_API_VERSION="2024-06-01",
    )
    server = AppServer(env).start()
    yield server
    server.stop()


async def test_an_endpoint_that_refuses_max_completion_tokens_gets_max_tokens(legacy_server, standins):
    _, user = user_of("legacy")
    async with Api(legacy_server.url, headers=user) as api:
        before = len(standins.requests())
        first = await api.chat("one two three four", "legacy")
        between = len(standins.requests())
        second = await api.chat("five six seven eight", "legacy", stream=True)
        requests = standins.requests()
    assert first.status == 200 and second.status == 200
    assert first.body["message"]["content"] == "Echo #0: one" and finish_reason(first) == "length"
    assert second.text == "Echo #2: five" and finish_reason(second) == "length"
    refused, retried = requests[before:between]
    assert refused["status"] == 400 and refused["body"]["max_completion_tokens"] == 3
    assert retried["status"] == 200 and retried["body"]["max_tokens"] == 3
    # Once refused, the worker sends max_tokens straight away.
    [again] = requests[between:]
    assert again["body"]["max_tokens"] == 3 and "max_completion_tokens" not in again["body"]
