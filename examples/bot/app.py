"""A bot for Teams, Web Chat and every Azure Bot Service channel, in front of the chat backend.

Built on the Microsoft 365 Agents SDK (the successor of Bot Framework's botbuilder). Each message
is one turn of the backend's chat route, in the conversation named by the channel's conversation
ID; the answer is streamed where the channel can show it as it comes (Teams, Web Chat, Direct
Line) and sent whole elsewhere. Run it with `python app.py`; the settings are in README.md.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from microsoft_agents.activity import Activity, ActivityTypes, Channels, load_configuration_from_env
from microsoft_agents.hosting.aiohttp import CloudAdapter, jwt_authorization_middleware, start_agent_process
from microsoft_agents.hosting.core import (
    AgentApplication,
    AgentAuthConfiguration,
    AnonymousTokenProvider,
    ConnectionManager,
    Connections,
    MemoryStorage,
    OutboundHostValidator,
    TurnContext,
    TurnState,
)

from backend import BackendError, ChatBackend

NOT_TEXT = "I can only read text messages."
# The backend allows its model a minute by default; this leaves room for its own retries.
BACKEND_TIMEOUT = aiohttp.ClientTimeout(total=120)
MAX_IDEMPOTENCY_KEY_CHARS = 255


@dataclass(frozen=True)
class Settings:
    backend_url: str
    function_key: str | None
    port: int
    agents: dict[str, Any]  # the SDK's own settings, CONNECTIONS__SERVICE_CONNECTION__SETTINGS__... and others

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        backend_url = env.get("CHAT_BACKEND_URL", "")
        if not backend_url.startswith(("http://", "https://")):
            raise ValueError(
                "CHAT_BACKEND_URL is required: the chat backend's URL, such as https://<function app>.azurewebsites.net"
            )
        port = env.get("PORT", "3978")
        if not port.isdigit():
            raise ValueError(f"PORT must be a port number, not {port!r}")
        return cls(backend_url, env.get("CHAT_FUNCTION_KEY") or None, int(port), load_configuration_from_env(env))

    @property
    def client_id(self) -> str | None:
        """The bot's Entra app ID; without one the bot runs in the SDK's anonymous development mode."""
        connection = self.agents["CONNECTIONS"].get("SERVICE_CONNECTION", {})
        return connection.get("SETTINGS", {}).get("CLIENTID") or None


def connections(settings: Settings) -> Connections:
    if settings.client_id:
        # Imported only here: the development mode runs with the hosting packages alone.
        from microsoft_agents.authentication.msal import MsalConnectionManager

        return MsalConnectionManager(**settings.agents)
    # No app registration: requests come without tokens and replies go without them, as the
    # Agents Playground and the Bot Framework Emulator expect. Served on loopback only (main).
    anonymous = AgentAuthConfiguration(anonymous_allowed=True)
    return ConnectionManager(lambda _: AnonymousTokenProvider(), {"SERVICE_CONNECTION": anonymous})


def idempotency_key(activity: Activity) -> str | None:
    """The channel's ID of the message: a channel that sends it again gets the stored answer back,
    and the backend stores the turn once (its keys are scoped to the conversation)."""
    key = activity.id
    if key and len(key) <= MAX_IDEMPOTENCY_KEY_CHARS and key.isascii() and key.isprintable():
        return key
    return None


def streams(context: TurnContext) -> bool:
    """Whether the answer is streamed: where the SDK knows the channel shows a stream (Teams, Web
    Chat, Direct Line), but not in a Teams channel or group chat, where Teams refuses a stream."""
    activity = context.activity
    teams = activity.channel_id is not None and activity.channel_id.channel == Channels.ms_teams
    if teams and activity.conversation.conversation_type in ("channel", "groupChat"):
        return False
    return context.streaming_response.is_streaming_channel


class Bot:
    """The message handler: one backend turn per message, in the channel's conversation."""

    def __init__(self) -> None:
        self.backend: ChatBackend | None = None  # made when the server starts (backend_session)

    async def on_message(self, context: TurnContext, _state: TurnState) -> None:
        text = (context.activity.text or "").strip()
        if not text:
            await context.send_activity(NOT_TEXT)
            return
        assert self.backend is not None, "the backend session starts with the server"
        conversation_id = context.activity.conversation.id
        key = idempotency_key(context.activity)
        stream = context.streaming_response
        if not streams(context):
            try:
                answer = await self.backend.answer(conversation_id, text, idempotency_key=key)
            except BackendError as error:
                answer = error.sentence
            await context.send_activity(answer)
            return
        try:
            async for piece in self.backend.stream(conversation_id, text, idempotency_key=key):
                stream.queue_text_chunk(piece)
        except BackendError as error:
            # The stream must still end with its final message: it says what went wrong.
            stream.queue_text_chunk(("\n\n" if stream.get_message() else "") + error.sentence)
        await stream.end_stream()

    async def on_turn_error(self, context: TurnContext, error: Exception) -> None:
        # The SDK has logged the error with its trace; the user gets a sentence, never the trace
        # (the SDK's own handler would send them the exception's text).
        await context.send_activity("Sorry, something went wrong on my side. Please try again.")


def build_app(settings: Settings) -> web.Application:
    manager = connections(settings)
    # With tokens, replies may only go to the channels' own service URLs (https, Microsoft hosts).
    adapter = CloudAdapter(
        connection_manager=manager, host_validator=OutboundHostValidator(enabled=bool(settings.client_id))
    )
    agent = AgentApplication[TurnState](storage=MemoryStorage(), connection_manager=manager, **settings.agents)
    bot = Bot()
    agent.activity(ActivityTypes.message)(bot.on_message)
    adapter.on_turn_error = bot.on_turn_error

    async def messages(request: web.Request) -> web.StreamResponse:
        response = await start_agent_process(request, agent, adapter)
        assert response is not None, "the aiohttp CloudAdapter answers every request"
        return response

    async def backend_session(_app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(timeout=BACKEND_TIMEOUT) as session:
            bot.backend = ChatBackend(settings.backend_url, settings.function_key, session)
            yield

    app = web.Application(middlewares=[jwt_authorization_middleware])
    with warnings.catch_warnings():
        # The SDK's middleware reads this plain string key, where aiohttp recommends an AppKey.
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        app["agent_configuration"] = manager.get_default_connection_configuration()
    app.router.add_post("/api/messages", messages)
    app.cleanup_ctx.append(backend_session)
    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env(os.environ)
    except ValueError as error:
        raise SystemExit(f"bot: {error}") from None
    # Without a client ID anyone who reaches the bot can talk to it, so it listens on loopback only.
    host = "0.0.0.0" if settings.client_id else "127.0.0.1"
    web.run_app(build_app(settings), host=host, port=settings.port)


if __name__ == "__main__":
    main()
