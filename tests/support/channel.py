"""A loopback stand-in of a channel's service URL: the Bot Connector API a bot replies to.

A bot answers an incoming Activity by calling the `serviceUrl` the Activity names:

``POST /v3/conversations/{conversation}/activities``               send to the conversation
``POST /v3/conversations/{conversation}/activities/{activity}``    reply to an activity
``PUT  /v3/conversations/{conversation}/activities/{activity}``    update an activity

Each answers as the Bot Connector does, ``{"id": "<the activity's ID>"}``, new IDs
``activity-1``, ``activity-2``, ... in order. As Teams does, it refuses a stream's updates in a
conversation that is not a one-to-one chat (``conversationType`` ``channel`` or ``groupChat``):
405 Method Not Allowed. Every call is recorded as a ``Sent`` (typing activities, a stream's updates
and its final message included, refused ones too)::

    async with ChannelService() as channel:
        ...  # post an Activity with serviceUrl = channel.url to the bot
        channel.messages()  # what the user would read
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from standins import start_server


@dataclass
class Sent:
    method: str
    conversation: str
    activity: str | None  # the activity replied to (POST) or updated (PUT)
    id: str  # the ID the stand-in answered with
    body: dict[str, Any]
    authorization: str | None
    status: int

    @property
    def stream_info(self) -> dict[str, Any] | None:
        """The activity's `streaminfo` entity, on a streamed answer's updates and final message."""
        return next((e for e in self.body.get("entities") or [] if e.get("type") == "streaminfo"), None)


class ChannelService:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.url = ""
        self.sent: list[Sent] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> ChannelService:
        app = web.Application()
        base = "/v3/conversations/{conversation}/activities"
        app.router.add_post(base, self._record)
        app.router.add_post(base + "/{activity}", self._record)
        app.router.add_put(base + "/{activity}", self._record)
        self._runner, port = await start_server(app, self.host, 0)
        self.url = f"http://{self.host}:{port}/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def messages(self) -> list[Sent]:
        """The messages the channel took: what the user reads."""
        return [s for s in self.sent if s.body.get("type") == "message" and s.status == 200]

    def stream_updates(self) -> list[Sent]:
        """The typing activities that carry a stream's text so far (not the plain typing indicator)."""
        return [s for s in self.sent if s.body.get("type") == "typing" and s.stream_info is not None]

    async def _record(self, request: web.Request) -> web.Response:
        activity = request.match_info.get("activity")
        body = await request.json()
        sent = Sent(
            method=request.method,
            conversation=request.match_info["conversation"],
            activity=activity,
            id=activity if request.method == "PUT" and activity else f"activity-{next(self._ids)}",
            body=body,
            authorization=request.headers.get("Authorization"),
            status=200,
        )
        conversation_type = (body.get("conversation") or {}).get("conversationType")
        if sent.stream_info is not None and conversation_type in ("channel", "groupChat"):
            sent.status = 405
        self.sent.append(sent)
        if sent.status != 200:
            return web.json_response(
                {"error": {"code": "MethodNotAllowed", "message": "Method Not Allowed"}}, status=405
            )
        return web.json_response({"id": sent.id})
