"""The official openai Python package, unchanged, on the OpenAI-compatible door under /api/v1 behind
platform authentication: two owners' conversations, responses and items kept apart, none of
another's reachable by ID or by reference, and no owner at all refused."""

from __future__ import annotations

import base64
import json
import uuid

import openai
import pytest
from openai import AsyncOpenAI

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def principal(user_id: str) -> str:
    claims = {"identityProvider": "aad", "userId": user_id, "userDetails": f"{user_id}@example.com", "userRoles": []}
    return base64.b64encode(json.dumps(claims).encode()).decode()


async def test_two_owners_are_kept_apart(trusted_server, model):
    def sdk(user: str) -> AsyncOpenAI:
        return AsyncOpenAI(
            base_url=f"{trusted_server.url}/api/v1",
            api_key="unused-here",
            max_retries=0,
            default_headers={"x-ms-client-principal": principal(user)},
        )

    async with sdk("ada") as ada, sdk("bob") as bob:
        conversation = await ada.conversations.create(items=[{"type": "message", "role": "user", "content": "mine"}])
        response = await ada.responses.create(model=model, input="secret", conversation=conversation.id)
        item = (await ada.conversations.items.list(conversation.id)).data[0]
        for attempt in (
            bob.conversations.retrieve(conversation.id),
            bob.conversations.items.list(conversation.id),
            bob.conversations.items.retrieve(item.id, conversation_id=conversation.id),
            bob.conversations.delete(conversation.id),
            bob.responses.retrieve(response.id),
            bob.responses.delete(response.id),
            bob.responses.input_items.list(response.id),
            bob.responses.create(model=model, input="peek", previous_response_id=response.id),
            bob.responses.create(model=model, input="peek", conversation=conversation.id),
        ):
            with pytest.raises(openai.NotFoundError):
                await attempt
        # Nothing of Ada's changed.
        assert (await ada.responses.retrieve(response.id)).output_text == response.output_text
        assert len((await ada.conversations.items.list(conversation.id)).data) == 3

    async with AsyncOpenAI(base_url=f"{trusted_server.url}/api/v1", api_key="x", max_retries=0) as anonymous:
        with pytest.raises(openai.AuthenticationError):
            await anonymous.conversations.create()


async def test_another_owners_item_cannot_be_referenced(trusted_server, model):
    def sdk(user: str) -> AsyncOpenAI:
        headers = {"x-ms-client-principal": principal(user)}
        return AsyncOpenAI(base_url=f"{trusted_server.url}/api/v1", api_key="x", max_retries=0, default_headers=headers)

    async with sdk(f"ada-{uuid.uuid4().hex}") as ada, sdk(f"bob-{uuid.uuid4().hex}") as bob:
        secret = await ada.responses.create(model=model, input="my secret")
        with pytest.raises(openai.NotFoundError) as raised:
            await bob.responses.create(model=model, input=[{"type": "item_reference", "id": secret.output[0].id}])
        assert raised.value.code == "item_not_found"
        mine = await ada.responses.create(model=model, input=[{"type": "item_reference", "id": secret.output[0].id}])
        assert mine.status == "completed"
