"""The bot example end to end: a real Activity in, the reply caught at the channel's service URL.

The bot (examples/bot/app.py, the Microsoft 365 Agents SDK) runs in a process of its own in the
SDK's anonymous development mode, under tests.support.loopback_only, which refuses any address outside
loopback. Behind it is the served app, on Azurite and the model stand-in (answers
`Echo #N: <message>`); in front of it, a stand-in of the channel's service URL that records what
the bot sends.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from standins import start_server
from tests.support import ROOT
from tests.support.api import Api
from tests.support.channel import ChannelService, Sent
from tests.support.loopback_only import REFUSED
from tests.support.ports import free_port, stop_process, wait_for_port

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

BOT_ID = "28:bot-app-id"
RATE_LIMITED = "I'm getting more questions than I can answer right now. Please try again in a minute."
FALLBACK = "Sorry, I couldn't get an answer just now. Please try again later."
NOT_TEXT = "I can only read text messages."


class BotProcess:
    """examples/bot/app.py as `python app.py` runs it, with sockets held to loopback."""

    def __init__(self, log: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = {
            "PATH": "",
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(ROOT),
            "PORT": str(self.port),
            **env,
        }
        self._process: subprocess.Popen | None = None

    def start(self) -> BotProcess:
        with self.log.open("w") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.loopback_only", "examples/bot/app.py"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, self._process, "the bot")
        return self

    def stop(self) -> None:
        stop_process(self._process)
        self._process = None

    def refused(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if line.startswith(REFUSED)]

    async def post(self, activity: dict[str, Any] | bytes) -> int:
        """POST to the bot's messaging endpoint, as the channel does; the status the bot answered."""
        async with aiohttp.ClientSession() as session:
            options: dict[str, Any] = (
                {"data": activity, "headers": {"Content-Type": "application/json"}}
                if isinstance(activity, bytes)
                else {"json": activity}
            )
            async with session.post(self.url + "/api/messages", **options) as response:
                await response.read()
                return response.status


@pytest.fixture(scope="module")
def bot(server, tmp_path_factory):
    instance = BotProcess(
        tmp_path_factory.mktemp("bot") / "bot.log", CHAT_BACKEND_URL=server.url, CHAT_FUNCTION_KEY="bot-test-key"
    ).start()
    yield instance
    instance.stop()


@pytest.fixture(autouse=True)
def nothing_outside(request):
    """After each test that talks to the bot: the bot tried no address outside loopback."""
    yield
    if "bot" in request.fixturenames:
        assert request.getfixturevalue("bot").refused() == []


@pytest.fixture
async def channel():
    async with ChannelService() as service:
        yield service


def message(channel: ChannelService, channel_id: str, conversation_id: str, text: str | None, **extra: Any) -> dict:
    """A message Activity as a channel posts it to the bot's messaging endpoint."""
    return {
        "type": "message",
        "id": extra.pop("id", uuid.uuid4().hex),
        "timestamp": "2025-01-01T12:00:00.000Z",
        "channelId": channel_id,
        "serviceUrl": channel.url,
        "from": {"id": "29:user-ada", "name": "Ada"},
        "recipient": {"id": BOT_ID, "name": "Chat Bot"},
        "conversation": {"id": conversation_id},
        **({"text": text} if text is not None else {}),
        "locale": "en-US",
        **extra,
    }


def teams_message(channel: ChannelService, conversation_id: str, text: str) -> dict:
    """A message as Teams sends it. The conversation ID tells its kind: `a:...` a one-to-one chat,
    `19:...@thread.v2` a group chat, `19:...@thread.tacv2;messageid=...` a channel thread; in the
    last two the message @mentions the bot."""
    personal = conversation_id.startswith("a:")
    kind = "personal" if personal else "groupChat" if conversation_id.endswith("@thread.v2") else "channel"
    mention = "<at>Chat Bot</at>"
    conversation = {"id": conversation_id, "conversationType": kind}
    if personal:
        return message(channel, "msteams", conversation_id, text, conversation=conversation)
    return message(
        channel,
        "msteams",
        conversation_id,
        f"{mention} {text}",
        conversation={**conversation, "tenantId": "tenant-1"},
        channelData={"tenant": {"id": "tenant-1"}, "teamsChannelId": conversation_id.split(";")[0]},
        entities=[{"type": "mention", "mentioned": {"id": BOT_ID, "name": "Chat Bot"}, "text": mention}],
    )


def teams_thread_id() -> str:
    return f"19:{uuid.uuid4().hex}@thread.tacv2;messageid=1"


def teams_chat_id() -> str:
    return f"a:1{uuid.uuid4().hex}"


async def stored(api: Api, conversation_id: str) -> list[tuple[str, str]] | int:
    """The backend's messages of the conversation, or the status when it has none to show."""
    reply = await api.messages(conversation_id)
    if reply.status != 200:
        return reply.status
    return [(m["role"], m["content"]) for m in reply.body["messages"]]


def texts(sent: list[Sent]) -> list[str]:
    return [s.body.get("text") for s in sent]


async def test_a_message_is_answered_whole_on_a_channel_that_does_not_stream(bot, channel, api):
    conversation_id = f"emulator-{uuid.uuid4().hex}|livechat"
    activity = message(channel, "emulator", conversation_id, "Hello, I am Ada")
    assert await bot.post(activity) == 202

    [reply] = channel.messages()
    assert reply.body["text"] == "Echo #0: Hello, I am Ada"
    assert (reply.method, reply.conversation, reply.activity) == ("POST", conversation_id, activity["id"])
    assert reply.body["replyToId"] == activity["id"]
    assert reply.body["conversation"]["id"] == conversation_id
    assert reply.body["from"]["id"] == BOT_ID and reply.body["recipient"]["id"] == "29:user-ada"
    assert reply.authorization is None  # development mode: no token, none asked for
    assert channel.stream_updates() == [] and reply.stream_info is None
    assert await stored(api, conversation_id) == [
        ("user", "Hello, I am Ada"),
        ("assistant", "Echo #0: Hello, I am Ada"),
    ]


async def test_a_second_message_continues_the_same_conversation(bot, channel, api):
    conversation_id = f"emulator-{uuid.uuid4().hex}"
    assert await bot.post(message(channel, "emulator", conversation_id, "My name is Ada")) == 202
    assert await bot.post(message(channel, "emulator", conversation_id, "What is my name?")) == 202

    assert texts(channel.messages()) == ["Echo #0: My name is Ada", "Echo #2: What is my name?"]
    assert await stored(api, conversation_id) == [
        ("user", "My name is Ada"),
        ("assistant", "Echo #0: My name is Ada"),
        ("user", "What is my name?"),
        ("assistant", "Echo #2: What is my name?"),
    ]


@pytest.mark.parametrize("channel_id", ["msteams", "directline"])
async def test_the_answer_is_streamed_where_the_channel_streams(bot, channel, api, channel_id):
    # Slow chunks, so the stream has text to show before it ends.
    question = "Tell me a story in a good many words [[chunk-delay:300]]"
    if channel_id == "msteams":
        conversation_id = teams_chat_id()
        activity = teams_message(channel, conversation_id, question)
    else:
        conversation_id = f"{uuid.uuid4().hex}-us"
        activity = message(channel, channel_id, conversation_id, question)
    assert await bot.post(activity) == 202

    answer = f"Echo #0: {question}"
    updates, [final] = channel.stream_updates(), channel.messages()
    assert updates, "no streaming update before the final message"
    assert [u.stream_info["streamType"] for u in updates] == ["streaming"] * len(updates)
    sequence = [u.stream_info["streamSequence"] for u in updates]
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence)
    assert all(answer.startswith(u.body["text"]) and u.body["text"] for u in updates)
    assert channel.sent.index(final) > channel.sent.index(updates[-1])
    assert final.body["text"] == answer
    assert final.stream_info["streamType"] == "final"
    # Every piece of one stream names it: on Teams by the ID the channel gave its first update.
    stream_ids = [s.stream_info.get("streamId") for s in [*updates, final]]
    if channel_id == "msteams":
        assert stream_ids == [None] + [updates[0].id] * len(updates)
    else:
        assert len(set(stream_ids)) == 1 and stream_ids[0]
    assert all(s.conversation == conversation_id and s.activity == activity["id"] for s in [*updates, final])
    assert await stored(api, conversation_id) == [("user", question), ("assistant", answer)]


@pytest.mark.parametrize("kind", ["channel", "group chat"])
async def test_a_teams_channel_or_group_chat_gets_the_answer_whole(bot, channel, api, kind):
    """Teams streams only in one-to-one chats; in a channel or a group chat it refuses the updates."""
    conversation_id = teams_thread_id() if kind == "channel" else f"19:{uuid.uuid4().hex}@thread.v2"
    question = "What is in this thread? [[chunk-delay:300]]"
    assert await bot.post(teams_message(channel, conversation_id, question)) == 202

    assert channel.stream_updates() == []
    [reply] = channel.messages()
    answer = f"Echo #0: {question}"  # the bot's @mention is not sent on
    assert reply.body["text"] == answer and reply.stream_info is None
    assert reply.conversation == conversation_id
    assert await stored(api, conversation_id) == [("user", question), ("assistant", answer)]


async def test_a_backend_error_becomes_a_sentence_and_stores_nothing(bot, channel, api):
    conversation_id = f"emulator-{uuid.uuid4().hex}"
    assert await bot.post(message(channel, "emulator", conversation_id, "First question")) == 202
    assert await bot.post(message(channel, "emulator", conversation_id, "Second [[429]]")) == 202

    assert texts(channel.messages()) == ["Echo #0: First question", RATE_LIMITED]
    assert await stored(api, conversation_id) == [("user", "First question"), ("assistant", "Echo #0: First question")]


async def test_a_stream_cut_short_ends_with_a_sentence_and_stores_nothing(bot, channel, api):
    conversation_id = teams_chat_id()
    assert await bot.post(teams_message(channel, conversation_id, "Tell me everything [[cut]]")) == 202

    [final] = channel.messages()
    assert final.stream_info["streamType"] == "final"
    assert final.body["text"].endswith(FALLBACK)
    assert "Traceback" not in final.body["text"] and "error" not in final.body["text"].lower()
    assert await stored(api, conversation_id) == 404


async def test_a_message_the_channel_sends_again_is_answered_again_and_stored_once(bot, channel, api):
    conversation_id = f"emulator-{uuid.uuid4().hex}"
    activity = message(channel, "emulator", conversation_id, "Only once, please")
    assert await bot.post(activity) == 202
    assert await bot.post(activity) == 202  # a channel's retry: the same Activity ID

    assert texts(channel.messages()) == ["Echo #0: Only once, please"] * 2
    assert await stored(api, conversation_id) == [
        ("user", "Only once, please"),
        ("assistant", "Echo #0: Only once, please"),
    ]


async def test_a_message_without_text_gets_a_sentence_and_reaches_no_backend(bot, channel, api):
    conversation_id = f"emulator-{uuid.uuid4().hex}"
    picture = {"contentType": "image/png", "contentUrl": channel.url + "picture.png", "name": "picture.png"}
    assert await bot.post(message(channel, "emulator", conversation_id, None, attachments=[picture])) == 202

    assert texts(channel.messages()) == [NOT_TEXT]
    assert await stored(api, conversation_id) == 404


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"type": "message", "text": "no conversation", "channelId": "emulator"}'],
    ids=["not JSON", "no conversation"],
)
async def test_a_malformed_activity_is_refused_and_answers_nothing(bot, channel, body):
    assert await bot.post(body) == 400
    assert channel.sent == []


async def test_the_backend_gets_the_conversation_id_the_function_key_and_the_activity_id(channel, tmp_path):
    """Here the backend is a recorder: the served app does not check function keys."""
    requests: list[tuple[dict[str, str], Any]] = []

    async def chat(request: web.Request) -> web.Response:
        requests.append((dict(request.headers), await request.json()))
        return web.json_response({"message": {"role": "assistant", "content": "Recorded."}, "sessionState": "x"})

    backend = web.Application()
    backend.router.add_post("/api/chat", chat)
    runner, port = await start_server(backend, "127.0.0.1", 0)
    bot = BotProcess(tmp_path / "bot.log", CHAT_BACKEND_URL=f"http://127.0.0.1:{port}/", CHAT_FUNCTION_KEY="s3cret")
    try:
        bot.start()
        conversation_id = teams_thread_id()
        activity = message(channel, "emulator", conversation_id, "Hello", id="1581234567890")
        assert await bot.post(activity) == 202
    finally:
        bot.stop()
        await runner.cleanup()

    [(headers, body)] = requests
    assert body == {"messages": [{"role": "user", "content": "Hello"}], "sessionState": conversation_id}
    assert headers["x-functions-key"] == "s3cret"
    assert headers["Idempotency-Key"] == "1581234567890"
    assert texts(channel.messages()) == ["Recorded."]
    assert bot.refused() == []


def test_a_missing_backend_url_stops_the_bot_with_a_message_naming_it():
    result = subprocess.run(
        [sys.executable, "examples/bot/app.py"],
        cwd=ROOT,
        env={"PATH": "", "LANG": "C.UTF-8", "PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "CHAT_BACKEND_URL is required" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_loopback_guard_refuses_an_outside_name_and_lets_loopback_through(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(
        "import socket\n"
        "socket.getaddrinfo('127.0.0.1', 80)\n"
        "socket.getaddrinfo('localhost', 80)\n"
        "try:\n"
        "    socket.getaddrinfo('login.microsoftonline.com', 443)\n"
        "except PermissionError:\n"
        "    print('refused')\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.loopback_only", str(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "refused\n"
    assert result.stderr == f"{REFUSED} login.microsoftonline.com\n"
